//! ShiftAddLLM's LUT GEMV on the GPU (shaders/bcq_lut_gemv.wgsl) against the CPU: random weights
//! of awkward shapes (rows not a multiple of the workgroup's 128, rows of fewer than 32 inputs,
//! of inputs not a multiple of 32 or of 8, groups of 8 up to whole rows, 1 to 4 bits) fit by
//! `bcq::fit` and packed by `BcqPacked`, random x.
//!
//! Two references, both accumulated in f64:
//! - `bcq::lut_gemv`, the same algorithm (tables, per-group sums, α);
//! - the direct dot `Σ_j ŵ_j·x_j` with `ŵ_j = bcq::codeword(α, pattern_j)`, the dequantized weight.
//!
//! Tolerance: the GPU builds its tables and sums its look-ups in f32, in another order than the
//! CPU, so each output is off by a few ulps of the terms it adds. Those terms are table entries
//! `Σ_t ±x_t` scaled by α, and their magnitude, `Σ_plane Σ_j α_plane(j)·|x_j|`, can exceed the
//! direct dot's `Σ_j |ŵ_j·x_j|` several times over (`ŵ = α_0 − α_1 − α_2` is small where the
//! terms are not). So, per output, |gpu − cpu| ≤ 1e-5 · that LUT term scale (kernel_reference's
//! MATMUL_TERM_REL with the kernel's own terms), and per output vector of ≥ 64 elements a
//! relative L2 ≤ 1e-5 (kernel_reference's MATMUL_REL_L2), against both references.
use crate::gpu_common;

use gpu_common::*;
use quantscope::gpu::kernels::bcq::{bcq_gemv, GpuBcqWeight};
use quantscope::quant::bcq::{self, BcqFit, BcqPacked};
use quantscope::GpuError;

/// Outputs past `rows` in the poisoned y buffer that must stay NaN.
const TAIL: usize = 3;

/// Runs the GPU GEMV into a NaN-poisoned y with a poisoned tail; returns y without the tail.
fn gpu_gemv(w: &GpuBcqWeight, x: &[f32]) -> Vec<f32> {
    let rows = w.rows as usize;
    let xb = ctx().upload_f32("x", x).unwrap();
    let yb = poisoned("y", rows + TAIL);
    let mut enc = ctx().encoder();
    bcq_gemv(ctx(), &mut enc, w, &xb, &yb).unwrap();
    ctx().submit(enc);
    let mut got = read(&yb, rows + TAIL);
    assert!(got[rows..].iter().all(|v| v.is_nan()), "wrote past the output: {:?}", &got[rows..]);
    got.truncate(rows);
    got
}

/// Per row: the direct dot with the dequantized weights in f64, and the LUT's term scale
/// `Σ_plane Σ_j α_plane(row, group of j)·|x_j|`.
fn direct_and_scale(fit: &BcqFit, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (q, gpr) = (fit.bits as usize, fit.groups_per_row());
    (0..fit.rows)
        .map(|row| {
            let (mut dot, mut scale) = (0.0f64, 0.0f64);
            for (j, &xj) in x.iter().enumerate() {
                let alphas = &fit.alphas[(row * gpr + j / fit.group) * q..][..q];
                dot += bcq::codeword(alphas, fit.patterns[row * fit.cols + j]) as f64 * xj as f64;
                scale += alphas.iter().map(|&a| a as f64).sum::<f64>() * (xj as f64).abs();
            }
            (dot, scale)
        })
        .unzip()
}

/// Checks `got` against `want` within the module's bounds; returns the relative L2.
fn compare(what: &str, got: &[f32], want: &[f64], scale: &[f64]) -> f64 {
    let bad: Vec<String> = (0..got.len())
        .filter(|&o| {
            let err = (got[o] as f64 - want[o]).abs();
            err.is_nan() || err > MATMUL_TERM_REL * scale[o]
        })
        .take(8)
        .map(|o| format!("[{o}] gpu {} cpu {} (LUT term scale {})", got[o], want[o], scale[o]))
        .collect();
    assert!(bad.is_empty(), "{what}: mismatches (first 8): {}", bad.join(", "));
    let num: f64 = got.iter().zip(want).map(|(&g, &c)| (g as f64 - c).powi(2)).sum();
    let den: f64 = want.iter().map(|c| c * c).sum();
    let rel = (num / den).sqrt();
    if got.len() >= REL_L2_MIN_LEN {
        assert!(rel <= MATMUL_REL_L2, "{what}: relative L2 {rel:e} > {MATMUL_REL_L2:e}");
    }
    rel
}

/// Fits random weights, runs the GPU kernel on two random inputs and checks it against both
/// references; returns the worst relative L2 against each.
fn check(rng: &mut Rng, rows: usize, cols: usize, bits: u8, group: usize) -> (f64, f64) {
    let w = rng.vec(rows * cols, -0.05, 0.05);
    let fit = bcq::fit(bits, group, 3, rows, cols, &w).unwrap();
    let packed = BcqPacked::new(&fit).unwrap();
    let gpu_w = GpuBcqWeight::upload(ctx(), &packed).unwrap();
    assert_eq!(
        (gpu_w.rows, gpu_w.cols, gpu_w.bits, gpu_w.group),
        (rows as u32, cols as u32, bits as u32, group as u32)
    );
    let mut worst = (0.0f64, 0.0f64);
    for _ in 0..2 {
        let x = rng.vec(cols, -1.0, 1.0);
        let what = format!("{rows}×{cols} bcq{bits} group {group}");
        let got = gpu_gemv(&gpu_w, &x);
        let (direct, scale) = direct_and_scale(&fit, &x);
        let lut: Vec<f64> = bcq::lut_gemv(&packed, &x).into_iter().map(f64::from).collect();
        worst.0 = worst.0.max(compare(&format!("{what} vs lut_gemv"), &got, &lut, &scale));
        worst.1 = worst.1.max(compare(&format!("{what} vs the direct dot"), &got, &direct, &scale));
    }
    worst
}

fn check_all(seed: u64, shapes: &[(usize, usize, usize)], bit_widths: &[u8]) {
    let mut rng = Rng(seed);
    for &(rows, cols, group) in shapes {
        for &bits in bit_widths {
            let (lut, direct) = check(&mut rng, rows, cols, bits, group);
            println!("{rows}×{cols} bcq{bits} g{group}: relative L2 {lut:.2e} vs lut_gemv, {direct:.2e} vs direct");
        }
    }
}

#[test]
fn small_rows_and_groups_of_one_chunk_match_cpu() {
    // 64 inputs: one K-tile exactly. 13 inputs: one partial word, a partial chunk.
    check_all(1, &[(7, 64, 8), (7, 64, 64), (3, 13, 8), (5, 40, 16)], &[1, 2, 3, 4]);
}

#[test]
fn rows_not_a_multiple_of_32_inputs_match_cpu() {
    // 200 = 6¼ words (an odd word count: the last tile has one word) and groups that cross
    // words (40) or are single chunks (8); 203 also ends in a partial chunk and a short group.
    check_all(2, &[(67, 200, 8), (67, 200, 40), (130, 203, 16)], &[1, 3, 4]);
}

#[test]
fn default_model_shapes_match_cpu() {
    // 300 rows: three workgroups, the last partly idle; a whole-row group on a long single row.
    check_all(3, &[(300, 576, 64), (1, 1536, 128), (1, 1536, 1536)], &[2, 3]);
}

#[test]
fn bad_shapes_are_typed_errors() {
    let mut rng = Rng(4);
    let w = rng.vec(3 * 64, -0.05, 0.05);
    let packed = BcqPacked::new(&bcq::fit(2, 16, 1, 3, 64, &w).unwrap()).unwrap();
    let shape_error = |packed: &BcqPacked| match GpuBcqWeight::upload(ctx(), packed) {
        Err(e @ GpuError::Shape { kernel: "bcq_lut_gemv", .. }) => e.to_string(),
        Err(e) => panic!("not a shape error: {e}"),
        Ok(_) => panic!("accepted group {} bits {} with {} words", packed.group, packed.bits, packed.planes.len()),
    };
    // BcqPacked::new refuses groups that are not whole chunks; a hand-made one gets the same answer.
    assert!(BcqPacked::new(&bcq::fit(2, 12, 1, 3, 64, &w).unwrap()).is_err());
    for group in [12, 0] {
        let err = shape_error(&BcqPacked { group, ..packed.clone() });
        assert!(err.contains("multiple of 8 inputs"), "{err}");
    }
    assert!(shape_error(&BcqPacked { bits: 5, ..packed.clone() }).contains("1 to 4 bit planes"));
    let err = shape_error(&BcqPacked { planes: packed.planes[1..].to_vec(), ..packed.clone() });
    assert!(err.contains("11 plane words and 24 scales, needs 12 and 24"), "{err}");
    assert!(shape_error(&BcqPacked { words_per_row: 3, ..packed.clone() }).contains("3 words per row for 64 inputs"));

    let gpu_w = GpuBcqWeight::upload(ctx(), &packed).unwrap();
    let mut enc = ctx().encoder();
    let (x, y) = (ctx().upload_f32("x", &[0.0; 63]).unwrap(), poisoned("y", 3));
    let err = bcq_gemv(ctx(), &mut enc, &gpu_w, &x, &y).unwrap_err();
    assert_eq!(err.to_string(), "kernel bcq_lut_gemv: x holds 63 values, needs 64");
    let (x, y) = (ctx().upload_f32("x", &[0.0; 64]).unwrap(), poisoned("y", 2));
    let err = bcq_gemv(ctx(), &mut enc, &gpu_w, &x, &y).unwrap_err();
    assert_eq!(err.to_string(), "kernel bcq_lut_gemv: y holds 2 values, needs 3");
}
