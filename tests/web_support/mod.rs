//! Shared by the browser tests (`tests/web.rs`): one WebGPU context per page, deterministic
//! random data, poisoned outputs, comparisons that list the first mismatches, the CPU formulas
//! the kernels are checked against, and a tiny synthetic llama written as GGUF in memory.
//!
//! This mirrors `tests/gpu_common/mod.rs` (native, lavapipe), but everything that waits is async:
//! in the browser nothing may block the one thread, so there is no `pollster` and no `OnceLock`
//! initialised by a blocking call.
#![allow(dead_code)]

use std::cell::Cell;

use half::f16;
use quantscope::formats::ggml::GgmlType;
use quantscope::formats::gguf::{write_gguf, MetadataValue as V};
use quantscope::gpu::GpuContext;
use quantscope::model::weights::{WeightTensor, Weights};

thread_local! {
    /// wgpu's browser types are neither Send nor Sync: one context per (single-threaded) page,
    /// leaked so every test can hold a `&'static` to it.
    static CTX: Cell<Option<&'static GpuContext>> = const { Cell::new(None) };
}

/// The page's WebGPU device, created on first use. A missing adapter fails the test: headless
/// Chromium needs `--enable-unsafe-webgpu` (see webdriver.json).
pub async fn ctx() -> &'static GpuContext {
    if let Some(ctx) = CTX.with(Cell::get) {
        return ctx;
    }
    let ctx = GpuContext::new()
        .await
        .unwrap_or_else(|e| panic!("{e}: is Chromium running with --enable-unsafe-webgpu (webdriver.json)?"));
    let ctx: &'static GpuContext = Box::leak(Box::new(ctx));
    // Two tests racing here would each make a device; the runner awaits tests one at a time.
    CTX.with(|cell| cell.set(Some(ctx)));
    ctx
}

/// Milliseconds since the page started (performance.now()), for timings in the log.
pub fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            js_sys::Function::from(now).call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// `navigator.userAgent` (empty where there is none, e.g. in Node).
pub fn user_agent() -> String {
    let navigator =
        js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED);
    if navigator.is_undefined() {
        return String::new();
    }
    js_sys::Reflect::get(&navigator, &"userAgent".into()).ok().and_then(|v| v.as_string()).unwrap_or_default()
}

/// Deterministic values in [lo, hi): xorshift64*, no rand crate needed (same as gpu_common).
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

/// A storage buffer filled with NaN, so an element a kernel forgot to write fails the comparison.
pub fn poisoned(ctx: &GpuContext, label: &str, n: usize) -> wgpu::Buffer {
    ctx.upload_f32(label, &vec![f32::NAN; n]).unwrap()
}

pub async fn read(ctx: &GpuContext, buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    ctx.read_f32(buffer, n, "test output").await.unwrap()
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
// CPU formulas (the same as the native GPU tests, which mirror `model::reference`).

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

/// The reference's RopeTable: angles in f64, cos/sin rounded to f32 once, rotation in f32.
pub fn cpu_rope(x: &mut [f32], n_heads: usize, hd: usize, offset: usize, base: f32, interleaved: bool) {
    let half = hd / 2;
    for (t, x_t) in x.chunks_exact_mut(n_heads * hd).enumerate() {
        let p = (offset + t) as f64;
        for head in x_t.chunks_exact_mut(hd) {
            for i in 0..half {
                let angle = p * (base as f64).powf(-2.0 * i as f64 / hd as f64);
                let (cos, sin) = (angle.cos() as f32, angle.sin() as f32);
                let (a, b) = if interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

/// Causal GQA attention: queries i at positions past + i over keys 0..=past + i. Returns
/// (out `[n × n_heads·hd]`, probs `[n_heads × n × (past + n)]`).
#[allow(clippy::too_many_arguments)]
pub fn cpu_attention(
    n_heads: usize,
    n_kv_heads: usize,
    hd: usize,
    n: usize,
    past: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let group = n_heads / n_kv_heads;
    let (q_dim, kv_dim) = (n_heads * hd, n_kv_heads * hd);
    let keys = past + n;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0.0f32; n * q_dim];
    let mut probs = vec![0.0f32; n_heads * n * keys];
    let mut p = vec![0.0f32; keys];
    for h in 0..n_heads {
        let kv_h = h / group;
        for i in 0..n {
            let last = past + i;
            let q_i = &q[i * q_dim + h * hd..][..hd];
            for j in 0..=last {
                p[j] = dot(q_i, &k[j * kv_dim + kv_h * hd..][..hd]) * scale;
            }
            let max = p[..=last].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for pj in &mut p[..=last] {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let o = &mut out[i * q_dim + h * hd..][..hd];
            for j in 0..=last {
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

// ---------------------------------------------------------------------------------------------
// Random weights in stored formats.

/// Byte offsets of the f16 scale fields inside one block (ggml-common.h).
fn f16_fields(dtype: GgmlType) -> &'static [usize] {
    match dtype {
        GgmlType::Q4_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Raw bytes of `n` values of `dtype`: random floats for F32/F16; random bytes with finite f16
/// scales of magnitude below `scale` (sometimes zero or subnormal) for quantized blocks.
pub fn random_tensor_bytes(rng: &mut Rng, dtype: GgmlType, n: usize, scale: f32) -> Vec<u8> {
    match dtype {
        GgmlType::F32 => rng.vec(n, -1.0, 1.0).iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => rng.vec(n, -1.0, 1.0).iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
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

/// A random `n_out × n_in` matrix of `dtype` as a one-tensor [`Weights`].
pub fn random_weights(rng: &mut Rng, dtype: GgmlType, n_in: usize, n_out: usize) -> (Weights, WeightTensor) {
    let bytes = random_tensor_bytes(rng, dtype, n_in * n_out, 1.0);
    let t = WeightTensor {
        name: format!("random.{}.{n_in}x{n_out}", dtype.name()),
        dtype,
        dims: vec![n_in as u64, n_out as u64],
        start: 0,
        len: bytes.len(),
    };
    let weights = Weights::new(bytes, "random", vec![t.clone()]).unwrap();
    (weights, t)
}

/// The CPU matmul: (y, Σ|w·x|) per output, `[n_tokens × n_out]`, rows dequantized by the CPU
/// decoder, products accumulated in f64.
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

// ---------------------------------------------------------------------------------------------
// A tiny llama as GGUF bytes (the same shape of file as tests/model_synthetic.rs builds, with
// quantized matrices so the forward exercises the Q8_0 and Q4_1 decoders too).

pub const D: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = D / HEADS;
pub const FF: usize = 96;
/// Letters a..k, one merge "ab", then filler tokens up to an odd vocabulary size.
pub const VOCAB: usize = 77;
pub const LAYERS: usize = 2;
pub const CONTEXT: usize = 64;

type Tensor = (String, Vec<u64>, GgmlType, Vec<u8>);

fn metadata() -> Vec<(String, V)> {
    let key = |k: &str| format!("llama.{k}");
    let mut tokens: Vec<V> = (0..11).map(|i| V::String(((b'a' + i as u8) as char).to_string())).collect();
    tokens.push(V::String("ab".into()));
    tokens.extend((tokens.len()..VOCAB).map(|i| V::String(format!("w{i}"))));
    vec![
        ("general.architecture".into(), V::String("llama".into())),
        (key("block_count"), V::U32(LAYERS as u32)),
        (key("context_length"), V::U32(CONTEXT as u32)),
        (key("embedding_length"), V::U32(D as u32)),
        (key("feed_forward_length"), V::U32(FF as u32)),
        (key("attention.head_count"), V::U32(HEADS as u32)),
        (key("attention.head_count_kv"), V::U32(KV_HEADS as u32)),
        (key("rope.freq_base"), V::F32(10_000.0)),
        (key("attention.layer_norm_rms_epsilon"), V::F32(1e-5)),
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), V::Array(tokens)),
        ("tokenizer.ggml.token_type".into(), V::Array(vec![V::I32(1); VOCAB])),
        ("tokenizer.ggml.merges".into(), V::Array(vec![V::String("a b".into())])),
    ]
}

/// GGUF bytes of the tiny llama: tied Q8_0 embeddings, F32 norms, attention Q/K in Q8_0, V and
/// O in F32, FFN gate/up in Q4_1 and down in Q8_0. Quantized scales are kept small so values
/// stay O(1) like a trained model's. Random rows need no Q/K permutation: the test compares the
/// GPU with the CPU reference on the same file, both of which apply llama's interleaved RoPE.
pub fn tiny_llama_gguf(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut tensor = |name: String, dims: [usize; 2], dtype: GgmlType, scale: f32| -> Tensor {
        let bytes = random_tensor_bytes(&mut rng, dtype, dims[0] * dims[1], scale);
        (name, dims.iter().map(|&d| d as u64).collect(), dtype, bytes)
    };
    let mut gains = Rng(seed ^ 0x9E37_79B9);
    let mut norm = |name: String| -> Tensor {
        let values: Vec<f32> = gains.vec(D, 0.5, 1.5);
        (name, vec![D as u64], GgmlType::F32, bytemuck::cast_slice(&values).to_vec())
    };
    let kv = HEAD_DIM * KV_HEADS;
    let mut t =
        vec![tensor("token_embd.weight".into(), [D, VOCAB], GgmlType::Q8_0, 0.02), norm("output_norm.weight".into())];
    for l in 0..LAYERS {
        let name = |s: &str| format!("blk.{l}.{s}");
        t.push(norm(name("attn_norm.weight")));
        t.push(tensor(name("attn_q.weight"), [D, D], GgmlType::Q8_0, 0.004));
        t.push(tensor(name("attn_k.weight"), [D, kv], GgmlType::Q8_0, 0.004));
        t.push(tensor(name("attn_v.weight"), [D, kv], GgmlType::F32, 1.0));
        t.push(tensor(name("attn_output.weight"), [D, D], GgmlType::F32, 1.0));
        t.push(norm(name("ffn_norm.weight")));
        t.push(tensor(name("ffn_gate.weight"), [D, FF], GgmlType::Q4_1, 0.05));
        t.push(tensor(name("ffn_up.weight"), [D, FF], GgmlType::Q4_1, 0.05));
        t.push(tensor(name("ffn_down.weight"), [FF, D], GgmlType::Q8_0, 0.004));
    }
    write_gguf(&metadata(), &t, 32)
}

/// `navigator.gpu.requestAdapter()`'s `info` as "vendor / architecture / description" (empty if
/// there is no adapter): wgpu does not fill its AdapterInfo from the browser.
pub async fn browser_adapter_info() -> String {
    use wasm_bindgen::{JsCast, JsValue};
    let get = |v: &JsValue, k: &str| js_sys::Reflect::get(v, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    if gpu.is_undefined() {
        return String::new();
    }
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<js_sys::Function>() else { return String::new() };
    let Ok(promise) = request.call0(&gpu).and_then(|p| p.dyn_into::<js_sys::Promise>()) else { return String::new() };
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.unwrap_or(JsValue::NULL);
    if adapter.is_null() || adapter.is_undefined() {
        return String::new();
    }
    let info = get(&adapter, "info");
    let field = |k: &str| get(&info, k).as_string().unwrap_or_default();
    format!(
        "vendor {:?}, architecture {:?}, description {:?}",
        field("vendor"),
        field("architecture"),
        field("description")
    )
}
