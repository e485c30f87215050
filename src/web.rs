//! The browser facade: what `www/worker.js` calls, through wasm-bindgen.
//!
//! Kept deliberately thin: it converts between JS values and the engine's types and nothing
//! else, so the page and the CLI exercise the same code. Conventions at this boundary:
//!
//! - Bulk bytes cross as typed arrays (`Uint8Array` -> `Vec<u8>`, one copy into wasm memory);
//!   serde (serde-wasm-bindgen) only carries small objects (summary, prediction). Model weights
//!   the page holds as files (GGUF, safetensors and their shards) do not cross whole: the engine
//!   reads them a range at a time through a JS `read(offset, length)` (`src/web/lazy_file.rs`).
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

mod allocation;
mod breakage;
mod export;
mod lazy_file;
mod pin;
mod runtime_quant;
mod sensitivity;
mod token_view;
mod views;

use std::cell::Cell;
use std::sync::Mutex;

use wasm_bindgen::prelude::*;

use crate::error::ModelError;
use crate::gpu::forward::ProbePoint;
use crate::gpu::requant::gpu_quantizable;
use crate::model::chat::ChatMessage;
use crate::model::sampling::SamplingParams;
use crate::model::window::EvalOptions;
use crate::model::{Model, ModelBytes, Progress};
use crate::quant::{Recipe, Scheme};
use crate::study::{now_ms, ForwardPolicy, Study};

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
/// stage (each call crosses into JS and, in the worker, posts a message to the page). A callback
/// that returns `false` asks the running operation to stop ([`ProgressThrottle::stop_asked`]).
struct ProgressThrottle<'a> {
    callback: &'a js_sys::Function,
    stage: Cell<&'static str>,
    last_done: Cell<u64>,
    stop_asked: Cell<bool>,
}

impl<'a> ProgressThrottle<'a> {
    const STEPS_PER_STAGE: u64 = 200;

    fn new(callback: &'a js_sys::Function) -> Self {
        Self { callback, stage: Cell::new(""), last_done: Cell::new(0), stop_asked: Cell::new(false) }
    }

    fn report(&self, p: Progress) {
        let new_stage = p.stage != self.stage.get();
        let step = (p.total / Self::STEPS_PER_STAGE).max(1);
        let finished = p.done >= p.total;
        if !new_stage && !finished && p.done < self.last_done.get().saturating_add(step) {
            return;
        }
        self.stage.set(p.stage);
        self.last_done.set(p.done);
        // u64 -> f64 is exact below 2^53, far above any byte or tensor count here.
        let result = self.callback.call3(
            &JsValue::NULL,
            &JsValue::from_str(p.stage),
            &JsValue::from_f64(p.done as f64),
            &JsValue::from_f64(p.total as f64),
        );
        match result {
            Ok(v) if v == JsValue::FALSE => self.stop_asked.set(true),
            Ok(_) => {}
            // A broken progress callback must not fail the work: log it and go on.
            Err(e) => web_sys::console::warn_2(&JsValue::from_str("quantscope: progress callback threw"), &e),
        }
    }

    /// Whether the callback has returned `false`.
    fn stop_asked(&self) -> bool {
        self.stop_asked.get()
    }
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    // Maps as plain objects so the page can read them with `.field`; u64 counts stay Numbers.
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    value.serialize(&serializer).map_err(|e| JsError::new(&format!("cannot convert the result for JavaScript: {e}")))
}

/// A recipe (JSON, see the README) or one scheme name for every matrix.
fn recipe_or_scheme(text: &str) -> Result<Recipe, JsError> {
    if text.trim_start().starts_with('{') {
        Recipe::from_json(text, "recipe").map_err(js_error)
    } else {
        Ok(Recipe::uniform(text.trim().parse().map_err(js_error)?))
    }
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
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

/// One loaded model under study, owned by the worker (see `crate::study::Study`).
#[wasm_bindgen]
pub struct Playground {
    study: Study,
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

/// The interventions' catalog for the page's menu: `[{name, label, parameter: null | {name, min,
/// max, default}}]`; one with a parameter is set as `"name:number"`.
#[wasm_bindgen]
pub fn interventions() -> Result<JsValue, JsError> {
    to_js(&crate::model::intervene::Intervention::catalog())
}

/// The canonical name of a scheme name (`"int4"` → `"int4-ch-sym"`), or an `Error` saying what is
/// wrong with it.
#[wasm_bindgen(js_name = parseScheme)]
pub fn parse_scheme(name: &str) -> Result<String, JsError> {
    name.parse::<Scheme>().map(|s| s.to_string()).map_err(js_error)
}

impl Playground {
    async fn load_gguf(
        bytes: ModelBytes,
        name: String,
        progress: js_sys::Function,
        use_gpu: bool,
    ) -> Result<Playground, JsError> {
        Playground::load_with(&progress, use_gpu, |report| Model::from_gguf(bytes, &name, report)).await
    }

    /// A model parsed by `parse` (timed), then its study (WebGPU acquired and the weights uploaded
    /// when `use_gpu`), with progress through one throttle.
    async fn load_with(
        progress: &js_sys::Function,
        use_gpu: bool,
        parse: impl FnOnce(&mut dyn FnMut(Progress)) -> Result<Model, ModelError>,
    ) -> Result<Playground, JsError> {
        let throttle = ProgressThrottle::new(progress);
        let t0 = now_ms();
        let model = parse(&mut |p| throttle.report(p)).map_err(js_error)?;
        let parse_ms = now_ms() - t0;
        let study = Study::new(model, parse_ms, use_gpu, browser_gpu_missing(), &mut |p| throttle.report(p)).await;
        Ok(Playground { study })
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
        Playground::load_gguf(bytes.into(), name, progress, use_gpu).await
    }

    /// Like [`Playground::load`], for a GGUF file that stays outside wasm memory: `length` bytes
    /// read by `read(offset, length)`, which returns a `Uint8Array` of exactly that length (in a
    /// worker, a `FileReaderSync` over the file's `Blob`) or throws. The header is read first,
    /// then each tensor once to check it and once to upload it; only tensors being read are in
    /// wasm memory. Later CPU work (the reference forward, quantizing on the CPU, the weight
    /// views, export) reads what it needs again the same way.
    #[wasm_bindgen(js_name = loadLazy)]
    pub async fn load_lazy(
        length: f64,
        read: js_sys::Function,
        name: String,
        progress: js_sys::Function,
        use_gpu: bool,
    ) -> Result<Playground, JsError> {
        let file = lazy_file::js_file(length, read).map_err(|e| JsError::new(&format!("{name}: {e}")))?;
        Playground::load_gguf(file, name, progress, use_gpu).await
    }

    /// Like [`Playground::load_lazy`], for a Hugging Face checkpoint: the `.safetensors` weights
    /// (`length` bytes read by `read(offset, length)`, a range at a time) with the `config.json`
    /// and `tokenizer.json` beside them (as bytes). The header is read first, then each tensor once
    /// to check it and once to upload it. `name` names the checkpoint in errors and the summary.
    /// Rejects with an `Error` naming the file that is wrong (weights, config.json or
    /// tokenizer.json) and why.
    #[wasm_bindgen(js_name = loadSafetensors)]
    pub async fn load_safetensors(
        length: f64,
        read: js_sys::Function,
        config_json: Vec<u8>,
        tokenizer_json: Vec<u8>,
        name: String,
        progress: js_sys::Function,
        use_gpu: bool,
    ) -> Result<Playground, JsError> {
        let weights = lazy_file::js_file(length, read).map_err(|e| JsError::new(&format!("{name}: {e}")))?;
        Playground::load_with(&progress, use_gpu, |report| {
            Model::from_safetensors(weights, &config_json, &tokenizer_json, &name, report)
        })
        .await
    }

    /// Like [`Playground::load_safetensors`], for a checkpoint sharded as Hugging Face ships large
    /// ones: `model.safetensors.index.json` (`index_json`) and the shards it names, shard `i`
    /// being the file `names[i]` of `lengths[i]` bytes, read by `reads[i](offset, length)`.
    /// Rejects with an `Error` naming a shard the index lists and that was not given, a shard
    /// that is bad or cannot be read, or a tensor outside the shard the index says.
    #[wasm_bindgen(js_name = loadSafetensorsShards)]
    #[allow(clippy::too_many_arguments)]
    pub async fn load_safetensors_shards(
        index_json: Vec<u8>,
        names: Vec<String>,
        lengths: Vec<f64>,
        reads: Vec<js_sys::Function>,
        config_json: Vec<u8>,
        tokenizer_json: Vec<u8>,
        name: String,
        progress: js_sys::Function,
        use_gpu: bool,
    ) -> Result<Playground, JsError> {
        if names.len() != lengths.len() || names.len() != reads.len() {
            let (n, l, r) = (names.len(), lengths.len(), reads.len());
            return Err(JsError::new(&format!("{name}: {n} shard names, {l} lengths and {r} readers")));
        }
        let shards = names
            .into_iter()
            .zip(lengths.into_iter().zip(reads))
            .map(|(shard, (length, read))| match lazy_file::js_file(length, read) {
                Ok(file) => Ok((shard, file)),
                Err(e) => Err(JsError::new(&format!("{name}: {shard}: {e}"))),
            })
            .collect::<Result<Vec<(String, ModelBytes)>, JsError>>()?;
        Playground::load_with(&progress, use_gpu, |report| {
            Model::from_safetensors_shards(&index_json, shards, &config_json, &tokenizer_json, &name, report)
        })
        .await
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
        let policy: ForwardPolicy = policy.parse().map_err(js_error)?;
        let throttle = ProgressThrottle::new(&progress);
        to_js(self.study.choose_forward(policy, &mut |p| throttle.report(p)).await)
    }

    /// Sets the intervention of every later run of the model under study (predictions,
    /// generation, `predictBoth`'s quantized side, `evaluate`, `probe` without `as_loaded`):
    /// `"zero-massive"`, `"mean-massive"`, `"drop-sink"`, `"clip:P"`, or `""` for none. They run on
    /// the GPU; mean-massive first calibrates its means as the CLI does: the model as loaded, on
    /// the first 256 tokens of the shipped evaluation text in windows of 64, with the CPU
    /// reference. Returns `{calibration: null | {model, text, tokens, window, flagged_pairs}}`.
    #[wasm_bindgen(js_name = setIntervention)]
    pub fn set_intervention(&mut self, name: &str) -> Result<JsValue, JsError> {
        let intervention = if name.is_empty() { None } else { Some(name.parse().map_err(js_error)?) };
        let calibration = self.study.set_intervention(intervention).map_err(js_error)?;
        #[derive(serde::Serialize)]
        struct Set {
            calibration: Option<crate::model::intervene::MeanMassiveCalibration>,
        }
        to_js(&Set { calibration })
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
        let recipe = self::recipe_or_scheme(&recipe_or_scheme)?;
        let throttle = ProgressThrottle::new(&progress);
        to_js(&self.study.apply_recipe(&recipe, &mut |p| throttle.report(p)).await.map_err(js_error)?)
    }

    /// The next-token top-k of the model as loaded and of the model as now quantized, side by
    /// side: `{reference: [{id, token, prob, logit}], quantized: [...], tokens, referenceBackend,
    /// quantizedBackend, sameRun, ms}`. The reference runs where `chooseForward` put it; the
    /// quantized model on the GPU (or its CPU method). While the model under study is the model as
    /// loaded, one run answers both columns (`sameRun`), so they agree exactly.
    #[wasm_bindgen(js_name = predictBoth)]
    pub async fn predict_both(&self, prompt: String, top_k: usize) -> Result<JsValue, JsError> {
        to_js(&self.study.predict_both(&prompt, top_k).await.map_err(js_error)?)
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
        let tensor = if tensor_layer >= 0 {
            let point: ProbePoint = serde_json::from_value(serde_json::Value::String(tensor_point.clone()))
                .map_err(|_| JsError::new(&format!("unknown probe point {tensor_point:?}")))?;
            Some((tensor_layer as usize, point))
        } else {
            None
        };
        let probed = self.study.probe(&prompt, as_loaded, tensor).await.map_err(js_error)?;
        #[derive(serde::Serialize)]
        struct Summaries<'a> {
            tokens: &'a [crate::study::TokenText],
            probes: &'a [crate::gpu::forward::ProbeResult],
            attention: &'a [crate::gpu::forward::AttentionSummary],
            ms: f64,
        }
        let value = to_js(&Summaries {
            tokens: &probed.tokens,
            probes: &probed.probes,
            attention: &probed.attention,
            ms: probed.ms,
        })?;
        let tensor_value = match &probed.tensor {
            Some((layer, point, values, width)) => {
                let object = js_sys::Object::new();
                let set = |k: &str, v: JsValue| js_sys::Reflect::set(&object, &JsValue::from_str(k), &v);
                let point_name = serde_json::to_value(point).map_err(js_error)?;
                let _ = set("layer", JsValue::from_f64(*layer as f64));
                let _ = set("point", JsValue::from_str(point_name.as_str().unwrap_or_default()));
                let _ = set("width", JsValue::from_f64(*width as f64));
                let _ = set("values", js_sys::Float32Array::from(values.as_slice()).into());
                object.into()
            }
            None => JsValue::NULL,
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
    /// window, ms}`. `progress(stage, done, total)` returning `false` cancels it before the next
    /// window (rejects with "the evaluation was cancelled").
    pub async fn evaluate(
        &self,
        max_tokens: usize,
        window: usize,
        text: String,
        progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let throttle = ProgressThrottle::new(&progress);
        let options = EvalOptions { max_tokens: Some(max_tokens), window, skip: 0 };
        let text = (!text.is_empty()).then_some(text.as_str());
        let evaluated =
            self.study.evaluate(text, &options, &mut |p| throttle.report(p), &|| throttle.stop_asked()).await;
        to_js(&evaluated.map_err(js_error)?)
    }

    /// Resolves with the reason once this model's WebGPU device is lost (a driver reset, the GPU
    /// process restarting, or [`Playground::debug_destroy_device`]); never resolves without a GPU,
    /// or when asked a second time. The model must then be loaded again, on a new device.
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> js_sys::Promise {
        let lost = self.study.gpu.as_ref().and_then(|g| g.ctx.take_device_lost());
        wasm_bindgen_futures::future_to_promise(async move {
            match lost {
                Some(lost) => match lost.await {
                    Ok(reason) => Ok(JsValue::from_str(&reason)),
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        })
    }

    /// For tests of the page's recovery only: destroys the WebGPU device as a driver reset would
    /// lose it. Returns whether there was one.
    #[wasm_bindgen(js_name = debugDestroyDevice)]
    pub fn debug_destroy_device(&self) -> bool {
        self.study.gpu.as_ref().map(|g| g.ctx.device.destroy()).is_some()
    }

    /// The model summary: source, name, config, parameter and byte counts, and every tensor's
    /// name, dtype, shape and size (see `quantscope::model::ModelSummary`).
    pub fn summary(&self) -> Result<JsValue, JsError> {
        to_js(&self.study.model.summary())
    }

    /// Where the model runs: `{backend: "webgpu"|"cpu", adapter: {name, backend, device_type,
    /// driver, features: {shader_f16, subgroups, timestamps}, max_*...} | null, reason: string |
    /// null, gpuBytes, timings: {parseMs, adapterMs, uploadMs}, forward: null | what
    /// `chooseForward` resolved to}`.
    #[wasm_bindgen(js_name = deviceInfo)]
    pub fn device_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.study.device_info())
    }

    /// The `top_k` most likely next tokens after `prompt` (the model under study), with
    /// probabilities and logits, on the GPU when there is one unless `chooseForward` gave this run
    /// to the CPU: `{model, prompt, tokens, top: [{id, token, prob, logit}], backend, ms}`.
    pub async fn predict(&self, prompt: String, top_k: usize) -> Result<JsValue, JsError> {
        to_js(&self.study.predict(&prompt, top_k).await.map_err(js_error)?)
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
    /// `chat` (optional, default `false`) takes `prompt` as a user's message in the model's chat
    /// template (an error if it has none).
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
        chat: Option<bool>,
    ) -> Result<JsValue, JsError> {
        if !(seed.is_finite() && seed >= 0.0 && seed.fract() == 0.0 && seed <= 9_007_199_254_740_991.0) {
            return Err(JsError::new(&format!("the seed must be a whole number from 0 to 2^53 - 1, not {seed}")));
        }
        // Chat: the prompt is the user's message, in the model's own chat template.
        let prompt = match chat.unwrap_or(false) {
            true => crate::model::chat::chat_prompt(&self.study.model.tokenizer, &[ChatMessage::user(&prompt)])
                .map_err(js_error)?,
            false => prompt,
        };
        let params = SamplingParams { temperature, top_p, seed: seed as u64 };
        let mut generation =
            self.study.generation(&prompt, max_tokens, params, as_loaded.unwrap_or(false)).await.map_err(js_error)?;
        while let Some(t) = generation.next().await.map_err(js_error)? {
            let count = JsValue::from_f64(t.count as f64);
            match on_token.call2(&JsValue::NULL, &JsValue::from_str(&t.piece), &count) {
                Ok(v) if v == JsValue::FALSE => break,
                Ok(_) => {}
                Err(e) => web_sys::console::warn_2(&JsValue::from_str("quantscope: onToken threw"), &e),
            }
        }
        let summary = generation.finish().map_err(js_error)?;
        if !summary.rest.is_empty() {
            let count = JsValue::from_f64(summary.tokens.len() as f64);
            let _ = on_token.call2(&JsValue::NULL, &JsValue::from_str(&summary.rest), &count);
        }
        to_js(&summary)
    }
}
