//! Round-to-nearest integer quantization (docs/quantizers.md §1.1), 2 to 8 bits, one scale per tensor,
//! per row, or per group of consecutive elements along a row (the last group of a row may be
//! shorter).
//!
//! Symmetric: `s = amax/qmax`, `q = clamp(RNE(x/s), −qmax−1, qmax)`, `x̂ = q·s` with
//! `qmax = 2^(b−1) − 1`. The clamp is the two's-complement range rather than the strictly
//! symmetric `±qmax`: since `|x| ≤ amax`, `x/s` only leaves `[−qmax, qmax]` through the rounding
//! of the division, and the wider clamp makes the codes exactly the `b`-bit signed integers, the
//! layout every int kernel reads. The extra level `−qmax−1` is never chosen in practice.
//!
//! Asymmetric (min-max): `s = (max−min)/(2^b−1)`, `z = RNE(−min/s)`,
//! `q = clamp(RNE(x/s) + z, 0, 2^b−1)`, `x̂ = (q−z)·s`. The codebook stores the integer `q − z`
//! as the level and `s` as the scale with no offset, so the decoded value is the one product
//! `(q−z)·s`; the tempting `q·s + (−z·s)` rounds twice and differs from it in the last bit. When
//! every `q − z` lies in `−(2^b−1)..=2^b−1` (every group whose range straddles zero, which is
//! nearly every weight group) one shared table of those integers serves the tensor; otherwise
//! (a group entirely on one side of zero has `z` outside `0..2^b`) each group gets its own table
//! of its `2^b` levels `q − z`.
//!
//! A group whose values are all equal has no range to divide by. All zero, it keeps `s = 0` and
//! decodes to exact zeros; a nonzero constant `c` takes `s = |c|`, for which the min-max formula
//! gives the level `sign(c)`, so the constant comes back exactly.
//!
//! Scales are kept in f32 exactly as the formulas give them. Storage (§1.3) counts `b` bits per
//! weight plus, per scale group, a 16-bit scale (symmetric) or a 16-bit scale and a 16-bit zero
//! point (asymmetric, as Q4_1 stores `d` and `m`): what an f16 deployment stores. The rounding of
//! the scale to f16 is not modelled; its relative error (2⁻¹¹) is far below one step.

use std::ops::Range;

use super::codebook::{Codebook, Sharing};
use super::{Granularity, QuantizedTensor};

/// Which elements share one scale under `granularity`.
pub(crate) fn sharing(granularity: Granularity) -> Result<Sharing, String> {
    match granularity {
        Granularity::Tensor => Ok(Sharing::Tensor),
        Granularity::Channel => Ok(Sharing::Row),
        Granularity::Group(0) => Err("a group of 0 elements".into()),
        Granularity::Group(n) => Ok(Sharing::Group(n)),
    }
}

/// The column ranges of consecutive groups of `group` along a row of `cols`; the last is shorter
/// when `group` does not divide `cols`.
pub(crate) fn spans(cols: usize, group: usize) -> impl Iterator<Item = Range<usize>> {
    (0..cols).step_by(group.max(1)).map(move |start| start..(start + group).min(cols))
}

/// A symmetric grid: levels `−qmax−1..=qmax`, step `scale`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Symmetric {
    pub scale: f32,
    pub qmax: i32,
}

impl Symmetric {
    pub fn qmax(bits: u8) -> i32 {
        (1 << (bits - 1)) - 1
    }

    pub fn fit(amax: f32, bits: u8) -> Symmetric {
        let qmax = Symmetric::qmax(bits);
        Symmetric { scale: amax / qmax as f32, qmax }
    }

    /// The integer `q`; a zero scale (an all-zero group) gives 0, so the group decodes to zeros.
    pub fn level(&self, x: f32) -> i32 {
        if self.scale == 0.0 {
            return 0;
        }
        (x / self.scale).round_ties_even().clamp(-(self.qmax + 1) as f32, self.qmax as f32) as i32
    }
}

/// A min-max grid: `q ∈ 0..=umax`, decoded as `(q − zero)·scale`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asymmetric {
    pub scale: f32,
    pub zero: i64,
    pub umax: i64,
}

impl Asymmetric {
    pub fn umax(bits: u8) -> i64 {
        (1 << bits) - 1
    }

    pub fn fit(min: f32, max: f32, bits: u8) -> Asymmetric {
        let umax = Asymmetric::umax(bits);
        let scale = if max > min { (max - min) / umax as f32 } else { min.abs() };
        // The float-to-int cast saturates: a zero point that large (a group whose spread is
        // below f32's resolution of its magnitude) is meaningless anyway, but must not overflow.
        let zero = if scale == 0.0 { 0 } else { (-min / scale).round_ties_even() as i64 };
        Asymmetric { scale, zero, umax }
    }

    /// The integer level `q − z` that the element decodes to (times the scale).
    pub fn level(&self, x: f32) -> i64 {
        if self.scale == 0.0 {
            return 0;
        }
        let q = ((x / self.scale).round_ties_even() as i64).saturating_add(self.zero).clamp(0, self.umax);
        q.saturating_sub(self.zero)
    }
}

pub fn quantize(
    bits: u8,
    granularity: Granularity,
    symmetric: bool,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<QuantizedTensor, String> {
    if !(2..=8).contains(&bits) {
        return Err(format!("int takes 2 to 8 bits, not {bits}"));
    }
    let sharing = sharing(granularity)?;
    let groups = sharing.count(rows, cols);
    let group_of = |i: usize| sharing.index(cols, i / cols, i % cols);
    let (mut min, mut max) = (vec![f32::INFINITY; groups], vec![f32::NEG_INFINITY; groups]);
    for (i, &x) in data.iter().enumerate() {
        let g = group_of(i);
        min[g] = min[g].min(x);
        max[g] = max[g].max(x);
    }
    let n = (rows * cols) as u64;
    let mut codebook = Codebook {
        rows,
        cols,
        codes: Vec::with_capacity(data.len()),
        levels: Vec::new(),
        levels_per_table: 0,
        table_sharing: Sharing::Tensor,
        scales: Vec::with_capacity(groups),
        offsets: Vec::new(),
        scale_sharing: sharing,
    };
    let storage_bits = if symmetric {
        let grids: Vec<Symmetric> = (0..groups).map(|g| Symmetric::fit(min[g].abs().max(max[g].abs()), bits)).collect();
        let qmax = Symmetric::qmax(bits);
        let qmin = -qmax - 1;
        codebook.levels = (qmin..=qmax).map(|q| q as f32).collect();
        codebook.codes = data.iter().enumerate().map(|(i, &x)| (grids[group_of(i)].level(x) - qmin) as u16).collect();
        codebook.scales = grids.iter().map(|g| g.scale).collect();
        n * bits as u64 + groups as u64 * 16
    } else {
        let grids: Vec<Asymmetric> = (0..groups).map(|g| Asymmetric::fit(min[g], max[g], bits)).collect();
        let levels: Vec<i64> = data.iter().enumerate().map(|(i, &x)| grids[group_of(i)].level(x)).collect();
        let umax = Asymmetric::umax(bits);
        if levels.iter().all(|l| l.abs() <= umax) {
            codebook.levels = (-umax..=umax).map(|l| l as f32).collect();
            codebook.codes = levels.iter().map(|&l| (l + umax) as u16).collect();
        } else {
            codebook.table_sharing = sharing;
            codebook.levels =
                grids.iter().flat_map(|g| (0..=umax).map(move |q| q.saturating_sub(g.zero) as f32)).collect();
            codebook.codes =
                levels.iter().enumerate().map(|(i, &l)| l.saturating_add(grids[group_of(i)].zero) as u16).collect();
        }
        codebook.scales = grids.iter().map(|g| g.scale).collect();
        n * bits as u64 + groups as u64 * 32
    };
    codebook.levels_per_table = codebook.levels.len() / codebook.table_sharing.count(rows, cols);
    QuantizedTensor::from_codebook(codebook, storage_bits)
}

/// Shared by the test modules of every quantizer in this directory: seeded data without a rand
/// crate, and an error measure.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Normal samples (Box–Muller over xorshift64*), reproducible from `seed`.
    pub(crate) fn gaussian(seed: u64, n: usize, sigma: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut uniform = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            // 53 random bits in (0, 1): never 0, so the logarithm below is finite.
            ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32 * sigma
            })
            .collect()
    }

    pub(crate) fn rmse(a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len());
        (a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
    }

    /// Gaussian weights with a few large outliers, as real weight rows have.
    fn weights(rows: usize, cols: usize) -> Vec<f32> {
        let mut w = gaussian(7, rows * cols, 0.02);
        for i in (0..w.len()).step_by(97) {
            w[i] *= 8.0;
        }
        w
    }

    /// §1.1 written out per group with slices, independently of the codebook path.
    fn formula(bits: u8, group: usize, symmetric: bool, rows: usize, cols: usize, data: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        for row in data.chunks(cols).take(rows) {
            for g in row.chunks(group) {
                let (min, max) = g.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                if symmetric {
                    let qmax = ((1 << (bits - 1)) - 1) as f32;
                    let s = min.abs().max(max.abs()) / qmax;
                    out.extend(g.iter().map(|&x| (x / s).round_ties_even().clamp(-qmax - 1.0, qmax) * s));
                } else {
                    let umax = ((1 << bits) - 1) as f32;
                    let s = (max - min) / umax;
                    let z = (-min / s).round_ties_even();
                    out.extend(g.iter().map(|&x| ((x / s).round_ties_even() + z).clamp(0.0, umax) - z).map(|l| l * s));
                }
            }
        }
        out
    }

    #[test]
    fn values_are_the_formulas_of_section_1_1_on_an_awkward_shape() {
        let (rows, cols) = (7, 200);
        let w = weights(rows, cols);
        for bits in 2..=8 {
            for symmetric in [true, false] {
                for (granularity, group) in
                    [(Granularity::Group(64), 64), (Granularity::Channel, cols), (Granularity::Group(7), 7)]
                {
                    let q = quantize(bits, granularity, symmetric, rows, cols, &w).unwrap();
                    let expected = formula(bits, group, symmetric, rows, cols, &w);
                    assert_eq!(q.values, expected, "int{bits} {granularity} sym={symmetric}");
                }
            }
        }
        // Per tensor: one group holding every element.
        let q = quantize(4, Granularity::Tensor, false, rows, cols, &w).unwrap();
        assert_eq!(q.values, formula(4, rows * cols, false, 1, rows * cols, &w));
    }

    #[test]
    fn every_element_is_within_half_a_step_of_its_input() {
        let (rows, cols) = (7, 200);
        let w = weights(rows, cols);
        for bits in 2..=8u8 {
            for symmetric in [true, false] {
                let q = quantize(bits, Granularity::Group(64), symmetric, rows, cols, &w).unwrap();
                for (r, row) in w.chunks(cols).enumerate() {
                    for span in spans(cols, 64) {
                        let g = &row[span.clone()];
                        let (min, max) = g.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                        let step = if symmetric {
                            min.abs().max(max.abs()) / ((1 << (bits - 1)) - 1) as f32
                        } else {
                            (max - min) / ((1 << bits) - 1) as f32
                        };
                        for c in span {
                            let err = (q.values[r * cols + c] - row[c]).abs();
                            assert!(err <= 0.5001 * step, "int{bits} sym={symmetric} ({r},{c}): {err} > {step}/2");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn error_shrinks_as_bits_grow() {
        let (rows, cols) = (7, 200);
        let w = weights(rows, cols);
        for symmetric in [true, false] {
            let errors: Vec<f64> = (2..=8)
                .map(|b| rmse(&quantize(b, Granularity::Group(64), symmetric, rows, cols, &w).unwrap().values, &w))
                .collect();
            assert!(errors.windows(2).all(|e| e[1] < e[0] * 0.7), "sym={symmetric}: {errors:?}");
        }
    }

    #[test]
    fn zero_and_constant_groups_come_back_exactly() {
        // Row 0: a zero group then a live one; row 1: a negative constant, then a positive one.
        let (rows, cols) = (2, 8);
        let w = [0.0, 0.0, 0.0, 0.0, 0.3, -0.1, 0.25, 0.0, -0.7, -0.7, -0.7, -0.7, 0.2, 0.2, 0.2, 0.2];
        for symmetric in [true, false] {
            for bits in [2, 4, 8] {
                let q = quantize(bits, Granularity::Group(4), symmetric, rows, cols, &w).unwrap();
                assert!(q.values[..4].iter().all(|&v| v == 0.0), "{:?}", q.values);
                assert_eq!(q.values[7], 0.0, "zero inside a live group");
                if !symmetric {
                    assert_eq!(&q.values[8..], &w[8..], "int{bits} asym");
                }
            }
        }
        let zeros = quantize(3, Granularity::Tensor, true, 3, 5, &[0.0; 15]).unwrap();
        assert!(zeros.values.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn asymmetric_uses_one_shared_table_unless_a_group_misses_zero() {
        let (rows, cols) = (7, 200);
        let w = weights(rows, cols);
        let q = quantize(4, Granularity::Group(64), false, rows, cols, &w).unwrap();
        let super::super::Encoding::Codebook(cb) = &q.encoding else { panic!("not a codebook") };
        assert_eq!((cb.table_sharing, cb.levels_per_table, cb.offsets.len()), (Sharing::Tensor, 31, 0));
        // Shift row 3 far from zero: its groups need their own tables, and the values still
        // follow the formula.
        let mut shifted = w.clone();
        shifted[3 * cols..4 * cols].iter_mut().for_each(|x| *x += 1.0);
        let q = quantize(4, Granularity::Group(64), false, rows, cols, &shifted).unwrap();
        let super::super::Encoding::Codebook(cb) = &q.encoding else { panic!("not a codebook") };
        assert_eq!((cb.table_sharing, cb.levels_per_table), (Sharing::Group(64), 16));
        assert_eq!(q.values, formula(4, 64, false, rows, cols, &shifted));
    }

    #[test]
    fn storage_counts_bits_and_f16_scales_and_zeros() {
        let w = gaussian(3, 4 * 256, 1.0);
        let bpw = |bits, g, sym| quantize(bits, g, sym, 4, 256, &w).unwrap().bits_per_weight();
        assert_eq!(bpw(4, Granularity::Group(128), true), 4.125);
        assert_eq!(bpw(4, Granularity::Group(128), false), 4.25);
        assert_eq!(bpw(8, Granularity::Channel, true), 8.0 + 16.0 / 256.0);
        assert_eq!(bpw(2, Granularity::Tensor, false), 2.0 + 32.0 / 1024.0);
        // 200 columns in groups of 64: 4 groups per row, the last of 8.
        let q = quantize(3, Granularity::Group(64), true, 7, 200, &weights(7, 200)).unwrap();
        assert_eq!(q.storage_bits, 7 * 200 * 3 + 7 * 4 * 16);
    }

    #[test]
    fn bit_widths_outside_2_to_8_are_refused() {
        for bits in [0, 1, 9] {
            let err = quantize(bits, Granularity::Channel, true, 1, 4, &[1.0; 4]).unwrap_err();
            assert!(err.contains(&bits.to_string()), "{err}");
        }
    }
}
