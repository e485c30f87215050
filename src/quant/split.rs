//! SplitQuant (docs/quantizers.md §4.7): the tensor's values are clustered into three by 1-D k-means,
//! and each cluster is quantized symmetric int`b` per tensor with its own scale. The original
//! method splits the layer into three layers whose weights are zero outside their cluster and
//! sums their outputs; symmetric quantization keeps those zeros exactly zero, so the sum is just
//! each element's own cluster value, and one codebook describes all three layers.
//!
//! k-means is Lloyd's algorithm from a deterministic start (the 1/6, 1/2 and 5/6 quantiles, so a
//! scheme name always gives the same result, unlike sklearn's random restarts), run until the
//! assignment stops changing or for 50 iterations. Membership follows the method's masks:
//! `x ≤ t₁` low, `t₁ < x < t₂` middle, `x ≥ t₂` up, with the boundaries at the midpoints between
//! neighbouring centers. On sorted values every cluster is a contiguous run, so an iteration is
//! two binary searches and three means from prefix sums.
//!
//! Codebook: one table of `3·2^b` levels, cluster after cluster, each level already multiplied
//! by its cluster's scale (`q·s_k`), with scale 1: the decoded value is exactly the product the
//! formula gives. Storage: `b` bits plus a 2-bit cluster id per weight and three f16 scales
//! (the boundaries are not needed to decode).

use super::codebook::{Codebook, Sharing};
use super::int::Symmetric;
use super::levels::quantile;
use super::QuantizedTensor;

pub const MAX_ITERATIONS: usize = 50;

pub fn quantize(bits: u8, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    if !(2..=8).contains(&bits) {
        return Err(format!("split3-int takes 2 to 8 bits, not {bits}"));
    }
    let (t1, t2) = boundaries(data);
    let cluster = |x: f32| match x as f64 {
        x if x <= t1 => 0,
        x if x < t2 => 1,
        _ => 2,
    };
    let mut amax = [0.0f32; 3];
    for &x in data {
        amax[cluster(x)] = amax[cluster(x)].max(x.abs());
    }
    let grids = amax.map(|a| Symmetric::fit(a, bits));
    let qmin = -grids[0].qmax - 1;
    let per_cluster = 1usize << bits;
    let levels: Vec<f32> = grids.iter().flat_map(|g| (qmin..=g.qmax).map(|q| q as f32 * g.scale)).collect();
    let codes = data
        .iter()
        .map(|&x| {
            let k = cluster(x);
            (k * per_cluster + (grids[k].level(x) - qmin) as usize) as u16
        })
        .collect();
    let codebook = Codebook {
        rows,
        cols,
        codes,
        levels_per_table: levels.len(),
        levels,
        table_sharing: Sharing::Tensor,
        scales: vec![1.0],
        offsets: Vec::new(),
        scale_sharing: Sharing::Tensor,
    };
    QuantizedTensor::from_codebook(codebook, (rows * cols) as u64 * (bits as u64 + 2) + 3 * 16)
}

/// The boundaries `(t₁, t₂)` of the three k-means clusters of `data`.
pub fn boundaries(data: &[f32]) -> (f64, f64) {
    let mut sorted = data.to_vec();
    sorted.sort_by(f32::total_cmp);
    let mut prefix = Vec::with_capacity(sorted.len() + 1);
    prefix.push(0.0f64);
    for &x in &sorted {
        prefix.push(prefix[prefix.len() - 1] + x as f64);
    }
    let mut centers = [1.0 / 6.0, 0.5, 5.0 / 6.0].map(|p| quantile(&sorted, p));
    let midpoints = |c: &[f64; 3]| ((c[0] + c[1]) / 2.0, (c[1] + c[2]) / 2.0);
    let mut previous = None;
    for _ in 0..MAX_ITERATIONS {
        let (t1, t2) = midpoints(&centers);
        let low_end = sorted.partition_point(|&x| x as f64 <= t1);
        // Equal centers make t₁ = t₂; the low cluster then takes the shared boundary value.
        let mid_end = sorted.partition_point(|&x| (x as f64) < t2).max(low_end);
        if previous == Some((low_end, mid_end)) {
            break;
        }
        previous = Some((low_end, mid_end));
        for (center, (start, end)) in
            centers.iter_mut().zip([(0, low_end), (low_end, mid_end), (mid_end, sorted.len())])
        {
            // An empty cluster keeps its center and may win members back next time.
            if end > start {
                *center = (prefix[end] - prefix[start]) / (end - start) as f64;
            }
        }
    }
    midpoints(&centers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int::quantize as quantize_int;
    use crate::quant::int::tests::{gaussian, rmse};
    use crate::quant::{Encoding, Granularity};

    #[test]
    fn three_separated_blobs_are_found() {
        let noise = gaussian(41, 300, 0.05);
        let w: Vec<f32> = noise.iter().enumerate().map(|(i, &e)| [-1.0, 0.0, 2.0][i % 3] + e).collect();
        let (t1, t2) = boundaries(&w);
        assert!((t1 + 0.5).abs() < 0.05 && (t2 - 1.0).abs() < 0.05, "{t1} {t2}");
        let q = quantize(4, 3, 100, &w).unwrap();
        let Encoding::Codebook(cb) = &q.encoding else { panic!() };
        for (i, &code) in cb.codes.iter().enumerate() {
            assert_eq!(code as usize / 16, i % 3, "element {i} in the wrong cluster");
        }
    }

    #[test]
    fn boundaries_are_a_fixed_point_of_lloyd() {
        let w = gaussian(42, 7 * 200, 0.02);
        let (t1, t2) = boundaries(&w);
        let mean = |keep: &dyn Fn(f64) -> bool| {
            let members: Vec<f64> = w.iter().map(|&x| x as f64).filter(|&x| keep(x)).collect();
            members.iter().sum::<f64>() / members.len() as f64
        };
        let c = [mean(&|x| x <= t1), mean(&|x| x > t1 && x < t2), mean(&|x| x >= t2)];
        assert!(((c[0] + c[1]) / 2.0 - t1).abs() < 1e-9 && ((c[1] + c[2]) / 2.0 - t2).abs() < 1e-9);
        assert!(t1 < 0.0 && t2 > 0.0);
    }

    #[test]
    fn each_value_is_symmetric_int_with_its_cluster_scale() {
        let (rows, cols) = (7, 200);
        let w = gaussian(43, rows * cols, 0.02);
        let (t1, t2) = boundaries(&w);
        let cluster = |x: f32| (x as f64 > t1) as usize + (x as f64 >= t2) as usize;
        for bits in 2..=8u8 {
            let q = quantize(bits, rows, cols, &w).unwrap();
            let qmax = ((1 << (bits - 1)) - 1) as f32;
            let mut amax = [0.0f32; 3];
            w.iter().for_each(|&x| amax[cluster(x)] = amax[cluster(x)].max(x.abs()));
            for (i, &x) in w.iter().enumerate() {
                let s = amax[cluster(x)] / qmax;
                assert_eq!(q.values[i], (x / s).round_ties_even().clamp(-qmax - 1.0, qmax) * s, "int{bits} {i}");
                assert!((q.values[i] - x).abs() <= 0.5001 * s);
            }
            let Encoding::Codebook(cb) = &q.encoding else { panic!() };
            assert_eq!((cb.levels_per_table, cb.scales.as_slice()), (3 << bits, &[1.0][..]));
            assert_eq!(q.storage_bits, (rows * cols) as u64 * (bits as u64 + 2) + 48);
        }
    }

    #[test]
    fn splitting_beats_one_tensor_scale_and_error_falls_with_bits() {
        let (rows, cols) = (7, 200);
        let mut w = gaussian(44, rows * cols, 0.02);
        (0..w.len()).step_by(101).for_each(|i| w[i] *= 10.0);
        let error = |q: Result<QuantizedTensor, String>| rmse(&q.unwrap().values, &w);
        let split: Vec<f64> = (2..=8).map(|b| error(quantize(b, rows, cols, &w))).collect();
        let plain: Vec<f64> =
            (2..=8).map(|b| error(quantize_int(b, Granularity::Tensor, true, rows, cols, &w))).collect();
        assert!(split.windows(2).all(|e| e[1] < e[0]) && split[6] < split[0] / 20.0, "{split:?}");
        // The outliers land in the outer clusters with the tails, so the gain is in the
        // middle cluster's finer step: modest at 2 bits (a ternary grid), large from 4 on.
        for (b, (s, p)) in (2..).zip(split.iter().zip(&plain)) {
            assert!(*s < if b >= 4 { 0.7 * p } else { *p }, "int{b}: split {s} vs per tensor {p}");
        }
    }

    #[test]
    fn zeros_and_degenerate_tensors() {
        let mut w = gaussian(45, 400, 0.02);
        (0..400).step_by(3).for_each(|i| w[i] = 0.0);
        let q = quantize(2, 4, 100, &w).unwrap();
        assert!((0..400).step_by(3).all(|i| q.values[i] == 0.0));
        assert!(quantize(3, 2, 5, &[0.0; 10]).unwrap().values.iter().all(|&v| v == 0.0));
        // One distinct value: every element in the low cluster, and back exactly at 8 bits' qmax.
        let q = quantize(8, 1, 4, &[0.5; 4]).unwrap();
        assert!(q.values.iter().all(|&v| (v - 0.5).abs() < 1e-7), "{:?}", q.values);
        assert!(quantize(1, 1, 4, &[0.5; 4]).is_err());
    }
}
