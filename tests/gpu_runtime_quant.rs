//! Runtime quantization on the GPU (`shaders/runtime_quant.wgsl`, the probability quantizers of
//! `shaders/attention.wgsl`) against the CPU references: activations
//! (`quant::activation::fake_quantize`), the KV cache's new keys and values, attention
//! probabilities; and the whole forward with runtime quantization against the CPU forward with the
//! same quantization as a hook.
//!
//! Bounds: activations and KV are compared bit for bit (lavapipe divides correctly rounded, and
//! every other step is exact); attention outputs within 1e-5 relative L2 (f32 sums in different
//! orders, as tests/gpu_attention.rs); AdaLog codes may differ where −log2(p)·r/q lies within
//! f32 rounding of a half-integer: at most 1 in 10^3 codes here (measured: see the printout); the
//! logits within 1e-3 relative L2 of the CPU's, while the quantization moves them by ≥ 1e-3.
// Native only (files, processes, blocking GPU calls); the browser suite is tests/web.rs.
#![cfg(not(target_arch = "wasm32"))]

mod common;
mod gpu_common;

use gpu_common::*;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::gpu::kernels::attention::{attention_quantized, AttentionShape};
use quantscope::gpu::kernels::runtime_quant::{
    adalog_table, fake_quantize_activation, fake_quantize_kv, GpuKvScheme, GpuProbQuant, GpuRuntimeQuant, ADALOG_R,
    KV_SCALE_FLOOR,
};
use quantscope::quant::activation::forward::{ActivationQuantizer, ActivationSchemes};
use quantscope::quant::activation::{fake_quantize, ActScheme};
use quantscope::quant::minifloat::Codec;
use quantscope::quant::{quantize, Granularity, MiniFloat, Scheme, SchemeKind};
use quantscope::model::reference::{forward, forward_with, ForwardOptions};

/// Gaussian-ish values (sum of uniforms) with outliers: every 53rd value ×40, one row ×0.001 (so
/// per-tensor and per-token scales differ), one channel ×25 (so per-channel scales matter), one
/// exact zero and one all-zero block of 32.
fn activations(rng: &mut Rng, rows: usize, k: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..rows * k)
        .map(|i| {
            let g: f32 = (0..4).map(|_| rng.uniform(-1.0, 1.0)).sum();
            g * if i % 53 == 7 { 40.0 } else { 1.0 }
        })
        .collect();
    for r in 0..rows {
        x[r * k + k / 2] *= 25.0;
    }
    if rows >= 4 {
        for v in &mut x[k..2 * k] {
            *v *= 0.001;
        }
        x[2 * k + 1] = 0.0;
        if k >= 64 {
            x[3 * k + 32..3 * k + 64].fill(0.0);
        }
    }
    x
}

fn gpu_run(x: &[f32], record: impl FnOnce(&mut wgpu::CommandEncoder, &wgpu::Buffer)) -> Vec<f32> {
    let buffer = ctx().upload_f32("x", x).unwrap();
    let mut enc = ctx().encoder();
    record(&mut enc, &buffer);
    ctx().submit(enc);
    read(&buffer, x.len())
}

/// Indices where the two differ in any bit, and the first few for the message.
fn bit_mismatches(gpu: &[f32], cpu: &[f32]) -> (usize, String) {
    let bad: Vec<usize> = (0..cpu.len()).filter(|&i| gpu[i].to_bits() != cpu[i].to_bits()).collect();
    let first: Vec<String> = bad.iter().take(5).map(|&i| format!("[{i}] gpu {} cpu {}", gpu[i], cpu[i])).collect();
    (bad.len(), first.join(", "))
}

#[test]
fn activation_fake_quant_is_bit_exact_with_the_cpu() {
    let mut rng = Rng(0xAC7);
    let schemes = [
        "int8-tensor",
        "int8-token",
        "int8-channel",
        "int6-token",
        "int4-tensor",
        "int4-token",
        "int4-channel",
        "int2-token",
        "fp8-e4m3-tensor",
        "fp8-e4m3-token",
        "fp8-e4m3-channel",
        "fp8-e5m2-tensor",
        "fp8-e5m2-token",
        "fp8-e5m2-channel",
        "mxfp4",
        "nvfp4",
    ];
    for (rows, k) in [(7usize, 100usize), (7, 576), (5, 1536), (1, 576), (130, 64)] {
        let x = activations(&mut rng, rows, k);
        for name in schemes {
            let scheme: ActScheme = name.parse().unwrap();
            let mut cpu = x.clone();
            fake_quantize(&scheme, &mut cpu, rows, k).unwrap();
            let gpu = gpu_run(&x, |enc, buf| {
                fake_quantize_activation(ctx(), enc, &scheme, buf, rows as u32, k as u32).unwrap()
            });
            let (bad, first) = bit_mismatches(&gpu, &cpu);
            assert_eq!(bad, 0, "{name} {rows}×{k}: {bad} of {} differ: {first}", x.len());
            assert_ne!(gpu, x, "{name} {rows}×{k} changed nothing");
        }
    }
}

#[test]
fn clipping_is_refused_with_a_typed_error_and_shapes_are_checked() {
    let scheme: ActScheme = "int8-token-clip99.9".parse().unwrap();
    let buf = ctx().storage("x", 4 * 64).unwrap();
    let e = fake_quantize_activation(ctx(), &mut ctx().encoder(), &scheme, &buf, 1, 64).unwrap_err();
    assert!(e.to_string().contains("clip"), "{e}");
    let schemes = ActivationSchemes { default: "int8-token".parse().unwrap(), down: Some(scheme) };
    assert!(GpuRuntimeQuant::new(Some(schemes), None, None).is_err());
    let int8: ActScheme = "int8-token".parse().unwrap();
    let e = fake_quantize_activation(ctx(), &mut ctx().encoder(), &int8, &buf, 2, 64).unwrap_err();
    assert!(e.to_string().contains("needs 128"), "{e}");
    let kv = GpuKvScheme::parse("int8").unwrap();
    assert!(fake_quantize_kv(ctx(), &mut ctx().encoder(), &kv, &buf, 1, 64, 48).is_err());
}

/// The KV cache's reference (quant::kv's semantics): per token per group, symmetric RTN; with
/// E4M3 scales the group scale is RNE'd to E4M3 and floored at 2^−9; FP8 per token per head.
fn cpu_kv(scheme: &GpuKvScheme, x: &[f32], tokens: usize, width: usize, head_dim: usize) -> Vec<f32> {
    match *scheme {
        GpuKvScheme::Int { bits, group, fp8_scales: false } => {
            let g = group.map_or(head_dim, |g| g as usize);
            let kind = SchemeKind::Int { bits, granularity: Granularity::Group(g), symmetric: true };
            quantize(&Scheme::new(kind), "kv", tokens, width, x).unwrap().values
        }
        GpuKvScheme::Int { bits, group, fp8_scales: true } => {
            let g = group.map_or(head_dim, |g| g as usize);
            let qmax = ((1 << (bits - 1)) - 1) as f32;
            let e4m3 = Codec::element(MiniFloat::E4M3);
            let mut out = x.to_vec();
            for row in out.chunks_mut(width) {
                for group in row.chunks_mut(g) {
                    let amax = group.iter().fold(0f32, |m, v| m.max(v.abs()));
                    if amax == 0.0 {
                        continue;
                    }
                    let s = e4m3.round(amax / qmax).max(KV_SCALE_FLOOR);
                    for v in group.iter_mut() {
                        *v = ((*v / s).round_ties_even().clamp(-qmax - 1.0, qmax) as i32) as f32 * s;
                    }
                }
            }
            out
        }
        GpuKvScheme::Fp8 { format } => {
            let kind = SchemeKind::Fp { format, granularity: Granularity::Group(head_dim) };
            quantize(&Scheme::new(kind), "kv", tokens, width, x).unwrap().values
        }
    }
}

#[test]
fn kv_fake_quant_is_bit_exact_with_the_cpu() {
    let mut rng = Rng(0x4B56);
    for (tokens, heads, head_dim) in [(7usize, 3usize, 64usize), (1, 3, 64), (9, 2, 48)] {
        let width = heads * head_dim;
        let mut x = activations(&mut rng, tokens, width);
        // One group of tiny values: its E4M3 scale is the 2^−9 floor.
        for v in &mut x[width..width + head_dim] {
            *v *= 1e-4;
        }
        for name in ["int8", "int4", "int4-e4m3", "int8-e4m3", "int4-g32", "int4-g128-e4m3", "fp8-e4m3", "fp8-e5m2"] {
            let scheme = GpuKvScheme::parse(name).unwrap();
            let cpu = cpu_kv(&scheme, &x, tokens, width, head_dim);
            let gpu = gpu_run(&x, |enc, buf| {
                fake_quantize_kv(ctx(), enc, &scheme, buf, tokens as u32, width as u32, head_dim as u32).unwrap()
            });
            let (bad, first) = bit_mismatches(&gpu, &cpu);
            assert_eq!(bad, 0, "{name} {tokens}×{width}: {bad} differ: {first}");
            assert_ne!(gpu, x, "{name} changed nothing");
        }
    }
}

/// One row of probabilities quantized as `quant::attention_probs::ProbQuantizer::quantize_row`.
fn cpu_quantize_row(kind: &str, bits: u8, q: f64, row: &mut [f32]) {
    let row_max = row.iter().fold(0f32, |m, &v| m.max(v));
    match kind {
        "uniform" => {
            let levels = ((1u32 << bits) - 1) as f32;
            for p in row.iter_mut() {
                *p = (*p * levels).round_ties_even() / levels;
            }
        }
        "adalog" => {
            let table = adalog_table(bits, q);
            for p in row.iter_mut() {
                let u = (*p as f64).clamp(1e-15, 1.0);
                let k = (-u.log2() * ADALOG_R / q).round_ties_even();
                *p = if k >= table.len() as f64 { 0.0 } else { table[k as usize] };
            }
        }
        _ => {
            for p in row.iter_mut() {
                *p = if *p >= 0.25 * row_max { 1.0 } else { 0.0 };
            }
        }
    }
}

#[test]
fn quantized_attention_probabilities_match_the_cpu() {
    let mut rng = Rng(0xA77);
    let s = AttentionShape { n_heads: 4, n_kv_heads: 2, head_dim: 64 };
    let (n, past) = (37usize, 90usize);
    let keys = past + n;
    let q: Vec<f32> = rng.vec(n * 4 * 64, -1.5, 1.5);
    let k: Vec<f32> = rng.vec(keys * 2 * 64, -1.5, 1.5);
    let v: Vec<f32> = rng.vec(keys * 2 * 64, -1.0, 1.0);
    let (_, plain_probs) = cpu_attention(s, n, past, &q, &k, &v);
    // AdaLog's range of −log2 p is 2^b·q/r: q ≈ 60 (3 bits) and 37 (4 bits) reach p ≈ 2^−13 and 2^−16.
    let layers_q = [60.0f32, 37.0];
    for (kind, bits, layer) in [("uniform", 4u8, 0usize), ("uniform", 8, 0), ("adalog", 3, 0), ("adalog", 4, 1), ("sab", 1, 0)] {
        let quant = match kind {
            "uniform" => GpuProbQuant::uniform(bits).unwrap(),
            "adalog" => GpuProbQuant::adalog(ctx(), bits, &layers_q).unwrap(),
            _ => GpuProbQuant::sab(),
        };
        // CPU: the plain probabilities, each row quantized, then P̂·V.
        let mut want_probs = plain_probs.clone();
        let mut want_out = vec![0f32; n * 4 * 64];
        for h in 0..4 {
            for i in 0..n {
                let row = &mut want_probs[(h * n + i) * keys..][..past + i + 1];
                cpu_quantize_row(kind, bits, layers_q[layer] as f64, row);
                for (j, &p) in row.iter().enumerate() {
                    for d in 0..64 {
                        want_out[i * 256 + h * 64 + d] += p * v[j * 128 + (h / 2) * 64 + d];
                    }
                }
            }
        }
        let (qb, kb, vb) =
            (ctx().upload_f32("q", &q).unwrap(), ctx().upload_f32("k", &k).unwrap(), ctx().upload_f32("v", &v).unwrap());
        let out = poisoned("out", n * 256);
        let probs = poisoned("probs", 4 * n * keys);
        let mut enc = ctx().encoder();
        let pq = Some((&quant, layer));
        attention_quantized(ctx(), &mut enc, s, &qb, &kb, &vb, &out, n as u32, past as u32, Some(&probs), false, pq)
            .unwrap();
        ctx().submit(enc);
        let (out, probs) = (read(&out, n * 256), read(&probs, 4 * n * keys));
        let differ = probs.iter().zip(&want_probs).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        let visible = 4 * (n * past + n * (n + 1) / 2);
        println!("{kind}{bits}: {differ} of {visible} probabilities differ from the CPU's");
        // Probabilities differ in their last bits between the two softmaxes, so a code flips
        // where the unquantized value lies that close to a rounding boundary.
        assert!(differ * 1000 <= visible, "{kind}{bits}: {differ} of {visible} codes differ");
        let err = relative_l2(&out, &want_out);
        let effect = relative_l2(&want_probs, &plain_probs);
        assert!(err <= 2e-3, "{kind}{bits}: output relative L2 {err:.2e}");
        assert!(effect > 1e-3, "{kind}{bits} changed nothing ({effect:.2e})");
        // Masked keys stay 0.
        assert_eq!(probs[keys - 1], 0.0, "{kind}: query 0 of head 0 sees a future key");
    }
}

#[test]
fn forward_with_quantized_activations_matches_the_cpu_hook() {
    let model = default_model();
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let tokens = model.tokenizer.encode("The capital of France is Paris, and the capital of Italy is").unwrap();
    let plain = forward(model, &tokens, ForwardOptions::default()).unwrap().logits;
    for (default, down) in [("int8-token", None), ("int8-tensor", None), ("int4-token", Some("int8-token")), ("nvfp4", None)] {
        let schemes = ActivationSchemes { default: default.parse().unwrap(), down: down.map(|d| d.parse().unwrap()) };
        let mut hook = ActivationQuantizer::new(schemes);
        let cpu = forward_with(model, &tokens, ForwardOptions::default(), &mut hook).unwrap().logits;
        assert!(hook.take_error().is_none());
        let runtime = GpuRuntimeQuant::new(Some(schemes), None, None).unwrap();
        let capture = Capture { runtime: Some(runtime.into()), ..Default::default() };
        let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
        let got = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap().logits;
        let (err, effect) = (relative_l2(&got, &cpu), relative_l2(&cpu, &plain));
        println!("{default}/{down:?}: GPU vs CPU {err:.2e}, effect on the logits {effect:.2e}, gpu vs plain {:.2e}", relative_l2(&got, &plain));
        assert!(err <= 1e-3, "{default}: relative L2 {err:.2e}");
        assert!(effect > 1e-3, "{default} changed nothing ({effect:.2e})");
        // The reference run ignores it.
        let reference = Capture { weights_as_loaded: true, ..capture };
        let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
        let as_loaded = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &reference)).unwrap().logits;
        assert!(relative_l2(&as_loaded, &plain) <= 1e-4);
    }
}

fn truncated(layers: usize) -> quantscope::model::Model {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut m = quantscope::model::Model::from_gguf(std::fs::read(&path).unwrap(), "m", &mut |_| {}).unwrap();
    m.config.n_layers = layers;
    m
}

#[test]
fn debug_one() {
    let model = &truncated(1);
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let tokens = model.tokenizer.encode("The capital of France is Paris, and the capital of Italy is").unwrap();
    for (a, b) in [("int8-token", "int8-tensor"), ("int8-tensor", "int8-token"), ("int8-tensor", "int8-tensor")] {
    let schemes = ActivationSchemes { default: a.parse().unwrap(), down: Some(b.parse().unwrap()) };
    struct Only(ActivationQuantizer, String);
    impl quantscope::model::reference::ForwardHook for Only {
        fn before_linear(&mut self, l: usize, input: quantscope::model::reference::LinearInput, x: &mut [f32], k: usize) {
            if self.1.is_empty() || self.1.contains(&format!("{input:?}")) { self.0.before_linear(l, input, x, k) }
        }
    }
    let mut hook = Only(ActivationQuantizer::new(schemes), std::env::var("QS_DEBUG").unwrap_or_default());
    let opts = ForwardOptions { hidden_states: true, ..Default::default() };
    let cpu = forward_with(model, &tokens, opts, &mut hook).unwrap();
    let plain = forward(model, &tokens, opts).unwrap();
    let runtime = GpuRuntimeQuant::new(Some(schemes), None, None).unwrap();
    let capture = Capture { runtime: Some(runtime.into()), hidden_states: true, ..Default::default() };
    let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
    let got = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap();
    println!("{a}/{b}: {:.2e} {:.2e}", relative_l2(&got.hidden_states[1], &cpu.hidden_states[1]), relative_l2(&plain.hidden_states[1], &cpu.hidden_states[1]));
    }
}

#[test]
fn debug_two() {
    use quantscope::gpu::forward::ProbePoint;
    let model = &truncated(1);
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let tokens = model.tokenizer.encode("The capital of France is Paris, and the capital of Italy is").unwrap();
    for point in [ProbePoint::AttnInput, ProbePoint::OInput, ProbePoint::MlpInput] {
        let capture = Capture { tensor: Some((0, point)), ..Default::default() };
        let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
        let (x, k) = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap().tensor.unwrap();
        let rows = x.len() / k;
        let scheme: ActScheme = "int8-tensor".parse().unwrap();
        let mut cpu = x.clone();
        fake_quantize(&scheme, &mut cpu, rows, k).unwrap();
        let g = gpu_run(&x, |enc, buf| fake_quantize_activation(ctx(), enc, &scheme, buf, rows as u32, k as u32).unwrap());
        let (bad, first) = bit_mismatches(&g, &cpu);
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let nonfinite = x.iter().filter(|v| !v.is_finite()).count();
        println!("{point:?} {rows}x{k}: amax {amax} nonfinite {nonfinite} {bad} differ {first}");
    }
}

#[test]
fn debug_hidden() {
    let model = default_model();
    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let tokens = model.tokenizer.encode("The capital of France is Paris, and the capital of Italy is").unwrap();
    for name in ["int8-token", "int8-tensor", "fp8-e4m3-token", "nvfp4"] {
    let schemes = ActivationSchemes { default: name.parse().unwrap(), down: None };
    let mut hook = ActivationQuantizer::new(schemes);
    let opts = ForwardOptions { hidden_states: true, ..Default::default() };
    let cpu = forward_with(model, &tokens, opts, &mut hook).unwrap();
    let plain = forward(model, &tokens, opts).unwrap();
    let runtime = GpuRuntimeQuant::new(Some(schemes), None, None).unwrap();
    let capture = Capture { runtime: Some(runtime.into()), hidden_states: true, ..Default::default() };
    let mut cache = gpu.new_cache(ctx(), tokens.len() as u32).unwrap();
    let got = pollster::block_on(gpu.step(ctx(), &mut cache, &tokens, &capture)).unwrap();
    let v: Vec<String> = (0..31).map(|l| format!("{l}:{:.1e}/{:.1e}", relative_l2(&got.hidden_states[l], &cpu.hidden_states[l]), relative_l2(&cpu.hidden_states[l], &plain.hidden_states[l]))).collect();
    println!("{name}: {}", v.join(" "));
    }
}

#[test]
fn debug_real() {
    let model = default_model();
    let tokens = model.tokenizer.encode("The capital of France is Paris, and the capital of Italy is").unwrap();
    let opts = ForwardOptions { hidden_states: true, ..Default::default() };
    let plain = forward(model, &tokens, opts).unwrap();
    for name in ["int8-tensor", "int8-token", "int8-channel"] {
        let scheme: ActScheme = name.parse().unwrap();
        for l in [0usize, 1, 5, 20] {
            let x = plain.hidden_states[l].clone();
            let (rows, k) = (tokens.len(), 576);
            let mut cpu = x.clone();
            fake_quantize(&scheme, &mut cpu, rows, k).unwrap();
            let gpu = gpu_run(&x, |enc, buf| fake_quantize_activation(ctx(), enc, &scheme, buf, rows as u32, k as u32).unwrap());
            let (bad, first) = bit_mismatches(&gpu, &cpu);
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            println!("{name} layer {l}: amax {amax} {bad} differ {first}");
        }
    }
}
