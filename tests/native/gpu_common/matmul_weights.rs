//! The weights of the matmul tests (`tests/native/gpu_matmul.rs`, `tests/native/gpu_matmul_stacked.rs`):
//! random ones in every format on the GPU with their rows dequantized on the CPU, and the CPU's
//! product of a row with its error budget.

use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::weights::GpuWeight;
use quantscope::quant::{Codebook, Sharing};

use super::ctx;
use super::kernel_reference::{random_weights, Rng, MATMUL_TERM_REL};

/// A weight under test: on the GPU, and dequantized on the CPU (`[n_out × n_in]`).
pub struct TestWeight {
    pub gpu: GpuWeight,
    pub rows: Vec<f32>,
    pub n_in: usize,
    pub n_out: usize,
}

pub fn ggml_weight(rng: &mut Rng, dtype: GgmlType, n_in: usize, n_out: usize) -> TestWeight {
    let (weights, t) = random_weights(rng, dtype, n_in, n_out);
    let gpu = GpuWeight::upload(ctx(), &weights, &t).unwrap();
    let mut rows = vec![0.0f32; n_in * n_out];
    for (o, row) in rows.chunks_exact_mut(n_in).enumerate() {
        weights.dequantize_row(&t, o, row).unwrap();
    }
    TestWeight { gpu, rows, n_in, n_out }
}

/// A 3-bit codebook (8 levels per table, a table per row) with scales and offsets per group of
/// 24 columns, so groups straddle parts and chunks.
pub fn codebook_weight(rng: &mut Rng, n_in: usize, n_out: usize) -> TestWeight {
    let (tables, scales) = (Sharing::Row, Sharing::Group(24));
    let cb = Codebook {
        rows: n_out,
        cols: n_in,
        codes: (0..n_in * n_out).map(|_| (rng.next_u64() % 8) as u16).collect(),
        levels: rng.vec(tables.count(n_out, n_in) * 8, -2.0, 2.0),
        levels_per_table: 8,
        table_sharing: tables,
        scales: rng.vec(scales.count(n_out, n_in), 0.001, 0.1),
        offsets: rng.vec(scales.count(n_out, n_in), -0.05, 0.05),
        scale_sharing: scales,
    };
    let gpu = GpuWeight::upload_codebook(ctx(), "random codebook", &cb).unwrap();
    TestWeight { gpu, rows: cb.dequantize(), n_in, n_out }
}

/// Row o of `tw` times x on the CPU, in f64.
pub struct RowProduct {
    /// Σ_k W[o][k]·x[k].
    pub sum: f64,
    /// Σ_k |W[o][k]·x[k]|, the scale of the f32 path's error.
    pub abs_sum: f64,
    /// The bound on the GPU's error in `sum` before any epilogue: MATMUL_TERM_REL · abs_sum in
    /// f32, and for the f16 variant 9 · 2⁻¹¹ · Σ_k |x_k| · B_k (B_k the largest |w| of k's
    /// chunk) plus 2⁻²³ a term (f16's subnormal spacing); see tests/native/gpu_matmul.rs.
    pub budget: f64,
}

pub fn cpu_row(tw: &TestWeight, x: &[f32], o: usize, f16: bool) -> RowProduct {
    let row = &tw.rows[o * tw.n_in..][..tw.n_in];
    let (mut sum, mut abs_sum, mut chunk_scale, mut subnormal) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (wc, xc) in row.chunks(32).zip(x.chunks(32)) {
        let b = wc.iter().fold(0.0f64, |m, &w| m.max(w.abs() as f64));
        for (&w, &v) in wc.iter().zip(xc) {
            let p = w as f64 * v as f64;
            sum += p;
            abs_sum += p.abs();
            chunk_scale += b * (v as f64).abs();
            subnormal += 2f64.powi(-23);
        }
    }
    let budget = if f16 { 9.0 * 2f64.powi(-11) * chunk_scale + subnormal } else { MATMUL_TERM_REL * abs_sum };
    RowProduct { sum, abs_sum, budget }
}
