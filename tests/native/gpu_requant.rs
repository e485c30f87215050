//! Re-quantization on the GPU (shaders/quantize.wgsl) against the CPU reference quantizers, for
//! every scheme the GPU takes, on random masters of awkward shapes (rows not a multiple of the
//! 32-value chunk, groups that end short) and on a real matrix of the default model (Q4_1 master,
//! decoded on the GPU); then a whole model re-quantized live on the GPU against the CPU.
//!
//! Tolerance: the GPU may place an element that lies on a rounding boundary on the other side
//! (its f32 division need not be correctly rounded; the Q4_1 master's decode may use an FMA). Such
//! an element must be within one level step of the CPU's value, and there may be at most
//! 1 in 10,000 of them (+1); every other element's value is bit-identical, except for StatsQ,
//! whose scale is a mean summed in f32 on the GPU and in f64 on the CPU, so its values may differ
//! by `STATSQ_SCALE_REL` relative.
use crate::gpu_common;

use gpu_common::*;
use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::gpu::kernels::embedding::embedding;
use quantscope::gpu::requant::{gpu_quantizable, quantize_on_gpu};
use quantscope::gpu::weights::GpuWeight;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::weights::Weights;
use quantscope::quant::apply::quantize_model;
use quantscope::quant::{quantize, Encoding, Recipe, Scheme};

/// StatsQ values: relative difference from the f32 vs f64 sum in its scale (rows ≤ 1536 values).
const STATSQ_SCALE_REL: f32 = 2e-6;

const GPU_SCHEMES: &[&str] = &[
    "int8-ch-sym",
    "int4-g128-asym",
    "int3-g64-asym",
    "int2-g32-sym",
    "int4-ch-asym",
    "nf4-g64",
    "nf4-g32",
    "fp8-e4m3-ch",
    "fp8-e5m2-g32",
    "fp6-e2m3-g32",
    "fp6-e3m2-ch",
    "fp4-e2m1-g32",
    "mxfp4",
    "mxfp6-e3m2",
    "mxfp8-e4m3",
    "pot4",
    "statsq2",
    "statsq3",
];

/// Every row of `w`, decoded on the GPU.
fn decode_all(w: &GpuWeight) -> Vec<f32> {
    let ids: Vec<u32> = (0..w.n_out).collect();
    let n = (w.n_out * w.n_in) as usize;
    let ids_buf = ctx().upload_u32("ids", &ids).unwrap();
    let out = poisoned("decoded", n);
    let mut enc = ctx().encoder();
    embedding(ctx(), &mut enc, w, &ids_buf, &out, w.n_out).unwrap();
    ctx().submit(enc);
    read(&out, n)
}

fn gpu_quantize(master: &GpuWeight, scheme: &Scheme) -> GpuWeight {
    let mut enc = ctx().encoder();
    let w = quantize_on_gpu(ctx(), &mut enc, master, scheme).unwrap();
    ctx().submit(enc);
    w
}

/// Compares the GPU's values with the CPU quantizer's on `data` (the master's values).
fn compare(what: &str, scheme: &Scheme, master: &GpuWeight, data: &[f32]) -> usize {
    let (rows, cols) = (master.n_out as usize, master.n_in as usize);
    let cpu = quantize(scheme, what, rows, cols, data).unwrap();
    let Encoding::Codebook(cb) = &cpu.encoding else { panic!("{what}: {scheme} is a codebook scheme") };
    let gpu = decode_all(&gpu_quantize(master, scheme));
    let mut boundary = 0;
    for r in 0..rows {
        for c in 0..cols {
            let (g, e) = (gpu[r * cols + c], cpu.values[r * cols + c]);
            // StatsQ's scale is a mean: the GPU sums in f32, the CPU in f64, so the scales (and so
            // every value) may differ by the f32 sum's rounding error.
            let statsq = matches!(scheme.kind, quantscope::quant::SchemeKind::StatsQ { .. });
            if g.to_bits() == e.to_bits() || (statsq && (g - e).abs() <= STATSQ_SCALE_REL * e.abs()) {
                continue;
            }
            // One level step at this element: the largest gap between neighbouring levels of its
            // table, times its scale.
            let t = cb.table_sharing.index(cols, r, c) * cb.levels_per_table;
            let table = &cb.levels[t..t + cb.levels_per_table];
            let gap = table.windows(2).map(|p| (p[1] - p[0]).abs()).fold(0.0f32, f32::max);
            let step = gap * cb.scales[cb.scale_sharing.index(cols, r, c)].abs();
            assert!((g - e).abs() <= step * 1.001, "{what} {scheme}: ({r}, {c}) gpu {g:e} cpu {e:e}, step {step:e}");
            boundary += 1;
        }
    }
    assert!(boundary <= rows * cols / 10_000 + 1, "{what} {scheme}: {boundary} of {} elements differ", rows * cols);
    boundary
}

#[test]
fn every_gpu_scheme_matches_the_cpu_on_random_f32_masters() {
    let mut rng = Rng(0x5EED);
    for name in GPU_SCHEMES {
        let scheme: Scheme = name.parse().unwrap();
        assert!(gpu_quantizable(&scheme), "{name}");
        for (rows, cols) in [(7, 200), (67, 100), (3, 576)] {
            // Rows of different magnitudes, one with an outlier, one all zeros.
            let mut data: Vec<f32> =
                (0..rows * cols).map(|i| rng.uniform(-1.0, 1.0) * 0.1f32.powi((i / cols % 3) as i32)).collect();
            data[cols + 5] = 40.0;
            data[2 * cols..3 * cols].fill(0.0);
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let (weights, t) = Weights::single("random", "w", GgmlType::F32, rows, cols, bytes).unwrap();
            let master = GpuWeight::upload(ctx(), &weights, &t).unwrap();
            compare(&format!("random {rows}×{cols}"), &scheme, &master, &data);
        }
    }
}

#[test]
fn a_real_q4_1_matrix_requantizes_like_the_cpu() {
    let model = default_model();
    let name = "blk.2.ffn_gate.weight";
    let t = model.tensor(name).unwrap();
    let master = GpuWeight::upload(ctx(), &model.weights, t).unwrap();
    let data = model.weights.dequantize(t).unwrap();
    let mut total = 0;
    for scheme in GPU_SCHEMES {
        total += compare(name, &scheme.parse().unwrap(), &master, &data);
    }
    println!("{total} boundary elements over {} schemes", GPU_SCHEMES.len());
}

#[test]
fn a_whole_model_requantized_live_on_the_gpu_predicts_like_the_cpu_quantized_model() {
    let model = default_model();
    let tokens = model.tokenizer.encode("The capital of France is").unwrap();
    let mut gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let scheme: Scheme = "nf4-g64".parse().unwrap();
    let started = std::time::Instant::now();
    let mut enc = ctx().encoder();
    for name in gpu.matrix_names() {
        gpu.requantize(ctx(), &mut enc, &name, &scheme).unwrap();
    }
    ctx().submit(enc);
    ctx().wait_idle().unwrap();
    println!("re-quantized the model on the GPU in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    let run = |gpu: &GpuModel| {
        let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
        pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &Capture::default())).unwrap().logits
    };
    let cpu = forward(
        &quantize_model(model, &Recipe::uniform(scheme), &mut |_| {}).unwrap().model,
        &tokens,
        ForwardOptions::default(),
    )
    .unwrap()
    .logits;
    let err = relative_l2(&run(&gpu), &cpu);
    // Boundary elements (see the module docs) move a few logits slightly; 1e-3 is still 30× below
    // the difference nf4 makes to the model (checked next).
    assert!(err <= 1e-3, "relative L2 {err:.2e}");
    let loaded = forward(model, &tokens, ForwardOptions::default()).unwrap().logits;
    assert!(relative_l2(&loaded, &cpu) > 3e-2);

    // Restoring every matrix gives the model as loaded back.
    for name in gpu.matrix_names() {
        assert!(gpu.restore_matrix(&name), "{name}");
    }
    let err = relative_l2(&run(&gpu), &loaded);
    assert!(err <= 1e-4, "restored: relative L2 {err:.2e}");
}
