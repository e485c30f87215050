//! Run-time quantization of the model under study (activations, KV cache, attention
//! probabilities) and the calibrated methods (docs/quantizers.md §4).
//!
//! The run-time quantizers run in the GPU forward of the model under study (`Capture::runtime`),
//! next to the weight recipe and the intervention, so predictions, generation, metrics and every
//! outlier view show them; so do FireQ's key scales. A calibrated method is prepared once by the
//! same `Experiment` as the CLI's (calibration and transform on the CPU reference). One that
//! rewrites weights and norms (SmoothQuant, SQ-b, OutlierTune, PTQ1.61, LLM-FP4) then is the
//! model under study on the CPU reference (`prepared.rs`), since the page's GPU model keeps one
//! copy of the norms and the masters: predictions, metrics and generation run it there; the
//! outlier views keep showing the GPU model (the recipe and the run-time quantizers without the
//! method), and the result says so (`cpu_method`). Bit allocation only chooses a recipe, which `apply_recipe` puts on the
//! GPU.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::prepared::PreparedRun;
use super::{now_ms, Study};
use crate::error::StudyError;
use crate::gpu::kernels::runtime_quant::GpuRuntimeQuant;
use crate::model::window::{eval_tokens, EvalOptions, EVAL_TEXT};
use crate::model::{Model, Progress};
use crate::quant::activation::forward::ActivationSchemes;
use crate::quant::activation::ActScheme;
use crate::quant::attention_probs::ProbScheme;
use crate::quant::bitalloc::allocate;
use crate::quant::calibrate::calibrate;
use crate::quant::experiment::{Experiment, Method};
use crate::quant::kv::KvScheme;
use crate::quant::runtime::RuntimeQuant;

/// Activation schemes offered in the page's menu.
const ACTIVATIONS: [&str; 13] = [
    "int8-tensor",
    "int8-token",
    "int8-channel",
    "int6-token",
    "int4-token",
    "int4-channel",
    "fp8-e4m3-token",
    "fp8-e5m2-token",
    "mxfp4",
    "nvfp4",
    "int8-token-clip99.9",
    "int4-token+hadamard",
    "int4-token-clip99+hadamard",
];

/// Default calibration length in the page: the calibration forward runs single-threaded in wasm.
pub const PAGE_CALIBRATION_TOKENS: usize = 32;

/// What to run: scheme names from [`RuntimeMenus`]; absent, "" or "none" for off.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub a: Option<String>,
    #[serde(default)]
    pub a_down: Option<String>,
    #[serde(default)]
    pub kv: Option<String>,
    #[serde(default)]
    pub attn: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    /// Calibrate on this many tokens of the shipped text (default [`PAGE_CALIBRATION_TOKENS`]).
    #[serde(default)]
    pub calib_tokens: Option<usize>,
}

impl RuntimeConfig {
    /// The experiment these names ask for (no weight recipe); a bad name is an error naming it.
    pub fn experiment(&self) -> Result<Experiment, StudyError> {
        let default: Option<ActScheme> = chosen(&self.a, "activations")?;
        let down: Option<ActScheme> = chosen(&self.a_down, "down-projection input")?;
        let activations = match (default, down) {
            (Some(default), down) => Some(ActivationSchemes { default, down }),
            (None, Some(_)) => {
                return Err(StudyError::Invalid {
                    what: "down-projection input",
                    message: "a down-projection input scheme needs an activation scheme".into(),
                })
            }
            (None, None) => None,
        };
        let experiment = Experiment {
            weights: None,
            activations,
            kv: chosen(&self.kv, "KV cache")?,
            probs: chosen(&self.attn, "attention probabilities")?,
            method: chosen(&self.method, "method")?,
        };
        experiment.validate()?;
        Ok(experiment)
    }

    /// What `experiment` calibrates on: the first `calib_tokens` tokens of the shipped text (none
    /// when it needs no calibration).
    pub fn calibration_tokens(&self, experiment: &Experiment, model: &Model) -> Result<Vec<u32>, StudyError> {
        if !experiment.needs_calibration() {
            return Ok(Vec::new());
        }
        let n = self.calib_tokens.unwrap_or(PAGE_CALIBRATION_TOKENS).max(2);
        Ok(eval_tokens(model, EVAL_TEXT, &EvalOptions { max_tokens: Some(n), window: n, skip: 0 })?)
    }
}

/// The names a front end's menus offer.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeMenus {
    pub activations: Vec<String>,
    pub kv: Vec<String>,
    pub attention: Vec<String>,
    pub methods: Vec<String>,
}

impl RuntimeMenus {
    pub fn catalog() -> RuntimeMenus {
        RuntimeMenus {
            activations: ACTIVATIONS.iter().map(|s| s.to_string()).collect(),
            kv: KvScheme::catalog().iter().map(|s| s.to_string()).collect(),
            attention: ProbScheme::catalog().iter().map(|s| s.to_string()).collect(),
            methods: Method::catalog().iter().map(|m| m.to_string()).collect(),
        }
    }
}

/// What [`Study::set_runtime_quant`] set up.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeApplied {
    /// What runs in the GPU forward of the model under study, in words.
    pub gpu: String,
    /// The method answering predictions and metrics on the CPU reference, if any.
    pub cpu_method: Option<String>,
    /// What the method or a search decided (AdaLog's q per layer, the allocation, tokens).
    pub decisions: serde_json::Value,
    /// Bit allocation's recipe (JSON), for `apply_recipe`.
    pub recipe: Option<String>,
    pub bits_per_weight: Option<f64>,
    pub ms: f64,
}

/// `Some(parsed)` for a name that is present and not empty or "none".
fn chosen<T: std::str::FromStr>(name: &Option<String>, what: &'static str) -> Result<Option<T>, StudyError>
where
    T::Err: std::fmt::Display,
{
    match name.as_deref().map(str::trim) {
        None | Some("") | Some("none") => Ok(None),
        Some(n) => n.parse::<T>().map(Some).map_err(|e| StudyError::Invalid { what, message: e.to_string() }),
    }
}

/// The run-time quantizers in words.
fn describe(q: &RuntimeQuant) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &q.activations {
        parts.push(format!("activations {}", a.default));
        if let Some(d) = a.down {
            parts.push(format!("down input {d}"));
        }
    }
    if let Some(kv) = &q.kv {
        parts.push(format!("KV {kv}"));
    }
    if let Some(p) = &q.probs {
        parts.push(format!("attention {}", p.scheme));
    }
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(", ")
    }
}

impl Study {
    /// Sets the run-time quantization and the calibrated method of the model under study.
    /// Calibration (methods, AdaLog's search) runs on the first `calib_tokens` tokens of the
    /// shipped text on the CPU reference, with progress. A bad name changes nothing.
    pub async fn set_runtime_quant(
        &mut self,
        config: &RuntimeConfig,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RuntimeApplied, StudyError> {
        let t0 = now_ms();
        let experiment = config.experiment()?;
        let calib = config.calibration_tokens(&experiment, &self.model)?;
        // Bit allocation only chooses a recipe (which `apply_recipe` then puts on the GPU): it is
        // not prepared as a whole, which would quantize the model once more in memory.
        let allocation = match experiment.method {
            Some(Method::BitAlloc { target }) => {
                let calibration = calibrate(&self.model, &calib, calib.len().max(2), progress)?;
                Some(allocate(&self.model, &calibration, target, progress)?)
            }
            _ => None,
        };
        let to_prepare = match allocation {
            Some(_) => Experiment { method: None, ..experiment.clone() },
            None => experiment.clone(),
        };
        let mut prepared = to_prepare.prepare(&self.model, &calib, calib.len().max(2), progress)?;
        prepared.decisions.allocation = allocation;
        // A method that rewrote weights (and norms) answers on the CPU; everything else — the
        // run-time quantizers, and FireQ's key scales — runs in the GPU forward.
        let rewrites_weights = prepared.transformed.is_some() || prepared.quantized.is_some();
        let on_gpu = if rewrites_weights {
            RuntimeQuant {
                activations: experiment.activations,
                kv: experiment.kv,
                probs: prepared.runtime.probs.clone(),
                ..Default::default()
            }
        } else {
            prepared.runtime.clone()
        };
        let runtime = match &self.gpu {
            Some(gpu) if !on_gpu.is_empty() => {
                Some(Arc::new(GpuRuntimeQuant::new(&gpu.ctx, &on_gpu, &self.model.config)?))
            }
            _ => None,
        };
        let decisions = serde_json::to_value(&prepared.decisions)
            .map_err(|e| StudyError::Invalid { what: "decisions", message: e.to_string() })?;
        let recipe = prepared.decisions.allocation.as_ref().map(|a| a.recipe.to_json());
        let bits_per_weight =
            prepared.decisions.allocation.as_ref().map(|a| a.bits_per_weight).or(prepared.bits_per_weight);
        let mut gpu_text = describe(&on_gpu);
        if on_gpu.key_scales.is_some() {
            gpu_text.push_str(", FireQ key scales");
        }
        let method_run = match experiment.method {
            Some(method) if rewrites_weights => {
                Some(PreparedRun { prepared, method: Some(method), intervener: None, on_gpu: false, gpu_model: None })
            }
            _ => None,
        };
        let cpu_method = method_run.as_ref().and_then(|m| m.method).map(|m| m.to_string());
        self.runtime = runtime;
        self.prepared = method_run;
        Ok(RuntimeApplied { gpu: gpu_text, cpu_method, decisions, recipe, bits_per_weight, ms: now_ms() - t0 })
    }

}
