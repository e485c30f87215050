//! PB-LLM partial binarization (docs/quantizers.md §4.3), data-free with magnitude saliency: the
//! `salient_fraction` of weights with the largest `|w|` over the whole matrix stay 8-bit, the rest
//! are binarized per row.
//!
//! - Salient set: exactly `round(fraction·N·K)` weights, the largest magnitudes; among equal
//!   magnitudes the earlier element (row-major) wins, so the set never depends on the selection
//!   algorithm.
//! - Salient weights: 8-bit asymmetric min-max per row (§1.1), the min and max taken over the
//!   row's salient weights only.
//! - Binarized weights: per row, `μ_r` = the mean and `α_r` = the mean `|w − μ_r|` of the row's
//!   non-salient weights (the paper's derivation; the reference code averages over the masked
//!   matrix with its zeros, §7.8), `ŵ = α_r·sign(w − μ_r) + μ_r` with `sign(0) = +1` so that every
//!   binarized weight takes one of the two levels.
//!
//! Codebook: one table of 258 levels per row, the two binary levels `μ_r ∓ α_r` then the 256
//! salient levels `(q − z)·s`, with scale 1, so the decoded value is the formula's.
//!
//! Storage with a dense bitmap mask: 1 bit per binarized weight, 8 per salient weight, 1 mask bit
//! per weight, and per row an f16 `μ`, `α`, scale and zero point (64 bits). At a fraction of 0.1
//! that is 2.7 bpw plus 64/K.

use super::codebook::{Codebook, Sharing};
use super::int::Asymmetric;
use super::QuantizedTensor;

const SALIENT_BITS: u8 = 8;
const BINARY_LEVELS: usize = 2;
const LEVELS_PER_ROW: usize = BINARY_LEVELS + (1 << SALIENT_BITS);

pub fn quantize(salient_fraction: f32, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    if !(0.0..=1.0).contains(&salient_fraction) {
        return Err(format!("the salient fraction {salient_fraction} is not in [0, 1]"));
    }
    let salient = salient_mask(salient_fraction, data);
    let mut codes = Vec::with_capacity(data.len());
    let mut levels = Vec::with_capacity(rows * LEVELS_PER_ROW);
    for (row, mask) in data.chunks(cols).zip(salient.chunks(cols)) {
        let binarized: Vec<f64> = row.iter().zip(mask).filter(|(_, &s)| !s).map(|(&x, _)| x as f64).collect();
        let count = binarized.len().max(1) as f64;
        let mu = binarized.iter().sum::<f64>() / count;
        let alpha = (binarized.iter().map(|x| (x - mu).abs()).sum::<f64>() / count) as f32;
        let mu = mu as f32;
        let (min, max) = row
            .iter()
            .zip(mask)
            .filter(|(_, &s)| s)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (&x, _)| (lo.min(x), hi.max(x)));
        let grid =
            if min <= max { Asymmetric::fit(min, max, SALIENT_BITS) } else { Asymmetric::fit(0.0, 0.0, SALIENT_BITS) };
        levels.extend([-1.0f32, 1.0].map(|sign| alpha * sign + mu));
        levels.extend((0..=grid.umax).map(|q| q.saturating_sub(grid.zero) as f32 * grid.scale));
        codes.extend(row.iter().zip(mask).map(|(&x, &s)| match s {
            true => (BINARY_LEVELS as i64 + grid.level(x) + grid.zero) as u16,
            false => (x - mu >= 0.0) as u16,
        }));
    }
    let n = data.len() as u64;
    let n_salient = salient.iter().filter(|&&s| s).count() as u64;
    let storage_bits = (n - n_salient) + n_salient * SALIENT_BITS as u64 + n + rows as u64 * 64;
    let codebook = Codebook {
        rows,
        cols,
        codes,
        levels,
        levels_per_table: LEVELS_PER_ROW,
        table_sharing: Sharing::Row,
        scales: vec![1.0],
        offsets: Vec::new(),
        scale_sharing: Sharing::Tensor,
    };
    QuantizedTensor::from_codebook(codebook, storage_bits)
}

/// `true` for the `round(fraction·len)` elements of largest magnitude, ties to the lower index.
pub fn salient_mask(fraction: f32, data: &[f32]) -> Vec<bool> {
    let count = ((fraction as f64 * data.len() as f64).round() as usize).min(data.len());
    let mut mask = vec![false; data.len()];
    if count == 0 {
        return mask;
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    // A total order (magnitude descending, then index), so the first `count` are one fixed set.
    order.select_nth_unstable_by(count - 1, |&a, &b| data[b].abs().total_cmp(&data[a].abs()).then(a.cmp(&b)));
    order[..count].iter().for_each(|&i| mask[i] = true);
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int::tests::{gaussian, rmse};

    #[test]
    fn the_salient_set_is_the_largest_magnitudes_with_ties_to_the_earlier_element() {
        let w = gaussian(51, 7 * 200, 0.02);
        let mask = salient_mask(0.1, &w);
        assert_eq!(mask.iter().filter(|&&s| s).count(), 140);
        let smallest_salient = w.iter().zip(&mask).filter(|(_, &s)| s).map(|(x, _)| x.abs()).fold(f32::MAX, f32::min);
        assert!(w.iter().zip(&mask).filter(|(_, &s)| !s).all(|(x, _)| x.abs() <= smallest_salient));
        assert_eq!(salient_mask(0.5, &[0.1, 0.5, -0.5, 0.5]), [false, true, true, false]);
        assert_eq!(salient_mask(0.0, &w), vec![false; w.len()]);
        assert_eq!(salient_mask(1.0, &w), vec![true; w.len()]);
    }

    /// §4.3 written out per row, independently of the codebook.
    fn formula(fraction: f32, rows: usize, cols: usize, w: &[f32]) -> Vec<f32> {
        let mask = salient_mask(fraction, w);
        let mut out = Vec::new();
        for r in 0..rows {
            let row = r * cols..(r + 1) * cols;
            let (bin, sal): (Vec<usize>, Vec<usize>) = row.clone().partition(|&i| !mask[i]);
            let mu = bin.iter().map(|&i| w[i] as f64).sum::<f64>() / bin.len().max(1) as f64;
            let alpha = (bin.iter().map(|&i| (w[i] as f64 - mu).abs()).sum::<f64>() / bin.len().max(1) as f64) as f32;
            let mu = mu as f32;
            let min = sal.iter().map(|&i| w[i]).fold(f32::MAX, f32::min);
            let max = sal.iter().map(|&i| w[i]).fold(f32::MIN, f32::max);
            let s = (max - min) / 255.0;
            let z = (-min / s).round_ties_even();
            out.extend(row.map(|i| match mask[i] {
                true => (((w[i] / s).round_ties_even() + z).clamp(0.0, 255.0) - z) * s,
                false => alpha * if w[i] - mu >= 0.0 { 1.0 } else { -1.0 } + mu,
            }));
        }
        out
    }

    #[test]
    fn values_are_the_formulas_of_section_4_3() {
        let (rows, cols) = (7, 200);
        let w = gaussian(52, rows * cols, 0.02);
        for fraction in [0.05, 0.1, 0.5] {
            let q = quantize(fraction, rows, cols, &w).unwrap();
            assert_eq!(q.values, formula(fraction, rows, cols, &w), "fraction {fraction}");
        }
    }

    #[test]
    fn binarized_rows_take_two_values_and_salient_weights_are_within_half_an_8_bit_step() {
        let (rows, cols) = (7, 200);
        let w = gaussian(53, rows * cols, 0.02);
        let q = quantize(0.0, rows, cols, &w).unwrap();
        for (row, values) in w.chunks(cols).zip(q.values.chunks(cols)) {
            let mu = row.iter().map(|&x| x as f64).sum::<f64>() / cols as f64;
            let alpha = row.iter().map(|&x| (x as f64 - mu).abs()).sum::<f64>() / cols as f64;
            for (&x, &v) in row.iter().zip(values) {
                let expected = mu + alpha * if x as f64 >= mu { 1.0 } else { -1.0 };
                assert!((v as f64 - expected).abs() < 1e-8, "{x}: {v} vs {expected}");
            }
        }
        let q = quantize(0.2, rows, cols, &w).unwrap();
        let mask = salient_mask(0.2, &w);
        for (r, (row, m)) in w.chunks(cols).zip(mask.chunks(cols)).enumerate() {
            let sal: Vec<f32> = row.iter().zip(m).filter(|(_, &s)| s).map(|(&x, _)| x).collect();
            let step =
                (sal.iter().copied().fold(f32::MIN, f32::max) - sal.iter().copied().fold(f32::MAX, f32::min)) / 255.0;
            for c in (0..cols).filter(|&c| m[c]) {
                assert!((q.values[r * cols + c] - row[c]).abs() <= 0.5001 * step, "({r},{c})");
            }
        }
    }

    #[test]
    fn more_salient_weights_mean_less_error_and_more_bits() {
        let (rows, cols) = (8, 256);
        let mut w = gaussian(54, rows * cols, 0.02);
        (0..w.len()).step_by(53).for_each(|i| w[i] *= 6.0);
        let runs: Vec<QuantizedTensor> =
            [0.0, 0.05, 0.1, 0.5, 1.0].iter().map(|&f| quantize(f, rows, cols, &w).unwrap()).collect();
        for pair in runs.windows(2) {
            assert!(rmse(&pair[1].values, &w) < rmse(&pair[0].values, &w));
            assert!(pair[1].storage_bits > pair[0].storage_bits);
        }
        let n = (rows * cols) as u64;
        let salient = (0.1 * n as f64).round() as u64;
        assert_eq!(runs[2].storage_bits, (n - salient) + 8 * salient + n + rows as u64 * 64);
        assert!((runs[2].bits_per_weight() - (2.7 + 64.0 / cols as f64)).abs() < 0.01, "{}", runs[2].bits_per_weight());
    }

    #[test]
    fn zero_rows_stay_zero() {
        let mut w = gaussian(55, 3 * 64, 0.02);
        w[64..128].fill(0.0);
        for fraction in [0.0, 0.1, 1.0] {
            let q = quantize(fraction, 3, 64, &w).unwrap();
            assert!(q.values[64..128].iter().all(|&v| v == 0.0), "fraction {fraction}");
        }
        assert!(quantize(1.5, 1, 4, &[1.0; 4]).is_err());
    }
}
