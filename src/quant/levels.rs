//! Fixed level sets with one scale per row: POST (powers of √2, docs/quantizers.md §4.5), StatsQ (OFQ's
//! half-integer grid, §4.13) and plain powers of two. Each is a sorted table of levels in
//! `[−1, 1]`, a per-row scale `s`, and a rule that picks a level for `u = w/s`; `ŵ = level·s`.
//!
//! - POST `b`: levels `{0} ∪ {±base^−k : k = 0..2^(b−1)−1}` (2^b + 1 of them), `s` = the 99th
//!   percentile of the row's `|w|` (linear interpolation, as numpy and torch compute it), `u`
//!   clamped to `[−1, 1]` and rounded to the nearest level. A row with fewer than 1% nonzero
//!   weights has a zero 99th percentile; it falls back to the row's absmax instead of losing
//!   every weight.
//! - StatsQ `b`: `s = 2·mean|w|`, `n = 2^(b−1)`, `k = clamp(floor(u·n), −n, n−1)`,
//!   `ŵ = s·(k+½)/n`: exactly 2^b levels and no zero level (a zero weight in a live row becomes
//!   `±s/2n`; an all-zero row has `s = 0` and stays zero).
//! - pot `b`: levels `{0} ∪ {±2^−k : k = 0..2^(b−1)−2}` (2^b − 1 of them, so they fit `b` bits),
//!   `s` = the row's absmax, nearest level.
//!
//! Storage (§1.3): `ceil(log2(levels))` bits per weight plus an f16 scale per row. POST's extra
//! zero level is not free: 4-bit POST has 17 levels and honestly costs 5 bits a weight.

use super::codebook::{nearest_sorted, Codebook, Sharing};
use super::QuantizedTensor;

pub fn quantize_post(bits: u8, base: f32, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    check_bits("post", bits, 2)?;
    if !(base > 1.0 && base.is_finite()) {
        return Err(format!("the POST base must be a finite number > 1, not {base}"));
    }
    let levels = symmetric_with_zero((0..1 << (bits - 1)).map(|k| (base as f64).powi(-k) as f32));
    let scale = |row: &[f32]| {
        let mut mags: Vec<f32> = row.iter().map(|x| x.abs()).collect();
        mags.sort_by(f32::total_cmp);
        match quantile(&mags, 0.99) as f32 {
            0.0 => mags[mags.len() - 1],
            p99 => p99,
        }
    };
    per_row(rows, cols, data, &levels, scale, |u| nearest_sorted(&levels, u.clamp(-1.0, 1.0)))
}

pub fn quantize_statsq(bits: u8, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    check_bits("statsq", bits, 1)?;
    let n = 1i32 << (bits - 1);
    let levels: Vec<f32> = (-n..n).map(|k| (k as f32 + 0.5) / n as f32).collect();
    let scale = |row: &[f32]| (2.0 * row.iter().map(|x| x.abs() as f64).sum::<f64>() / row.len() as f64) as f32;
    per_row(rows, cols, data, &levels, scale, |u| {
        ((u * n as f32).floor().clamp(-n as f32, (n - 1) as f32) as i32 + n) as usize
    })
}

pub fn quantize_pot(bits: u8, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    check_bits("pot", bits, 2)?;
    let levels = pot_levels(bits);
    let amax = |row: &[f32]| row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    per_row(rows, cols, data, &levels, amax, |u| nearest_sorted(&levels, u))
}

/// The 2^b − 1 power-of-two levels of `potB`, ascending: {0} ∪ {±2^−k : k = 0..2^(b−1)−2}.
pub fn pot_levels(bits: u8) -> Vec<f32> {
    symmetric_with_zero((0..(1 << (bits - 1)) - 1).map(|k| 2.0f32.powi(-k)))
}

/// The `p`-quantile of ascending `sorted` values, interpolating linearly between neighbours
/// (numpy's default method).
pub(crate) fn quantile(sorted: &[f32], p: f64) -> f64 {
    let h = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, frac) = (h.floor() as usize, h.fract());
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] as f64 + frac * (sorted[hi] as f64 - sorted[lo] as f64)
}

fn check_bits(family: &str, bits: u8, min: u8) -> Result<(), String> {
    if (min..=8).contains(&bits) {
        Ok(())
    } else {
        Err(format!("{family} takes {min} to 8 bits, not {bits}"))
    }
}

/// `{0} ∪ {±m}` ascending, from the magnitudes `m` given in descending order.
fn symmetric_with_zero(descending: impl DoubleEndedIterator<Item = f32> + Clone) -> Vec<f32> {
    descending.clone().map(|m| -m).chain([0.0]).chain(descending.rev()).collect()
}

/// One table for the tensor, one scale per row from `scale(row)`, and each element's code from
/// `code(w/s)`. A zero scale belongs to an all-zero row (or nearly: see POST), where every level
/// times the scale is zero; those elements take the code of `u = 0`.
fn per_row(
    rows: usize,
    cols: usize,
    data: &[f32],
    levels: &[f32],
    scale: impl Fn(&[f32]) -> f32,
    code: impl Fn(f32) -> usize,
) -> Result<QuantizedTensor, String> {
    let scales: Vec<f32> = data.chunks(cols).map(scale).collect();
    let zero_code = code(0.0) as u16;
    let codes = data
        .iter()
        .enumerate()
        .map(|(i, &x)| match scales[i / cols] {
            0.0 => zero_code,
            s => code(x / s) as u16,
        })
        .collect();
    let codebook = Codebook {
        rows,
        cols,
        codes,
        levels: levels.to_vec(),
        levels_per_table: levels.len(),
        table_sharing: Sharing::Tensor,
        scales,
        offsets: Vec::new(),
        scale_sharing: Sharing::Row,
    };
    let storage_bits = (rows * cols) as u64 * codebook.code_bits() as u64 + rows as u64 * 16;
    QuantizedTensor::from_codebook(codebook, storage_bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int::tests::{gaussian, rmse};
    use crate::quant::Encoding;
    use std::f32::consts::SQRT_2;

    fn codebook(q: &QuantizedTensor) -> &Codebook {
        match &q.encoding {
            Encoding::Codebook(cb) => cb,
            other => panic!("not a codebook: {other:?}"),
        }
    }

    fn assert_levels(q: &QuantizedTensor, expected: &[f32], tolerance: f32) {
        let levels = &codebook(q).levels;
        assert_eq!(levels.len(), expected.len(), "{levels:?}");
        for (l, e) in levels.iter().zip(expected) {
            assert!((l - e).abs() <= tolerance, "{levels:?} vs {expected:?}");
        }
    }

    /// Asserts that every value is `s·level` with the level nearest to `clamp(w/s, −1, 1)`.
    fn assert_nearest(q: &QuantizedTensor, w: &[f32]) {
        let cb = codebook(q);
        for (i, &x) in w.iter().enumerate() {
            let s = cb.scales[i / q.cols];
            let u = (x / s).clamp(-1.0, 1.0);
            let level = cb.levels[cb.codes[i] as usize];
            assert!(cb.levels.iter().all(|&l| (u - level).abs() <= (u - l).abs()), "element {i}: {u} -> {level}");
            assert_eq!(q.values[i], level * s);
        }
    }

    #[test]
    // docs/quantizers.md §6 publishes the levels to four decimals; they are compared as published.
    #[allow(clippy::approx_constant)]
    fn post_4_bit_levels_of_section_6_and_their_honest_5_bits() {
        let w = gaussian(31, 3 * 200, 0.02);
        let q = quantize_post(4, SQRT_2, 3, 200, &w).unwrap();
        let half = [1.0, 0.7071, 0.5, 0.3536, 0.25, 0.1768, 0.125, 0.0884];
        let expected: Vec<f32> = half.iter().map(|m| -m).chain([0.0]).chain(half.iter().rev().copied()).collect();
        assert_levels(&q, &expected, 5e-5);
        assert_eq!(q.storage_bits, 3 * 200 * 5 + 3 * 16);
        assert_levels(
            &quantize_post(3, 2.0, 3, 200, &w).unwrap(),
            &[-1.0, -0.5, -0.25, -0.125, 0.0, 0.125, 0.25, 0.5, 1.0],
            0.0,
        );
    }

    #[test]
    fn post_scale_is_the_row_99th_percentile_and_levels_are_nearest() {
        let (rows, cols) = (7, 200);
        let w = gaussian(32, rows * cols, 0.02);
        let q = quantize_post(4, SQRT_2, rows, cols, &w).unwrap();
        for (r, row) in w.chunks(cols).enumerate() {
            let mut mags: Vec<f32> = row.iter().map(|x| x.abs()).collect();
            mags.sort_by(f32::total_cmp);
            // 0.99·(200 − 1) = 197.01: between the 198th and 199th smallest.
            let p99 = mags[197] as f64 + 0.01 * (mags[198] as f64 - mags[197] as f64);
            assert!((codebook(&q).scales[r] as f64 - p99).abs() <= 1e-7 * p99, "row {r}");
        }
        assert_nearest(&q, &w);
    }

    #[test]
    fn post_keeps_a_nearly_empty_row_through_the_absmax() {
        let mut w = vec![0.0f32; 2 * 200];
        w[5] = -0.3;
        let q = quantize_post(4, SQRT_2, 2, 200, &w).unwrap();
        assert_eq!(q.values, w);
    }

    #[test]
    fn statsq_levels_of_section_6() {
        let w = gaussian(33, 2 * 64, 0.02);
        assert_levels(&quantize_statsq(1, 2, 64, &w).unwrap(), &[-0.5, 0.5], 0.0);
        assert_levels(&quantize_statsq(2, 2, 64, &w).unwrap(), &[-0.75, -0.25, 0.25, 0.75], 0.0);
        let three = [-0.875, -0.625, -0.375, -0.125, 0.125, 0.375, 0.625, 0.875];
        assert_levels(&quantize_statsq(3, 2, 64, &w).unwrap(), &three, 0.0);
    }

    #[test]
    fn statsq_is_the_floor_formula_with_twice_the_mean_magnitude() {
        let (rows, cols) = (7, 200);
        let w = gaussian(34, rows * cols, 0.02);
        for bits in 1..=8u8 {
            let q = quantize_statsq(bits, rows, cols, &w).unwrap();
            let n = (1 << (bits - 1)) as f32;
            for (r, row) in w.chunks(cols).enumerate() {
                let s = (2.0 * row.iter().map(|x| x.abs() as f64).sum::<f64>() / cols as f64) as f32;
                for (c, &x) in row.iter().enumerate() {
                    let k = ((x / s) * n).floor().clamp(-n, n - 1.0);
                    assert_eq!(q.values[r * cols + c], s * ((k + 0.5) / n), "statsq{bits} ({r},{c})");
                }
            }
        }
        // u = −1 exactly with one bit: the lowest level, not torch's spurious −1.5·s.
        assert_eq!(quantize_statsq(1, 1, 2, &[-0.5, 0.0]).unwrap().values, [-0.25, 0.25]);
    }

    #[test]
    fn pot_has_2_to_the_b_minus_1_power_of_two_levels_in_b_bits() {
        let (rows, cols) = (7, 200);
        let w = gaussian(35, rows * cols, 0.02);
        for bits in 2..=8u8 {
            let q = quantize_pot(bits, rows, cols, &w).unwrap();
            let levels = &codebook(&q).levels;
            assert_eq!(levels.len(), (1 << bits) - 1);
            assert!(levels.iter().all(|&l| l == 0.0 || l.abs().log2().fract() == 0.0), "{levels:?}");
            assert_eq!(levels[levels.len() - 1], 1.0);
            assert_eq!(q.storage_bits, (rows * cols * bits as usize + rows * 16) as u64);
            assert_nearest(&q, &w);
        }
        let q = quantize_pot(4, rows, cols, &w).unwrap();
        let row_max = w[..cols].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert_eq!(codebook(&q).scales[0], row_max);
    }

    #[test]
    fn more_bits_never_hurt() {
        let (rows, cols) = (7, 200);
        let w = gaussian(36, rows * cols, 0.02);
        // POST and pot level sets are nested as bits grow, with the same scale: no element may
        // get worse. StatsQ grids are not nested; their overall error must still fall.
        for quantizer in
            [&(|b| quantize_post(b, SQRT_2, rows, cols, &w)) as &dyn Fn(u8) -> Result<QuantizedTensor, String>, &|b| {
                quantize_pot(b, rows, cols, &w)
            }]
        {
            let runs: Vec<Vec<f32>> = (2..=8).map(|b| quantizer(b).unwrap().values).collect();
            for pair in runs.windows(2) {
                for ((a, b), x) in pair[0].iter().zip(&pair[1]).zip(&w) {
                    assert!((b - x).abs() <= (a - x).abs(), "{x}: {a} then {b}");
                }
            }
            assert!(rmse(&runs[2], &w) < 0.5 * rmse(&runs[0], &w));
        }
        // StatsQ clips at 2·mean|w| (about 1.6σ for Gaussian rows), so its error falls towards
        // the clipping error rather than halving; inside the range it stays within half a step.
        let errors: Vec<f64> = (1..=8).map(|b| rmse(&quantize_statsq(b, rows, cols, &w).unwrap().values, &w)).collect();
        assert!(errors.windows(2).all(|e| e[1] < e[0]), "{errors:?}");
        for bits in 1..=8u8 {
            let q = quantize_statsq(bits, rows, cols, &w).unwrap();
            let half_step = |r: usize| codebook(&q).scales[r] / (2 << (bits - 1)) as f32;
            for (i, (&v, &x)) in q.values.iter().zip(&w).enumerate() {
                if x.abs() < codebook(&q).scales[i / cols] {
                    assert!((v - x).abs() <= half_step(i / cols) * 1.0001, "statsq{bits} element {i}");
                }
            }
        }
    }

    #[test]
    fn zero_rows_and_zero_weights() {
        let mut w = gaussian(37, 3 * 50, 0.02);
        w[50..100].fill(0.0);
        w[7] = 0.0;
        for q in [
            quantize_post(3, SQRT_2, 3, 50, &w).unwrap(),
            quantize_pot(3, 3, 50, &w).unwrap(),
            quantize_statsq(2, 3, 50, &w).unwrap(),
        ] {
            assert!(q.values[50..100].iter().all(|&v| v == 0.0));
        }
        assert_eq!(quantize_post(3, SQRT_2, 3, 50, &w).unwrap().values[7], 0.0);
        assert_eq!(quantize_pot(3, 3, 50, &w).unwrap().values[7], 0.0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(quantize_post(1, SQRT_2, 1, 4, &[1.0; 4]).is_err());
        assert!(quantize_post(4, 1.0, 1, 4, &[1.0; 4]).is_err());
        assert!(quantize_statsq(0, 1, 4, &[1.0; 4]).is_err());
        assert!(quantize_pot(9, 1, 4, &[1.0; 4]).is_err());
    }
}
