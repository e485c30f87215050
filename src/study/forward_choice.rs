//! Where the runs that the CPU reference computes exactly go: the weights as loaded, no
//! intervention, no run-time quantization (the reference side of `predict_both` and
//! `evaluate`, the reference continuation, and the model under study while it is the model as
//! loaded). Everything else (re-quantized weights, interventions, run-time quantizers, probes)
//! stays on the GPU, where it lives. On a software adapter (SwiftShader, lavapipe: the kernels
//! run on the CPU) the CPU reference's loops can beat the GPU forward's many small dispatches,
//! so the study can time both and take the faster.

use std::str::FromStr;

use serde::Serialize;

use super::{now_ms, Study, StudyGpu};
use crate::error::{ModelError, StudyError};
use crate::gpu::forward::Capture;
use crate::model::generate::{CpuBackend, NextTokenLogits};
use crate::model::Progress;

/// A first GPU run more than this many times as long as the CPU's decides for the CPU without a
/// second: the GPU could only win if compiling the pipelines took over 90% of its first run.
/// Each software-adapter run costs seconds (a minute on a loaded 2-core machine).
const CLEAR_MARGIN: f64 = 10.0;

/// The prompt both backends are timed on: short and fixed, so that the times compare across
/// loads (the page's default prompt, 5 tokens with SmolLM2's tokenizer).
const MEASURE_PROMPT: &str = "The capital of France is";

/// How to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardPolicy {
    /// Measure on a software adapter; a hardware adapter takes the GPU unmeasured.
    Auto,
    /// Measure whatever the adapter (a browser may name an adapter software that wgpu does not).
    Measure,
    /// The GPU, unmeasured.
    Gpu,
}

impl FromStr for ForwardPolicy {
    type Err = StudyError;

    fn from_str(s: &str) -> Result<Self, StudyError> {
        match s {
            "auto" => Ok(ForwardPolicy::Auto),
            "measure" => Ok(ForwardPolicy::Measure),
            "webgpu" => Ok(ForwardPolicy::Gpu),
            other => Err(StudyError::Invalid {
                what: "forward policy",
                message: format!("unknown policy {other:?}: auto, measure or webgpu"),
            }),
        }
    }
}

/// Where those runs go, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardChoice {
    /// "cpu" or "webgpu".
    pub backend: &'static str,
    /// Why, in words.
    pub reason: String,
    /// The times behind the choice; null when nothing was measured.
    pub measured: Option<ForwardTimes>,
}

/// One forward of [`MEASURE_PROMPT`] on each backend, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardTimes {
    pub prompt_tokens: usize,
    /// The CPU reference's second run (the first lets the runtime warm the hot code).
    pub cpu_ms: f64,
    /// The GPU's first run, pipeline compilation included.
    pub gpu_first_ms: f64,
    /// The GPU's second run; null when the first run decided it (not run then): it beat the CPU,
    /// or took more than [`CLEAR_MARGIN`] times as long.
    pub gpu_ms: Option<f64>,
}

impl ForwardChoice {
    fn fixed(backend: &'static str, reason: impl Into<String>) -> Self {
        ForwardChoice { backend, reason: reason.into(), measured: None }
    }
}

impl Study {
    /// Decides where the runs the CPU reference computes exactly go, by `policy`, and keeps the
    /// choice (`device_info().forward`). Without a GPU everything runs on the CPU whatever the
    /// policy. Measuring reports stage "measure".
    pub async fn choose_forward(
        &mut self,
        policy: ForwardPolicy,
        progress: &mut dyn FnMut(Progress),
    ) -> &ForwardChoice {
        let choice = match (&self.gpu, policy) {
            (None, _) => ForwardChoice::fixed(
                "cpu",
                format!("no WebGPU ({})", self.gpu_reason.as_deref().unwrap_or("unknown reason")),
            ),
            (Some(_), ForwardPolicy::Gpu) => {
                ForwardChoice::fixed("webgpu", "the page's address asks for WebGPU (backend=webgpu)")
            }
            (Some(gpu), ForwardPolicy::Auto) if !gpu.ctx.summary.is_software() => {
                ForwardChoice::fixed("webgpu", "a hardware adapter: WebGPU, not measured")
            }
            (Some(gpu), ForwardPolicy::Auto | ForwardPolicy::Measure) => self.measure_forward(gpu, progress).await,
        };
        self.forward.insert(choice)
    }

    /// Times [`MEASURE_PROMPT`] on the CPU reference (twice: the first run warms the hot code)
    /// and on the GPU (the first run compiles the pipelines; a second one only when the first
    /// does not decide: slower than the CPU, by less than [`CLEAR_MARGIN`]), and picks the faster.
    async fn measure_forward(&self, gpu: &StudyGpu, progress: &mut dyn FnMut(Progress)) -> ForwardChoice {
        const STEPS: u64 = 4;
        let mut report = |done| progress(Progress { stage: "measure", done, total: STEPS });
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
            let as_loaded = Capture { weights_as_loaded: true, ..Default::default() };
            gpu.model.step(&gpu.ctx, &mut cache, &tokens, &as_loaded).await?;
            Ok(now_ms() - t0)
        };
        report(0);
        let cpu_ms = match time_cpu().and_then(|_| {
            report(1);
            time_cpu()
        }) {
            Ok(t) => t,
            Err(e) => return ForwardChoice::fixed("webgpu", format!("the CPU reference failed while measuring: {e}")),
        };
        report(2);
        let gpu_first_ms = match time_gpu().await {
            Ok(t) => t,
            Err(e) => return ForwardChoice::fixed("cpu", format!("WebGPU failed while measuring: {e}")),
        };
        report(3);
        let decided = gpu_first_ms <= cpu_ms || gpu_first_ms > CLEAR_MARGIN * cpu_ms;
        let gpu_ms = if decided {
            None
        } else {
            match time_gpu().await {
                Ok(t) => Some(t),
                Err(e) => return ForwardChoice::fixed("cpu", format!("WebGPU failed while measuring: {e}")),
            }
        };
        report(STEPS);
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
