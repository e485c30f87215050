//! The GPU engine in a real browser: headless Chromium, WebGPU on SwiftShader (Chromium's CPU
//! implementation of Vulkan), through wasm-bindgen-test.
//!
//! The native tests (tests/gpu_*.rs) check the same kernels on lavapipe through wgpu's own WGSL
//! compiler (naga → SPIR-V). Here the WGSL goes through Chromium's Tint and Dawn instead, the
//! path the playground page takes, with the browser's limits (256 invocations per workgroup, no
//! shader-f16) and asynchronous readback (no blocking: every test is async).
//!
//! Run:  scripts/test-browser
//!   or  CHROMEDRIVER=/usr/bin/chromedriver cargo test --target wasm32-unknown-unknown --test web
//!   or  wasm-pack test --headless --chrome --chromedriver /usr/bin/chromedriver --test web
//! (.cargo/config.toml makes wasm-bindgen-test-runner the runner; webdriver.json next to
//! Cargo.toml gives Chromium its flags.) Natively this file compiles to nothing.
//!
//! Tolerances are the native tests' (each is explained there and restated briefly here): they
//! hold on SwiftShader too, and loosening them for the browser would hide a Tint/Dawn difference.
#![cfg(target_arch = "wasm32")]

mod web_support;

use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::gpu::kernels::attention::{attention, AttentionIo, AttentionShape};
use quantscope::gpu::kernels::matmul::matmul;
use quantscope::gpu::kernels::{elementwise, norm, rope, topk};
use quantscope::gpu::weights::GpuWeight;
use quantscope::gpu::GpuContext;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::{Model, RopeLayout};
use wasm_bindgen_test::*;
use web_support::hf_shards::shard_like_hugging_face;
use web_support::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Fails unless the page is Chromium with a WebGPU adapter, and logs what the adapter is.
#[wasm_bindgen_test]
async fn adapter_is_chromium_webgpu() {
    let ua = user_agent();
    let ctx = ctx().await;
    let s = &ctx.summary;
    console_log!("user agent: {ua}");
    console_log!(
        "adapter: name {:?}, backend {}, type {}, driver {:?}, features {:?}, maxComputeInvocationsPerWorkgroup {}, \
         maxStorageBufferBindingSize {}, maxBufferSize {}",
        s.name,
        s.backend,
        s.device_type,
        s.driver,
        s.features,
        s.max_compute_invocations_per_workgroup,
        s.max_storage_buffer_binding_size,
        s.max_buffer_size
    );
    // wgpu leaves AdapterInfo empty on the web: ask the browser itself.
    let info = browser_adapter_info().await;
    console_log!("navigator.gpu adapter info: {info}");
    assert!(ua.contains("Chrome"), "not Chromium: user agent {ua:?}");
    assert!(!info.is_empty(), "navigator.gpu.requestAdapter() gave no adapter");
    assert_eq!(s.backend, "BrowserWebGpu", "wgpu is not on the browser's WebGPU");
}

// ---------------------------------------------------------------------------------------------
// Matmul: GEMV (one token) and GEMM (several) over weights in their stored formats.

// Per element |gpu − cpu| ≤ 1e-5 · Σ|w·x| (f32 accumulation in another order than the f64
// reference); per token relative L2 ≤ 1e-5 where the output has ≥ 64 elements: the native
// bounds, checked by kernel_reference's check_matmul_output.

async fn check_matmul(dtype: GgmlType, n_ins: [usize; 2], seed: u64) {
    let ctx = ctx().await;
    let start = now_ms();
    let mut rng = Rng(seed);
    let mut worst = 0.0f64;
    // 1 and 7 rows: less than a GEMV workgroup (8 rows); 67 and 300: ragged GEMM tiles (64 rows).
    for (i, &n_out) in [1usize, 7, 67, 300].iter().enumerate() {
        let n_in = n_ins[i % 2];
        let (weights, t) = random_weights(&mut rng, dtype, n_in, n_out);
        let w = GpuWeight::upload(ctx, &weights, &t).unwrap();
        // 1 token: GEMV; 2, 5, 17: GEMM with partial 8-token tiles.
        for n_tokens in [1usize, 2, 5, 17] {
            let what = format!("{} n_in={n_in} n_out={n_out} n_tokens={n_tokens}", dtype.name());
            let x = rng.vec(n_tokens * n_in, -1.0, 1.0);
            let xb = ctx.upload_f32("x", &x).unwrap();
            let tail = 3;
            let yb = poisoned(ctx, "y", n_tokens * n_out + tail);
            let mut enc = ctx.encoder();
            matmul(ctx, &mut enc, &w, &xb, &yb, n_tokens as u32).unwrap();
            ctx.submit(enc);
            let got = read(ctx, &yb, n_tokens * n_out + tail).await;
            worst = worst.max(check_matmul_output(&what, &weights, &t, &x, n_tokens, &got));
        }
    }
    console_log!("matmul {}: worst relative L2 {worst:.2e} ({:.0} ms)", dtype.name(), now_ms() - start);
}

#[wasm_bindgen_test]
async fn matmul_f32_matches_cpu() {
    // 40 and 5 are not multiples of 32: rows are zero-padded on upload.
    check_matmul(GgmlType::F32, [160, 40], 1).await;
    check_matmul(GgmlType::F32, [5, 576], 2).await;
}

/// BF16, how Hugging Face checkpoints store weights: widened to f32 in the kernel, through Tint.
#[wasm_bindgen_test]
async fn matmul_bf16_matches_cpu() {
    check_matmul(GgmlType::BF16, [5, 576], 10).await;
}

#[wasm_bindgen_test]
async fn matmul_q8_0_matches_cpu() {
    check_matmul(GgmlType::Q8_0, [160, 576], 5).await;
}

#[wasm_bindgen_test]
async fn matmul_q4_1_matches_cpu() {
    check_matmul(GgmlType::Q4_1, [160, 576], 7).await;
}

/// Q5_0 and Q5_1 (Gemma 3 270M's block matrices, whose 640-wide rows rule out K-quants).
#[wasm_bindgen_test]
async fn matmul_q5_0_and_q5_1_match_cpu() {
    check_matmul(GgmlType::Q5_0, [640, 96], 8).await;
    check_matmul(GgmlType::Q5_1, [160, 576], 9).await;
}

// ---------------------------------------------------------------------------------------------
// RMS norm and RoPE.

#[wasm_bindgen_test]
async fn rms_norm_matches_cpu() {
    let ctx = ctx().await;
    let mut rng = Rng(21);
    for d in [576usize, 100, 7, 2048] {
        for n in [1usize, 5, 33] {
            let x = rng.vec(n * d, -3.0, 3.0);
            let gain = rng.vec(d, 0.2, 2.0);
            let eps = 1e-5;
            let (xb, gb) = (ctx.upload_f32("x", &x).unwrap(), ctx.upload_f32("gain", &gain).unwrap());
            let out = poisoned(ctx, "out", n * d);
            let mut enc = ctx.encoder();
            norm::rms_norm(ctx, &mut enc, &xb, &gb, &out, n as u32, d as u32, eps).unwrap();
            ctx.submit(enc);
            // Another summation order and GPU sqrt/division within a few ulp: 2e-6 relative.
            let got = read(ctx, &out, n * d).await;
            assert_close(&format!("rms_norm d={d} n={n}"), &got, &cpu_rms_norm(&x, &gain, eps), 1e-6, 2e-6);
        }
    }
}

/// The kernel reduces the angle exactly mod one turn, then sin/cos add a few ulp: with |x| ≤ 4,
/// 2e-5 absolute leaves margin yet is ~50× below a plain f32 angle at position 30 000.
const ROPE_ABS: f32 = 2e-5;

#[wasm_bindgen_test]
async fn rope_matches_cpu() {
    let ctx = ctx().await;
    let mut rng = Rng(22);
    for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
        for (n_heads, hd) in [(9usize, 64usize), (3, 128), (4, 8)] {
            for n in [1usize, 33] {
                for offset in [0usize, 40, 30_000, 1_000_000] {
                    let x = rng.vec(n * n_heads * hd, -4.0, 4.0);
                    let buf = ctx.upload_f32("x", &x).unwrap();
                    let mut enc = ctx.encoder();
                    let (base, pos) = (10_000.0, offset as u32);
                    rope::rope(ctx, &mut enc, &buf, n as u32, n_heads as u32, hd as u32, pos, base, layout).unwrap();
                    ctx.submit(enc);
                    let mut want = x.clone();
                    cpu_rope(&mut want, n_heads, hd, offset, base, layout);
                    let what = format!("rope {layout:?} heads={n_heads} hd={hd} n={n} offset={offset}");
                    assert_close(&what, &read(ctx, &buf, x.len()).await, &want, ROPE_ABS, 0.0);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Attention.

/// Online softmax in another order with the GPU's exp: a few ulp of the largest terms (lavapipe
/// ≤ 1.1e-6 on |v| ≤ 2); a wrong mask or a lost chunk is off by ~1e-2.
const ATTN_ABS: f32 = 5e-6;
const ATTN_REL: f32 = 1e-5;
const ATTN_L2: f64 = 2e-6;
/// Cache rows past the valid ones, filled with NaN: reading past the causal window poisons.
const SPARE_ROWS: usize = 7;

#[wasm_bindgen_test]
async fn attention_prefill_and_cached_queries_match_cpu() {
    let ctx = ctx().await;
    let mut rng = Rng(31);
    let shapes = [
        AttentionShape { n_heads: 9, n_kv_heads: 3, head_dim: 64 },
        AttentionShape { n_heads: 4, n_kv_heads: 4, head_dim: 8 },
        AttentionShape { n_heads: 2, n_kv_heads: 1, head_dim: 128 },
    ];
    // Prefill of 33 tokens (a partial 64-key chunk), 5 queries after 40 cached keys, a decode
    // step after 100 (two chunks, the running max moves).
    for s in shapes {
        for (n, past) in [(33usize, 0usize), (5, 40), (1, 100)] {
            let (nh, nkv, hd) = (s.n_heads as usize, s.n_kv_heads as usize, s.head_dim as usize);
            let (q_dim, kv_dim, rows) = (nh * hd, nkv * hd, past + n);
            let q = rng.vec(n * q_dim, -1.5, 1.5);
            let mut k = rng.vec(rows * kv_dim, -1.0, 1.0);
            let mut v = rng.vec(rows * kv_dim, -2.0, 2.0);
            let (want_out, want_probs) = cpu_attention(s, n, past, &q, &k, &v);
            k.resize((rows + SPARE_ROWS) * kv_dim, f32::NAN);
            v.resize((rows + SPARE_ROWS) * kv_dim, f32::NAN);
            let (qb, kb, vb) =
                (ctx.upload_f32("q", &q).unwrap(), ctx.upload_f32("k", &k).unwrap(), ctx.upload_f32("v", &v).unwrap());
            let out = poisoned(ctx, "out", n * q_dim);
            let probs = poisoned(ctx, "probs", nh * n * rows);
            let mut enc = ctx.encoder();
            let io =
                AttentionIo { q: &qb, k_cache: &kb, v_cache: &vb, out: &out, n_tokens: n as u32, past: past as u32 };
            attention(ctx, &mut enc, s, io, Some(&probs)).unwrap();
            ctx.submit(enc);
            let what = format!("{s:?} n={n} past={past}");
            let got = read(ctx, &out, n * q_dim).await;
            assert_close(&format!("out {what}"), &got, &want_out, ATTN_ABS, ATTN_REL);
            let l2 = relative_l2(&got, &want_out);
            assert!(l2 < ATTN_L2, "out {what}: relative L2 {l2:e}");
            let got_probs = read(ctx, &probs, nh * n * rows).await;
            assert_close(&format!("probs {what}"), &got_probs, &want_probs, ATTN_ABS, ATTN_REL);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Top-k and elementwise.

#[wasm_bindgen_test]
async fn top_k_matches_a_cpu_sort() {
    let ctx = ctx().await;
    let mut rng = Rng(41);
    // 1000: one workgroup; 4097 and 49 152 (SmolLM2's vocabulary): two stages.
    for n in [1000usize, 4097, 49_152] {
        // Ties planted among the largest values, straddling workgroup segments.
        let x = logits_with_ties(&mut rng, n);
        for k in [1usize, 10, 64] {
            let logits = ctx.upload_f32("logits", &x).unwrap();
            let ids = ctx.upload_u32("ids", &vec![0xDEAD_BEEF; k]).unwrap();
            let values = poisoned(ctx, "values", k);
            let mut enc = ctx.encoder();
            topk::top_k(ctx, &mut enc, &logits, n as u32, k as u32, &ids, &values).unwrap();
            ctx.submit(enc);
            let want = cpu_top_k(&x, k);
            assert_eq!(ctx.read_u32(&ids, k, "ids").await.unwrap(), want, "n={n} k={k}: ids");
            // Values are copied, not computed: exact.
            let want_values: Vec<f32> = want.iter().map(|&i| x[i as usize]).collect();
            assert_eq!(read(ctx, &values, k).await, want_values, "n={n} k={k}: values");
        }
    }
}

#[wasm_bindgen_test]
async fn elementwise_matches_cpu() {
    let ctx = ctx().await;
    let mut rng = Rng(11);
    // Around the workgroup size (256) and several workgroups.
    for n in [1usize, 7, 255, 256, 257, 70_001] {
        let (a, b) = (rng.vec(n, -4.0, 4.0), rng.vec(n, -4.0, 4.0));
        let (acc, delta) = (ctx.upload_f32("a", &a).unwrap(), ctx.upload_f32("b", &b).unwrap());
        let mut enc = ctx.encoder();
        elementwise::add_in_place(ctx, &mut enc, &acc, &delta, n as u32).unwrap();
        ctx.submit(enc);
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        // One f32 add: rounds exactly as the CPU does.
        assert_close(&format!("add n={n}"), &read(ctx, &acc, n).await, &want, 0.0, 0.0);

        let (g, u) = (rng.vec(n, -8.0, 8.0), rng.vec(n, -4.0, 4.0));
        let (gate, up) = (ctx.upload_f32("g", &g).unwrap(), ctx.upload_f32("u", &u).unwrap());
        let mut enc = ctx.encoder();
        elementwise::swiglu_in_place(ctx, &mut enc, &gate, &up, n as u32).unwrap();
        ctx.submit(enc);
        let want: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
        // exp on the GPU is not correctly rounded: a few ulp.
        assert_close(&format!("swiglu n={n}"), &read(ctx, &gate, n).await, &want, 1e-6, 1e-5);
    }
    for (rows, row_len) in [(1usize, 7usize), (33, 576)] {
        let n = rows * row_len;
        let (a, b) = (rng.vec(n, -4.0, 4.0), rng.vec(row_len, -1.0, 1.0));
        let (acc, bias) = (ctx.upload_f32("a", &a).unwrap(), ctx.upload_f32("bias", &b).unwrap());
        let mut enc = ctx.encoder();
        elementwise::add_rows_in_place(ctx, &mut enc, &acc, &bias, n as u32, row_len as u32).unwrap();
        ctx.submit(enc);
        let want: Vec<f32> = a.iter().enumerate().map(|(i, x)| x + b[i % row_len]).collect();
        assert_close(&format!("bias {rows}x{row_len}"), &read(ctx, &acc, n).await, &want, 0.0, 0.0);
    }
}

/// The run-time quantization kernels through Chromium's shader compiler (Tint), which is
/// stricter than naga: every activation family and a KV scheme against the CPU quantizers.
#[wasm_bindgen_test]
async fn runtime_quantization_kernels_match_cpu() {
    use quantscope::gpu::kernels::runtime_quant::{fake_quantize_activation, fake_quantize_kv};
    use quantscope::quant::activation::{fake_quantize, ActScheme};
    use quantscope::quant::kv::{fake_quantize_kv as cpu_kv, KvScheme};
    let ctx = ctx().await;
    let mut rng = Rng(17);
    let (tokens, k) = (5usize, 96usize);
    let mut x = rng.vec(tokens * k, -2.0, 2.0);
    x[7] = 40.0;
    for name in ["int8-token", "int8-tensor", "int4-channel", "fp8-e4m3-token", "mxfp4", "nvfp4"] {
        let scheme: ActScheme = name.parse().unwrap();
        let buf = ctx.upload_f32("x", &x).unwrap();
        let mut enc = ctx.encoder();
        fake_quantize_activation(ctx, &mut enc, &scheme, &buf, tokens as u32, k as u32).unwrap();
        ctx.submit(enc);
        let mut want = x.clone();
        fake_quantize(&scheme, &mut want, tokens, k).unwrap();
        // The GPU computes the same scales and levels; a division on a rounding boundary may
        // land one level off, which the native tests bound; here: no such element in this data.
        assert_close(name, &read(ctx, &buf, x.len()).await, &want, 0.0, 0.0);
    }
    let kv: KvScheme = "int4-e4m3".parse().unwrap();
    let buf = ctx.upload_f32("k", &x).unwrap();
    let mut enc = ctx.encoder();
    fake_quantize_kv(ctx, &mut enc, &kv, &buf, tokens as u32, k as u32, 32).unwrap();
    ctx.submit(enc);
    let mut want = x.clone();
    cpu_kv(&kv, &mut want, tokens, k, 32).unwrap();
    assert_close("kv int4-e4m3", &read(ctx, &buf, x.len()).await, &want, 0.0, 0.0);
}

#[wasm_bindgen_test]
async fn short_buffers_are_shape_errors_not_gpu_errors() {
    let ctx = ctx().await;
    let small = ctx.upload_f32("small", &[1.0; 4]).unwrap();
    let mut enc = ctx.encoder();
    let err = elementwise::add_in_place(ctx, &mut enc, &small, &small, 5).unwrap_err();
    assert!(err.to_string().contains("acc holds 4 values, needs 5"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The whole forward: a tiny llama written as GGUF in the test, GPU vs the CPU reference.

/// f32 on both sides, different summation orders: the bound the native forward test uses.
const LOGITS_REL_L2: f64 = 1e-4;

#[wasm_bindgen_test]
async fn tiny_llama_forward_matches_the_cpu_reference() {
    let ctx = ctx().await;
    let start = now_ms();
    let bytes = tiny_llama_gguf(0x2545_F491_4F6C_DD1D);
    let model = Model::from_gguf(bytes, "tiny.gguf", &mut |_| {}).expect("load the tiny llama");
    assert_eq!(model.config.rope_layout, RopeLayout::Interleaved);
    let gpu = GpuModel::upload(ctx, &model, &mut |_| {}).expect("upload");
    let tokens: Vec<u32> = (0..21u32).map(|i| (i * 37 + 5) % web_support::VOCAB as u32).collect();

    // Prefill of 17 tokens in one step.
    let (prompt, rest) = tokens.split_at(17);
    let mut cache = gpu.new_cache(ctx, tokens.len() as u32).unwrap();
    let out = gpu.step(ctx, &mut cache, prompt, &Capture::default()).await.expect("prefill");
    let cpu = forward(&model, prompt, ForwardOptions::default()).unwrap().logits;
    assert_eq!(out.logits.len(), web_support::VOCAB);
    let err = relative_l2(&out.logits, &cpu);
    console_log!("tiny llama prefill ({} tokens): logits relative L2 {err:.2e}", prompt.len());
    assert!(err <= LOGITS_REL_L2, "prefill: relative L2 {err:.2e} > {LOGITS_REL_L2:e}");

    // Then decode one token at a time through the KV cache.
    for (i, &t) in rest.iter().enumerate() {
        let out = gpu.step(ctx, &mut cache, &[t], &Capture::default()).await.expect("decode");
        let cpu = forward(&model, &tokens[..prompt.len() + i + 1], ForwardOptions::default()).unwrap().logits;
        let err = relative_l2(&out.logits, &cpu);
        console_log!("tiny llama decode step {i}: logits relative L2 {err:.2e}");
        assert!(err <= LOGITS_REL_L2, "decode step {i}: relative L2 {err:.2e} > {LOGITS_REL_L2:e}");
    }
    assert_eq!(cache.len as usize, tokens.len());
    console_log!("tiny llama forward: {:.0} ms", now_ms() - start);
}

/// Qwen3's per-head query and key norms through Tint/Dawn: a prefill and decode steps of the tiny
/// Qwen3 against the CPU reference (which tests/native/qwen3.rs checks against the numpy oracle).
#[wasm_bindgen_test]
async fn tiny_qwen3_forward_matches_the_cpu_reference() {
    let model = Model::from_gguf(tiny_qwen3_gguf(0x5157_454E_3300_0001, None), "tiny-qwen3.gguf", &mut |_| {})
        .expect("load the tiny qwen3");
    assert!(model.config.qk_norm);
    prefill_and_decode_match_the_cpu_reference(ctx().await, &model, &TINY_TOKENS).await;
}

/// Phi-3's fused projections, split at load into views of their rows, uploaded and run through
/// Tint/Dawn (tests/native/phi3.rs checks the CPU reference against the numpy oracle).
#[wasm_bindgen_test]
async fn tiny_phi3_forward_matches_the_cpu_reference() {
    let model = Model::from_gguf(tiny_phi3_gguf(0x5048_4933_0000_0001), "tiny-phi3.gguf", &mut |_| {})
        .expect("load the tiny phi3");
    assert_eq!(model.config.architecture, "phi3");
    prefill_and_decode_match_the_cpu_reference(ctx().await, &model, &TINY_TOKENS).await;
}

/// Gemma 3 through Tint/Dawn: √width on the embeddings, the GeGLU epilogues (stacked in decode,
/// fused into the up projection in prefill), the output norms, the local layers' own RoPE table
/// (tests/native/gemma3.rs checks the CPU reference against the numpy oracle).
#[wasm_bindgen_test]
async fn tiny_gemma3_forward_matches_the_cpu_reference() {
    let model = Model::from_gguf(tiny_gemma3_gguf(0x4745_4d33_0000_0001), "tiny-gemma3.gguf", &mut |_| {})
        .expect("load the tiny gemma3");
    assert!(model.config.post_norms && model.config.local_layers.is_some());
    prefill_and_decode_match_the_cpu_reference(ctx().await, &model, &TINY_TOKENS).await;
}

/// Gemma 2 through Tint/Dawn: the soft caps of the scores, in the split attention kernel (plain
/// steps) and in the one-pass one (a step that captures probabilities), and of the logits, with
/// heads wider than width / heads (tests/native/gemma2.rs checks the CPU reference against the
/// numpy oracle).
#[wasm_bindgen_test]
async fn tiny_gemma2_forward_matches_the_cpu_reference() {
    let ctx = ctx().await;
    let model =
        Model::from_gguf(tiny_gemma2_gguf(0x4745_4d32_0000_0001, &TINY_GEMMA2), "tiny-gemma2.gguf", &mut |_| {})
            .expect("load the tiny gemma2");
    assert!(model.config.attn_logit_softcap.is_some() && model.config.final_logit_softcap.is_some());
    prefill_and_decode_match_the_cpu_reference(ctx, &model, &TINY_TOKENS).await;
    let gpu = GpuModel::upload(ctx, &model, &mut |_| {}).expect("upload");
    let mut cache = gpu.new_cache(ctx, TINY_TOKENS.len() as u32).unwrap();
    let capture = Capture { attention_layers: (0..model.config.n_layers).collect(), ..Default::default() };
    let out = gpu.step(ctx, &mut cache, &TINY_TOKENS, &capture).await.expect("prefill with probabilities");
    let cpu = forward(&model, &TINY_TOKENS, ForwardOptions { attention_probs: true, ..Default::default() }).unwrap();
    let err = relative_l2(&out.logits, &cpu.logits);
    assert!(err <= LOGITS_REL_L2, "prefill with probabilities: relative L2 {err:.2e} > {LOGITS_REL_L2:e}");
    for (layer, probs) in &out.attention_probs {
        let err = relative_l2(probs, &cpu.attention_probs[*layer]);
        assert!(err <= LOGITS_REL_L2, "layer {layer}'s probabilities: relative L2 {err:.2e}");
    }
}

/// GPT-2 through Tint/Dawn: the LayerNorm kernel, the position table gathered and added, the
/// GELU epilogue of the biased up projection, biases on every linear, no RoPE (tests/native/gpt2.rs
/// checks the CPU reference against the numpy oracle).
#[wasm_bindgen_test]
async fn tiny_gpt2_forward_matches_the_cpu_reference() {
    let model = Model::from_gguf(tiny_gpt2_gguf(0x4750_5432_0000_0001), "tiny-gpt2.gguf", &mut |_| {})
        .expect("load the tiny gpt2");
    assert_eq!(model.config.architecture, "gpt2");
    prefill_and_decode_match_the_cpu_reference(ctx().await, &model, &TINY_TOKENS).await;
}

/// A matrix larger than one binding, through Tint/Dawn: on a device whose bindings are capped at
/// 64 KiB, a tiny Gemma 3 with 3000 tokens has its embeddings in six parts (the gather and the
/// tied unembedding dispatch per part); prefill and decode match the CPU reference.
#[wasm_bindgen_test]
async fn embeddings_split_over_bindings_match_the_cpu_reference() {
    let capped = GpuContext::with_binding_limit(64 << 10).await.expect("a capped device");
    // Where the upload splits (the device may keep WebGPU's larger default; the parts do not care).
    assert_eq!(capped.summary.max_storage_buffer_binding_size, 64 << 10);
    let shape = TinyShape { vocab: 3000, ..TINY_GEMMA3 };
    let model = Model::from_gguf(tiny_gemma3_gguf_of(0x5350_4c49_5400_0001, &shape), "big-vocab.gguf", &mut |_| {})
        .expect("load the tiny gemma3 with 3000 tokens");
    // Ids in every part of the table, the first and the last.
    prefill_and_decode_match_the_cpu_reference(&capped, &model, &[3, 2999, 0, 1500, 7, 7, 2048]).await;
}

/// Llama 3.1's RoPE frequency factors in the GPU's RoPE table (tests/native/llama3_rope.rs checks
/// the CPU reference against the numpy oracle).
#[wasm_bindgen_test]
async fn tiny_llama3_rope_scaling_matches_the_cpu_reference() {
    let model =
        Model::from_gguf(tiny_llama3_gguf(0x4c4c_4d33_0000_0001, &[0.6, 3.0, 17.0, 40.0]), "tiny.gguf", &mut |_| {})
            .expect("load the tiny llama with rope_freqs");
    assert!(model.config.rope_freq_factors.is_some());
    prefill_and_decode_match_the_cpu_reference(ctx().await, &model, &TINY_TOKENS).await;
}

/// The tokens the tiny models' forwards run (ids of the 20-token vocabularies).
const TINY_TOKENS: [u32; 9] = [3, 11, 0, 7, 7, 19, 2, 5, 13];

/// A prefill of all but the last 3 of `tokens` and 3 decode steps with the KV cache on WebGPU
/// give the CPU reference's logits.
async fn prefill_and_decode_match_the_cpu_reference(ctx: &GpuContext, model: &Model, tokens: &[u32]) {
    let gpu = GpuModel::upload(ctx, model, &mut |_| {}).expect("upload");
    let (prompt, rest) = tokens.split_at(tokens.len() - 3);
    let mut cache = gpu.new_cache(ctx, tokens.len() as u32).unwrap();
    let out = gpu.step(ctx, &mut cache, prompt, &Capture::default()).await.expect("prefill");
    let cpu = forward(model, prompt, ForwardOptions::default()).unwrap().logits;
    let err = relative_l2(&out.logits, &cpu);
    assert!(err <= LOGITS_REL_L2, "prefill: relative L2 {err:.2e} > {LOGITS_REL_L2:e}");
    for (i, &t) in rest.iter().enumerate() {
        let out = gpu.step(ctx, &mut cache, &[t], &Capture::default()).await.expect("decode");
        let cpu = forward(model, &tokens[..prompt.len() + i + 1], ForwardOptions::default()).unwrap().logits;
        let err = relative_l2(&out.logits, &cpu);
        assert!(err <= LOGITS_REL_L2, "decode step {i}: relative L2 {err:.2e} > {LOGITS_REL_L2:e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Live re-quantization on WebGPU (shaders/quantize.wgsl and the codebook decoder) in the browser:
// the tiny llama re-quantized on the GPU against the CPU forward of the same quantized model.

#[wasm_bindgen_test]
async fn requantized_on_webgpu_matches_the_cpu_quantized_model() {
    use quantscope::quant::apply::quantize_model;
    use quantscope::quant::{Recipe, Scheme};
    let ctx = ctx().await;
    let model = Model::from_gguf(tiny_llama_gguf(0x9E37_79B9), "tiny.gguf", &mut |_| {}).expect("load the tiny llama");
    let tokens: Vec<u32> = (0..13u32).map(|i| (i * 29 + 3) % VOCAB as u32).collect();
    let loaded = forward(&model, &tokens, ForwardOptions::default()).unwrap().logits;
    for name in ["int4-g32-sym", "nf4-g32", "mxfp4", "int3-ch-asym"] {
        let scheme: Scheme = name.parse().unwrap();
        let mut gpu = GpuModel::upload(ctx, &model, &mut |_| {}).expect("upload");
        let mut enc = ctx.encoder();
        for matrix in gpu.matrix_names() {
            gpu.requantize(ctx, &mut enc, &matrix, &scheme).expect("requantize");
        }
        ctx.submit(enc);
        let quantized = quantize_model(&model, &Recipe::uniform(scheme), &mut |_| {}).unwrap();
        let cpu = forward(&quantized.model, &tokens, ForwardOptions::default()).unwrap().logits;
        let mut cache = gpu.new_cache(ctx, tokens.len() as u32).unwrap();
        let out = gpu.step(ctx, &mut cache, &tokens, &Capture::default()).await.expect("step");
        let err = relative_l2(&out.logits, &cpu);
        console_log!("{name} re-quantized on WebGPU: logits relative L2 {err:.2e} vs the CPU");
        // Rounding-boundary elements may land one level off (see tests/native/gpu_requant.rs): 1e-3.
        assert!(err <= 1e-3, "{name}: relative L2 {err:.2e}");
        assert!(relative_l2(&cpu, &loaded) > 1e-3, "{name} changed nothing");
        // The same model, run with its master copies, is the model as loaded.
        let mut cache = gpu.new_cache(ctx, tokens.len() as u32).unwrap();
        let capture = Capture { weights_as_loaded: true, ..Default::default() };
        let out = gpu.step(ctx, &mut cache, &tokens, &capture).await.expect("step as loaded");
        let err = relative_l2(&out.logits, &loaded);
        assert!(err <= LOGITS_REL_L2, "{name}: as loaded, relative L2 {err:.2e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The page's quantization API through the wasm facade, on the tiny llama: a recipe applied live
// (and only what changed re-applied), side-by-side predictions, evaluation and probes.

fn field(v: &wasm_bindgen::JsValue, path: &[&str]) -> wasm_bindgen::JsValue {
    let mut v = v.clone();
    for key in path {
        v = js_sys::Reflect::get(&v, &wasm_bindgen::JsValue::from_str(key)).expect(key);
    }
    v
}

#[wasm_bindgen_test]
async fn the_facade_applies_recipes_compares_evaluates_and_probes() {
    use quantscope::web::Playground;
    let noop = js_sys::Function::new_no_args("");
    let mut pg = Playground::load(tiny_llama_gguf(0x51), "tiny.gguf".into(), noop.clone(), true).await.expect("load");
    let applied = pg.apply_recipe("int4-g32-sym".into(), noop.clone()).await.expect("apply");
    let matrices = (1 + 7 * LAYERS) as f64;
    assert_eq!(field(&applied, &["requantizedOnGpu"]).as_f64(), Some(matrices));
    let bpw = field(&applied, &["bitsPerWeight"]).as_f64().unwrap();
    assert!(bpw > 4.0 && bpw < 8.0, "{bpw}");
    // The same recipe again changes nothing; a recipe changing one class re-quantizes only it,
    // on the CPU where the GPU has no quantizer (BCQ).
    let again = pg.apply_recipe("int4-g32-sym".into(), noop.clone()).await.expect("again");
    assert_eq!(field(&again, &["unchanged"]).as_f64(), Some(matrices));
    let recipe = r#"{"default": "int4-g32-sym", "rules": [{"tensors": "blk.*.ffn_down.weight", "scheme": "bcq2-g32"},
        {"tensors": "token_embd.weight", "scheme": "keep"}]}"#;
    let mixed = pg.apply_recipe(recipe.into(), noop.clone()).await.expect("mixed");
    assert_eq!(field(&mixed, &["requantizedOnCpu"]).as_f64(), Some(LAYERS as f64));
    assert_eq!(field(&mixed, &["restored"]).as_f64(), Some(1.0));
    let err = pg.apply_recipe("int9".into(), noop.clone()).await.err().expect("a bad scheme is refused");
    let message = js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message();
    assert!(String::from(message).contains("int takes 2 to 8 bits"));

    let both = pg.predict_both("abcab".into(), 3).await.expect("predictBoth");
    let reference = js_sys::Array::from(&field(&both, &["reference"]));
    let quantized = js_sys::Array::from(&field(&both, &["quantized"]));
    assert_eq!((reference.length(), quantized.length()), (3, 3));
    let logit = |a: &js_sys::Array| field(&a.get(0), &["logit"]).as_f64().unwrap();
    assert_ne!(logit(&reference), logit(&quantized), "the quantized model is another model");

    let metrics =
        pg.evaluate(40, 20, "abcabcabdabcabcabcabdabc abc abcabcabcab".into(), noop.clone()).await.expect("evaluate");
    for key in ["kl", "pd_kl", "top1_agreement", "perplexity", "qid"] {
        assert!(field(&metrics, &[key]).as_f64().unwrap().is_finite(), "{key}");
    }
    assert!(field(&metrics, &["kl"]).as_f64().unwrap() > 0.0);
    // A progress callback returning false cancels the evaluation (what the page does when a
    // change makes it moot).
    let stop = js_sys::Function::new_no_args("return false;");
    let cancelled = pg.evaluate(40, 20, "abcabcabdabcabcabcabdabc abc abcabcabcab".into(), stop).await;
    let message =
        js_sys::Error::from(wasm_bindgen::JsValue::from(cancelled.expect_err("a cancelled evaluation resolved")));
    assert_eq!(String::from(message.message()), "the evaluation was cancelled");

    let probed = pg.probe("abcab".into(), false, 1, "down_input".into()).await.expect("probe");
    let probes = js_sys::Array::from(&field(&probed, &["probes"]));
    assert_eq!(probes.length() as usize, 1 + 8 * LAYERS);
    let values = js_sys::Float32Array::from(field(&probed, &["tensor", "values"]));
    let n_tokens = js_sys::Array::from(&field(&probed, &["tokens"])).length() as usize;
    assert_eq!(values.length() as usize, n_tokens * FF);
    assert_eq!(js_sys::Array::from(&field(&probed, &["attention"])).length() as usize, LAYERS);
}

// ---------------------------------------------------------------------------------------------
// Why RoPE does not use the built-in sin/cos: WebGPU only promises them to 2^-11 absolute on
// [-π, π], and SwiftShader uses that freedom, where lavapipe (and real GPUs) are far closer. This
// probe measures the adapter's built-ins and, next to them, shaders/sincos.wgsl (what rope.wgsl
// uses), which must stay within 1e-6 everywhere.

const SIN_COS_PROBE: &str = r#"
@group(0) @binding(0) var<uniform> n: vec4<u32>;
@group(0) @binding(1) var<storage, read> turns: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

const TAU: f32 = 6.283185307179586;

@compute @workgroup_size(64)
fn probe(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= n.x) { return; }
    let t = turns[id.x];
    let angle = t * TAU;
    out[id.x] = vec4<f32>(sin(angle), cos(angle), sin_cos_turns(t));
}
"#;

#[wasm_bindgen_test]
async fn sin_cos_precision_of_this_adapter() {
    let ctx = ctx().await;
    let n = 100_001usize;
    let turns: Vec<f32> = (0..n).map(|i| -0.5 + i as f32 / (n - 1) as f32).collect();
    let source = quantscope::gpu::ShaderSource::new("sin_cos_probe", SIN_COS_PROBE)
        .include("sincos", include_str!("../shaders/sincos.wgsl"));
    let pipeline = ctx.pipeline(&source, "probe", &[]).unwrap();
    let input = ctx.upload_f32("turns", &turns).unwrap();
    let out = poisoned(ctx, "sin cos", 4 * n);
    let mut enc = ctx.encoder();
    ctx.dispatch(&mut enc, &pipeline, &[n as u32, 0, 0, 0], &[&input, &out], (n as u32).div_ceil(64));
    ctx.submit(enc);
    let got = read(ctx, &out, 4 * n).await;
    let (mut builtin, mut poly) = (0.0f64, 0.0f64);
    for (t, g) in turns.iter().zip(got.chunks_exact(4)) {
        // The exact values for the f32 angle the built-ins receive, and for the turn itself.
        let angle = (*t * std::f32::consts::TAU) as f64;
        let exact = (*t as f64) * std::f64::consts::TAU;
        builtin = builtin.max((g[0] as f64 - angle.sin()).abs()).max((g[1] as f64 - angle.cos()).abs());
        poly = poly.max((g[2] as f64 - exact.sin()).abs()).max((g[3] as f64 - exact.cos()).abs());
    }
    console_log!(
        "sin/cos on [-π, π], max absolute error: built-in {builtin:.2e} (WebGPU allows {:.2e}), \
         octant-reduced polynomial {poly:.2e}",
        2f64.powi(-11)
    );
    assert!(poly <= 1e-6, "the polynomial sin/cos is off by {poly:e}");
}

// ---------------------------------------------------------------------------------------------
// What the page's outlier views read (src/web/views.rs), against the CPU reference.

/// Attention probabilities are in [0, 1]; the GPU and the CPU reference sum in different orders
/// through two blocks, where the logits agree to 1e-4 relative L2 (LOGITS_REL_L2).
const VIEW_ATTENTION_ABS: f32 = 1e-4;

#[wasm_bindgen_test]
async fn the_facade_serves_the_outlier_views() {
    use quantscope::analysis::outliers;
    use quantscope::quant::apply::quantize_tensor;
    use quantscope::web::Playground;
    let noop = js_sys::Function::new_no_args("");
    let seed = 0x77;
    let pg = Playground::load(tiny_llama_gguf(seed), "tiny.gguf".into(), noop, true).await.expect("load");
    let model = Model::from_gguf(tiny_llama_gguf(seed), "tiny.gguf", &mut |_| {}).expect("load the tiny llama");
    let message =
        |e: wasm_bindgen::JsError| String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(e)).message());
    let prompt = "abcab cabc";
    let tokens = model.prompt_tokens(prompt).unwrap();
    let n = tokens.len();

    // Attention maps of the model as loaded on the GPU = the CPU reference's.
    let maps = pg.attention_maps(prompt.into(), 1, true).await.expect("attentionMaps");
    assert_eq!(field(&maps, &["backend"]).as_string().as_deref(), Some("webgpu"));
    assert_eq!(field(&maps, &["heads"]).as_f64(), Some(HEADS as f64));
    assert_eq!(field(&maps, &["n"]).as_f64(), Some(n as f64));
    let probs = js_sys::Float32Array::from(field(&maps, &["probs"])).to_vec();
    let cpu = forward(&model, &tokens, ForwardOptions { attention_probs: true, ..Default::default() }).unwrap();
    let reference = &cpu.attention_probs[1];
    assert_eq!(probs.len(), reference.len());
    let worst = probs.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= VIEW_ATTENTION_ABS, "attention of layer 1: max |GPU − CPU| {worst:e}");
    let sinks: Vec<f32> = serde_wasm_bindgen::from_value(field(&maps, &["sinkScores"])).unwrap();
    let expected = outliers::sink_scores(reference, HEADS, n);
    assert!(sinks.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= VIEW_ATTENTION_ABS), "{sinks:?} vs {expected:?}");
    let keys: Vec<usize> = serde_wasm_bindgen::from_value(field(&maps, &["outlierKeys"])).unwrap();
    let key_attention: Vec<f32> = serde_wasm_bindgen::from_value(field(&maps, &["keyAttention"])).unwrap();
    assert_eq!(keys, outliers::outlier_keys(&key_attention));
    let err = pg.attention_maps(prompt.into(), LAYERS, true).await.expect_err("a layer past the last is refused");
    assert!(message(err).contains(&format!("the model has {LAYERS} layers")));

    // Weight statistics: the histograms count every weight, the ratios are the reference's, and
    // the grid drawn holds the value the largest |w| was quantized to.
    let name = "blk.0.ffn_down.weight";
    let stats = pg.weight_stats(name.into(), "q4_0".into()).expect("weightStats");
    let (_, q, w) = quantize_tensor(&model, name, &"q4_0".parse().unwrap()).unwrap();
    let cols = FF;
    let ratios: Vec<f32> = serde_wasm_bindgen::from_value(field(&stats, &["columnRatios"])).unwrap();
    assert_eq!(ratios, outliers::column_ratios(&w, cols));
    for histogram in ["loaded", "quantized"] {
        let counts: Vec<u32> = serde_wasm_bindgen::from_value(field(&stats, &["histogram", histogram])).unwrap();
        assert_eq!((counts.len(), counts.iter().sum::<u32>() as usize), (256, w.len()), "{histogram}");
    }
    let levels: Vec<f32> = serde_wasm_bindgen::from_value(field(&stats, &["levels", "values"])).unwrap();
    assert_eq!(levels.len(), 16, "q4_0 has 16 codes: {levels:?}");
    let largest = outliers::top_by_magnitude(&w, 1)[0];
    assert_eq!(field(&stats, &["levels", "row"]).as_f64(), Some((largest / cols) as f64));
    assert!(levels.contains(&q.values[largest]), "{} not in {levels:?}", q.values[largest]);
    // Symmetric absmax int8 per row never clips; "keep" has no grid.
    assert_eq!(field(&pg.weight_stats(name.into(), "int8-ch-sym".into()).unwrap(), &["clipped"]).as_f64(), Some(0.0));
    let kept = pg.weight_stats(name.into(), "keep".into()).unwrap();
    let absent = |v: wasm_bindgen::JsValue| v.is_null() || v.is_undefined();
    assert!(absent(field(&kept, &["levels"])) && absent(field(&kept, &["histogram", "quantized"])));
    assert!(message(pg.weight_stats("blk.9.nope.weight".into(), "q4_0".into()).err().unwrap())
        .contains("blk.9.nope.weight"));
    assert!(message(pg.weight_stats(name.into(), "q9_9".into()).err().unwrap()).contains("q9_9"));

    // The outlier report is the CLI's.
    let report = pg.outlier_report(prompt.into(), "massive".into()).expect("outlierReport");
    let cli = outliers::outlier_report(&model, prompt, outliers::OutlierRule::Massive, 5).unwrap();
    assert_eq!(js_sys::Array::from(&field(&report, &["hidden_states"])).length() as usize, cli.hidden_states.len());
    assert_eq!(js_sys::Array::from(&field(&report, &["chain"])).length() as usize, cli.chain.len());
    assert_eq!(js_sys::Array::from(&field(&report, &["weights"])).length() as usize, cli.weights.len());
    assert!(message(pg.outlier_report(prompt.into(), "loud".into()).err().unwrap()).contains("unknown outlier rule"));
}

// ---------------------------------------------------------------------------------------------
// A GGUF the worker reads a range at a time (its Blob through FileReaderSync): the same model.

/// A JS `read(offset, length)` over a copy of `bytes`, as the worker's `blobReader` is; each
/// length asked for is pushed to `reads`.
fn js_reader(bytes: &[u8], reads: &js_sys::Array) -> js_sys::Function {
    let file = js_sys::Uint8Array::from(bytes);
    let reader = js_sys::Function::new_with_args(
        "file, reads",
        "return (offset, length) => { reads.push(length); return file.slice(offset, offset + length); };",
    );
    reader.call2(&wasm_bindgen::JsValue::NULL, &file, reads).unwrap().into()
}

/// The `top` of the facade's `predict` as (id, logit).
fn top_logits(prediction: &wasm_bindgen::JsValue) -> Vec<(u64, f32)> {
    let top = String::from(js_sys::JSON::stringify(&field(prediction, &["top"])).unwrap());
    let top: Vec<serde_json::Value> = serde_json::from_str(&top).unwrap();
    top.iter().map(|t| (t["id"].as_u64().unwrap(), t["logit"].as_f64().unwrap() as f32)).collect()
}

#[wasm_bindgen_test]
async fn a_file_read_a_range_at_a_time_loads_and_predicts_like_one_in_memory() {
    use quantscope::web::Playground;
    use wasm_bindgen::JsValue;
    let noop = js_sys::Function::new_no_args("");
    let bytes = tiny_llama_gguf(0x52);
    let reads = js_sys::Array::new();
    let lazy =
        Playground::load_lazy(bytes.len() as f64, js_reader(&bytes, &reads), "tiny.gguf".into(), noop.clone(), true)
            .await
            .expect("load a range at a time");
    // A file this small is one read (the first chunk holds it all); the native tests count a
    // real model's pieces.
    let read_bytes: f64 = reads.iter().map(|n| n.as_f64().unwrap()).sum();
    assert!(read_bytes >= bytes.len() as f64, "{read_bytes} bytes read of {}", bytes.len());
    let whole = Playground::load(bytes, "tiny.gguf".into(), noop.clone(), true).await.expect("load");
    let top = |v: JsValue| String::from(js_sys::JSON::stringify(&field(&v, &["reference"])).unwrap());
    let prompt = "abcab cabc";
    assert_eq!(
        top(lazy.predict_both(prompt.into(), 5).await.unwrap()),
        top(whole.predict_both(prompt.into(), 5).await.unwrap())
    );

    let failing = js_sys::Function::new_with_args("offset, length", "throw new Error('the file is gone');");
    let err = Playground::load_lazy(1e6, failing, "gone.gguf".into(), noop, true).await.err().expect("a failing read");
    let message = String::from(js_sys::Error::from(JsValue::from(err)).message());
    assert!(message.contains("gone.gguf") && message.contains("the file is gone"), "{message}");
}

/// A file larger than wasm32's 4 GiB address space (as an 8B model's is): the tiny llama with its
/// tensor data moved 5 GiB on, read a range at a time, predicts what the compact file does. An
/// offset cut to 32 bits anywhere between the header and the read would read the zeros of the gap.
#[wasm_bindgen_test]
async fn a_file_larger_than_wasm_memory_loads_a_range_at_a_time_and_predicts_like_the_compact_one() {
    use quantscope::web::Playground;
    use web_support::relocated::relocated_gguf;
    let noop = js_sys::Function::new_no_args("");
    let bytes = tiny_llama_gguf(0x53);
    let far = relocated_gguf(&bytes, 5 << 30);
    let length = far.len() as f64;
    assert!(length > 2f64.powi(32) + 2f64.powi(30));
    let read = gapped_file_reader(far);
    let lazy =
        Playground::load_lazy(length, read, "far.gguf".into(), noop.clone(), true).await.expect("load past 4 GiB");
    let whole = Playground::load(bytes, "tiny.gguf".into(), noop, true).await.expect("load");
    let top = |v: wasm_bindgen::JsValue| String::from(js_sys::JSON::stringify(&field(&v, &["reference"])).unwrap());
    let prompt = "abcab cabc";
    assert_eq!(
        top(lazy.predict_both(prompt.into(), 5).await.unwrap()),
        top(whole.predict_both(prompt.into(), 5).await.unwrap())
    );
}

// ---------------------------------------------------------------------------------------------
// Hugging Face checkpoints (one file, or shards with model.safetensors.index.json) that the
// worker reads a range at a time, through the facade.

/// The tiny llama's shapes as a Hugging Face checkpoint with random f32 weights: config.json,
/// tokenizer.json (the tiny GGUF's vocabulary) and its tensors by HF name, in file order.
fn tiny_hf_llama(seed: u64) -> (String, String, Vec<(String, Vec<usize>, Vec<u8>)>) {
    let gguf = Model::from_gguf(tiny_llama_gguf(seed), "tiny.gguf", &mut |_| {}).expect("the tiny llama");
    let config = serde_json::json!({"architectures": ["LlamaForCausalLM"], "hidden_size": D,
        "intermediate_size": FF, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": CONTEXT, "vocab_size": VOCAB, "tie_word_embeddings": true});
    let mut rng = Rng(seed);
    let mut tensor = |name: String, shape: Vec<usize>| {
        let n = shape.iter().product();
        let values: Vec<f32> =
            rng.vec(n, -0.2, 0.2).iter().map(|v| if name.contains("norm") { 1.0 + v } else { *v }).collect();
        (name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
    };
    let kv = KV_HEADS * HEAD_DIM;
    let mut tensors = vec![tensor("model.embed_tokens.weight".into(), vec![VOCAB, D])];
    for l in 0..LAYERS {
        let p = |s: &str| format!("model.layers.{l}.{s}.weight");
        for (name, shape) in [
            (p("input_layernorm"), vec![D]),
            (p("self_attn.q_proj"), vec![D, D]),
            (p("self_attn.k_proj"), vec![kv, D]),
            (p("self_attn.v_proj"), vec![kv, D]),
            (p("self_attn.o_proj"), vec![D, D]),
            (p("post_attention_layernorm"), vec![D]),
            (p("mlp.gate_proj"), vec![FF, D]),
            (p("mlp.up_proj"), vec![FF, D]),
            (p("mlp.down_proj"), vec![D, FF]),
        ] {
            tensors.push(tensor(name, shape));
        }
    }
    tensors.push(tensor("model.norm.weight".into(), vec![D]));
    (config.to_string(), gguf.tokenizer.to_json().unwrap(), tensors)
}

fn safetensors_file(tensors: &[(String, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// A Hugging Face checkpoint the worker reads a range at a time (its Blobs through
/// FileReaderSync), one file and sharded: on the CPU it predicts exactly what the same bytes
/// loaded in memory do, and on WebGPU the one file and the shards predict alike.
#[wasm_bindgen_test]
async fn a_safetensors_checkpoint_read_a_range_at_a_time_predicts_what_it_does_in_memory() {
    use quantscope::web::Playground;
    let noop = js_sys::Function::new_no_args("");
    let (config, tokenizer, tensors) = tiny_hf_llama(0x5348);
    let (config, tokenizer) = (config.into_bytes(), tokenizer.into_bytes());
    let whole = safetensors_file(&tensors);
    let prompt = "abcab cabc";
    let in_memory = Model::from_safetensors(whole.clone(), &config, &tokenizer, "tiny", &mut |_| {}).unwrap();
    let expected: Vec<(u64, f32)> =
        in_memory.predict(prompt, 5).unwrap().top.iter().map(|t| (t.id as u64, t.logit)).collect();

    let (index, shards) = shard_like_hugging_face(&whole);
    let reads = js_sys::Array::new();
    let one_file = |use_gpu| {
        let read = js_reader(&whole, &reads);
        Playground::load_safetensors(
            whole.len() as f64,
            read,
            config.clone(),
            tokenizer.clone(),
            "tiny".into(),
            noop.clone(),
            use_gpu,
        )
    };
    let sharded = |use_gpu| {
        Playground::load_safetensors_shards(
            index.clone().into_bytes(),
            shards.iter().map(|(name, _)| name.clone()).collect(),
            shards.iter().map(|(_, bytes)| bytes.len() as f64).collect(),
            shards.iter().map(|(_, bytes)| js_reader(bytes, &reads)).collect(),
            config.clone(),
            tokenizer.clone(),
            "tiny".into(),
            noop.clone(),
            use_gpu,
        )
    };
    let on_cpu = one_file(false).await.expect("one file on the CPU");
    assert_eq!(top_logits(&on_cpu.predict(prompt.into(), 5).await.unwrap()), expected, "one file");
    let read_bytes: f64 = reads.iter().map(|n| n.as_f64().unwrap()).sum();
    assert!(read_bytes >= whole.len() as f64, "{read_bytes} bytes read of {}", whole.len());
    let on_cpu = sharded(false).await.expect("two shards on the CPU");
    assert_eq!(top_logits(&on_cpu.predict(prompt.into(), 5).await.unwrap()), expected, "two shards");

    let top = |v: wasm_bindgen::JsValue| String::from(js_sys::JSON::stringify(&field(&v, &["reference"])).unwrap());
    let (one, two) = (one_file(true).await.expect("one file"), sharded(true).await.expect("two shards"));
    assert_eq!(
        top(two.predict_both(prompt.into(), 5).await.unwrap()),
        top(one.predict_both(prompt.into(), 5).await.unwrap())
    );
}

#[wasm_bindgen_test]
async fn a_safetensors_shard_that_is_missing_or_whose_read_throws_is_named() {
    use quantscope::web::Playground;
    use wasm_bindgen::JsValue;
    let noop = js_sys::Function::new_no_args("");
    let (config, tokenizer, tensors) = tiny_hf_llama(0x5349);
    let (index, shards) = shard_like_hugging_face(&safetensors_file(&tensors));
    let reads = js_sys::Array::new();
    let throwing = js_sys::Function::new_with_args("offset, length", "throw new Error('the shard is gone');");
    let load = |readers: Vec<js_sys::Function>| {
        Playground::load_safetensors_shards(
            index.clone().into_bytes(),
            shards[..readers.len()].iter().map(|(name, _)| name.clone()).collect(),
            shards[..readers.len()].iter().map(|(_, bytes)| bytes.len() as f64).collect(),
            readers,
            config.clone().into_bytes(),
            tokenizer.clone().into_bytes(),
            "tiny".into(),
            noop.clone(),
            false,
        )
    };
    let message = |err: wasm_bindgen::JsError| String::from(js_sys::Error::from(JsValue::from(err)).message());
    let err = load(vec![js_reader(&shards[0].1, &reads)]).await.err().expect("a missing shard");
    assert!(message(err).contains(&format!("\"{}\" named by the index was not given", shards[1].0)));
    let err = load(vec![js_reader(&shards[0].1, &reads), throwing]).await.err().expect("a shard that cannot be read");
    let message = message(err);
    assert!(
        message.starts_with(&format!("tiny: {}: cannot read file: ", shards[1].0))
            && message.contains("the shard is gone"),
        "{message}"
    );
}

/// A shard as large as Hugging Face's 5 GB ones is larger than wasm32's 4 GiB address space: the
/// tiny checkpoint with its tensor data moved 5 GiB on (tensors the loader skips fill the gap),
/// read a range at a time, predicts exactly what the compact file does in memory. An offset cut
/// to 32 bits anywhere between the header and the read would read the zeros of the gap.
#[wasm_bindgen_test]
async fn a_safetensors_file_larger_than_wasm_memory_loads_a_range_at_a_time_and_predicts_like_the_compact_one() {
    use quantscope::web::Playground;
    use web_support::relocated::relocated_safetensors;
    let noop = js_sys::Function::new_no_args("");
    let (config, tokenizer, tensors) = tiny_hf_llama(0x534A);
    let (config, tokenizer) = (config.into_bytes(), tokenizer.into_bytes());
    let whole = safetensors_file(&tensors);
    let far = relocated_safetensors(&whole, 5 << 30);
    let length = far.len() as f64;
    assert!(length > 2f64.powi(32) + 2f64.powi(30));
    let read = gapped_file_reader(far);
    let lazy = Playground::load_safetensors(length, read, config.clone(), tokenizer.clone(), "far".into(), noop, false)
        .await
        .expect("load past 4 GiB");
    let prompt = "abcab cabc";
    let compact = Model::from_safetensors(whole, &config, &tokenizer, "tiny", &mut |_| {}).unwrap();
    let expected: Vec<(u64, f32)> =
        compact.predict(prompt, 5).unwrap().top.iter().map(|t| (t.id as u64, t.logit)).collect();
    assert_eq!(top_logits(&lazy.predict(prompt.into(), 5).await.unwrap()), expected);
}

/// In wasm32 the safetensors crate's usize offsets and sizes stop at 4 GiB: it cannot place a
/// tensor past 4 GiB in a shard, nor size one over 512 MiB (its size in bits overflows). The
/// header parsed from a head describes both (a 4.4 GB shard whose first tensor is 2.4 GB of
/// bf16), and refuses by name a tensor that cannot be in memory here.
#[wasm_bindgen_test]
fn a_safetensors_header_in_wasm32_places_tensors_past_4_gib_and_sizes_them_past_512_mib() {
    use quantscope::formats::safetensors::read_header;
    let header = |tensors: &[(&str, &str, u64, u64)]| {
        let mut json = serde_json::Map::new();
        let mut at = 0u64;
        for &(name, dtype, elements, size) in tensors {
            let info =
                serde_json::json!({"dtype": dtype, "shape": [elements], "data_offsets": [at, at + elements * size]});
            json.insert(name.to_string(), info);
            at += elements * size;
        }
        let json = serde_json::to_string(&json).unwrap();
        let mut head = (json.len() as u64).to_le_bytes().to_vec();
        head.extend_from_slice(json.as_bytes());
        (head.len() as u64 + at, head)
    };
    let tensors = [("big", "BF16", 1_200_000_000, 2), ("mid", "F32", 500_000_000, 4), ("past", "F16", 1000, 2)];
    let (length, head) = header(&tensors);
    let table = read_header(&head, length, "shard.safetensors").expect("a 4.4 GB shard");
    let data = head.len() as u64;
    let places: Vec<(&str, u64, usize)> = table.iter().map(|t| (t.name.as_str(), t.start, t.len)).collect();
    assert_eq!(
        places,
        [
            ("big", data, 2_400_000_000),
            ("mid", data + 2_400_000_000, 2_000_000_000),
            ("past", data + 4_400_000_000, 2000)
        ]
    );

    let (length, head) = header(&[("huge", "F32", 1_100_000_000, 4)]);
    let err = read_header(&head, length, "shard.safetensors").unwrap_err().to_string();
    assert!(err.contains("shard.safetensors: tensor \"huge\": 4400000000 bytes do not fit"), "{err}");
}
