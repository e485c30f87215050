//! The browser facade: what `www/worker.js` calls, through wasm-bindgen.
//!
//! Kept deliberately thin: it converts between JS values and the engine's types and nothing
//! else, so the page and the CLI exercise the same code. Conventions at this boundary:
//!
//! - Bulk bytes cross as typed arrays (`Uint8Array` -> `Vec<u8>`, one copy into wasm memory);
//!   serde (serde-wasm-bindgen) only carries small objects (summary, prediction).
//! - Every failure becomes a `JsError` whose message is the engine error's `Display` text, which
//!   names the file, offset or tensor. Nothing here unwraps.
//! - Loading is an async constructor ([`Playground::load`]): a file that fails to load leaves any
//!   `Playground` that JS already holds untouched, so the page keeps its previous model.
//! - The GPU is optional. `load` parses on the CPU, then acquires WebGPU and uploads the weights;
//!   when there is no adapter (or the upload fails) the model still loads and every call runs on
//!   the CPU reference, and [`Playground::device_info`] says why. On a software adapter
//!   [`Playground::choose_forward`] may send the runs the CPU reference computes exactly (the
//!   weights as loaded) to the CPU, when it measured the CPU faster.
//! - Async methods take `&self` and keep no state between calls (each call makes its own KV
//!   cache), so JS must only keep the object alive until their promises settle.
//! - A panic is a bug, not an input error. It aborts the wasm instance (wasm32 has no unwinding),
//!   so the panic hook installed at start-up records the message where [`take_panic_message`]
//!   can hand it to the worker, which then reports the crash instead of a bare
//!   "RuntimeError: unreachable".

mod runtime_quant;
mod views;

use std::sync::Mutex;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::analysis::eval::{EvalAccumulator, EVAL_TEXT};
use crate::model::window::{windows, EvalOptions};
use crate::error::ModelError;
use crate::gpu::context::AdapterSummary;
use crate::gpu::forward::{Capture, GpuModel, KvCache};
use crate::gpu::requant::gpu_quantizable;
use crate::gpu::weights::GpuWeight;
use crate::gpu::GpuContext;
use crate::model::generate::{Continuation, CpuBackend, NextTokenLogits, Step};
use crate::model::sampling::{Sampler, SamplingParams};
use crate::model::{Model, Progress, TopToken, Weights};
use crate::quant::apply::{gguf_fallback, quantize_tensor};
use crate::quant::recipe::Assignment;
use crate::quant::{quantize, Encoding, Recipe, Scheme};

/// The message of the last panic, kept for [`take_panic_message`].
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs once when the wasm module is instantiated: route panics to the console and to
/// [`LAST_PANIC`].
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("quantscope panicked: {info}");
        web_sys::console::error_1(&JsValue::from_str(&message));
        if let Ok(mut slot) = LAST_PANIC.lock() {
            *slot = Some(message);
        }
    }));
}

/// The message of the last panic, if any (and clears it). After a panic the instance must not
/// be used for anything else: the worker that owns it calls this once, reports, and is replaced.
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|mut slot| slot.take())
}

/// The crate version, for the page footer and bug reports.
#[wasm_bindgen(js_name = engineVersion)]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Calls the JS progress callback, but not for every tiny step: at most about 200 calls per
/// stage (each call crosses into JS and, in the worker, posts a message to the page).
struct ProgressThrottle<'a> {
    callback: &'a js_sys::Function,
    stage: &'static str,
    last_done: u64,
}

impl<'a> ProgressThrottle<'a> {
    const STEPS_PER_STAGE: u64 = 200;

    fn new(callback: &'a js_sys::Function) -> Self {
        Self { callback, stage: "", last_done: 0 }
    }

    fn report(&mut self, p: Progress) {
        let new_stage = p.stage != self.stage;
        let step = (p.total / Self::STEPS_PER_STAGE).max(1);
        let finished = p.done >= p.total;
        if !new_stage && !finished && p.done < self.last_done.saturating_add(step) {
            return;
        }
        self.stage = p.stage;
        self.last_done = p.done;
        // u64 -> f64 is exact below 2^53, far above any byte or tensor count here.
        let result = self.callback.call3(
            &JsValue::NULL,
            &JsValue::from_str(p.stage),
            &JsValue::from_f64(p.done as f64),
            &JsValue::from_f64(p.total as f64),
        );
        if let Err(e) = result {
            // A broken progress callback must not fail the load: log it and go on.
            web_sys::console::warn_2(&JsValue::from_str("quantscope: progress callback threw"), &e);
        }
    }
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    // Maps as plain objects so the page can read them with `.field`; u64 counts stay Numbers.
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    value.serialize(&serializer).map_err(|e| JsError::new(&format!("cannot convert the result for JavaScript: {e}")))
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Milliseconds since the epoch (`std::time::Instant` panics on wasm32).
fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Lets the JS event loop run (a `setTimeout(0)` task), so that messages such as "stop" reach
/// the worker between CPU steps, which otherwise never yield.
async fn yield_to_event_loop() {
    let global = js_sys::global();
    let Ok(set_timeout) = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout")) else { return };
    let Ok(set_timeout) = set_timeout.dyn_into::<js_sys::Function>() else { return };
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = set_timeout.call2(&global, &resolve, &JsValue::from_f64(0.0));
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Why WebGPU cannot be used here before asking wgpu, in words: wgpu's own error for a missing
/// `navigator.gpu` is a generic "no adapter".
fn browser_gpu_missing() -> Option<String> {
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &JsValue::from_str("navigator")).ok()?;
    if navigator.is_undefined() {
        return Some("this context has no navigator".into());
    }
    match js_sys::Reflect::get(&navigator, &JsValue::from_str("gpu")) {
        Ok(gpu) if !gpu.is_undefined() && !gpu.is_null() => None,
        _ => Some("this browser does not expose navigator.gpu (WebGPU is not supported or is disabled)".into()),
    }
}

/// The GPU half of a loaded model.
struct Gpu {
    ctx: GpuContext,
    model: GpuModel,
}

/// How long each part of [`Playground::load`] took, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LoadTimings {
    parse_ms: f64,
    adapter_ms: f64,
    upload_ms: f64,
}

/// What [`Playground::device_info`] returns.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInfo<'a> {
    /// "webgpu" or "cpu": whether the model is on the GPU (and the GPU-only features with it);
    /// `forward` says where the runs the CPU reference computes exactly go.
    backend: &'static str,
    adapter: Option<&'a AdapterSummary>,
    /// Why the GPU is not used (only when `backend` is "cpu").
    reason: Option<&'a str>,
    /// Bytes of weights on the GPU.
    gpu_bytes: u64,
    timings: LoadTimings,
    /// Where the runs the CPU reference computes exactly go (`chooseForward`); null before it.
    forward: Option<&'a ForwardChoice>,
}

/// A first GPU run more than this many times as long as the CPU's decides for the CPU without a
/// second: the GPU could only win if compiling the pipelines took over 90% of its first run.
/// Each software-adapter run costs seconds (a minute on a loaded 2-core machine).
const CLEAR_MARGIN: f64 = 10.0;

/// The prompt [`Playground::choose_forward`] times both backends on: short and fixed, so that the
/// times compare across loads (the page's default prompt, 5 tokens with SmolLM2's tokenizer).
const MEASURE_PROMPT: &str = "The capital of France is";

/// Where the runs that the CPU reference computes exactly go (the weights as loaded, no
/// intervention, no run-time quantization: the reference side of `predictBoth` and `evaluate`,
/// the reference continuation, and the model under study while it is the model as loaded), and
/// why. Everything else (re-quantized weights, interventions, run-time quantizers, probes) stays
/// on the GPU, where it lives. What `chooseForward` returns and `deviceInfo().forward` holds.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ForwardChoice {
    /// "cpu" or "webgpu".
    backend: &'static str,
    /// Why, in words.
    reason: String,
    /// The times behind the choice; null when nothing was measured.
    measured: Option<ForwardTimes>,
}

/// One forward of [`MEASURE_PROMPT`] on each backend, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ForwardTimes {
    prompt_tokens: usize,
    /// The CPU reference's second run (the first lets the browser compile the wasm's hot code).
    cpu_ms: f64,
    /// WebGPU's first run, pipeline compilation included.
    gpu_first_ms: f64,
    /// WebGPU's second run; null when the first run decided it (not run then): it beat the CPU, or
    /// took more than [`CLEAR_MARGIN`] times as long.
    gpu_ms: Option<f64>,
}

impl ForwardChoice {
    fn fixed(backend: &'static str, reason: impl Into<String>) -> Self {
        ForwardChoice { backend, reason: reason.into(), measured: None }
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WebPrediction {
    model: String,
    prompt: String,
    tokens: Vec<u32>,
    top: Vec<TopToken>,
    backend: &'static str,
    /// Time of the forward pass (tokenizing to logits), milliseconds.
    ms: f64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WebGeneration {
    prompt_tokens: Vec<u32>,
    tokens: Vec<u32>,
    /// The continuation only (not the prompt), decoded as a whole.
    text: String,
    /// "max-tokens", "eos" or "stopped" (the callback returned `false`).
    stop: &'static str,
    backend: &'static str,
    /// Generated tokens per second, from the prompt on (prefill included), like the CLI.
    tokens_per_second: f64,
    /// The prompt's forward pass (prefill), then the whole run, milliseconds.
    prompt_ms: f64,
    ms: f64,
}

/// Uploads a CPU-quantized matrix: GGUF blocks in their GPU layout, codebooks as codebooks, and a
/// Hadamard-rotated scheme as its f32 values (the GPU does not rotate activations yet).
fn upload_quantized_matrix(
    ctx: &GpuContext,
    name: &str,
    q: crate::quant::QuantizedTensor,
) -> Result<GpuWeight, crate::error::GpuError> {
    let single = |dtype, bytes: Vec<u8>| -> Result<GpuWeight, crate::error::GpuError> {
        let (weights, t) = Weights::single("quantized", name, dtype, q.rows, q.cols, bytes)
            .map_err(|e| crate::error::GpuError::Shape { kernel: "upload", message: e.to_string() })?;
        GpuWeight::upload(ctx, &weights, &t)
    };
    match q.encoding {
        Encoding::Codebook(cb) => GpuWeight::upload_codebook(ctx, name, &cb),
        Encoding::Ggml { dtype, bytes } if GpuWeight::is_supported(dtype) => single(dtype, bytes),
        _ => single(crate::formats::ggml::GgmlType::F32, q.values.iter().flat_map(|v| v.to_le_bytes()).collect()),
    }
}

/// One sequence on either backend: the async counterpart of
/// [`crate::model::generate::NextTokenLogits`] (GPU steps are async in the browser).
enum Session<'a> {
    Gpu { gpu: &'a Gpu, cache: KvCache, capture: Capture },
    Cpu(CpuBackend<'a>),
}

impl<'a> Session<'a> {
    /// `as_loaded` runs the reference (the weights as loaded, no intervention) instead of the
    /// model under study; the CPU backend only ever has the weights as loaded, and takes the runs
    /// [`Playground::runs_on_cpu`] gives it.
    fn new(playground: &'a Playground, capacity: usize, as_loaded: bool) -> Result<Self, ModelError> {
        Ok(match &playground.gpu {
            Some(gpu) if !playground.runs_on_cpu(as_loaded) => {
                let capacity = u32::try_from(capacity).unwrap_or(u32::MAX);
                Session::Gpu {
                    gpu,
                    cache: gpu.model.new_cache(&gpu.ctx, capacity)?,
                    capture: playground.capture(as_loaded),
                }
            }
            _ => Session::Cpu(CpuBackend::new(&playground.model)),
        })
    }

    fn backend(&self) -> &'static str {
        match self {
            Session::Gpu { .. } => "webgpu",
            Session::Cpu(_) => "cpu",
        }
    }

    /// Appends `tokens` and returns the logits after the last one.
    async fn advance(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        match self {
            Session::Gpu { gpu, cache, capture } => Ok(gpu.model.step(&gpu.ctx, cache, tokens, capture).await?.logits),
            Session::Cpu(cpu) => cpu.advance(tokens),
        }
    }
}

/// One loaded model, owned by the worker: the CPU model, and its GPU copy when WebGPU works.
#[wasm_bindgen]
pub struct Playground {
    model: Model,
    gpu: Option<Gpu>,
    /// Why `gpu` is `None`.
    gpu_reason: Option<String>,
    timings: LoadTimings,
    /// What each matrix on the GPU holds now (absent: as loaded), so a recipe change only
    /// re-quantizes the matrices whose scheme changed.
    applied: std::collections::HashMap<String, (Scheme, TensorCost)>,
    /// The intervention every run of the model under study uses (not the reference runs).
    intervention: Option<std::sync::Arc<crate::gpu::kernels::intervene::GpuIntervention>>,
    /// The run-time quantization of the model under study on the GPU (`setRuntimeQuant`).
    runtime: Option<std::sync::Arc<crate::gpu::kernels::runtime_quant::GpuRuntimeQuant>>,
    /// A calibrated method whose rewritten weights answer the quantized side of `predictBoth`
    /// and `evaluate` on the CPU reference (`setRuntimeQuant`).
    method_run: Option<runtime_quant::MethodRun>,
    /// Where the runs the CPU reference computes exactly go (`chooseForward`; None: the GPU when
    /// there is one).
    forward: Option<ForwardChoice>,
}

/// Stored bits of one quantized matrix and where it was quantized.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TensorCost {
    bits: u64,
    on_gpu: bool,
}

/// What [`Playground::apply_recipe`] returns.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Applied {
    /// Matrices re-quantized by this call, on the GPU and on the CPU (then uploaded).
    requantized_on_gpu: usize,
    requantized_on_cpu: usize,
    /// Matrices put back as loaded by this call.
    restored: usize,
    /// Matrices left as they were (same scheme as before).
    unchanged: usize,
    /// Stored bits of the whole model / its weights, and bytes.
    bits_per_weight: f64,
    bytes: u64,
    /// Per matrix: name, canonical scheme (or "keep"), bits per weight, where it was quantized.
    tensors: Vec<AppliedTensor>,
    ms: f64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AppliedTensor {
    name: String,
    scheme: String,
    bits_per_weight: f64,
    on_gpu: bool,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemeInfo {
    name: String,
    /// Re-quantized on the GPU (else by the CPU reference, then uploaded).
    gpu: bool,
    /// An exportable GGUF type.
    gguf: bool,
}

/// Every family's example scheme from the catalog: `[{name, gpu, gguf}]`.
#[wasm_bindgen]
pub fn schemes() -> Result<JsValue, JsError> {
    let list: Vec<SchemeInfo> = Scheme::catalog()
        .iter()
        .map(|s| SchemeInfo { name: s.to_string(), gpu: gpu_quantizable(s), gguf: s.ggml_type().is_some() })
        .collect();
    to_js(&list)
}

/// The canonical name of a scheme name (`"int4"` → `"int4-ch-sym"`), or an `Error` saying what is
/// wrong with it.
#[wasm_bindgen(js_name = parseScheme)]
pub fn parse_scheme(name: &str) -> Result<String, JsError> {
    name.parse::<Scheme>().map(|s| s.to_string()).map_err(js_error)
}

/// Stored bits of `scheme` on a `rows × cols` matrix. Every scheme's cost is affine in the number
/// of rows (per-row and per-group parts, plus a per-tensor constant), so two small quantizations
/// give it exactly without quantizing the matrix itself.
fn storage_bits(scheme: &Scheme, rows: usize, cols: usize) -> Result<u64, JsError> {
    let sample = |n: usize| -> Result<u64, JsError> {
        let data: Vec<f32> = (0..n * cols).map(|i| ((i * 7919 % 1009) as f32 / 504.5 - 1.0) * 0.02).collect();
        Ok(quantize(scheme, "sample", n, cols, &data).map_err(js_error)?.storage_bits)
    };
    let (one, two) = (sample(1)?, sample(2)?);
    Ok((two - one) * rows as u64 + (2 * one - two))
}

impl Playground {
    /// The GPU half of loading a parsed model: acquires WebGPU and uploads the weights when
    /// `use_gpu`. Never fails: without a usable GPU the model runs on the CPU and `gpu_reason`
    /// says why.
    async fn on_device(model: Model, parse_ms: f64, throttle: &mut ProgressThrottle<'_>, use_gpu: bool) -> Playground {
        let mut timings = LoadTimings { parse_ms, ..Default::default() };
        let (gpu, gpu_reason) = if !use_gpu {
            (None, Some("turned off by the page (backend=cpu in its address)".to_string()))
        } else if let Some(reason) = browser_gpu_missing() {
            (None, Some(reason))
        } else {
            throttle.report(Progress { stage: "webgpu", done: 0, total: 1 });
            let t1 = now_ms();
            match GpuContext::new().await {
                Err(e) => (None, Some(e.to_string())),
                Ok(ctx) => {
                    let t2 = now_ms();
                    timings.adapter_ms = t2 - t1;
                    let uploaded = GpuModel::upload(&ctx, &model, &mut |p| throttle.report(p));
                    timings.upload_ms = now_ms() - t2;
                    match uploaded {
                        Ok(gpu_model) => (Some(Gpu { ctx, model: gpu_model }), None),
                        Err(e) => (None, Some(format!("uploading the weights failed: {e}"))),
                    }
                }
            }
        };
        Playground {
            model,
            gpu,
            gpu_reason,
            timings,
            applied: Default::default(),
            intervention: None,
            runtime: None,
            method_run: None,
            forward: None,
        }
    }

    /// The model under study is the model as loaded: nothing re-quantized, no intervention, no
    /// run-time quantization, no method. Its runs are then the reference's.
    fn studies_as_loaded(&self) -> bool {
        self.applied.is_empty() && self.intervention.is_none() && self.runtime.is_none() && self.method_run.is_none()
    }

    /// Whether a run goes to the CPU reference: always without a GPU; with one, when
    /// `chooseForward` picked the CPU and the CPU computes the run exactly (the reference, or a
    /// model under study that is the model as loaded). Generation follows the same choice: the
    /// CPU reference has no KV cache and recomputes the whole sequence each token, which on a
    /// software adapter still beats a WebGPU decode step by far (README).
    fn runs_on_cpu(&self, as_loaded: bool) -> bool {
        if self.gpu.is_none() {
            return true;
        }
        self.forward.as_ref().is_some_and(|f| f.backend == "cpu") && (as_loaded || self.studies_as_loaded())
    }

    /// The last position's logits of `tokens` (the reference with `as_loaded`, else the model
    /// under study, its CPU method aside), and the backend that computed them.
    async fn last_logits(&self, tokens: &[u32], as_loaded: bool) -> Result<(Vec<f32>, &'static str), JsError> {
        let mut session = Session::new(self, tokens.len(), as_loaded).map_err(js_error)?;
        let logits = session.advance(tokens).await.map_err(js_error)?;
        Ok((logits, session.backend()))
    }

    /// Times [`MEASURE_PROMPT`] on the CPU reference (twice: the first run lets the browser
    /// compile the wasm's hot code) and on the GPU (the first run compiles the pipelines; a second
    /// one only when the first does not decide: slower than the CPU, by less than
    /// [`CLEAR_MARGIN`]), and picks the faster.
    async fn measure_forward(&self, gpu: &Gpu, throttle: &mut ProgressThrottle<'_>) -> ForwardChoice {
        const STEPS: u64 = 4;
        let report = |throttle: &mut ProgressThrottle<'_>, done| {
            throttle.report(Progress { stage: "measure", done, total: STEPS })
        };
        let tokens = match self.model.prompt_tokens(MEASURE_PROMPT) {
            Ok(t) => t,
            Err(e) => return ForwardChoice::fixed("webgpu", format!("not measured: {e}")),
        };
        let time_cpu = || -> Result<f64, ModelError> {
            let t0 = now_ms();
            CpuBackend::new(&self.model).advance(&tokens)?;
            Ok(now_ms() - t0)
        };
        let time_gpu = async || -> Result<f64, ModelError> {
            let mut cache = gpu.model.new_cache(&gpu.ctx, tokens.len() as u32)?;
            let t0 = now_ms();
            gpu.model.step(&gpu.ctx, &mut cache, &tokens, &self.capture(true)).await?;
            Ok(now_ms() - t0)
        };
        report(throttle, 0);
        let cpu_ms = match time_cpu().and_then(|_| {
            report(throttle, 1);
            time_cpu()
        }) {
            Ok(t) => t,
            Err(e) => return ForwardChoice::fixed("webgpu", format!("the CPU reference failed while measuring: {e}")),
        };
        report(throttle, 2);
        let gpu_first_ms = match time_gpu().await {
            Ok(t) => t,
            Err(e) => return ForwardChoice::fixed("cpu", format!("WebGPU failed while measuring: {e}")),
        };
        report(throttle, 3);
        let decided = gpu_first_ms <= cpu_ms || gpu_first_ms > CLEAR_MARGIN * cpu_ms;
        let gpu_ms = if decided {
            None
        } else {
            match time_gpu().await {
                Ok(t) => Some(t),
                Err(e) => return ForwardChoice::fixed("cpu", format!("WebGPU failed while measuring: {e}")),
            }
        };
        report(throttle, STEPS);
        let times = ForwardTimes { prompt_tokens: tokens.len(), cpu_ms, gpu_first_ms, gpu_ms };
        let adapter = if gpu.ctx.summary.is_software() { "this software WebGPU adapter" } else { "WebGPU" };
        let n = tokens.len();
        let (backend, reason) = match gpu_ms {
            None if gpu_first_ms <= cpu_ms => (
                "webgpu",
                format!(
                    "measured at load on a {n}-token prompt: {adapter} took {gpu_first_ms:.0} ms even in its first run \
                     (which compiles the pipelines), the CPU reference {cpu_ms:.0} ms"
                ),
            ),
            None => (
                "cpu",
                format!(
                    "measured at load on a {n}-token prompt: the CPU reference took {cpu_ms:.0} ms, {adapter} \
                     {gpu_first_ms:.0} ms in its first run, which compiles the pipelines; over {CLEAR_MARGIN:.0} times \
                     as long, more than compiling can explain, so it was not run again"
                ),
            ),
            Some(gpu_ms) => (
                if cpu_ms <= gpu_ms { "cpu" } else { "webgpu" },
                format!(
                    "measured at load on a {n}-token prompt: the CPU reference took {cpu_ms:.0} ms, {adapter} \
                     {gpu_ms:.0} ms (its first run, {gpu_first_ms:.0} ms, also compiled the pipelines)"
                ),
            ),
        };
        ForwardChoice { backend, reason, measured: Some(times) }
    }
}

#[wasm_bindgen]
impl Playground {
    /// Parses and validates a GGUF file, then (when `use_gpu`) acquires WebGPU and uploads the
    /// weights. `name` is the file name shown in errors and the summary. `progress(stage, done,
    /// total)` is called as work proceeds; stages include "webgpu" (acquiring the adapter) and
    /// "upload" (tensors sent to the GPU).
    ///
    /// Rejects with an `Error` whose message names what is wrong and where when the file is bad.
    /// A missing or failing GPU does not reject: the model runs on the CPU, and
    /// [`Playground::device_info`] gives the reason.
    pub async fn load(
        bytes: Vec<u8>,
        name: String,
        progress: js_sys::Function,
        use_gpu: bool,
    ) -> Result<Playground, JsError> {
        let mut throttle = ProgressThrottle::new(&progress);
        let t0 = now_ms();
        let model = Model::from_gguf(bytes, &name, &mut |p| throttle.report(p)).map_err(js_error)?;
        Ok(Playground::on_device(model, now_ms() - t0, &mut throttle, use_gpu).await)
    }

    /// Like [`Playground::load`], for a Hugging Face checkpoint: the `.safetensors` weights with
    /// the `config.json` and `tokenizer.json` beside them (as bytes). `name` names the checkpoint
    /// in errors and the summary. Rejects with an `Error` naming the file that is wrong (weights,
    /// config.json or tokenizer.json) and why.
    #[wasm_bindgen(js_name = loadSafetensors)]
    pub async fn load_safetensors(
        weights: Vec<u8>,
        config_json: Vec<u8>,
        tokenizer_json: Vec<u8>,
        name: String,
        progress: js_sys::Function,
        use_gpu: bool,
    ) -> Result<Playground, JsError> {
        let mut throttle = ProgressThrottle::new(&progress);
        let t0 = now_ms();
        let model = Model::from_safetensors(weights, &config_json, &tokenizer_json, &name, &mut |p| throttle.report(p))
            .map_err(js_error)?;
        Ok(Playground::on_device(model, now_ms() - t0, &mut throttle, use_gpu).await)
    }

    /// Decides where the runs that the CPU reference computes exactly go (see `deviceInfo().forward`:
    /// the reference side of `predictBoth` and `evaluate`, the reference continuation, and the
    /// model under study while nothing changes it); the re-quantized model, interventions,
    /// run-time quantizers and probes stay on the GPU. `policy`:
    ///
    /// - `"auto"`: on a software adapter (SwiftShader, lavapipe: the GPU kernels run on the CPU)
    ///   time a short fixed prompt on both and take the faster (a few GPU forwards, pipeline
    ///   compilation included: seconds on such an adapter; stage "measure" of `progress(stage,
    ///   done, total)`); on a hardware adapter, WebGPU unmeasured;
    /// - `"measure"`: measure whatever the adapter (the page passes it when the browser names the
    ///   adapter a software one and wgpu's summary does not);
    /// - `"webgpu"`: WebGPU unmeasured (the page's `backend=webgpu`).
    ///
    /// Without a GPU everything runs on the CPU whatever the policy. Resolves to `{backend:
    /// "cpu"|"webgpu", reason, measured: null | {promptTokens, cpuMs, gpuFirstMs, gpuMs: number |
    /// null}}`; rejects an unknown policy (nothing changed).
    #[wasm_bindgen(js_name = chooseForward)]
    pub async fn choose_forward(&mut self, policy: String, progress: js_sys::Function) -> Result<JsValue, JsError> {
        let mut throttle = ProgressThrottle::new(&progress);
        let choice = match (&self.gpu, policy.as_str()) {
            (_, "auto" | "measure" | "webgpu") if self.gpu.is_none() => ForwardChoice::fixed(
                "cpu",
                format!("no WebGPU ({})", self.gpu_reason.as_deref().unwrap_or("unknown reason")),
            ),
            (Some(_), "webgpu") => {
                ForwardChoice::fixed("webgpu", "the page's address asks for WebGPU (backend=webgpu)")
            }
            (Some(gpu), "auto") if !gpu.ctx.summary.is_software() => {
                ForwardChoice::fixed("webgpu", "a hardware adapter: WebGPU, not measured")
            }
            (Some(gpu), "auto" | "measure") => self.measure_forward(gpu, &mut throttle).await,
            (_, other) => {
                return Err(JsError::new(&format!("unknown forward policy {other:?}: auto, measure or webgpu")));
            }
        };
        let value = to_js(&choice)?;
        self.forward = Some(choice);
        Ok(value)
    }

    /// The step options of a run: the reference (the weights as loaded, no intervention) or the
    /// model under study (as re-quantized, with the intervention).
    fn capture(&self, reference: bool) -> Capture {
        Capture {
            weights_as_loaded: reference,
            intervention: if reference { None } else { self.intervention.clone() },
            runtime: if reference { None } else { self.runtime.clone() },
            ..Default::default()
        }
    }

    /// Sets the intervention of every later run of the model under study (predictions,
    /// generation, `predictBoth`'s quantized side, `evaluate`, `probe` without `as_loaded`):
    /// `"zero-massive"`, `"mean-massive"`, `"drop-sink"`, `"clip:P"`, or `""` for none. They run on
    /// the GPU; mean-massive first calibrates its means (of the model as loaded) on the first
    /// `calibration_tokens` tokens of the shipped evaluation text with the CPU reference (seconds
    /// per hundred tokens in wasm).
    #[wasm_bindgen(js_name = setIntervention)]
    pub fn set_intervention(&mut self, name: &str, calibration_tokens: usize) -> Result<(), JsError> {
        if name.is_empty() {
            self.intervention = None;
            return Ok(());
        }
        let intervention: crate::model::intervene::Intervention = name.parse().map_err(js_error)?;
        let gpu = self.gpu.as_ref().ok_or_else(|| JsError::new("interventions in the page need WebGPU"))?;
        let options = EvalOptions { max_tokens: Some(calibration_tokens.max(2)), window: 512 };
        let calibration = crate::model::window::eval_tokens(&self.model, EVAL_TEXT, &options).map_err(js_error)?;
        let intervener = crate::model::intervene::Intervener::new(&self.model, intervention, &calibration, &options)
            .map_err(js_error)?;
        let c = &self.model.config;
        self.intervention = Some(
            crate::gpu::kernels::intervene::GpuIntervention::new(&gpu.ctx, &intervener, c.n_layers, c.d_model)
                .map_err(js_error)?,
        );
        Ok(())
    }

    /// Applies a recipe (JSON, see the README) or a single scheme name to the model on the GPU:
    /// only matrices whose scheme changed since the last call are re-quantized, from the weights
    /// as loaded (on the GPU where `schemes()` says `gpu`, else by the CPU reference and
    /// uploaded); `"keep"` puts a matrix back as loaded. Predictions, generation and `evaluate`
    /// then use the result. `progress(stage, done, total)` counts matrices.
    ///
    /// Resolves to `{requantizedOnGpu, requantizedOnCpu, restored, unchanged, bitsPerWeight,
    /// bytes, tensors: [{name, scheme, bitsPerWeight, onGpu}], ms}`; rejects with the recipe's or
    /// the scheme's error (nothing changed then), or when the model runs on the CPU.
    #[wasm_bindgen(js_name = applyRecipe)]
    pub async fn apply_recipe(
        &mut self,
        recipe_or_scheme: String,
        progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let t0 = now_ms();
        let recipe = if recipe_or_scheme.trim_start().starts_with('{') {
            Recipe::from_json(&recipe_or_scheme, "recipe").map_err(js_error)?
        } else {
            Recipe::uniform(recipe_or_scheme.parse().map_err(js_error)?)
        };
        let Some(gpu) = self.gpu.as_mut() else {
            return Err(JsError::new(&format!(
                "re-quantization needs WebGPU; this model runs on the CPU ({})",
                self.gpu_reason.as_deref().unwrap_or("no GPU")
            )));
        };
        let mut throttle = ProgressThrottle::new(&progress);
        let names = gpu.model.matrix_names();
        // Check every assignment first, so a scheme that cannot hold a tensor changes nothing.
        let mut plan = Vec::with_capacity(names.len());
        for name in &names {
            let t = self.model.tensor(name).map_err(js_error)?;
            let assignment = match recipe.assignment(name, t.dims.len()) {
                Assignment::Quantize(s) => Assignment::Quantize(gguf_fallback(&s, t.row_len()).unwrap_or(s)),
                keep => keep,
            };
            if let Assignment::Quantize(s) = &assignment {
                if !gpu_quantizable(s) {
                    // Surfaces a shape the scheme refuses before anything is replaced.
                    storage_bits(s, 1, t.row_len())?;
                }
            }
            plan.push((name.clone(), t.n_rows(), t.row_len(), assignment));
        }
        let (mut on_gpu, mut on_cpu, mut restored, mut unchanged) = (0, 0, 0, 0);
        let mut encoder = gpu.ctx.encoder();
        for (i, (name, rows, cols, assignment)) in plan.iter().enumerate() {
            throttle.report(Progress { stage: "quantize", done: i as u64, total: plan.len() as u64 });
            match assignment {
                Assignment::Keep => {
                    if self.applied.remove(name).is_some() {
                        gpu.model.restore_matrix(name);
                        restored += 1;
                    } else {
                        unchanged += 1;
                    }
                }
                Assignment::Quantize(scheme) => {
                    if self.applied.get(name).is_some_and(|(s, _)| s == scheme) {
                        unchanged += 1;
                        continue;
                    }
                    let bits = storage_bits(scheme, *rows, *cols)?;
                    let gpu_side = gpu_quantizable(scheme);
                    if gpu_side {
                        gpu.model.requantize(&gpu.ctx, &mut encoder, name, scheme).map_err(js_error)?;
                        on_gpu += 1;
                    } else {
                        let (_, q, _) = quantize_tensor(&self.model, name, scheme).map_err(js_error)?;
                        let weight = upload_quantized_matrix(&gpu.ctx, name, q).map_err(js_error)?;
                        gpu.model.replace_matrix(weight).map_err(js_error)?;
                        on_cpu += 1;
                        yield_to_event_loop().await;
                    }
                    self.applied.insert(name.clone(), (*scheme, TensorCost { bits, on_gpu: gpu_side }));
                }
            }
        }
        gpu.ctx.submit(encoder);
        gpu.ctx.check("re-quantizing").map_err(js_error)?;
        throttle.report(Progress { stage: "quantize", done: plan.len() as u64, total: plan.len() as u64 });
        let (mut bits, mut weights) = (0u64, 0u64);
        for t in self.model.weights.tensors() {
            weights += t.n_elements();
            bits += self.applied.get(&t.name).map_or(t.len as u64 * 8, |(_, cost)| cost.bits);
        }
        let tensors = plan
            .iter()
            .map(|(name, rows, cols, _)| {
                let (scheme, bpw, on_gpu) = match self.applied.get(name) {
                    Some((s, cost)) => (s.to_string(), cost.bits as f64 / (rows * cols) as f64, cost.on_gpu),
                    None => {
                        ("keep".to_string(), self.model.tensor(name).map_or(0.0, |t| t.dtype.bits_per_weight()), false)
                    }
                };
                AppliedTensor { name: name.clone(), scheme, bits_per_weight: bpw, on_gpu }
            })
            .collect();
        to_js(&Applied {
            requantized_on_gpu: on_gpu,
            requantized_on_cpu: on_cpu,
            restored,
            unchanged,
            bits_per_weight: bits as f64 / weights.max(1) as f64,
            bytes: bits.div_ceil(8),
            tensors,
            ms: now_ms() - t0,
        })
    }

    /// The next-token top-k of the model as loaded and of the model as now quantized, side by
    /// side: `{reference: [{id, token, prob, logit}], quantized: [...], tokens, referenceBackend,
    /// quantizedBackend, sameRun, ms}`. The reference runs where `chooseForward` put it; the
    /// quantized model on the GPU (or its CPU method). While the model under study is the model as
    /// loaded, one run answers both columns (`sameRun`), so they agree exactly.
    #[wasm_bindgen(js_name = predictBoth)]
    pub async fn predict_both(&self, prompt: String, top_k: usize) -> Result<JsValue, JsError> {
        if self.gpu.is_none() {
            return Err(JsError::new("side-by-side predictions need WebGPU"));
        }
        let t0 = now_ms();
        let tokens = self.model.prompt_tokens(&prompt).map_err(js_error)?;
        let k = top_k.max(1);
        let (logits, reference_backend) = self.last_logits(&tokens, true).await?;
        let reference = self.model.top_tokens(&logits, k);
        let same_run = self.studies_as_loaded();
        let (quantized, quantized_backend) = if same_run {
            (reference.clone(), reference_backend)
        } else if let Some(out) = self.method_forward(&tokens, Default::default()) {
            (self.model.top_tokens(&out?.logits, k), "cpu")
        } else {
            let (logits, backend) = self.last_logits(&tokens, false).await?;
            (self.model.top_tokens(&logits, k), backend)
        };
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Both {
            reference: Vec<TopToken>,
            quantized: Vec<TopToken>,
            tokens: Vec<u32>,
            reference_backend: &'static str,
            quantized_backend: &'static str,
            same_run: bool,
            ms: f64,
        }
        to_js(&Both { reference, quantized, tokens, reference_backend, quantized_backend, same_run, ms: now_ms() - t0 })
    }

    /// Outlier summaries of `prompt` reduced on the GPU (the model as now quantized, or as loaded
    /// with `as_loaded`): `{tokens: [{index, id, text}], probes: [{layer, point, summary: {tokens,
    /// channels, max_abs, mean_abs, median_bin, median_range, histogram, channel_max_abs,
    /// channel_argmax_token, token_max_abs, token_argmax_channel, top: [{token, channel, value}],
    /// token_top}}], attention: [{layer, sink_scores, key_attention}], tensor: null | {layer, point,
    /// width, values: Float32Array}, ms}`. `tensor_layer` ≥ 0 with `tensor_point` (e.g.
    /// "residual", "down_input") also returns that one whole tensor, as a typed array.
    pub async fn probe(
        &self,
        prompt: String,
        as_loaded: bool,
        tensor_layer: i32,
        tensor_point: String,
    ) -> Result<JsValue, JsError> {
        use crate::gpu::forward::ProbePoint;
        let gpu = self.gpu.as_ref().ok_or_else(|| JsError::new("probes need WebGPU"))?;
        let t0 = now_ms();
        let tokens = self.model.prompt_tokens(&prompt).map_err(js_error)?;
        let tensor = if tensor_layer >= 0 {
            let point: ProbePoint = serde_json::from_value(serde_json::Value::String(tensor_point.clone()))
                .map_err(|_| JsError::new(&format!("unknown probe point {tensor_point:?}")))?;
            Some((tensor_layer as usize, point))
        } else {
            None
        };
        let capture = Capture { probes: true, tensor, ..self.capture(as_loaded) };
        let mut cache = gpu.model.new_cache(&gpu.ctx, tokens.len() as u32).map_err(js_error)?;
        let out = gpu.model.step(&gpu.ctx, &mut cache, &tokens, &capture).await.map_err(js_error)?;
        #[derive(serde::Serialize)]
        struct Token {
            index: usize,
            id: u32,
            text: String,
        }
        #[derive(serde::Serialize)]
        struct Probed<'a> {
            tokens: Vec<Token>,
            probes: &'a [crate::gpu::forward::ProbeResult],
            attention: &'a [crate::gpu::forward::AttentionSummary],
            ms: f64,
        }
        let token_list = tokens
            .iter()
            .enumerate()
            .map(|(index, &id)| Token { index, id, text: self.model.tokenizer.token_text(id) })
            .collect();
        let value =
            to_js(&Probed { tokens: token_list, probes: &out.probes, attention: &out.attention, ms: now_ms() - t0 })?;
        let tensor_value = match (tensor, &out.tensor) {
            (Some((layer, point)), Some((values, width))) => {
                let object = js_sys::Object::new();
                let set = |k: &str, v: JsValue| js_sys::Reflect::set(&object, &JsValue::from_str(k), &v);
                let point_name = serde_json::to_value(point).map_err(js_error)?;
                let _ = set("layer", JsValue::from_f64(layer as f64));
                let _ = set("point", JsValue::from_str(point_name.as_str().unwrap_or_default()));
                let _ = set("width", JsValue::from_f64(*width as f64));
                let _ = set("values", js_sys::Float32Array::from(values.as_slice()).into());
                object.into()
            }
            _ => JsValue::NULL,
        };
        js_sys::Reflect::set(&value, &JsValue::from_str("tensor"), &tensor_value)
            .map_err(|_| JsError::new("cannot build the probe result"))?;
        Ok(value)
    }

    /// KL, PD-KL, top-1 agreement, perplexity, QiD and per-layer error of the model as now
    /// quantized against the model as loaded (the reference where `chooseForward` put it, the
    /// quantized model on the GPU or its CPU method; one run per window while the model under
    /// study is the model as loaded, so KL is exactly 0), over the first `max_tokens` tokens of
    /// the shipped evaluation text (or of `text` when it is not empty), in windows of `window`.
    /// Resolves to the CLI's `eval --json` metrics: `{tokens, positions, kl, pd_kl,
    /// top1_agreement, perplexity, reference_perplexity, qid, layers: [{layer, relative_error}],
    /// ms}`.
    pub async fn evaluate(
        &self,
        max_tokens: usize,
        window: usize,
        text: String,
        progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let gpu = self.gpu.as_ref().ok_or_else(|| JsError::new("evaluation in the page needs WebGPU"))?;
        let t0 = now_ms();
        let mut throttle = ProgressThrottle::new(&progress);
        let options = EvalOptions { max_tokens: Some(max_tokens), window: window.max(2) };
        let text = if text.is_empty() { EVAL_TEXT } else { text.as_str() };
        let tokens = crate::model::window::eval_tokens(&self.model, text, &options).map_err(js_error)?;
        let windows = windows(&self.model, &tokens, &options);
        let mut acc = EvalAccumulator::new(&self.model);
        let cpu_options =
            crate::model::reference::ForwardOptions { all_logits: true, hidden_states: true, attention_probs: false };
        // While nothing changes the model under study it is the reference: one run per window.
        let same_run = self.studies_as_loaded();
        for (i, w) in windows.iter().enumerate() {
            throttle.report(Progress { stage: "evaluate", done: i as u64, total: windows.len() as u64 });
            let run = async |as_loaded: bool| -> Result<(Vec<f32>, Vec<Vec<f32>>), ModelError> {
                if self.runs_on_cpu(as_loaded) {
                    let out = crate::model::reference::forward(&self.model, w, cpu_options)?;
                    return Ok((out.logits, out.hidden_states));
                }
                let mut cache = gpu.model.new_cache(&gpu.ctx, w.len() as u32)?;
                let capture = Capture { hidden_states: true, all_logits: true, ..self.capture(as_loaded) };
                let out = gpu.model.step(&gpu.ctx, &mut cache, w, &capture).await?;
                Ok((out.logits, out.hidden_states))
            };
            let reference = run(true).await.map_err(js_error)?;
            let quantized = if same_run {
                reference.clone()
            } else {
                match self.method_forward(w, cpu_options) {
                    Some(out) => {
                        let out = out?;
                        (out.logits, out.hidden_states)
                    }
                    None => run(false).await.map_err(js_error)?,
                }
            };
            acc.add_window(w, &reference, &quantized);
        }
        throttle.report(Progress { stage: "evaluate", done: windows.len() as u64, total: windows.len() as u64 });
        let mut value = serde_json::to_value(acc.finish()).map_err(js_error)?;
        value["ms"] = (now_ms() - t0).into();
        to_js(&value)
    }

    /// The model summary: source, name, config, parameter and byte counts, and every tensor's
    /// name, dtype, shape and size (see `quantscope::model::ModelSummary`).
    pub fn summary(&self) -> Result<JsValue, JsError> {
        to_js(&self.model.summary())
    }

    /// Where the model runs: `{backend: "webgpu"|"cpu", adapter: {name, backend, device_type,
    /// driver, features: {shader_f16, subgroups, timestamps}, max_*...} | null, reason: string |
    /// null, gpuBytes, timings: {parseMs, adapterMs, uploadMs}, forward: null | what
    /// `chooseForward` resolved to}`.
    #[wasm_bindgen(js_name = deviceInfo)]
    pub fn device_info(&self) -> Result<JsValue, JsError> {
        to_js(&DeviceInfo {
            backend: self.backend(),
            adapter: self.gpu.as_ref().map(|g| &g.ctx.summary),
            reason: self.gpu_reason.as_deref(),
            gpu_bytes: self.gpu.as_ref().map_or(0, |g| g.model.gpu_bytes()),
            timings: self.timings,
            forward: self.forward.as_ref(),
        })
    }

    fn backend(&self) -> &'static str {
        if self.gpu.is_some() {
            "webgpu"
        } else {
            "cpu"
        }
    }

    /// The `top_k` most likely next tokens after `prompt` (the model under study), with
    /// probabilities and logits, on the GPU when there is one unless `chooseForward` gave this run
    /// to the CPU: `{model, prompt, tokens, top: [{id, token, prob, logit}], backend, ms}`.
    pub async fn predict(&self, prompt: String, top_k: usize) -> Result<JsValue, JsError> {
        if top_k == 0 {
            return Err(JsError::new("top_k must be at least 1"));
        }
        let t0 = now_ms();
        let tokens = self.model.prompt_tokens(&prompt).map_err(js_error)?;
        let (logits, backend) = self.last_logits(&tokens, false).await?;
        let top = self.model.top_tokens(&logits, top_k);
        to_js(&WebPrediction { model: self.model.source.clone(), prompt, tokens, top, backend, ms: now_ms() - t0 })
    }

    /// Generates up to `max_tokens` after `prompt`: greedy when `temperature` is 0, else
    /// temperature + top-p sampling seeded by `seed` (a non-negative integer; same seed, same
    /// text). Stops early at the tokenizer's end-of-sequence token.
    ///
    /// `on_token(piece, count)` is called after every generated token: `piece` is the new text
    /// (empty while a character is split over tokens), `count` the tokens so far. Returning
    /// `false` from it stops the generation (`stop: "stopped"`).
    ///
    /// `as_loaded` (optional, default `false`) generates with the weights as loaded and no
    /// intervention (the reference), so the page can show both continuations side by side.
    ///
    /// Resolves to `{promptTokens, tokens, text, stop, backend, tokensPerSecond, promptMs, ms}`.
    #[allow(clippy::too_many_arguments)]
    pub async fn generate(
        &self,
        prompt: String,
        max_tokens: usize,
        temperature: f32,
        top_p: f32,
        seed: f64,
        on_token: js_sys::Function,
        as_loaded: Option<bool>,
    ) -> Result<JsValue, JsError> {
        if !(seed.is_finite() && seed >= 0.0 && seed.fract() == 0.0 && seed <= 9_007_199_254_740_991.0) {
            return Err(JsError::new(&format!("the seed must be a whole number from 0 to 2^53 - 1, not {seed}")));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(JsError::new(&format!("top-p must be in (0, 1], not {top_p}")));
        }
        if temperature.is_nan() || temperature < 0.0 {
            return Err(JsError::new(&format!("the temperature must be 0 or more, not {temperature}")));
        }
        let t0 = now_ms();
        let prompt_tokens = self.model.prompt_tokens(&prompt).map_err(js_error)?;
        let context = self.model.config.context_length;
        let max_tokens = max_tokens.min(context.saturating_sub(prompt_tokens.len()));
        let mut session =
            Session::new(self, prompt_tokens.len() + max_tokens, as_loaded.unwrap_or(false)).map_err(js_error)?;
        let mut sampler = Sampler::new(SamplingParams { temperature, top_p, seed: seed as u64 });

        let mut logits = session.advance(&prompt_tokens).await.map_err(js_error)?;
        let prompt_ms = now_ms() - t0;
        let mut continuation = Continuation::new(max_tokens);
        let mut stop = "max-tokens";
        while continuation.wants_more() {
            let (token, piece) = match continuation.step(&self.model, &mut sampler, &logits).map_err(js_error)? {
                Step::EndOfSequence => {
                    stop = "eos";
                    break;
                }
                Step::Token { token, piece } => (token, piece),
            };
            let count = JsValue::from_f64(continuation.tokens().len() as f64);
            match on_token.call2(&JsValue::NULL, &JsValue::from_str(&piece), &count) {
                Ok(v) if v == JsValue::FALSE => {
                    stop = "stopped";
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    web_sys::console::warn_2(&JsValue::from_str("quantscope: onToken threw"), &e);
                }
            }
            if continuation.wants_more() {
                if matches!(session, Session::Cpu(_)) {
                    yield_to_event_loop().await;
                }
                logits = session.advance(&[token]).await.map_err(js_error)?;
            }
        }
        let (tokens, text, rest) = continuation.finish(&self.model).map_err(js_error)?;
        if !rest.is_empty() {
            let count = JsValue::from_f64(tokens.len() as f64);
            let _ = on_token.call2(&JsValue::NULL, &JsValue::from_str(&rest), &count);
        }
        let ms = now_ms() - t0;
        let tokens_per_second = if ms > 0.0 { tokens.len() as f64 / (ms / 1000.0) } else { 0.0 };
        to_js(&WebGeneration {
            prompt_tokens,
            tokens,
            text,
            stop,
            backend: session.backend(),
            tokens_per_second,
            prompt_ms,
            ms,
        })
    }
}
