//! Matmul (GEMV for one token, GEMM for several) over weights in their stored formats, against
//! the CPU: rows dequantized by `quantscope::formats::ggml`, dot products accumulated in f64.
//!
//! Tolerances (f32 accumulation on the GPU, in a different order than the reference):
//! - per element, |gpu − cpu| ≤ 1e-5 · Σ_k |w_k · x_k| (the scale of the dot product's terms, so
//!   a dot product whose terms cancel is not held to an impossible relative bound);
//! - per token, the relative L2 error of the output vector ≤ 1e-5 where it has ≥ 64 elements
//!   (on a handful of outputs one cancelling dot product dominates the norm, so the relative L2
//!   says nothing more than the elementwise bound there).
// Native only (files, processes, blocking GPU calls); the browser suite is tests/web.rs.
#![cfg(not(target_arch = "wasm32"))]

mod gpu_common;

use gpu_common::*;
use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::kernels::matmul::matmul;
use quantscope::gpu::weights::{GpuWeight, WeightFormat};
use quantscope::model::weights::{WeightTensor, Weights};

// The bounds are kernel_reference's MATMUL_TERM_REL, MATMUL_REL_L2 and REL_L2_MIN_LEN, checked by
// its check_matmul_output (shared with the browser suite).
const TOKENS: &[u32] = &[1, 2, 5, 17];

/// Runs the GPU matmul (output poisoned with NaN, plus a poisoned tail that must stay untouched)
/// and checks it against the CPU; returns the worst relative L2 over tokens.
fn check(what: &str, weights: &Weights, t: &WeightTensor, gpu_w: &GpuWeight, x: &[f32], n_tokens: usize) -> f64 {
    let (n_in, n_out) = (t.row_len(), t.n_rows());
    assert_eq!(x.len(), n_tokens * n_in);
    let xb = ctx().upload_f32("x", x).unwrap();
    let tail = 3;
    let yb = poisoned("y", n_tokens * n_out + tail);
    let mut enc = ctx().encoder();
    matmul(ctx(), &mut enc, gpu_w, &xb, &yb, n_tokens as u32).unwrap();
    ctx().submit(enc);
    let got = read(&yb, n_tokens * n_out + tail);
    check_matmul_output(what, weights, t, x, n_tokens, &got)
}

/// Random weights of `dtype` in awkward shapes × every token count.
fn check_format(dtype: GgmlType, n_ins: [usize; 2], seed: u64) {
    let mut rng = Rng(seed);
    let mut worst = 0.0f64;
    for (i, &n_out) in [1usize, 7, 67, 300].iter().enumerate() {
        let n_in = n_ins[i % 2];
        let (weights, t) = random_weights(&mut rng, dtype, n_in, n_out);
        let gpu_w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
        assert_eq!((gpu_w.n_in, gpu_w.n_out, gpu_w.format), (n_in as u32, n_out as u32, WeightFormat::Ggml(dtype)));
        for &n_tokens in TOKENS {
            let x = rng.vec(n_tokens as usize * n_in, -1.0, 1.0);
            let what = format!("{} n_in={n_in} n_out={n_out} n_tokens={n_tokens}", dtype.name());
            worst = worst.max(check(&what, &weights, &t, &gpu_w, &x, n_tokens as usize));
        }
    }
    println!("{}: worst relative L2 {worst:.2e}", dtype.name());
}

#[test]
fn f32_matches_cpu() {
    // 40 and 5 are not multiples of 32: rows are zero-padded on upload.
    check_format(GgmlType::F32, [160, 40], 1);
    check_format(GgmlType::F32, [5, 576], 2);
}

#[test]
fn f16_matches_cpu() {
    check_format(GgmlType::F16, [160, 40], 3);
    check_format(GgmlType::F16, [5, 576], 4);
}

#[test]
fn q8_0_matches_cpu() {
    check_format(GgmlType::Q8_0, [160, 576], 5);
}

#[test]
fn q4_0_matches_cpu() {
    check_format(GgmlType::Q4_0, [160, 32], 6);
}

#[test]
fn q4_1_matches_cpu() {
    check_format(GgmlType::Q4_1, [160, 576], 7);
}

#[test]
fn q4_k_matches_cpu() {
    check_format(GgmlType::Q4_K, [512, 256], 8);
}

#[test]
fn q6_k_matches_cpu() {
    check_format(GgmlType::Q6_K, [512, 256], 9);
}

#[test]
fn unsupported_format_is_a_shape_error() {
    let t = WeightTensor { name: "w.q5_0".into(), dtype: GgmlType::Q5_0, dims: vec![32, 2], start: 0, len: 44 };
    let weights = Weights::new(vec![0; 44], "test", vec![t.clone()]).unwrap();
    let err = GpuWeight::upload(ctx(), &weights, &t).expect_err("Q5_0 is not supported");
    assert_eq!(err.to_string(), "kernel matmul: unsupported weight format Q5_0 of tensor w.q5_0");
}

#[test]
fn short_buffers_are_a_shape_error() {
    let mut rng = Rng(10);
    let (weights, t) = random_weights(&mut rng, GgmlType::Q8_0, 64, 3);
    let w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
    let x = ctx().upload_f32("x", &[0.0; 127]).unwrap();
    let y = ctx().upload_f32("y", &[0.0; 6]).unwrap();
    let mut enc = ctx().encoder();
    let err = matmul(ctx(), &mut enc, &w, &x, &y, 2).unwrap_err();
    assert!(err.to_string().contains("x holds 127 values, needs n_tokens 2 × n_in 64 = 128"), "{err}");
    let x = ctx().upload_f32("x", &[0.0; 192]).unwrap();
    let err = matmul(ctx(), &mut enc, &w, &x, &y, 3).unwrap_err();
    assert!(err.to_string().contains("y holds 6 values, needs n_tokens 3 × n_out 3 = 9"), "{err}");
}

#[test]
fn gpu_bytes_count_the_repacked_blocks() {
    let mut rng = Rng(11);
    // Q8_0 keeps its 34 bytes per block (32 quants + 2 of scale), Q6_K its 210.
    for (dtype, n_in, bytes) in [(GgmlType::Q8_0, 160, 34 * 5 * 3), (GgmlType::Q6_K, 512, 210 * 2 * 3)] {
        let (weights, t) = random_weights(&mut rng, dtype, n_in, 3);
        let w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
        assert_eq!(w.gpu_bytes(), (bytes as u64).next_multiple_of(4), "{}", dtype.name());
    }
}

fn check_model_tensor(name: &str, dtype: GgmlType, tokens: &[usize], seed: u64) {
    let model = default_model();
    let t = model.weights.get(name).unwrap_or_else(|| panic!("{name} is missing"));
    assert_eq!(t.dtype, dtype, "{name}");
    let w = GpuWeight::upload(ctx(), &model.weights, t).unwrap();
    let mut rng = Rng(seed);
    for &n_tokens in tokens {
        let x = rng.vec(n_tokens * t.row_len(), -1.0, 1.0);
        let what = format!("{name} ({dtype}, {}x{}) n_tokens={n_tokens}", t.row_len(), t.n_rows());
        let rel = check(&what, &model.weights, t, &w, &x, n_tokens);
        println!("{what}: worst relative L2 {rel:.2e}");
    }
}

#[test]
fn default_model_ffn_down_matches_cpu() {
    check_model_tensor("blk.0.ffn_down.weight", GgmlType::Q4_1, &[1, 2, 17], 12);
}

#[test]
fn default_model_logits_match_cpu() {
    // token_embd (tied output): GEMV over it is the logits.
    check_model_tensor("token_embd.weight", GgmlType::Q8_0, &[1, 5], 13);

    // Sanity timing only (lavapipe is a CPU): one GEMV over 49152 × 576 Q8_0, submit to readback.
    let t = default_model().weights.get("token_embd.weight").unwrap();
    let w = GpuWeight::upload(ctx(), &default_model().weights, t).unwrap();
    let x = ctx().upload_f32("x", &Rng(14).vec(576, -1.0, 1.0)).unwrap();
    let y = poisoned("y", 49152);
    for run in 0..3 {
        let start = std::time::Instant::now();
        let mut enc = ctx().encoder();
        matmul(ctx(), &mut enc, &w, &x, &y, 1).unwrap();
        ctx().submit(enc);
        let _ = read(&y, 1);
        let s = start.elapsed().as_secs_f64();
        println!(
            "logits GEMV run {run}: {:.2} ms, {:.2} GB/s of weights ({})",
            s * 1e3,
            w.gpu_bytes() as f64 / s / 1e9,
            ctx().summary.name
        );
    }
}
