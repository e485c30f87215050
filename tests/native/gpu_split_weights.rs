//! A matrix larger than one storage binding is uploaded in row parts, one buffer each, and the
//! matmul and the embedding gather dispatch once per part. Here a second lavapipe device whose
//! bindings are capped at 64 KiB splits matrices of a few hundred KiB: every product, epilogue
//! and gathered row is the same as from the whole matrix on the ordinary device (the same
//! arithmetic per row), and a tiny Gemma 3 whose embeddings span four bindings runs the forward
//! alike.
use std::sync::OnceLock;

use crate::gpu_common::*;

use pollster::block_on;
use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::gpu::kernels::embedding::embedding;
use quantscope::gpu::kernels::matmul::{matmul_variant, MatmulOptions, MatmulOutput, MatmulVariant};
use quantscope::gpu::weights::GpuWeight;
use quantscope::gpu::GpuContext;
use quantscope::model::config::GateActivation;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::Model;

const BINDING: u64 = 64 << 10;

fn small() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| block_on(GpuContext::with_binding_limit(BINDING)).unwrap())
}

fn read_on(c: &GpuContext, buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    block_on(c.read_f32(buffer, n, "test")).unwrap()
}

#[test]
fn a_split_matrix_multiplies_as_the_whole_one_in_every_epilogue() {
    let mut rng = Rng(71);
    for dtype in [GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::F32] {
        let (n_in, n_out) = (256usize, 1000usize);
        let (weights, t) = random_weights(&mut rng, dtype, n_in, n_out);
        let whole = GpuWeight::upload(ctx(), &weights, &t).unwrap();
        let split = GpuWeight::upload(small(), &weights, &t).unwrap();
        assert_eq!(whole.part_count(), 1);
        assert!(split.part_count() >= 3, "{}: {} parts", dtype.name(), split.part_count());
        for n_tokens in [1usize, 7] {
            let x = rng.vec(n_tokens * n_in, -1.0, 1.0);
            let bias = rng.vec(n_out, -1.0, 1.0);
            let gate = rng.vec(n_tokens * n_out, -4.0, 4.0);
            let y0 = rng.vec(n_tokens * n_out, -1.0, 1.0);
            for output in ["store+bias", "accumulate", "geglu"] {
                let run = |c: &GpuContext, w: &GpuWeight| -> Vec<f32> {
                    let (xb, yb) = (c.upload_f32("x", &x).unwrap(), c.upload_f32("y", &y0).unwrap());
                    let (bb, gb) = (c.upload_f32("bias", &bias).unwrap(), c.upload_f32("gate", &gate).unwrap());
                    let options = match output {
                        "store+bias" => MatmulOptions { bias: Some(&bb), ..Default::default() },
                        "accumulate" => MatmulOptions { output: MatmulOutput::Accumulate, ..Default::default() },
                        _ => MatmulOptions {
                            output: MatmulOutput::Gated(&gb, GateActivation::GeluTanh),
                            ..Default::default()
                        },
                    };
                    let mut enc = c.encoder();
                    matmul_variant(c, &mut enc, w, &xb, &yb, n_tokens as u32, &options, MatmulVariant::Portable)
                        .unwrap();
                    c.submit(enc);
                    read_on(c, &yb, n_tokens * n_out)
                };
                let (a, b) = (run(ctx(), &whole), run(small(), &split));
                let what = format!("{} {n_tokens} tokens {output}", dtype.name());
                assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: split differs from whole");
            }
        }
    }
}

#[test]
fn a_split_table_gathers_every_row_and_zeros_past_the_end() {
    let mut rng = Rng(72);
    let (n_in, n_out) = (640usize, 400usize);
    let (weights, t) = random_weights(&mut rng, GgmlType::Q8_0, n_in, n_out);
    let split = GpuWeight::upload(small(), &weights, &t).unwrap();
    assert!(split.part_count() >= 3, "{} parts", split.part_count());
    // Ids in every part, repeated, at both ends, and past the table.
    let ids: Vec<u32> = vec![0, 399, 97, 96, 250, 0, 400, u32::MAX, 191, 192, 383];
    let c = small();
    let idb = c.upload_u32("ids", &ids).unwrap();
    let out = c.upload_f32("out", &vec![f32::NAN; ids.len() * n_in]).unwrap();
    let mut enc = c.encoder();
    embedding(c, &mut enc, &split, &idb, &out, ids.len() as u32).unwrap();
    c.submit(enc);
    let got = read_on(c, &out, ids.len() * n_in);
    let mut row = vec![0.0f32; n_in];
    for (i, &id) in ids.iter().enumerate() {
        if (id as usize) < n_out {
            weights.dequantize_row(&t, id as usize, &mut row).unwrap();
        } else {
            row.fill(0.0);
        }
        assert_eq!(&got[i * n_in..(i + 1) * n_in], &row[..], "id {id}");
    }
}

/// A tiny Gemma 3 with a 3000-token vocabulary: its 375 KiB of embeddings span six 64 KiB
/// bindings, the block matrices fit one; prefill and decode on the capped device give the
/// logits of the ordinary device, and the CPU's top token.
#[test]
fn a_model_whose_embeddings_span_bindings_runs_the_forward_alike() {
    let shape = TinyShape { vocab: 3000, ..TINY_GEMMA3 };
    let model =
        Model::from_gguf(tiny_gemma3_gguf_of(0x5350_4c49_5400_0001, &shape), "big-vocab.gguf", &mut |_| {}).unwrap();
    let tokens: Vec<u32> = vec![3, 2999, 0, 1500, 7, 7, 2048];
    let steps = |c: &GpuContext| -> Vec<Vec<f32>> {
        let gpu = GpuModel::upload(c, &model, &mut |_| {}).unwrap();
        let mut cache = gpu.new_cache(c, 16).unwrap();
        let mut out = vec![block_on(gpu.step(c, &mut cache, &tokens[..5], &Capture::default())).unwrap().logits];
        for &t in &tokens[5..] {
            out.push(block_on(gpu.step(c, &mut cache, &[t], &Capture::default())).unwrap().logits);
        }
        out
    };
    let (whole, split) = (steps(ctx()), steps(small()));
    // Live re-quantization reads one binding: the split embeddings are refused by name (the
    // study then quantizes them on the CPU and uploads them, in parts).
    let mut gpu = GpuModel::upload(small(), &model, &mut |_| {}).unwrap();
    assert!(!gpu.can_requantize_on_gpu("token_embd.weight") && gpu.can_requantize_on_gpu("blk.0.attn_q.weight"));
    let mut enc = small().encoder();
    let err = gpu
        .requantize(small(), &mut enc, "token_embd.weight", &"int4-g32-sym".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("token_embd.weight") && err.contains("split over"), "{err}");
    for (i, (a, b)) in whole.iter().zip(&split).enumerate() {
        assert!(a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits()), "step {i}: split differs from whole");
    }
    let cpu = forward(&model, &tokens, ForwardOptions::default()).unwrap().logits;
    assert!(relative_l2(split.last().unwrap(), &cpu) <= 1e-4);
}
