//! What the GPU kernel tests check against, natively (`tests/native/gpu_common/mod.rs`, lavapipe) and in
//! the browser (`tests/web_support/mod.rs`, headless Chromium): deterministic random data, random
//! weights in stored formats, comparisons that list the first mismatches, and the CPU formulas
//! (mirroring `model::reference`); also the GGUF metadata of the tiny synthetic llamas
//! (tests/native/model_synthetic.rs, tests/web.rs), a tiny Qwen3 and a tiny Phi-3
//! (tests/native/qwen3.rs, tests/native/phi3.rs, tests/web.rs), GGUF and safetensors files moved
//! past 4 GiB (`relocated`) and a checkpoint cut into shards (`hf_shards`). Target-independent
//! and synchronous: nothing here touches a GPU.
#![allow(dead_code)]

pub mod hf_shards;
pub mod relocated;

use half::f16;
use quantscope::formats::ggml::GgmlType;
use quantscope::formats::gguf::{write_gguf, MetadataValue as V};
use quantscope::gpu::kernels::attention::{AttentionShape, Scores};
use quantscope::model::config::soft_cap;
use quantscope::model::weights::{WeightTensor, Weights};
use quantscope::model::RopeLayout;

/// Deterministic values in [lo, hi): xorshift64*, no rand crate needed.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// Asserts `gpu` ≈ `cpu` elementwise: |g − c| ≤ abs + rel·|c|; on failure lists the first mismatches.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], abs: f32, rel: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let bad: Vec<String> = gpu
        .iter()
        .zip(cpu)
        .enumerate()
        .filter(|(_, (g, c))| {
            // Written as "not within" so that NaN (a poisoned, unwritten output) fails.
            let within = (*g - *c).abs() <= abs + rel * c.abs();
            !within
        })
        .take(8)
        .map(|(i, (g, c))| format!("[{i}] gpu {g} cpu {c}"))
        .collect();
    assert!(bad.is_empty(), "{what}: mismatches (first 8): {}", bad.join(", "));
}

/// ‖gpu − cpu‖₂ / ‖cpu‖₂ in f64.
pub fn relative_l2(gpu: &[f32], cpu: &[f32]) -> f64 {
    let num: f64 = gpu.iter().zip(cpu).map(|(&g, &c)| (g as f64 - c as f64).powi(2)).sum();
    let den: f64 = cpu.iter().map(|&c| (c as f64).powi(2)).sum();
    (num / den).sqrt()
}

// ---------------------------------------------------------------------------------------------
// CPU formulas (mirroring `model::reference`).

/// The reference's dot: eight partial sums, then the tail.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut partial = [0.0f32; 8];
    let (a_blocks, b_blocks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_blocks.remainder().iter().zip(b_blocks.remainder()).map(|(x, y)| x * y).sum();
    for (ab, bb) in a_blocks.zip(b_blocks) {
        for i in 0..8 {
            partial[i] += ab[i] * bb[i];
        }
    }
    partial.iter().sum::<f32>() + tail
}

pub fn cpu_rms_norm(x: &[f32], gain: &[f32], eps: f32) -> Vec<f32> {
    let d = gain.len();
    let mut y = vec![0.0f32; x.len()];
    for (x_t, y_t) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let scale = 1.0 / (dot(x_t, x_t) / d as f32 + eps).sqrt();
        for i in 0..d {
            y_t[i] = x_t[i] * scale * gain[i];
        }
    }
    y
}

/// LayerNorm: the CPU reference's own formula.
pub fn cpu_layer_norm(x: &[f32], gain: &[f32], bias: &[f32], eps: f32) -> Vec<f32> {
    quantscope::model::reference::layer_norm_rows(x, gain, bias, eps)
}

/// The reference's RopeTable: angles in f64, cos/sin rounded to f32 once, rotation in f32.
pub fn cpu_rope(x: &mut [f32], n_heads: usize, hd: usize, offset: usize, base: f32, layout: RopeLayout) {
    let half = hd / 2;
    for (t, x_t) in x.chunks_exact_mut(n_heads * hd).enumerate() {
        let p = (offset + t) as f64;
        for head in x_t.chunks_exact_mut(hd) {
            for i in 0..half {
                let angle = p * (base as f64).powf(-2.0 * i as f64 / hd as f64);
                let (cos, sin) = (angle.cos() as f32, angle.sin() as f32);
                let (a, b) = match layout {
                    RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                    RopeLayout::HalfSplit => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

/// Causal GQA attention (`model::reference::causal_attention`, extended to queries after a
/// KV-cache prefix): queries i at positions past + i over keys 0..=past + i. Returns (out, probs)
/// with out `[n × n_heads·hd]` and probs `[n_heads × n × (past + n)]`.
pub fn cpu_attention(
    s: AttentionShape,
    n: usize,
    past: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    cpu_attention_masked(s, n, past, q, k, v, false)
}

/// [`cpu_attention`], where with `drop_key0` the queries at positions ≥ 1 do not see key 0 (the
/// drop-sink intervention, as `model::reference`'s `ForwardHook::masks_key`): probability 0,
/// and left out of the max and the sum.
pub fn cpu_attention_masked(
    s: AttentionShape,
    n: usize,
    past: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    drop_key0: bool,
) -> (Vec<f32>, Vec<f32>) {
    cpu_attention_scored(s, Scores::standard(s.head_dim), n, past, (q, k, v), drop_key0)
}

/// [`cpu_attention_masked`] with the scores `q·k · scale`, soft-capped where `scores` has a cap
/// (`model::reference::causal_attention` with Gemma's query scale and Gemma 2's cap).
pub fn cpu_attention_scored(
    s: AttentionShape,
    scores: Scores,
    n: usize,
    past: usize,
    (q, k, v): (&[f32], &[f32], &[f32]),
    drop_key0: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (nh, hd) = (s.n_heads as usize, s.head_dim as usize);
    let group = nh / s.n_kv_heads as usize;
    let (q_dim, kv_dim) = (nh * hd, s.n_kv_heads as usize * hd);
    let keys = past + n;
    let score = |dot: f32| {
        let scaled = dot * scores.scale;
        scores.softcap.map_or(scaled, |cap| soft_cap(scaled, cap))
    };
    let mut out = vec![0.0f32; n * q_dim];
    let mut probs = vec![0.0f32; nh * n * keys];
    let mut p = vec![0.0f32; keys];
    for h in 0..nh {
        let kv_h = h / group;
        for i in 0..n {
            let last = past + i;
            let first = usize::from(drop_key0 && last >= 1);
            let q_i = &q[i * q_dim + h * hd..][..hd];
            p[0] = 0.0;
            for j in first..=last {
                p[j] = score(dot(q_i, &k[j * kv_dim + kv_h * hd..][..hd]));
            }
            let max = p[first..=last].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for pj in &mut p[first..=last] {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let o = &mut out[i * q_dim + h * hd..][..hd];
            for j in first..=last {
                p[j] /= sum;
                let v_j = &v[j * kv_dim + kv_h * hd..][..hd];
                for d in 0..hd {
                    o[d] += p[j] * v_j[d];
                }
            }
            probs[(h * n + i) * keys..][..=last].copy_from_slice(&p[..=last]);
        }
    }
    (out, probs)
}

/// Indices of the k largest values, descending, ties by lower index.
pub fn cpu_top_k(x: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..x.len() as u32).collect();
    idx.sort_by(|&a, &b| x[b as usize].total_cmp(&x[a as usize]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Random logits in [-10, 10) with ties planted among the largest values: the maximum (12.5)
/// copied to a few positions (early and late, so ties straddle workgroup segments) and runs of
/// equal values (four values in [11, 12), five copies each).
pub fn logits_with_ties(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x = rng.vec(n, -10.0, 10.0);
    let top = 12.5;
    for _ in 0..5 {
        let i = (rng.next_u64() % n as u64) as usize;
        x[i] = top;
    }
    x[n - 1] = top;
    for j in 0..20 {
        let i = (rng.next_u64() % n as u64) as usize;
        x[i] = 11.0 + (j % 4) as f32 * 0.25; // four values, five copies each
    }
    x
}

// ---------------------------------------------------------------------------------------------
// Random weights in stored formats, and the matmul they are checked with.

/// Byte offsets of the f16 scale fields inside one block (ggml-common.h).
fn f16_fields(dtype: GgmlType) -> &'static [usize] {
    match dtype {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Raw bytes of `n` values of `dtype`: random floats in [-1, 1) for F32/F16/BF16; random bytes with
/// finite f16 scales for quantized blocks, mostly in [-scale, scale), sometimes zero or subnormal.
pub fn random_tensor_bytes(rng: &mut Rng, dtype: GgmlType, n: usize, scale: f32) -> Vec<u8> {
    match dtype {
        GgmlType::F32 => rng.vec(n, -1.0, 1.0).iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => rng.vec(n, -1.0, 1.0).iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        GgmlType::BF16 => rng.vec(n, -1.0, 1.0).iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        _ => {
            let mut bytes = rng.bytes(dtype.bytes_for(n as u64).unwrap() as usize);
            for block in bytes.chunks_exact_mut(dtype.type_size()) {
                for &at in f16_fields(dtype) {
                    let d = match rng.next_u64() % 16 {
                        0 => f16::ZERO,
                        1 => f16::from_bits((rng.next_u64() as u16) & 0x83FF), // subnormal (or ±0)
                        _ => f16::from_f32(rng.uniform(-scale, scale)),
                    };
                    block[at..at + 2].copy_from_slice(&d.to_le_bytes());
                }
            }
            bytes
        }
    }
}

/// A random `n_out × n_in` matrix of `dtype` (quantized scales in [-1, 1)) as a one-tensor
/// [`Weights`].
pub fn random_weights(rng: &mut Rng, dtype: GgmlType, n_in: usize, n_out: usize) -> (Weights, WeightTensor) {
    let bytes = random_tensor_bytes(rng, dtype, n_in * n_out, 1.0);
    let name = format!("random.{}.{n_in}x{n_out}", dtype.name());
    Weights::single("random", &name, dtype, n_out, n_in, bytes).unwrap()
}

/// The CPU matmul: (y, Σ|w·x|) per output, `[n_tokens × n_out]`, rows dequantized one at a time
/// by the CPU decoder, products accumulated in f64.
pub fn cpu_matmul(weights: &Weights, t: &WeightTensor, x: &[f32], n_tokens: usize) -> (Vec<f64>, Vec<f64>) {
    let (n_in, n_out) = (t.row_len(), t.n_rows());
    let mut y = vec![0.0; n_tokens * n_out];
    let mut scale = vec![0.0; n_tokens * n_out];
    let mut row = vec![0.0f32; n_in];
    for o in 0..n_out {
        weights.dequantize_row(t, o, &mut row).unwrap();
        for tok in 0..n_tokens {
            let xs = &x[tok * n_in..(tok + 1) * n_in];
            let (mut sum, mut abs) = (0.0f64, 0.0f64);
            for (&w, &v) in row.iter().zip(xs) {
                let p = w as f64 * v as f64;
                sum += p;
                abs += p.abs();
            }
            y[tok * n_out + o] = sum;
            scale[tok * n_out + o] = abs;
        }
    }
    (y, scale)
}

/// Matmul tolerances (f32 accumulation on the GPU, in another order than the f64 reference):
/// per element |gpu − cpu| ≤ MATMUL_TERM_REL · Σ_k |w_k · x_k|; per token relative L2 ≤
/// MATMUL_REL_L2 where the output has ≥ REL_L2_MIN_LEN elements.
pub const MATMUL_TERM_REL: f64 = 1e-5;
pub const MATMUL_REL_L2: f64 = 1e-5;
/// Output vectors shorter than this are held to the elementwise bound only.
pub const REL_L2_MIN_LEN: usize = 64;

/// Checks a GPU matmul's output `got` (`[n_tokens × n_out]` then a tail that was poisoned with
/// NaN and must stay so) against [`cpu_matmul`] of `x`; returns the worst relative L2 over tokens
/// (over outputs of ≥ REL_L2_MIN_LEN elements; 0 otherwise).
pub fn check_matmul_output(
    what: &str,
    weights: &Weights,
    t: &WeightTensor,
    x: &[f32],
    n_tokens: usize,
    got: &[f32],
) -> f64 {
    let n_out = t.n_rows();
    assert!(got[n_tokens * n_out..].iter().all(|v| v.is_nan()), "{what}: wrote past the output");
    let (want, scale) = cpu_matmul(weights, t, x, n_tokens);
    let mut worst = 0.0f64;
    for tok in 0..n_tokens {
        let range = tok * n_out..(tok + 1) * n_out;
        let (g, c, s) = (&got[range.clone()], &want[range.clone()], &scale[range]);
        let bad: Vec<String> = (0..n_out)
            .filter(|&o| {
                let err = (g[o] as f64 - c[o]).abs();
                err.is_nan() || err > MATMUL_TERM_REL * s[o]
            })
            .take(8)
            .map(|o| format!("[{tok}][{o}] gpu {} cpu {} (Σ|wx| {})", g[o], c[o], s[o]))
            .collect();
        assert!(bad.is_empty(), "{what}: mismatches (first 8): {}", bad.join(", "));
        let num: f64 = g.iter().zip(c).map(|(&g, &c)| (g as f64 - c).powi(2)).sum();
        let den: f64 = c.iter().map(|c| c * c).sum();
        let rel = if den == 0.0 { num.sqrt() } else { (num / den).sqrt() };
        if n_out >= REL_L2_MIN_LEN {
            assert!(rel <= MATMUL_REL_L2, "{what}: token {tok}: relative L2 {rel:e} > {MATMUL_REL_L2:e}");
            worst = worst.max(rel);
        }
    }
    worst
}

/// The gated activation of `g` in f64 (the CPU formula of the matmul's gated epilogue) and a
/// bound on the f32 GPU's absolute error in it: SiLU through WGSL's exp (3 + 2·|g| ulp of the
/// result); tanh-GELU through tanh, whose error of a few ulp of 1 is absolute, so it is bounded
/// by |g| · 8 ulp (1 + tanh cancels when g is very negative), plus 8 ulp of the result.
pub fn cpu_gate(g: f64, activation: quantscope::model::config::GateActivation) -> (f64, f64) {
    use quantscope::model::config::GateActivation;
    let ulp = f32::EPSILON as f64;
    match activation {
        GateActivation::Silu => {
            let value = g / (1.0 + (-g).exp());
            (value, (3.0 + 2.0 * g.abs()) * ulp * value.abs())
        }
        GateActivation::GeluTanh => {
            let inner = (2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g * g * g);
            let value = 0.5 * g * (1.0 + inner.tanh());
            (value, 8.0 * ulp * (g.abs() + value.abs()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tiny synthetic llamas, Qwen3s and Phi-3s written as GGUF in the tests (tests/native/model_synthetic.rs,
// tests/native/qwen3.rs, tests/native/phi3.rs, tests/web.rs).

/// The shape of a tiny synthetic model.
pub struct TinyShape {
    pub d: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ff: usize,
    pub vocab: usize,
    pub layers: usize,
    pub context: usize,
}

/// GGUF metadata of a tiny `arch` model (llama-style keys) with a byte-level BPE vocabulary:
/// letters a..k, one merge "ab", then filler tokens "w{i}" up to `shape.vocab`.
pub fn tiny_metadata(arch: &str, shape: &TinyShape) -> Vec<(String, V)> {
    let key = |k: &str| format!("{arch}.{k}");
    let mut tokens: Vec<V> = (0..11).map(|i| V::String(((b'a' + i as u8) as char).to_string())).collect();
    tokens.push(V::String("ab".into()));
    tokens.extend((tokens.len()..shape.vocab).map(|i| V::String(format!("w{i}"))));
    vec![
        ("general.architecture".into(), V::String(arch.into())),
        (key("block_count"), V::U32(shape.layers as u32)),
        (key("context_length"), V::U32(shape.context as u32)),
        (key("embedding_length"), V::U32(shape.d as u32)),
        (key("feed_forward_length"), V::U32(shape.ff as u32)),
        (key("attention.head_count"), V::U32(shape.heads as u32)),
        (key("attention.head_count_kv"), V::U32(shape.kv_heads as u32)),
        (key("rope.freq_base"), V::F32(10_000.0)),
        (key("attention.layer_norm_rms_epsilon"), V::F32(1e-5)),
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), V::Array(tokens)),
        ("tokenizer.ggml.token_type".into(), V::Array(vec![V::I32(1); shape.vocab])),
        ("tokenizer.ggml.merges".into(), V::Array(vec![V::String("a b".into())])),
    ]
}

/// The tiny Qwen3's shape: a head_dim of its own (not d / heads, as Qwen3's 128 at widths of
/// 1024 and more), grouped-query attention.
pub const TINY_QWEN3: TinyShape = TinyShape { d: 32, heads: 4, kv_heads: 2, ff: 48, vocab: 20, layers: 2, context: 64 };
pub const TINY_QWEN3_HEAD_DIM: usize = 16;

/// A tiny random Qwen3 as GGUF (f32 weights): the llama tensors plus each block's per-head
/// RMSNorm gains of the queries and keys, drawn far from 1 so that a missing or misplaced norm
/// cannot pass. Without `q_norm_of_block`'s block's query norm when given (a file that lacks it).
pub fn tiny_qwen3_gguf(seed: u64, without_q_norm_of_block: Option<usize>) -> Vec<u8> {
    let TinyShape { heads, kv_heads, layers, .. } = TINY_QWEN3;
    let hd = TINY_QWEN3_HEAD_DIM;
    let mut tensor = random_f32_tensors(seed);
    let mut tensors = tiny_llama_layout(&mut tensor, &TINY_QWEN3, heads * hd, kv_heads * hd);
    for l in 0..layers {
        tensors.push(tensor(format!("blk.{l}.attn_q_norm.weight"), &[hd], 0.2, 3.0));
        tensors.push(tensor(format!("blk.{l}.attn_k_norm.weight"), &[hd], 0.2, 3.0));
    }
    if let Some(l) = without_q_norm_of_block {
        tensors.retain(|t| t.0 != format!("blk.{l}.attn_q_norm.weight"));
    }
    let mut metadata = tiny_metadata("qwen3", &TINY_QWEN3);
    metadata.push(("qwen3.attention.key_length".into(), V::U32(hd as u32)));
    metadata.push(("qwen3.attention.value_length".into(), V::U32(hd as u32)));
    write_gguf(&metadata, &tensors, 32)
}

/// A tiny random Phi-3's shape: grouped-query attention (Phi-3-medium has it; mini does not).
pub const TINY_PHI3: TinyShape = TinyShape { d: 32, heads: 4, kv_heads: 2, ff: 64, vocab: 20, layers: 2, context: 64 };
/// Its sliding window, shorter than its context: the loaded context is clamped to it.
pub const TINY_PHI3_WINDOW: usize = 48;

/// A tiny random Phi-3 as GGUF (f32 weights) in llama.cpp's phi3 layout: each block's q|k|v
/// projections as one `attn_qkv` and its gate|up as one `ffn_up` of 2·ff rows, a separate
/// unembedding, NEOX RoPE over the whole head, a sliding window.
pub fn tiny_phi3_gguf(seed: u64) -> Vec<u8> {
    let TinyShape { d, heads, kv_heads, ff, vocab, layers, .. } = TINY_PHI3;
    let hd = d / heads;
    let mut tensor = random_f32_tensors(seed);
    let mut tensors = vec![
        tensor("token_embd.weight".into(), &[d, vocab], -0.5, 0.5),
        tensor("output_norm.weight".into(), &[d], 0.5, 1.5),
        tensor("output.weight".into(), &[d, vocab], -0.5, 0.5),
    ];
    for l in 0..layers {
        let name = |s: &str| format!("blk.{l}.{s}");
        tensors.extend([
            tensor(name("attn_norm.weight"), &[d], 0.5, 1.5),
            tensor(name("attn_qkv.weight"), &[d, (heads + 2 * kv_heads) * hd], -0.5, 0.5),
            tensor(name("attn_output.weight"), &[d, d], -0.5, 0.5),
            tensor(name("ffn_norm.weight"), &[d], 0.5, 1.5),
            tensor(name("ffn_up.weight"), &[d, 2 * ff], -0.5, 0.5),
            tensor(name("ffn_down.weight"), &[ff, d], -0.5, 0.5),
        ]);
    }
    let mut metadata = tiny_metadata("phi3", &TINY_PHI3);
    metadata.push(("phi3.rope.dimension_count".into(), V::U32(hd as u32)));
    metadata.push(("phi3.attention.sliding_window".into(), V::U32(TINY_PHI3_WINDOW as u32)));
    write_gguf(&metadata, &tensors, 32)
}

/// The tiny llama with RoPE frequency factors: its shape, one factor per pair of a head.
pub const TINY_LLAMA3: TinyShape =
    TinyShape { d: 32, heads: 4, kv_heads: 2, ff: 64, vocab: 20, layers: 2, context: 64 };

/// A tiny random llama as GGUF (f32 weights, tied embeddings) with Llama 3.1's RoPE scaling as
/// llama.cpp stores it: `factors` (one per pair, `d / heads / 2` of them) in `rope_freqs.weight`.
pub fn tiny_llama3_gguf(seed: u64, factors: &[f32]) -> Vec<u8> {
    let TinyShape { d, heads, kv_heads, .. } = TINY_LLAMA3;
    let mut tensors = tiny_llama_layout(&mut random_f32_tensors(seed), &TINY_LLAMA3, d, kv_heads * d / heads);
    tensors.push(("rope_freqs.weight".into(), vec![factors.len() as u64], GgmlType::F32, f32_bytes(factors)));
    write_gguf(&tiny_metadata("llama", &TINY_LLAMA3), &tensors, 32)
}

/// The tiny Gemma 3: six blocks (five local, then the global one), one kv head, a head_dim of its
/// own, a sliding window shorter than the context.
pub const TINY_GEMMA3: TinyShape =
    TinyShape { d: 32, heads: 4, kv_heads: 1, ff: 64, vocab: 20, layers: 6, context: 64 };
pub const TINY_GEMMA3_HEAD_DIM: usize = 16;
pub const TINY_GEMMA3_WINDOW: usize = 48;

/// A tiny random Gemma 3 as GGUF (f32 weights) in llama.cpp's gemma3 layout: the llama tensors,
/// each block's per-head query and key norms and its norms of the attention's and the MLP's
/// outputs (gains drawn far from 1, as llama.cpp's files hold Gemma's 1 + w), tied embeddings.
pub fn tiny_gemma3_gguf(seed: u64) -> Vec<u8> {
    tiny_gemma3_gguf_of(seed, &TINY_GEMMA3)
}

/// [`tiny_gemma3_gguf`] of another shape (a larger vocabulary: embeddings that span bindings).
pub fn tiny_gemma3_gguf_of(seed: u64, shape: &TinyShape) -> Vec<u8> {
    let hd = TINY_GEMMA3_HEAD_DIM;
    let norms =
        [("attn_q_norm", hd), ("attn_k_norm", hd), ("post_attention_norm", shape.d), ("post_ffw_norm", shape.d)];
    let metadata = vec![
        // Gemma 3's global base, far from its local layers' 10000: a layer with the wrong one shows.
        ("gemma3.rope.freq_base".into(), V::F32(1_000_000.0)),
        ("gemma3.attention.sliding_window".into(), V::U32(TINY_GEMMA3_WINDOW as u32)),
    ];
    tiny_gemma_gguf("gemma3", seed, shape, hd, &norms, metadata)
}

/// The tiny Gemma 2: four blocks (local, global, local, global), grouped-query attention, a
/// head_dim of its own (12, not 40 / 4), a sliding window shorter than the context.
pub const TINY_GEMMA2: TinyShape =
    TinyShape { d: 40, heads: 4, kv_heads: 2, ff: 72, vocab: 20, layers: 4, context: 64 };
pub const TINY_GEMMA2_HEAD_DIM: usize = 12;
pub const TINY_GEMMA2_WINDOW: usize = 48;
/// Its attention and final-logit soft caps: low enough to bend the tiny model's scores and logits
/// (a forward without them misses the oracle by far more than the tolerance).
pub const TINY_GEMMA2_SOFTCAPS: (f32, f32) = (2.0, 3.0);

/// A tiny random Gemma 2 as GGUF (f32 weights) in llama.cpp's gemma2 layout: the llama tensors
/// and each block's norms of the attention's and the MLP's outputs (gains far from 1, as
/// llama.cpp's files hold Gemma's 1 + w), no query or key norms, tied embeddings, the soft caps
/// [`TINY_GEMMA2_SOFTCAPS`]. Of `shape` (46 blocks: what llama.cpp takes for the 27B model, whose
/// queries it scales by 1/√(width/heads)).
pub fn tiny_gemma2_gguf(seed: u64, shape: &TinyShape) -> Vec<u8> {
    let norms = [("post_attention_norm", shape.d), ("post_ffw_norm", shape.d)];
    let (attention_cap, final_cap) = TINY_GEMMA2_SOFTCAPS;
    let metadata = vec![
        ("gemma2.attn_logit_softcapping".into(), V::F32(attention_cap)),
        ("gemma2.final_logit_softcapping".into(), V::F32(final_cap)),
        ("gemma2.attention.sliding_window".into(), V::U32(TINY_GEMMA2_WINDOW as u32)),
    ];
    tiny_gemma_gguf("gemma2", seed, shape, TINY_GEMMA2_HEAD_DIM, &norms, metadata)
}

/// A tiny random Gemma (`arch`) of `shape` with heads `hd` wide: the llama tensors plus each
/// block's `norms` (name, length), drawn in [0.2, 3); [`tiny_metadata`] with the head sizes and
/// `metadata` (which replaces a key it shares).
fn tiny_gemma_gguf(
    arch: &str,
    seed: u64,
    shape: &TinyShape,
    hd: usize,
    norms: &[(&str, usize)],
    metadata: Vec<(String, V)>,
) -> Vec<u8> {
    let mut tensor = random_f32_tensors(seed);
    let mut tensors = tiny_llama_layout(&mut tensor, shape, shape.heads * hd, shape.kv_heads * hd);
    for l in 0..shape.layers {
        for &(name, len) in norms {
            tensors.push(tensor(format!("blk.{l}.{name}.weight"), &[len], 0.2, 3.0));
        }
    }
    let mut all = tiny_metadata(arch, shape);
    all.retain(|(key, _)| !metadata.iter().any(|(replaced, _)| replaced == key));
    all.extend(metadata);
    all.push((format!("{arch}.attention.key_length"), V::U32(hd as u32)));
    all.push((format!("{arch}.attention.value_length"), V::U32(hd as u32)));
    write_gguf(&all, &tensors, 32)
}

/// The tiny GPT-2: heads 12 wide (not a power of two), the MLP 4·d wide as GPT-2's, a context
/// (the position table's rows) shorter than the other tiny models'.
pub const TINY_GPT2: TinyShape = TinyShape { d: 48, heads: 4, kv_heads: 4, ff: 192, vocab: 20, layers: 2, context: 40 };

/// A tiny random GPT-2 as GGUF (f32 weights) in llama.cpp's gpt2 layout: learned positions
/// (`position_embd`, one row per position), LayerNorms with biases, each block's q|k|v as one
/// `attn_qkv` with one fused bias, a bias on every linear layer, no gate, tied embeddings.
/// Norm biases and positions are drawn large enough that dropping any of them shows.
pub fn tiny_gpt2_gguf(seed: u64) -> Vec<u8> {
    let TinyShape { d, ff, vocab, layers, context, .. } = TINY_GPT2;
    let mut tensor = random_f32_tensors(seed);
    let mut tensors = vec![
        tensor("token_embd.weight".into(), &[d, vocab], -0.5, 0.5),
        tensor("position_embd.weight".into(), &[d, context], -0.5, 0.5),
        tensor("output_norm.weight".into(), &[d], 0.5, 1.5),
        tensor("output_norm.bias".into(), &[d], -0.5, 0.5),
    ];
    for l in 0..layers {
        let name = |s: &str| format!("blk.{l}.{s}");
        tensors.extend([
            tensor(name("attn_norm.weight"), &[d], 0.5, 1.5),
            tensor(name("attn_norm.bias"), &[d], -0.5, 0.5),
            tensor(name("attn_qkv.weight"), &[d, 3 * d], -0.3, 0.3),
            tensor(name("attn_qkv.bias"), &[3 * d], -0.5, 0.5),
            tensor(name("attn_output.weight"), &[d, d], -0.3, 0.3),
            tensor(name("attn_output.bias"), &[d], -0.5, 0.5),
            tensor(name("ffn_norm.weight"), &[d], 0.5, 1.5),
            tensor(name("ffn_norm.bias"), &[d], -0.5, 0.5),
            tensor(name("ffn_up.weight"), &[d, ff], -0.3, 0.3),
            tensor(name("ffn_up.bias"), &[ff], -0.5, 0.5),
            tensor(name("ffn_down.weight"), &[ff, d], -0.3, 0.3),
            tensor(name("ffn_down.bias"), &[d], -0.5, 0.5),
        ]);
    }
    let mut metadata = tiny_metadata("gpt2", &TINY_GPT2);
    // llama.cpp's gpt2 files: no kv head count, no RoPE, LayerNorm's own epsilon key.
    metadata.retain(|(key, _)| {
        !matches!(
            key.as_str(),
            "gpt2.attention.head_count_kv" | "gpt2.rope.freq_base" | "gpt2.attention.layer_norm_rms_epsilon"
        )
    });
    metadata.push(("gpt2.attention.layer_norm_epsilon".into(), V::F32(1e-5)));
    write_gguf(&metadata, &tensors, 32)
}

type GgufTensor = (String, Vec<u64>, GgmlType, Vec<u8>);

/// The tensors of a tiny random model of the llama layout (tied embeddings): the embeddings, the
/// final norm, and each block's norms and projections, queries `q` wide and keys and values `kv`.
fn tiny_llama_layout(
    tensor: &mut impl FnMut(String, &[usize], f32, f32) -> GgufTensor,
    shape: &TinyShape,
    q: usize,
    kv: usize,
) -> Vec<GgufTensor> {
    let TinyShape { d, ff, vocab, layers, .. } = *shape;
    let mut tensors = vec![
        tensor("token_embd.weight".into(), &[d, vocab], -0.5, 0.5),
        tensor("output_norm.weight".into(), &[d], 0.5, 1.5),
    ];
    for l in 0..layers {
        let name = |s: &str| format!("blk.{l}.{s}");
        tensors.extend([
            tensor(name("attn_norm.weight"), &[d], 0.5, 1.5),
            tensor(name("attn_q.weight"), &[d, q], -0.5, 0.5),
            tensor(name("attn_k.weight"), &[d, kv], -0.5, 0.5),
            tensor(name("attn_v.weight"), &[d, kv], -0.5, 0.5),
            tensor(name("attn_output.weight"), &[q, d], -0.5, 0.5),
            tensor(name("ffn_norm.weight"), &[d], 0.5, 1.5),
            tensor(name("ffn_gate.weight"), &[d, ff], -0.5, 0.5),
            tensor(name("ffn_up.weight"), &[d, ff], -0.5, 0.5),
            tensor(name("ffn_down.weight"), &[ff, d], -0.5, 0.5),
        ]);
    }
    tensors
}

/// A maker of named f32 tensors (GGUF dims, innermost first) with values uniform in [lo, hi).
fn random_f32_tensors(seed: u64) -> impl FnMut(String, &[usize], f32, f32) -> GgufTensor {
    let mut rng = Rng(seed);
    move |name, dims, lo, hi| {
        let values = rng.vec(dims.iter().product(), lo, hi);
        (name, dims.iter().map(|&d| d as u64).collect(), GgmlType::F32, f32_bytes(&values))
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
