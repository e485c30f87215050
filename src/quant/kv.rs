//! KV-cache quantization (docs/quantizers.md §4.9, FireQ): what a key or value goes through when it is
//! written to the cache, simulated as quantize-then-dequantize in f32. Keys are quantized after
//! RoPE (they are cached rotated), values as they come out of W_v.
//!
//! ```text
//! kv-scheme := "int" B ["-g" N] ["-e4m3"]     symmetric RTN per token, groups of N along the row
//!                                             (default: one group per head); -e4m3 stores each
//!                                             group scale as FP8 E4M3, floored at 2^-9 (FireQ)
//!            | "fp8-e4m3" | "fp8-e5m2"        per token per head, scale = amax / max finite
//! ```
//!
//! The f32-scale int and the fp8 formats are the weight quantizers applied to the `[tokens × kv]`
//! matrix (a token is a "row", a head or group a "group"), so their grids, RNE rounding and
//! saturation are exactly those of `int.rs` and `float.rs`. Only the E4M3 group scale is new: the
//! scale is rounded to E4M3 (RNE) and floored at E4M3's smallest subnormal, as FireQ stores it,
//! and the codes are clamped to the b-bit signed range, since a scale rounded down can push
//! `amax/s` past `qmax`.

use std::fmt;
use std::str::FromStr;


use super::int::{spans, Symmetric};
use super::minifloat::Codec;
use crate::error::QuantError;
use crate::quant::{quantize, Granularity, MiniFloat, Scheme, SchemeKind};

/// E4M3's smallest subnormal, FireQ's floor for a stored group scale (a scale that underflows
/// to 0 would erase the group).
pub const E4M3_SCALE_FLOOR: f32 = 1.0 / 512.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvFormat {
    /// Symmetric RTN of `bits` per token per group of `group` (None: per head).
    Int { bits: u8, group: Option<usize>, e4m3_scales: bool },
    /// FP8 per token per head.
    Fp8(MiniFloat),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvScheme {
    pub format: KvFormat,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KvSchemeParseError {
    #[error("unknown KV-cache scheme {0:?} (intB[-gN][-e4m3] with B = 2..8, fp8-e4m3, fp8-e5m2)")]
    Unknown(String),
    #[error("{0:?}: KV int takes 2 to 8 bits")]
    Bits(String),
    #[error("{0:?}: the group size must be a positive whole number")]
    Group(String),
}

impl fmt::Display for KvScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            KvFormat::Int { bits, group, e4m3_scales } => {
                write!(f, "int{bits}")?;
                if let Some(g) = group {
                    write!(f, "-g{g}")?;
                }
                if e4m3_scales {
                    f.write_str("-e4m3")?;
                }
                Ok(())
            }
            KvFormat::Fp8(format) => write!(f, "fp8-{format}"),
        }
    }
}

impl FromStr for KvScheme {
    type Err = KvSchemeParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let lowered = input.trim().to_ascii_lowercase();
        let words: Vec<&str> = lowered.split('-').collect();
        let unknown = || KvSchemeParseError::Unknown(input.into());
        let format = match words.as_slice() {
            ["fp8", "e4m3"] => KvFormat::Fp8(MiniFloat::E4M3),
            ["fp8", "e5m2"] => KvFormat::Fp8(MiniFloat::E5M2),
            [int, rest @ ..] if int.starts_with("int") => {
                let bits: u8 = int["int".len()..].parse().map_err(|_| unknown())?;
                if !(2..=8).contains(&bits) {
                    return Err(KvSchemeParseError::Bits(input.into()));
                }
                let (mut group, mut e4m3_scales) = (None, false);
                for word in rest {
                    if *word == "e4m3" && !e4m3_scales {
                        e4m3_scales = true;
                    } else if let (Some(n), None) = (word.strip_prefix('g'), group) {
                        let n: usize = n.parse().map_err(|_| KvSchemeParseError::Group(input.into()))?;
                        if n == 0 {
                            return Err(KvSchemeParseError::Group(input.into()));
                        }
                        group = Some(n);
                    } else {
                        return Err(unknown());
                    }
                }
                KvFormat::Int { bits, group, e4m3_scales }
            }
            _ => return Err(unknown()),
        };
        Ok(KvScheme { format })
    }
}

serde_by_name!(KvScheme);

impl KvScheme {
    /// Example names for menus.
    pub fn catalog() -> Vec<KvScheme> {
        ["int8", "int4", "int4-e4m3", "int4-g128-e4m3", "int2", "fp8-e4m3", "fp8-e5m2"]
            .iter()
            .map(|n| n.parse().expect("catalog names parse"))
            .collect()
    }

    /// Stored bits per cached element: the code plus the group scale spread over the group
    /// (16 bits for an f32-kept scale, as an f16 deployment stores it; 8 for E4M3).
    pub fn bits_per_element(&self, head_dim: usize) -> f64 {
        match self.format {
            KvFormat::Int { bits, group, e4m3_scales } => {
                let scale_bits = if e4m3_scales { 8.0 } else { 16.0 };
                bits as f64 + scale_bits / group.unwrap_or(head_dim) as f64
            }
            KvFormat::Fp8(_) => 8.0 + 16.0 / head_dim as f64,
        }
    }
}

/// Quantizes and dequantizes the new keys or values `x` (`[tokens × width]`, `width` = KV heads ×
/// `head_dim`) in place under `scheme`.
pub fn fake_quantize_kv(
    scheme: &KvScheme,
    x: &mut [f32],
    tokens: usize,
    width: usize,
    head_dim: usize,
) -> Result<(), QuantError> {
    if x.len() != tokens * width || head_dim == 0 {
        return Err(QuantError::Unsupported {
            scheme: scheme.to_string(),
            tensor: "kv cache".into(),
            rows: tokens,
            cols: width,
            reason: format!("{} values are not {tokens} tokens × {width} (head_dim {head_dim})", x.len()),
        });
    }
    match scheme.format {
        KvFormat::Int { bits, group, e4m3_scales: true } => {
            let e4m3 = Codec::element(MiniFloat::E4M3);
            let qmax = Symmetric::qmax(bits);
            for row in x.chunks_exact_mut(width) {
                for span in spans(width, group.unwrap_or(head_dim)) {
                    let g = &mut row[span];
                    let amax = g.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    if amax == 0.0 {
                        continue;
                    }
                    let scale = e4m3.round(amax / qmax as f32).max(E4M3_SCALE_FLOOR);
                    let grid = Symmetric { scale, qmax };
                    for v in g.iter_mut() {
                        *v = grid.level(*v) as f32 * scale;
                    }
                }
            }
            Ok(())
        }
        KvFormat::Int { bits, group, e4m3_scales: false } => {
            let kind = SchemeKind::Int {
                bits,
                granularity: Granularity::Group(group.unwrap_or(head_dim)),
                symmetric: true,
            };
            let q = quantize(&Scheme::new(kind), "kv cache", tokens, width, x)?;
            x.copy_from_slice(&q.values);
            Ok(())
        }
        KvFormat::Fp8(format) => {
            let kind = SchemeKind::Fp { format, granularity: Granularity::Group(head_dim) };
            let q = quantize(&Scheme::new(kind), "kv cache", tokens, width, x)?;
            x.copy_from_slice(&q.values);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> KvScheme {
        name.parse().unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn names_round_trip_and_bad_names_say_why() {
        for name in ["int8", "int4", "int4-g128", "int4-e4m3", "int4-g128-e4m3", "fp8-e4m3", "fp8-e5m2"] {
            assert_eq!(parse(name).to_string(), name);
        }
        assert_eq!(parse("INT4-E4M3-G32").to_string(), "int4-g32-e4m3");
        assert!(matches!("int9".parse::<KvScheme>(), Err(KvSchemeParseError::Bits(_))));
        assert!(matches!("int4-g0".parse::<KvScheme>(), Err(KvSchemeParseError::Group(_))));
        assert!(matches!("int4-e4m3-e4m3".parse::<KvScheme>(), Err(KvSchemeParseError::Unknown(_))));
        assert!(matches!("fp4".parse::<KvScheme>(), Err(KvSchemeParseError::Unknown(_))));
    }

    /// Per head: a head's outlier does not coarsen the other heads' grids.
    #[test]
    fn int_groups_are_per_token_per_head() {
        let head_dim = 4;
        let mut x = vec![0.1, -0.2, 0.3, 0.05, 100.0, 1.0, -2.0, 3.0];
        let original = x.clone();
        fake_quantize_kv(&parse("int8"), &mut x, 1, 8, head_dim).unwrap();
        let step0 = 0.3 / 127.0;
        for i in 0..4 {
            assert!((x[i] - original[i]).abs() <= step0 / 2.0 + 1e-7, "head 0 element {i}");
        }
        assert_eq!(x[4], 100.0);
        let step1 = 100.0 / 127.0;
        assert!((x[5] - original[5]).abs() <= step1 / 2.0 + 1e-6);
    }

    #[test]
    fn e4m3_scales_are_representable_floored_and_codes_stay_in_range() {
        let mut x: Vec<f32> = (0..16).map(|i| (i as f32 - 7.3) * 0.013).collect();
        x[3] = 0.5;
        let original = x.clone();
        fake_quantize_kv(&parse("int4-g8-e4m3"), &mut x, 2, 8, 8).unwrap();
        let e4m3 = Codec::element(MiniFloat::E4M3);
        for (g, orig) in x.chunks(8).zip(original.chunks(8)) {
            let amax = orig.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = e4m3.round(amax / 7.0).max(E4M3_SCALE_FLOOR);
            assert_eq!(e4m3.round(scale), scale);
            for (&q, &o) in g.iter().zip(orig) {
                let code = q / scale;
                assert_eq!(code, code.round(), "{q} is not on the grid of {scale}");
                assert!((-8.0..=7.0).contains(&code));
                assert!((q - o).abs() <= scale / 2.0 + 1e-7 || code == 7.0 || code == -8.0);
            }
        }
        // A tiny group: the scale floors at 2^-9 instead of vanishing.
        let mut tiny = vec![1e-5f32, -2e-5, 0.0, 3e-5];
        fake_quantize_kv(&parse("int4-e4m3"), &mut tiny, 1, 4, 4).unwrap();
        assert!(tiny.iter().all(|&v| v == 0.0 || (v / E4M3_SCALE_FLOOR).fract() == 0.0));
    }

    #[test]
    fn fp8_keeps_each_heads_amax_and_rejects_bad_shapes() {
        let mut x = vec![0.5f32, -1.5, 0.001, 3.0, 1000.0, -0.25, 7.0, 0.0];
        fake_quantize_kv(&parse("fp8-e4m3"), &mut x, 1, 8, 4).unwrap();
        assert_eq!(x[3], 3.0);
        assert_eq!(x[4], 1000.0);
        assert_eq!(x[7], 0.0);
        let err = fake_quantize_kv(&parse("int8"), &mut [0.0; 7], 2, 4, 4).unwrap_err();
        assert!(err.to_string().contains("7 values"), "{err}");
    }
}
