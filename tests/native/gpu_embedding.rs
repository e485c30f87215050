//! Embedding lookup on the GPU (rows of a weight table in its stored format, gathered by id)
//! against the CPU's `Weights::dequantize_row`.
//!
//! Tolerance: the GPU decodes with the CPU's formula, but may contract `d * q + m` into an FMA
//! (Q4_1, Q5_1, Q4_K), so |gpu − cpu| ≤ 1e-6 · max |row| + 1e-6 · |cpu| per element; formats
//! without an add (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q6_K) come out bit-exact on lavapipe but are not
//! required to.
use crate::gpu_common;

use gpu_common::*;
use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::kernels::embedding::embedding;
use quantscope::gpu::weights::GpuWeight;
use quantscope::model::weights::{WeightTensor, Weights};

/// Looks `ids` up on the GPU (output poisoned, with a poisoned tail that must stay untouched)
/// and compares with the CPU; ids past the table must come out as zeros.
fn check(what: &str, weights: &Weights, t: &WeightTensor, w: &GpuWeight, ids: &[u32]) {
    let n_in = t.row_len();
    let n = ids.len() * n_in;
    let ids_buf = ctx().upload_u32("ids", ids).unwrap();
    let out = poisoned("out", n + 5);
    let mut enc = ctx().encoder();
    embedding(ctx(), &mut enc, w, &ids_buf, &out, ids.len() as u32).unwrap();
    ctx().submit(enc);
    let got = read(&out, n + 5);
    assert!(got[n..].iter().all(|v| v.is_nan()), "{what}: wrote past the output");
    let mut row = vec![0.0f32; n_in];
    for (i, &id) in ids.iter().enumerate() {
        if (id as usize) < t.n_rows() {
            weights.dequantize_row(t, id as usize, &mut row).unwrap();
        } else {
            row.fill(0.0);
        }
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_close(&format!("{what} token {i} id {id}"), &got[i * n_in..(i + 1) * n_in], &row, 1e-6 * max, 1e-6);
    }
}

#[test]
fn every_format_matches_cpu() {
    let mut rng = Rng(21);
    let cases = [
        (GgmlType::F32, 40),
        (GgmlType::F32, 5),
        (GgmlType::F16, 40),
        (GgmlType::F16, 576),
        (GgmlType::BF16, 40),
        (GgmlType::Q8_0, 160),
        (GgmlType::Q4_0, 160),
        (GgmlType::Q4_1, 160),
        (GgmlType::Q5_0, 640),
        (GgmlType::Q5_1, 96),
        (GgmlType::Q4_K, 512),
        (GgmlType::Q6_K, 512),
    ];
    for (dtype, n_in) in cases {
        let n_out = 67;
        let (weights, t) = random_weights(&mut rng, dtype, n_in, n_out);
        let w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
        let what = format!("{} n_in={n_in}", dtype.name());
        // First and last row, repeats, and rows past the table (zeros).
        check(&what, &weights, &t, &w, &[0, 66, 5, 5, 0, 31, 66, 67, u32::MAX, 12]);
        check(&what, &weights, &t, &w, &[33]);
    }
}

#[test]
fn short_buffers_are_a_shape_error() {
    let (weights, t) = random_weights(&mut Rng(22), GgmlType::Q8_0, 64, 3);
    let w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
    let ids = ctx().upload_u32("ids", &[0, 1]).unwrap();
    let out = ctx().upload_f32("out", &[0.0; 127]).unwrap();
    let mut enc = ctx().encoder();
    let err = embedding(ctx(), &mut enc, &w, &ids, &out, 3).unwrap_err();
    assert!(err.to_string().contains("ids holds 2 values, needs 3"), "{err}");
    let err = embedding(ctx(), &mut enc, &w, &ids, &out, 2).unwrap_err();
    assert!(err.to_string().contains("out holds 127 values, needs n_tokens 2 × n_in 64 = 128"), "{err}");
}

#[test]
fn default_model_token_embd_matches_cpu() {
    let model = default_model();
    let t = model.weights.get("token_embd.weight").expect("token_embd.weight");
    assert_eq!((t.dtype, t.row_len(), t.n_rows()), (GgmlType::Q8_0, 576, 49152));
    let w = GpuWeight::upload(ctx(), &model.weights, t).unwrap();
    check("token_embd", &model.weights, t, &w, &[0, 49151, 1, 1, 12345, 49151, 0]);
}
