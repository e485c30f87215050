//! Shared by the browser tests (`tests/web.rs`): one WebGPU context per page, deterministic
//! random data, poisoned outputs, comparisons that list the first mismatches, the CPU formulas
//! the kernels are checked against, and a tiny synthetic llama written as GGUF in memory.
//!
//! This mirrors `tests/native/gpu_common/mod.rs` (native, lavapipe), but everything that waits is async:
//! in the browser nothing may block the one thread, so there is no `pollster` and no `OnceLock`
//! initialised by a blocking call. What does not wait (random data, comparisons, CPU formulas,
//! random weights) is `kernel_reference`, shared with the native tests and re-exported here.
#![allow(dead_code)]

#[path = "../kernel_reference/mod.rs"]
mod kernel_reference;

use std::cell::Cell;

pub use kernel_reference::*;
use quantscope::formats::ggml::GgmlType;
use quantscope::formats::gguf::{write_gguf, MetadataValue as V};
use quantscope::gpu::GpuContext;

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

/// A storage buffer filled with NaN, so an element a kernel forgot to write fails the comparison.
pub fn poisoned(ctx: &GpuContext, label: &str, n: usize) -> wgpu::Buffer {
    ctx.upload_f32(label, &vec![f32::NAN; n]).unwrap()
}

pub async fn read(ctx: &GpuContext, buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    ctx.read_f32(buffer, n, "test output").await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// A tiny llama as GGUF bytes (the same shape of file as tests/native/model_synthetic.rs builds, with
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
    let shape =
        TinyShape { d: D, heads: HEADS, kv_heads: KV_HEADS, ff: FF, vocab: VOCAB, layers: LAYERS, context: CONTEXT };
    tiny_metadata("llama", &shape)
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

/// `file` as the page hands a model file to the engine: a JS `read(offset, length)` returning a
/// `Uint8Array`. The engine keeps calling it for CPU work, so it lives as long as the page.
pub fn gapped_file_reader(file: relocated::GappedFile) -> js_sys::Function {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let read = Closure::<dyn Fn(f64, f64) -> js_sys::Uint8Array>::new(move |offset: f64, length: f64| {
        js_sys::Uint8Array::from(&file.read(offset as u64, length as usize)[..])
    });
    read.into_js_value().unchecked_into()
}
