//! The Walsh–Hadamard rotation of docs/quantizers.md §4.14: every row, in consecutive blocks of a
//! power of two `n`, is multiplied by the orthonormal Sylvester matrix `H_n/√n`. A rotation is
//! exact in real arithmetic and spreads an outlier over its whole block, so the block quantizes
//! with a smaller range; the quantized weights are rotated back to compare them with the original.
//!
//! `H_n` is symmetric and `H_n·H_n = n·I`, so `H_n/√n` is its own inverse: the same function
//! rotates forward and back. It runs as a fast Walsh–Hadamard transform (log₂ n butterfly stages)
//! in f64, rounding to f32 once at the end, so a rotation there and back costs two roundings and
//! nothing more.

/// The rotation block for rows of `cols`: `requested`, or for 0 the largest power of two up to
/// 128 that divides the row (128 is the largest block §4.14 uses; larger blocks spread outliers
/// further but cost more butterfly stages on the GPU).
pub fn block_size(requested: usize, cols: usize) -> Result<usize, String> {
    if requested == 0 {
        let block = 1usize << cols.trailing_zeros().min(7);
        return if block >= 2 {
            Ok(block)
        } else {
            Err(format!("rows of {cols} have no power-of-two factor to rotate in blocks of"))
        };
    }
    if requested < 2 || !requested.is_power_of_two() {
        return Err(format!("a Hadamard block of {requested} is not a power of two ≥ 2"));
    }
    if cols % requested != 0 {
        return Err(format!("a Hadamard block of {requested} does not divide rows of {cols}"));
    }
    Ok(requested)
}

/// Every row of the row-major `data` (rows of `cols`) rotated by `H/√block` in consecutive blocks.
/// `block` must be one that [`block_size`] accepts for `cols`.
pub fn rotate_rows(block: usize, cols: usize, data: &[f32]) -> Vec<f32> {
    assert!(block.is_power_of_two() && cols % block == 0, "Hadamard block {block} for rows of {cols}");
    let norm = 1.0 / (block as f64).sqrt();
    let mut buf = vec![0.0f64; block];
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(block) {
        buf.iter_mut().zip(chunk).for_each(|(b, &x)| *b = x as f64);
        fwht(&mut buf);
        out.extend(buf.iter().map(|&v| (v * norm) as f32));
    }
    out
}

/// In-place unnormalized transform by the Sylvester matrix `H_n`, `n = x.len()` a power of two.
fn fwht(x: &mut [f64]) {
    let mut half = 1;
    while half < x.len() {
        for pair in x.chunks_mut(2 * half) {
            let (lo, hi) = pair.split_at_mut(half);
            for (a, b) in lo.iter_mut().zip(hi) {
                (*a, *b) = (*a + *b, *a - *b);
            }
        }
        half *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int::tests::{gaussian, rmse};
    use crate::quant::{quantize, Encoding, Scheme};

    #[test]
    fn block_size_defaults_to_the_largest_power_of_two_up_to_128_and_checks_requests() {
        assert_eq!(block_size(0, 768), Ok(128));
        assert_eq!(block_size(0, 200), Ok(8));
        assert_eq!(block_size(0, 6), Ok(2));
        assert_eq!(block_size(64, 768), Ok(64));
        assert_eq!(block_size(256, 768), Ok(256));
        assert!(block_size(0, 7).unwrap_err().contains("no power-of-two factor"));
        assert!(block_size(32, 200).unwrap_err().contains("does not divide rows of 200"));
        assert!(block_size(12, 24).unwrap_err().contains("not a power of two"));
    }

    #[test]
    fn a_block_of_4_is_the_sylvester_matrix_over_2() {
        // H₄ = [[1,1,1,1],[1,−1,1,−1],[1,1,−1,−1],[1,−1,−1,1]]; H₄·(1,2,3,4) = (10,−2,−4,0).
        assert_eq!(
            rotate_rows(4, 8, &[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 2.0]),
            [5.0, -1.0, -2.0, 0.0, 1.0, -1.0, -1.0, 1.0]
        );
    }

    #[test]
    fn the_rotation_is_orthonormal() {
        for block in [2, 8, 32, 128] {
            // Row i is the basis vector e_i, so row i of the result is column i of H/√n.
            let mut identity = vec![0.0f32; block * block];
            (0..block).for_each(|i| identity[i * block + i] = 1.0);
            let h = rotate_rows(block, block, &identity);
            let entry = 1.0 / (block as f32).sqrt();
            assert!(h.iter().all(|&v| (v.abs() - entry).abs() <= 1e-7 * entry), "block {block}: entries ±1/√n");
            for i in 0..block {
                for j in 0..block {
                    let dot: f64 = (0..block).map(|k| h[i * block + k] as f64 * h[j * block + k] as f64).sum();
                    let expected = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - expected).abs() < 1e-6, "block {block}: <h{i}, h{j}> = {dot}");
                }
            }
        }
    }

    #[test]
    fn rotating_twice_gives_back_the_input_and_norms_are_kept_per_block() {
        let (rows, cols) = (5, 384);
        let w = gaussian(11, rows * cols, 0.05);
        for block in [2, 16, 128] {
            let once = rotate_rows(block, cols, &w);
            let back = rotate_rows(block, cols, &once);
            let worst = w.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            let amax = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            // Two roundings to f32, the first spread over the block by the second rotation.
            assert!(worst <= 4.0 * f32::EPSILON * amax, "block {block}: off by {worst}");
            for (a, b) in w.chunks(block).zip(once.chunks(block)) {
                let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>();
                assert!((norm(a) - norm(b)).abs() <= 1e-6 * norm(a), "block {block}: norm changed");
            }
        }
    }

    #[test]
    fn blocks_do_not_mix() {
        let w = gaussian(12, 64, 1.0);
        let mut bumped = w.clone();
        bumped[20] += 1.0;
        let (a, b) = (rotate_rows(16, 64, &w), rotate_rows(16, 64, &bumped));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x == y, !(16..32).contains(&i), "element {i}");
        }
    }

    #[test]
    fn quantizing_in_the_rotated_basis_gives_values_near_the_input() {
        let (rows, cols) = (6, 256);
        let w = gaussian(13, rows * cols, 0.02);
        let scheme: Scheme = "int8-ch-sym+hadamard".parse().unwrap();
        let q = quantize(&scheme, "w", rows, cols, &w).unwrap();
        let Encoding::Rotated { block, .. } = q.encoding else { panic!("not rotated: {:?}", q.encoding) };
        assert_eq!(block, 128);
        let rms = (w.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / w.len() as f64).sqrt();
        assert!(rmse(&q.values, &w) < 0.02 * rms, "int8 error {} vs rms {rms}", rmse(&q.values, &w));
        let plain = quantize(&"int8-ch-sym".parse().unwrap(), "w", rows, cols, &w).unwrap();
        assert_eq!(q.storage_bits, plain.storage_bits);
    }

    #[test]
    fn every_codebook_family_rotates_back_through_the_dispatcher() {
        // Values left in the rotated basis would be off by about √2·rms; every family's own
        // error is well under that.
        let (rows, cols) = (7, 200);
        let w = gaussian(15, rows * cols, 0.02);
        let rms = (w.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / w.len() as f64).sqrt();
        for name in
            ["int4-g64-asym", "nf4-g64-dq", "post4", "statsq2", "pot4", "bcq2-g64-r5", "pbllm-0.1", "split3-int3"]
        {
            let plain = quantize(&name.parse().unwrap(), "w", rows, cols, &w).unwrap();
            let q = quantize(&format!("{name}+hadamard").parse().unwrap(), "w", rows, cols, &w).unwrap();
            assert!(matches!(q.encoding, Encoding::Rotated { block: 8, .. }), "{name}");
            assert_eq!(q.storage_bits, plain.storage_bits, "{name}");
            let (rotated, direct) = (rmse(&q.values, &w), rmse(&plain.values, &w));
            assert!(rotated < 0.7 * rms && rotated < 2.0 * direct, "{name}: {rotated} (unrotated {direct}, rms {rms})");
        }
    }

    #[test]
    fn the_rotation_tames_an_outlier() {
        // One weight 40σ out in each row: per-row int4 spends its range on it; rotated, it is
        // spread over its block of 64 and the rest of the row keeps its resolution.
        let (rows, cols) = (4, 256);
        let mut w = gaussian(14, rows * cols, 0.02);
        (0..rows).for_each(|r| w[r * cols + 37 * (r + 1)] = 0.8);
        let error = |name: &str| rmse(&quantize(&name.parse().unwrap(), "w", rows, cols, &w).unwrap().values, &w);
        let (plain, rotated) = (error("int4-ch-sym"), error("int4-ch-sym+hadamard64"));
        assert!(rotated < 0.5 * plain, "rotated {rotated} vs plain {plain}");
    }
}
