//! Small floating-point formats bit by bit: decode every code, encode an f32 with
//! round-to-nearest-even and saturation, and the sorted value table the codebook indexes.
//!
//! One [`Codec`] describes them all (1 optional sign bit, E exponent bits, M mantissa bits, a bias,
//! and which codes are not finite):
//!
//! | format | bias | max | non-finite codes |
//! |---|---|---|---|
//! | E4M3 (OCP "FN") | 7 | 448 | only S.1111.111 is NaN, no inf |
//! | E5M2 (OCP) | 15 | 57344 | IEEE: exponent 31 is inf (m = 0) or NaN |
//! | E2M3, E3M2 (FP6) | 1, 3 | 7.5, 28 | none |
//! | E2M1 (FP4) | 1 | 6 | none |
//! | any other e·m | 2^(E−1) − 1 | | none (every exponent code is finite) |
//! | E8M0 (MX scale) | 127 | 2^127 | 0xFF is NaN; unsigned, no zero, no subnormals |
//! | UE4M3 (NVFP4 scale) | 7 | 448 | 0x7F is NaN; E4M3 with the sign bit fixed to 0 |
//! | UE5M3 (FP4-training scale) | 15 | 122880 | none |
//!
//! UE5M3 is only described in words by its paper (docs/quantizers.md §4.14, §7 lists it as
//! unverified). We take normals 2^(e−15)(1 + m/8), subnormals 2^−14·m/8 and all 256 codes finite:
//! a block scale never needs NaN or inf, and keeping code 0xFF finite gives the format its full
//! range (max 2^16·1.875 = 122880, min subnormal 2^−17).
//!
//! Encoding rounds to nearest with ties to the even significand and saturates to ±max
//! ("satfinite"): overflow and ±inf give ±max rather than inf or NaN.

use super::scheme::{BlockScale, MiniFloat};

/// Which codes of a format are not finite numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specials {
    /// Every code is a finite number.
    None,
    /// Only the all-ones magnitude is NaN (OCP E4M3 "FN", E8M0).
    AllOnesNan,
    /// IEEE 754: the all-ones exponent holds inf (mantissa 0) and NaN.
    Ieee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    pub exp_bits: u32,
    pub man_bits: u32,
    pub signed: bool,
    pub bias: i32,
    /// Whether exponent code 0 holds zero and the subnormals; without them (E8M0) it is one
    /// more normal binade.
    pub subnormals: bool,
    pub specials: Specials,
}

impl Codec {
    pub const E8M0: Codec =
        Codec { exp_bits: 8, man_bits: 0, signed: false, bias: 127, subnormals: false, specials: Specials::AllOnesNan };
    pub const UE4M3: Codec =
        Codec { exp_bits: 4, man_bits: 3, signed: false, bias: 7, subnormals: true, specials: Specials::AllOnesNan };
    pub const UE5M3: Codec =
        Codec { exp_bits: 5, man_bits: 3, signed: false, bias: 15, subnormals: true, specials: Specials::None };

    /// A signed element format, with the OCP conventions for the named formats.
    pub fn element(format: MiniFloat) -> Codec {
        let (exp_bits, man_bits) = (format.exp_bits as u32, format.man_bits as u32);
        let specials = match format {
            MiniFloat::E4M3 => Specials::AllOnesNan,
            MiniFloat::E5M2 => Specials::Ieee,
            _ => Specials::None,
        };
        Codec { exp_bits, man_bits, signed: true, bias: (1 << (exp_bits - 1)) - 1, subnormals: true, specials }
    }

    pub fn block_scale(scale: BlockScale) -> Codec {
        match scale {
            BlockScale::E4M3 => Codec::UE4M3,
            BlockScale::UE5M3 => Codec::UE5M3,
        }
    }

    pub fn bits(&self) -> u32 {
        self.exp_bits + self.man_bits + self.signed as u32
    }

    fn magnitude_mask(&self) -> u32 {
        (1 << (self.exp_bits + self.man_bits)) - 1
    }

    fn sign_bit(&self) -> u32 {
        if self.signed {
            1 << (self.exp_bits + self.man_bits)
        } else {
            0
        }
    }

    /// The magnitude code of the largest finite value.
    fn max_code(&self) -> u32 {
        match self.specials {
            Specials::None => self.magnitude_mask(),
            Specials::AllOnesNan => self.magnitude_mask() - 1,
            Specials::Ieee => (((1 << self.exp_bits) - 1) << self.man_bits) - 1,
        }
    }

    /// The magnitude code NaN encodes to: the all-ones one, or IEEE's quiet NaN (top mantissa bit).
    fn nan_code(&self) -> Option<u32> {
        match self.specials {
            Specials::None => None,
            Specials::AllOnesNan => Some(self.magnitude_mask()),
            Specials::Ieee => Some(self.magnitude_mask() & !((1 << self.man_bits.saturating_sub(1)) - 1)),
        }
    }

    /// The exponent of the lowest binade whose values carry the implicit leading 1.
    fn min_normal_exp(&self) -> i32 {
        if self.subnormals {
            1 - self.bias
        } else {
            -self.bias
        }
    }

    pub fn decode(&self, code: u16) -> f32 {
        let code = code as u32;
        debug_assert!(code < 1 << self.bits(), "code {code:#x} has more than {} bits", self.bits());
        let magnitude = code & self.magnitude_mask();
        let (field, mantissa) = (magnitude >> self.man_bits, magnitude & ((1 << self.man_bits) - 1));
        let all_ones_exp = field == (1 << self.exp_bits) - 1;
        let value = match self.specials {
            Specials::AllOnesNan if magnitude == self.magnitude_mask() => f64::NAN,
            Specials::Ieee if all_ones_exp && mantissa == 0 => f64::INFINITY,
            Specials::Ieee if all_ones_exp => f64::NAN,
            _ if field == 0 && self.subnormals => mantissa as f64 * pow2(self.min_normal_exp() - self.man_bits as i32),
            _ => {
                let significand = ((1 << self.man_bits) + mantissa) as f64;
                significand * pow2(field as i32 - self.bias - self.man_bits as i32)
            }
        };
        let value = value as f32; // exact: every format here fits f32's range and precision
        if code & self.sign_bit() != 0 {
            -value
        } else {
            value
        }
    }

    /// The code nearest to `x`, ties to the even significand, saturating to the largest finite
    /// magnitude. Negative values encode as the smallest value in unsigned formats (0, or 2^−127
    /// in E8M0); NaN encodes as the format's NaN, or as +0 in a format without one (the
    /// quantizers reject NaN before they get here).
    ///
    /// The tie rule looks at the whole significand, implicit bit included. For M ≥ 1 that is the
    /// mantissa's last bit (so the even code wins); for M = 0 every normal significand is the
    /// implicit 1, and the tie rounds up to the next power of two, as PyTorch's and ml_dtypes'
    /// E8M0 casts do.
    pub fn encode(&self, x: f32) -> u16 {
        if x.is_nan() {
            let sign = if x.is_sign_negative() { self.sign_bit() } else { 0 };
            return self.nan_code().map_or(0, |nan| (nan | sign) as u16);
        }
        if !self.signed && x < 0.0 {
            return 0;
        }
        let magnitude = self.encode_magnitude(x.abs() as f64);
        let sign = if x.is_sign_negative() { self.sign_bit() } else { 0 };
        (magnitude | sign) as u16
    }

    /// `a` ≥ 0, exact (an f32 widened). Works on the integer significand n of `a` in its binade:
    /// rounding n to an integer is RNE on the format's grid, and packing `field << M` plus the
    /// rounded mantissa lets a round-up to the next binade carry into the exponent by itself.
    fn encode_magnitude(&self, a: f64) -> u32 {
        let man_bits = self.man_bits as i32;
        let min_normal_exp = self.min_normal_exp();
        if a.is_infinite() {
            return self.max_code();
        }
        let code: u64 = if a < pow2(min_normal_exp) {
            if !self.subnormals {
                return 0;
            }
            (a / pow2(min_normal_exp - man_bits)).round_ties_even() as u64
        } else {
            let exp = exponent(a);
            let n = (a / pow2(exp - man_bits)).round_ties_even() as u64; // in [2^M, 2^(M+1)]
            let lowest_normal_field = self.subnormals as i64;
            let field = (exp - min_normal_exp) as i64 + lowest_normal_field;
            ((field as u64) << man_bits) + (n - (1 << man_bits))
        };
        code.min(self.max_code() as u64) as u32
    }

    /// The nearest representable value (encode, then decode).
    pub fn round(&self, x: f32) -> f32 {
        self.decode(self.encode(x))
    }

    pub fn max_finite(&self) -> f32 {
        self.decode(self.max_code() as u16)
    }

    /// Every finite value, ascending, each once (−0 and +0 are one level, +0).
    pub fn levels(&self) -> Vec<f32> {
        let mut levels: Vec<f32> = (0..1u32 << self.bits())
            .map(|code| self.decode(code as u16))
            .filter(|v| v.is_finite())
            .map(|v| if v == 0.0 { 0.0 } else { v })
            .collect();
        levels.sort_by(f32::total_cmp);
        levels.dedup();
        levels
    }
}

/// The sorted finite values of an element format, the table a codebook indexes.
pub fn levels(format: MiniFloat) -> Vec<f32> {
    Codec::element(format).levels()
}

/// A format's value table with the encoder that picks codes into it. Codes are indices into the
/// ascending table rather than bit patterns, so every format decodes with the codebook's one rule.
///
/// [`super::codebook::nearest_sorted`] is not used: its tie rule (even index) is RNE only when the
/// table starts at zero; in a signed table zero sits at an odd index (E2M1: 7 negative values
/// before it), which would flip every tie (0.25 would round to 0.5).
#[derive(Debug, Clone)]
pub struct LevelTable {
    pub codec: Codec,
    pub levels: Vec<f32>,
}

impl LevelTable {
    pub fn new(codec: Codec) -> LevelTable {
        LevelTable { codec, levels: codec.levels() }
    }

    /// The index of a value of the table (an exact member, e.g. a decoded code).
    pub fn index_of(&self, value: f32) -> u16 {
        let i = self.levels.partition_point(|&v| v < value);
        debug_assert!(self.levels.get(i) == Some(&value), "{value} is not a level of {:?}", self.codec);
        i as u16
    }

    /// The index of the level RNE picks for `x`.
    pub fn code(&self, x: f32) -> u16 {
        self.index_of(self.codec.round(x))
    }

    pub fn zero(&self) -> u16 {
        self.index_of(0.0)
    }
}

/// 2^k exactly, for the exponents these formats reach.
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// floor(log2 a) for a positive normal f64 (every nonzero f32 widens to one).
pub(crate) fn exponent(a: f64) -> i32 {
    ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(format: MiniFloat) -> Codec {
        Codec::element(format)
    }

    #[test]
    fn e2m1_has_the_ocp_values_and_rounds_ties_to_even() {
        assert_eq!(
            levels(MiniFloat::E2M1),
            [-6.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
        );
        let fp4 = e(MiniFloat::E2M1);
        let magnitudes: Vec<f32> = (0..8).map(|c| fp4.decode(c)).collect();
        assert_eq!(magnitudes, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(fp4.decode(0b1111), -6.0);
        // docs/quantizers.md §6.
        for (x, expected) in [(0.25, 0.0), (0.75, 1.0), (2.5, 2.0), (5.0, 4.0), (7.0, 6.0)] {
            assert_eq!(fp4.round(x), expected, "{x}");
            assert_eq!(fp4.round(-x), -expected, "{}", -x);
        }
        // The same ties through the signed table's indices.
        let table = LevelTable::new(fp4);
        assert_eq!(table.levels[table.code(0.25) as usize], 0.0);
        assert_eq!(table.levels[table.code(-0.75) as usize], -1.0);
        assert_eq!(table.levels[table.code(1e9) as usize], 6.0);
    }

    #[test]
    fn fp8_extremes_match_the_ocp_tables() {
        let e4m3 = e(MiniFloat::E4M3);
        assert_eq!(e4m3.max_finite(), 448.0);
        assert_eq!(e4m3.decode(0b0_1111_110), 448.0);
        assert!(e4m3.decode(0b0_1111_111).is_nan());
        assert_eq!(e4m3.decode(0b0_1111_000), 256.0); // exponent 15 is a normal binade (no inf)
        assert_eq!(e4m3.decode(0b0_0001_000), 2f32.powi(-6));
        assert_eq!(e4m3.decode(0b0_0000_001), 2f32.powi(-9));
        assert_eq!(e4m3.encode(f32::INFINITY), 0x7E);
        assert_eq!(e4m3.encode(-500.0), 0xFE);
        assert_eq!(e4m3.encode(f32::NAN), 0x7F);
        assert_eq!(e4m3.levels().len(), 253);

        let e5m2 = e(MiniFloat::E5M2);
        assert_eq!(e5m2.max_finite(), 57344.0);
        assert_eq!(e5m2.decode(0x7C), f32::INFINITY);
        assert!(e5m2.decode(0x7D).is_nan());
        assert_eq!(e5m2.decode(0x04), 2f32.powi(-14));
        assert_eq!(e5m2.decode(0x01), 2f32.powi(-16));
        assert_eq!(e5m2.encode(1e6), 0x7B);
        assert_eq!(e5m2.levels().len(), 247);

        assert_eq!(e(MiniFloat::E2M3).max_finite(), 7.5);
        assert_eq!(e(MiniFloat::E3M2).max_finite(), 28.0);
        assert_eq!(e(MiniFloat::E2M3).decode(1), 0.125);
        assert_eq!(e(MiniFloat::E3M2).decode(1), 0.0625);
    }

    #[test]
    fn generic_formats_have_every_exponent_code_finite() {
        let e3m0 = e(MiniFloat { exp_bits: 3, man_bits: 0 });
        let magnitudes: Vec<f32> = (0..8).map(|c| e3m0.decode(c)).collect();
        assert_eq!(magnitudes, [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]);
        // A tie between two powers of two goes up; between 0 and the smallest value, to 0.
        assert_eq!(e3m0.round(3.0), 4.0);
        assert_eq!(e3m0.round(0.125), 0.0);
        let e1m2 = e(MiniFloat { exp_bits: 1, man_bits: 2 });
        assert_eq!(e1m2.levels()[7..], [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
        assert_eq!(e1m2.round(1.25), 1.0);
        assert_eq!(e1m2.round(1.75), 2.0);
        // The widest format the scheme grammar allows still fits the decoder's 4096 levels.
        assert_eq!(e(MiniFloat { exp_bits: 5, man_bits: 6 }).levels().len(), 4095);
    }

    #[test]
    fn scale_formats() {
        let e8m0 = Codec::E8M0;
        assert_eq!(e8m0.decode(127), 1.0);
        assert_eq!(e8m0.decode(0), 2f32.powi(-127));
        assert_eq!(e8m0.decode(254), 2f32.powi(127));
        assert!(e8m0.decode(255).is_nan());
        assert_eq!(e8m0.encode(0.0625), 123);
        assert_eq!(e8m0.encode(1.5), 128); // a tie goes up
        assert_eq!(e8m0.encode(1.4999999), 127);
        assert_eq!(e8m0.encode(0.0), 0);
        assert_eq!(e8m0.encode(-3.0), 0);
        assert_eq!(e8m0.encode(f32::MAX), 254);
        // Nearest, unlike PyTorch/ml_dtypes, which send f32 subnormals above 2^-127 to 2^-126.
        assert_eq!(e8m0.encode(1.2 * 2f32.powi(-127)), 0);

        let ue4m3 = Codec::UE4M3;
        assert_eq!(ue4m3.max_finite(), 448.0);
        assert!(ue4m3.decode(0x7F).is_nan());
        assert_eq!(ue4m3.encode(-1.0), 0);
        assert_eq!(ue4m3.levels().len(), 127);

        let ue5m3 = Codec::UE5M3;
        assert_eq!(ue5m3.max_finite(), 122880.0);
        assert_eq!(ue5m3.decode(0xFF), 122880.0);
        assert_eq!(ue5m3.decode(1), 2f32.powi(-17));
        assert_eq!(ue5m3.decode(8), 2f32.powi(-14));
        assert_eq!(ue5m3.decode(15 << 3), 1.0);
        assert_eq!(ue5m3.levels().len(), 256);
    }

    #[test]
    fn encode_inverts_decode_and_rounds_to_a_neighbour() {
        let formats = [
            e(MiniFloat::E4M3),
            e(MiniFloat::E5M2),
            e(MiniFloat::E2M3),
            e(MiniFloat::E3M2),
            e(MiniFloat::E2M1),
            e(MiniFloat { exp_bits: 3, man_bits: 0 }),
            e(MiniFloat { exp_bits: 5, man_bits: 6 }),
            Codec::E8M0,
            Codec::UE4M3,
            Codec::UE5M3,
        ];
        let mut state = 0x9E3779B97F4A7C15u64;
        for codec in formats {
            for code in 0..1u32 << codec.bits() {
                let v = codec.decode(code as u16);
                if v.is_finite() {
                    assert_eq!(codec.decode(codec.encode(v)).to_bits(), v.to_bits(), "{codec:?} code {code:#x}");
                }
            }
            // Random values land on one of the two levels around them, the nearer one.
            let levels = codec.levels();
            let (lo, hi) = (levels[0], *levels.last().unwrap());
            for _ in 0..2000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let t = (state >> 11) as f64 / (1u64 << 53) as f64;
                let x = (lo as f64 + t * (hi as f64 - lo as f64)) as f32;
                let r = codec.round(x);
                let i = levels.partition_point(|&v| v < x);
                let below = levels[i.saturating_sub(1)];
                let above = levels[i.min(levels.len() - 1)];
                assert!(r == below || r == above, "{codec:?}: {x} → {r}, not {below} or {above}");
                let (d, other) = ((x - r).abs(), (x - if r == below { above } else { below }).abs());
                assert!(d <= other, "{codec:?}: {x} → {r}, but the other neighbour is nearer");
            }
        }
    }
}
