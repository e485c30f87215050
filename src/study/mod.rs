//! One model under study, whatever the front end: the model as loaded (the reference), its GPU
//! copy when there is a GPU, what is applied to it (a weight recipe, re-quantized incrementally;
//! an intervention; run-time quantizers; a calibrated method), where each run goes, and the
//! operations that compare the model under study with the reference (`predict_both`,
//! `evaluate`), look inside it (`probe`) or run it (`predict`, a pull-style `generation`).
//!
//! Every operation is async and never blocks: in the browser the GPU's answers arrive as
//! promises, and a caller that owns a thread (the CLI, the tests) drives them with `pollster`.
//! Long work reports `Progress` through the caller's callback; generation is pulled a token at
//! a time, so the caller owns the loop and can stop it.
//!
//! Nothing here knows about JavaScript: the wasm facade (`src/web.rs`) only converts arguments
//! and results.

pub mod allocation;
mod apply;
pub mod breakage;
mod clock;
mod export;
mod forward_choice;
mod generation;
mod pin;
mod prepared;
pub mod report;
mod runtime;
pub mod sensitivity;
mod session;
pub mod token_view;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

pub use apply::{Applied, AppliedTensor, TensorCost};
pub use clock::{now_ms, yield_now};
pub use forward_choice::{ForwardChoice, ForwardPolicy, ForwardTimes};
pub use generation::{GeneratedToken, Generation, GenerationSummary, StopReason};
pub use pin::PinnedInfo;
pub use prepared::ExperimentSet;
pub use runtime::{RuntimeApplied, RuntimeConfig, RuntimeMenus, PAGE_CALIBRATION_TOKENS};

use crate::analysis::eval::{EvalAccumulator, EvalResult};
use crate::error::StudyError;
use crate::gpu::context::AdapterSummary;
use crate::gpu::forward::{AttentionSummary, Capture, GpuModel, ProbePoint, ProbeResult};
use crate::gpu::kernels::intervene::GpuIntervention;
use crate::gpu::kernels::runtime_quant::GpuRuntimeQuant;
use crate::gpu::GpuContext;
use crate::model::intervene::{Intervener, Intervention, MeanMassiveCalibration};
use crate::model::reference::ForwardOptions;
use crate::model::window::{eval_tokens, windows, EvalOptions, EVAL_TEXT};
use crate::model::{Model, Progress, TopToken};
use crate::quant::Scheme;
use prepared::PreparedRun;
use session::Session;

/// The GPU half of a study.
pub struct StudyGpu {
    pub ctx: GpuContext,
    pub model: GpuModel,
}

/// How long each part of loading took, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadTimings {
    pub parse_ms: f64,
    pub adapter_ms: f64,
    pub upload_ms: f64,
}

/// Where the model runs, and why (what `deviceInfo` shows).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo<'a> {
    /// "webgpu" or "cpu": whether the model is on the GPU (and the GPU-only features with it);
    /// `forward` says where the runs the CPU reference computes exactly go.
    pub backend: &'static str,
    pub adapter: Option<&'a AdapterSummary>,
    /// Why the GPU is not used (only when `backend` is "cpu").
    pub reason: Option<&'a str>,
    /// Bytes of weights on the GPU.
    pub gpu_bytes: u64,
    pub timings: LoadTimings,
    /// Where the runs the CPU reference computes exactly go; null before `choose_forward`.
    pub forward: Option<&'a ForwardChoice>,
}

/// The next-token top-k of the reference and of the model under study, side by side.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BothPredictions {
    pub reference: Vec<TopToken>,
    pub quantized: Vec<TopToken>,
    pub tokens: Vec<u32>,
    pub reference_backend: &'static str,
    pub quantized_backend: &'static str,
    /// The model under study is the model as loaded: one run answered both columns.
    pub same_run: bool,
    pub ms: f64,
}

/// The model under study's next-token top-k.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    pub model: String,
    pub prompt: String,
    pub tokens: Vec<u32>,
    pub top: Vec<TopToken>,
    pub backend: &'static str,
    /// Time of the forward pass (tokenizing to logits), milliseconds.
    pub ms: f64,
}

/// One token of a prompt, with its text.
#[derive(Debug, Clone, Serialize)]
pub struct TokenText {
    pub index: usize,
    pub id: u32,
    pub text: String,
}

/// Outlier summaries of one prompt reduced on the GPU, and optionally one whole tensor.
#[derive(Debug, Clone)]
pub struct Probed {
    pub tokens: Vec<TokenText>,
    pub probes: Vec<ProbeResult>,
    pub attention: Vec<AttentionSummary>,
    /// (layer, point, `[tokens × width]` values, width) when one whole tensor was asked for.
    pub tensor: Option<(usize, ProbePoint, Vec<f32>, usize)>,
    pub ms: f64,
}

/// An evaluation's metrics and what it ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluated {
    #[serde(flatten)]
    pub result: EvalResult,
    /// The window that ran (clamped to the context).
    pub window: usize,
    pub ms: f64,
}

/// The reference's outputs of an evaluation's windows (logits of every position, residual
/// streams), for [`Study::evaluate_tokens`] to reuse.
#[derive(Default)]
pub struct ReferenceWindows {
    /// The tokens and the window they were computed for.
    key: Option<(Vec<u32>, usize)>,
    windows: Vec<(Vec<f32>, Vec<Vec<f32>>)>,
}

/// A model under study: see the module documentation.
pub struct Study {
    pub model: Model,
    pub gpu: Option<StudyGpu>,
    /// Why `gpu` is `None`.
    pub gpu_reason: Option<String>,
    pub timings: LoadTimings,
    /// What each matrix on the GPU holds now (absent: as loaded), so a recipe change only
    /// re-quantizes the matrices whose scheme changed.
    applied: HashMap<String, (Scheme, TensorCost)>,
    /// The intervention every run of the model under study uses (not the reference runs).
    intervention: Option<Arc<GpuIntervention>>,
    /// The run-time quantization of the model under study on the GPU.
    runtime: Option<Arc<GpuRuntimeQuant>>,
    /// A model under study prepared whole on the CPU (the CLI's experiments, the page's
    /// calibrated methods), run there or uploaded to the GPU.
    prepared: Option<PreparedRun>,
    /// Where the runs the CPU reference computes exactly go (None: the GPU when there is one).
    forward: Option<ForwardChoice>,
    /// A configuration pinned as the reference in place of the model as loaded.
    pinned: Option<pin::PinnedReference>,
}

impl Study {
    /// A study of `model`: acquires a GPU and uploads the weights when `use_gpu`. Never fails:
    /// without a usable GPU the model runs on the CPU and `gpu_reason` says why.
    /// `gpu_missing` is the front end's own reason to skip the GPU (e.g. a browser without
    /// `navigator.gpu`), said better than wgpu's generic "no adapter".
    pub async fn new(
        model: Model,
        parse_ms: f64,
        use_gpu: bool,
        gpu_missing: Option<String>,
        progress: &mut dyn FnMut(Progress),
    ) -> Study {
        let t1 = now_ms();
        let ctx = if !use_gpu {
            Err("turned off by the page (backend=cpu in its address)".to_string())
        } else if let Some(reason) = gpu_missing {
            Err(reason)
        } else {
            progress(Progress { stage: "webgpu", done: 0, total: 1 });
            GpuContext::new().await.map_err(|e| e.to_string())
        };
        let adapter_ms = if ctx.is_ok() { now_ms() - t1 } else { 0.0 };
        let mut study = Study::on(model, ctx, progress);
        study.timings.parse_ms = parse_ms;
        study.timings.adapter_ms = adapter_ms;
        study
    }

    /// A study of `model` on the GPU of `ctx` (its weights uploaded), or on the CPU with the
    /// reason there is no GPU. Never fails: an upload that fails leaves the study on the CPU,
    /// saying why.
    pub fn on(model: Model, ctx: Result<GpuContext, String>, progress: &mut dyn FnMut(Progress)) -> Study {
        let mut timings = LoadTimings::default();
        let (gpu, gpu_reason) = match ctx {
            Err(reason) => (None, Some(reason)),
            Ok(ctx) => {
                let t0 = now_ms();
                let uploaded = GpuModel::upload(&ctx, &model, progress);
                timings.upload_ms = now_ms() - t0;
                match uploaded {
                    Ok(gpu_model) => (Some(StudyGpu { ctx, model: gpu_model }), None),
                    Err(e) => (None, Some(format!("uploading the weights failed: {e}"))),
                }
            }
        };
        Study {
            model,
            gpu,
            gpu_reason,
            timings,
            applied: Default::default(),
            intervention: None,
            runtime: None,
            prepared: None,
            forward: None,
            pinned: None,
        }
    }

    /// "webgpu" when the model is on the GPU, else "cpu".
    pub fn backend(&self) -> &'static str {
        if self.gpu.is_some() {
            "webgpu"
        } else {
            "cpu"
        }
    }

    pub fn device_info(&self) -> DeviceInfo<'_> {
        DeviceInfo {
            backend: self.backend(),
            adapter: self.gpu.as_ref().map(|g| &g.ctx.summary),
            reason: self.gpu_reason.as_deref(),
            gpu_bytes: self.gpu.as_ref().map_or(0, |g| g.model.gpu_bytes()),
            timings: self.timings,
            forward: self.forward.as_ref(),
        }
    }

    /// The GPU, or why an operation named `what` cannot run without it.
    fn require_gpu(&self, what: &'static str) -> Result<&StudyGpu, StudyError> {
        self.gpu.as_ref().ok_or_else(|| self.no_gpu(what))
    }

    /// Why an operation named `what` cannot run: there is no GPU.
    fn no_gpu(&self, what: &'static str) -> StudyError {
        StudyError::NeedsGpu { what, reason: self.gpu_reason.clone().unwrap_or_else(|| "no GPU".into()) }
    }

    /// The model under study is the model as loaded: nothing re-quantized, no intervention, no
    /// run-time quantization, no method.
    pub fn studies_as_loaded(&self) -> bool {
        self.applied.is_empty() && self.intervention.is_none() && self.runtime.is_none() && self.prepared.is_none()
    }

    /// The model under study is the reference (the model as loaded, nothing pinned): one run
    /// answers both sides of a comparison, which then agree exactly.
    pub fn compares_with_itself(&self) -> bool {
        self.pinned.is_none() && self.studies_as_loaded()
    }

    /// The prepared run of one side: the pinned configuration for the reference, the prepared
    /// model under study (a CLI experiment, a page's method) for the other.
    fn prepared_run(&self, reference: bool) -> Option<&PreparedRun> {
        if reference {
            self.pinned.as_ref().map(|p| &p.ready.run)
        } else {
            self.prepared.as_ref()
        }
    }

    /// Whether a run (the reference with `reference`, else the model under study) goes to the CPU
    /// reference: always without a GPU; a prepared run where it was prepared to run; otherwise
    /// when `choose_forward` picked the CPU and the CPU computes the run exactly (the model as
    /// loaded). Generation follows the same choice: the CPU reference has no KV cache and
    /// recomputes the whole sequence each token, which on a software adapter still beats a GPU
    /// decode step by far (README).
    fn runs_on_cpu(&self, reference: bool) -> bool {
        if self.gpu.is_none() {
            return true;
        }
        if let Some(run) = self.prepared_run(reference) {
            return !run.on_gpu;
        }
        self.cpu_measured_faster() && (reference || self.studies_as_loaded())
    }

    /// `choose_forward` measured the CPU reference faster than this GPU.
    fn cpu_measured_faster(&self) -> bool {
        self.forward.as_ref().is_some_and(|f| f.backend == "cpu")
    }

    /// The step options of a run: the reference (the weights as loaded, no intervention, or the
    /// pinned configuration's) or the model under study (as re-quantized, with the intervention
    /// and run-time quantizers).
    pub fn capture(&self, reference: bool) -> Capture {
        match (reference, &self.pinned) {
            (true, Some(pinned)) => Capture {
                weights_as_loaded: true,
                intervention: pinned.ready.intervention.clone(),
                runtime: pinned.ready.runtime.clone(),
                ..Default::default()
            },
            (true, None) => Capture { weights_as_loaded: true, ..Default::default() },
            (false, _) => Capture {
                weights_as_loaded: false,
                intervention: self.intervention.clone(),
                runtime: self.runtime.clone(),
                ..Default::default()
            },
        }
    }

    /// The step options of the outlier views, which look inside the study's GPU model: the model
    /// under study, or with `as_loaded` the model as loaded (whatever is pinned as the reference).
    fn view_capture(&self, as_loaded: bool) -> Capture {
        if as_loaded {
            Capture { weights_as_loaded: true, ..Default::default() }
        } else {
            self.capture(false)
        }
    }

    /// The GPU weights of a run: a prepared run's own when it uploaded them, else the study's
    /// GPU model (which the capture tells to use the weights as loaded or the re-quantized ones).
    fn gpu_model<'g>(&'g self, gpu: &'g StudyGpu, reference: bool) -> &'g GpuModel {
        match self.prepared_run(reference).and_then(|p| p.gpu_model.as_ref()) {
            Some(model) => model,
            None => &gpu.model,
        }
    }

    pub fn token_texts(&self, ids: &[u32]) -> Vec<TokenText> {
        ids.iter()
            .enumerate()
            .map(|(index, &id)| TokenText { index, id, text: self.model.tokenizer.token_text(id) })
            .collect()
    }

    /// The last position's logits of `tokens` (the reference with `as_loaded`, else the model
    /// under study, its CPU method aside), and the backend that computed them.
    async fn last_logits(&self, tokens: &[u32], as_loaded: bool) -> Result<(Vec<f32>, &'static str), StudyError> {
        let mut session = Session::new(self, tokens.len(), as_loaded)?;
        let logits = session.advance(tokens).await?;
        Ok((logits, session.backend()))
    }

    /// Sets the intervention of every later run of the model under study (`None`: none). They
    /// run on the GPU; mean-massive is first calibrated as everywhere ([`Intervener::calibrated`]:
    /// the model as loaded, on the CPU reference), and what it was calibrated on is returned.
    pub fn set_intervention(
        &mut self,
        intervention: Option<Intervention>,
    ) -> Result<Option<MeanMassiveCalibration>, StudyError> {
        let Some(intervention) = intervention else {
            self.intervention = None;
            return Ok(None);
        };
        let gpu = self.require_gpu("interventions in the page")?;
        let intervener = Intervener::calibrated(&self.model, intervention)?;
        let c = &self.model.config;
        self.intervention = Some(GpuIntervention::new(&gpu.ctx, &intervener, c.n_layers, c.d_model)?);
        Ok(intervener.calibration().copied())
    }

    /// The `top_k` most likely next tokens after `prompt` of the model under study, on the GPU
    /// when there is one unless `choose_forward` gave this run to the CPU.
    pub async fn predict(&self, prompt: &str, top_k: usize) -> Result<Prediction, StudyError> {
        if top_k == 0 {
            return Err(StudyError::Invalid { what: "top_k", message: "must be at least 1".into() });
        }
        let t0 = now_ms();
        let tokens = self.model.prompt_tokens(prompt)?;
        let (logits, backend) = self.last_logits(&tokens, false).await?;
        let top = self.model.top_tokens(&logits, top_k);
        Ok(Prediction {
            model: self.model.source.clone(),
            prompt: prompt.into(),
            tokens,
            top,
            backend,
            ms: now_ms() - t0,
        })
    }

    /// The next-token top-k of the model as loaded and of the model under study, side by side.
    /// The reference runs where `choose_forward` put it; the model under study on the GPU (or
    /// its CPU method). While the model under study is the model as loaded, one run answers both
    /// columns (`same_run`), so they agree exactly.
    pub async fn predict_both(&self, prompt: &str, top_k: usize) -> Result<BothPredictions, StudyError> {
        self.require_gpu("side-by-side predictions")?;
        let t0 = now_ms();
        let tokens = self.model.prompt_tokens(prompt)?;
        let k = top_k.max(1);
        let (logits, reference_backend) = self.last_logits(&tokens, true).await?;
        let reference = self.model.top_tokens(&logits, k);
        let same_run = self.compares_with_itself();
        let (quantized, quantized_backend) = if same_run {
            (reference.clone(), reference_backend)
        } else {
            let (logits, backend) = self.last_logits(&tokens, false).await?;
            (self.model.top_tokens(&logits, k), backend)
        };
        Ok(BothPredictions {
            reference,
            quantized,
            tokens,
            reference_backend,
            quantized_backend,
            same_run,
            ms: now_ms() - t0,
        })
    }

    /// Outlier summaries of `prompt` reduced on the GPU (the model under study, or as loaded with
    /// `as_loaded`), and with `tensor` that one whole tensor.
    pub async fn probe(
        &self,
        prompt: &str,
        as_loaded: bool,
        tensor: Option<(usize, ProbePoint)>,
    ) -> Result<Probed, StudyError> {
        let gpu = self.require_gpu("probes")?;
        let t0 = now_ms();
        let tokens = self.model.prompt_tokens(prompt)?;
        let capture = Capture { probes: true, tensor, ..self.view_capture(as_loaded) };
        let mut cache = gpu.model.new_cache(&gpu.ctx, tokens.len() as u32)?;
        let out = gpu.model.step(&gpu.ctx, &mut cache, &tokens, &capture).await?;
        let tensor = match (tensor, out.tensor) {
            (Some((layer, point)), Some((values, width))) => Some((layer, point, values, width)),
            _ => None,
        };
        Ok(Probed {
            tokens: self.token_texts(&tokens),
            probes: out.probes,
            attention: out.attention,
            tensor,
            ms: now_ms() - t0,
        })
    }

    /// KL, PD-KL, top-1 agreement, perplexity, QiD and per-layer error of the model under study
    /// against the model as loaded (each where [`Study::runs_on_cpu`] puts it; one run per window
    /// while the model under study is the model as loaded, so KL is exactly 0), over the tokens
    /// of `text` (the shipped evaluation text when `None`) that `options` selects. Progress
    /// counts windows; `cancelled` is asked before each window, and a `true` ends the evaluation
    /// with [`StudyError::Cancelled`].
    pub async fn evaluate(
        &self,
        text: Option<&str>,
        options: &EvalOptions,
        progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Evaluated, StudyError> {
        let t0 = now_ms();
        let tokens = eval_tokens(&self.model, text.unwrap_or(EVAL_TEXT), options)?;
        self.evaluate_tokens(&tokens, options, None, progress, cancelled).await.map(|(result, window)| Evaluated {
            result,
            window,
            ms: now_ms() - t0,
        })
    }

    /// [`Study::evaluate`] on `tokens`; also returns the window that ran. With `reference`, the
    /// reference's windows are kept there and reused by the next evaluation of the same tokens
    /// (a report compares many configurations with one reference).
    pub async fn evaluate_tokens(
        &self,
        tokens: &[u32],
        options: &EvalOptions,
        reference: Option<&mut ReferenceWindows>,
        progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(EvalResult, usize), StudyError> {
        self.evaluate_into(tokens, options, reference, EvalAccumulator::new(&self.model), progress, cancelled).await
    }

    /// [`Study::evaluate_tokens`] into `acc` (which may keep every position).
    async fn evaluate_into(
        &self,
        tokens: &[u32],
        options: &EvalOptions,
        mut reference: Option<&mut ReferenceWindows>,
        mut acc: EvalAccumulator,
        progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(EvalResult, usize), StudyError> {
        let windows = windows(&self.model, tokens, options);
        let key = (tokens.to_vec(), options.window_for(&self.model));
        if let Some(cache) = reference.as_deref_mut() {
            if cache.key.as_ref() != Some(&key) {
                *cache = ReferenceWindows { key: Some(key), windows: Vec::new() };
            }
        }
        let same_run = self.compares_with_itself();
        for (i, w) in windows.iter().enumerate() {
            progress(Progress { stage: "evaluate", done: i as u64, total: windows.len() as u64 });
            // A turn for the browser's event loop, where a request to cancel arrives.
            yield_now().await;
            if cancelled() {
                return Err(StudyError::Cancelled { what: "the evaluation" });
            }
            let reference = match reference.as_deref_mut() {
                Some(cache) => {
                    if cache.windows.len() == i {
                        cache.windows.push(self.forward_window(w, true).await?);
                    }
                    std::borrow::Cow::Borrowed(&cache.windows[i])
                }
                None => std::borrow::Cow::Owned(self.forward_window(w, true).await?),
            };
            let quantized =
                if same_run { reference.clone().into_owned() } else { self.forward_window(w, false).await? };
            acc.add_window(w, &reference, &quantized);
        }
        progress(Progress { stage: "evaluate", done: windows.len() as u64, total: windows.len() as u64 });
        Ok((acc.finish(), options.window_for(&self.model)))
    }

    /// One window from an empty context (the reference with `as_loaded`, else the model under
    /// study): the logits of every position and the residual stream after each block.
    async fn forward_window(&self, tokens: &[u32], as_loaded: bool) -> Result<(Vec<f32>, Vec<Vec<f32>>), StudyError> {
        let cpu_options = ForwardOptions { all_logits: true, hidden_states: true, attention_probs: false };
        let gpu = match &self.gpu {
            Some(gpu) if !self.runs_on_cpu(as_loaded) => gpu,
            _ => {
                let out = self.cpu_forward(tokens, cpu_options, as_loaded)?;
                return Ok((out.logits, out.hidden_states));
            }
        };
        let model = self.gpu_model(gpu, as_loaded);
        let mut cache = model.new_cache(&gpu.ctx, tokens.len() as u32)?;
        let capture = Capture { hidden_states: true, all_logits: true, ..self.capture(as_loaded) };
        let out = model.step(&gpu.ctx, &mut cache, tokens, &capture).await?;
        Ok((out.logits, out.hidden_states))
    }
}
