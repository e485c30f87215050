//! The GPU's codebook decoder (shaders/formats/codebook.wgsl), the one decoder of every non-GGUF
//! weight scheme, against `Codebook::value` on the CPU: random codebooks of every code width
//! (1..=12 bits, so codes that straddle words are covered), every table and scale sharing, with and
//! without offsets, on rows that are not multiples of the 32-value chunk; then the matmul that
//! composes it, and codebooks made by the real quantizers.
//!
//! Tolerances:
//! - decode (through the embedding gather): bit-exact where there are no offsets (one f32
//!   multiply on both sides); with offsets the GPU may fuse `level · scale + offset` into an FMA,
//!   so |gpu − cpu| ≤ 2⁻²³ · (|level · scale| + |offset|) per element;
//! - matmul: kernel_reference's bounds against the dequantized matrix.
use crate::gpu_common;

use gpu_common::*;
use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::kernels::embedding::embedding;
use quantscope::gpu::kernels::matmul::matmul;
use quantscope::gpu::weights::{GpuWeight, WeightFormat};
use quantscope::model::weights::Weights;
use quantscope::quant::{Codebook, Encoding, Sharing};

fn random_codebook(
    rng: &mut Rng,
    rows: usize,
    cols: usize,
    levels_per_table: usize,
    tables: Sharing,
    scales: Sharing,
    offsets: bool,
) -> Codebook {
    let n_tables = tables.count(rows, cols);
    let n_scales = scales.count(rows, cols);
    Codebook {
        rows,
        cols,
        codes: (0..rows * cols).map(|_| (rng.next_u64() % levels_per_table as u64) as u16).collect(),
        levels: rng.vec(n_tables * levels_per_table, -2.0, 2.0),
        levels_per_table,
        table_sharing: tables,
        scales: rng.vec(n_scales, 0.001, 0.1),
        offsets: if offsets { rng.vec(n_scales, -0.05, 0.05) } else { Vec::new() },
        scale_sharing: scales,
    }
}

/// Decodes every row on the GPU (embedding gather of ids 0..rows) and compares with the CPU.
fn check_decode(what: &str, cb: &Codebook) {
    let w = GpuWeight::upload_codebook(ctx(), what, cb).unwrap();
    assert_eq!(w.format, WeightFormat::Codebook { code_bits: cb.code_bits() });
    let ids: Vec<u32> = (0..cb.rows as u32).collect();
    let n = cb.rows * cb.cols;
    let ids_buf = ctx().upload_u32("ids", &ids).unwrap();
    let out = poisoned("out", n + 3);
    let mut enc = ctx().encoder();
    embedding(ctx(), &mut enc, &w, &ids_buf, &out, ids.len() as u32).unwrap();
    ctx().submit(enc);
    let got = read(&out, n + 3);
    assert!(got[n..].iter().all(|v| v.is_nan()), "{what}: wrote past the output");
    for r in 0..cb.rows {
        for c in 0..cb.cols {
            let (g, e) = (got[r * cb.cols + c], cb.value(r, c));
            let ok = if cb.offsets.is_empty() {
                g.to_bits() == e.to_bits()
            } else {
                let s = cb.scale_sharing.index(cb.cols, r, c);
                (g - e).abs() <= f32::EPSILON * (e.abs() + cb.offsets[s].abs() + (e - cb.offsets[s]).abs())
            };
            assert!(ok, "{what}: element ({r}, {c}): gpu {g:e}, cpu {e:e}");
        }
    }
}

#[test]
fn every_code_width_and_sharing_decodes_like_the_cpu() {
    let mut rng = Rng(0xC0DE_B00C);
    let sharings = [Sharing::Tensor, Sharing::Row, Sharing::Group(16), Sharing::Group(48)];
    let mut cases = 0;
    for bits in 1..=12u32 {
        let levels = if bits == 12 { 3000 } else { (1usize << bits) - (bits as usize % 2) };
        let (rows, cols) = [(3, 40), (5, 100), (2, 64), (4, 7)][bits as usize % 4];
        let tables = sharings[bits as usize % 4];
        let scales = sharings[(bits as usize / 2) % 4];
        for offsets in [false, true] {
            let cb = random_codebook(&mut rng, rows, cols, levels.max(2), tables, scales, offsets);
            check_decode(&format!("{bits}-bit {tables:?}/{scales:?} offsets={offsets} {rows}×{cols}"), &cb);
            cases += 1;
        }
    }
    assert_eq!(cases, 24);
}

#[test]
fn matmul_over_a_codebook_matches_the_dequantized_matrix() {
    let mut rng = Rng(77);
    for (rows, cols, bits) in [(67, 100, 3), (9, 576, 4), (130, 40, 9)] {
        let cb = random_codebook(&mut rng, rows, cols, 1 << bits, Sharing::Row, Sharing::Group(32), true);
        let values = cb.dequantize();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (weights, t) = Weights::single("codebook", "w", GgmlType::F32, rows, cols, bytes).unwrap();
        let w = GpuWeight::upload_codebook(ctx(), "w", &cb).unwrap();
        for n_tokens in [1usize, 5] {
            let x = rng.vec(n_tokens * cols, -1.0, 1.0);
            let xb = ctx().upload_f32("x", &x).unwrap();
            let yb = poisoned("y", n_tokens * rows + 2);
            let mut enc = ctx().encoder();
            matmul(ctx(), &mut enc, &w, &xb, &yb, n_tokens as u32).unwrap();
            ctx().submit(enc);
            let got = read(&yb, n_tokens * rows + 2);
            check_matmul_output(
                &format!("{rows}×{cols} {bits}-bit, {n_tokens} tokens"),
                &weights,
                &t,
                &x,
                n_tokens,
                &got,
            );
        }
    }
}

#[test]
fn the_real_quantizers_codebooks_decode_on_the_gpu() {
    let mut rng = Rng(5);
    let (rows, cols) = (6, 192);
    let data = rng.vec(rows * cols, -0.1, 0.1);
    let mut checked = Vec::new();
    for scheme in quantscope::quant::Scheme::catalog() {
        let Ok(q) = quantscope::quant::quantize(&scheme, "w", rows, cols, &data) else { continue };
        if let Encoding::Codebook(cb) = &q.encoding {
            check_decode(&scheme.to_string(), cb);
            checked.push(scheme.to_string());
        }
    }
    println!("checked on the GPU: {checked:?}");
    assert!(!checked.is_empty());
}
