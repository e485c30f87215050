//! One quantization experiment, as the CLI's `eval`, `report` and the page describe it: weights
//! (a recipe), run-time quantization (activations, KV cache, attention probabilities) and a
//! calibrated method, prepared from the model as loaded into the model that is evaluated and the
//! hook it runs with. Keeping the order of the steps here (calibrate → method → weights →
//! run-time quantizers) means every front end combines them the same way.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::activation::forward::ActivationSchemes;
use super::apply::{quantize_model, QuantizedModel, TensorReport};
use super::attention_probs::{search_adalog_q, AttentionSample, ProbQuantizer, ProbScheme};
use super::calibrate::{calibrate, Calibration};
use super::kv::KvScheme;
use super::recipe::Recipe;
use super::runtime::{RuntimeQuant, RuntimeQuantizer};
use super::{bitalloc, fireq, llmfp4, outliertune, ptq161, smoothquant};
use crate::error::{ModelError, QuantError};
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions, LinearInput};
use crate::model::{Model, Progress};

/// A calibrated method: a transform fitted on a calibration text (docs/quantizers.md §4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// SmoothQuant with migration strength α.
    SmoothQuant { alpha: f32 },
    /// MPTQ-ViT's SQ-b: centre, then smooth.
    SqB { alpha: f32 },
    /// OutlierTune W`b`A`b`.
    OutlierTune { bits: u8 },
    /// PTQ1.61's structure (4-bit salient channels, binarized rest).
    Ptq161,
    /// FireQ's RoPE-aware key scaling (for a quantized KV cache).
    FireQ,
    /// Greedy mixed precision to a target bits per weight.
    BitAlloc { target: f64 },
    /// LLM-FP4 W4A4: searched activation format and bias, pre-shifted exponent bias in the
    /// weights; the weights' per-channel bias searched too with `llmfp4:search`.
    LlmFp4 { weight_search: bool },
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::SmoothQuant { alpha } => write!(f, "smoothquant:{alpha}"),
            Method::SqB { alpha } => write!(f, "sqb:{alpha}"),
            Method::OutlierTune { bits } => write!(f, "outliertune:{bits}"),
            Method::Ptq161 => f.write_str("ptq161"),
            Method::FireQ => f.write_str("fireq"),
            Method::BitAlloc { target } => write!(f, "bitalloc:{target}"),
            Method::LlmFp4 { weight_search: false } => f.write_str("llmfp4"),
            Method::LlmFp4 { weight_search: true } => f.write_str("llmfp4:search"),
        }
    }
}

serde_by_name!(Method);

impl FromStr for Method {
    type Err = QuantError;

    fn from_str(input: &str) -> Result<Self, QuantError> {
        let bad = |message: &str| QuantError::BadScheme { input: input.into(), message: message.into() };
        let lowered = input.trim().to_ascii_lowercase();
        let (name, parameter) = match lowered.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (lowered.as_str(), None),
        };
        let number = |default: f64| -> Result<f64, QuantError> {
            match parameter {
                None => Ok(default),
                Some(p) => p.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| bad("the parameter after ':' must be a number")),
            }
        };
        let alpha = || -> Result<f32, QuantError> {
            let a = number(smoothquant::DEFAULT_ALPHA as f64)?;
            if (0.0..=1.0).contains(&a) {
                Ok(a as f32)
            } else {
                Err(bad("the migration strength α must be in [0, 1]"))
            }
        };
        match name {
            "smoothquant" => Ok(Method::SmoothQuant { alpha: alpha()? }),
            "sqb" => Ok(Method::SqB { alpha: alpha()? }),
            "outliertune" => {
                let bits = number(6.0)?;
                if bits.fract() != 0.0 || !(2.0..=8.0).contains(&bits) {
                    return Err(bad("OutlierTune takes 2 to 8 bits"));
                }
                Ok(Method::OutlierTune { bits: bits as u8 })
            }
            "ptq161" if parameter.is_none() => Ok(Method::Ptq161),
            "fireq" if parameter.is_none() => Ok(Method::FireQ),
            "llmfp4" if parameter.is_none() => Ok(Method::LlmFp4 { weight_search: false }),
            "llmfp4" if parameter == Some("search") => Ok(Method::LlmFp4 { weight_search: true }),
            "bitalloc" => {
                let target = parameter.ok_or_else(|| bad("give the target bits per weight, e.g. bitalloc:4.5"))?;
                let target: f64 = target.parse().ok().filter(|t: &f64| *t > 0.0 && *t <= 32.0).ok_or_else(|| bad("the target bits per weight must be in (0, 32]"))?;
                Ok(Method::BitAlloc { target })
            }
            _ => Err(bad("unknown method (smoothquant[:α], sqb[:α], outliertune[:bits], ptq161, fireq, bitalloc:BPW, llmfp4[:search])")),
        }
    }
}

impl Method {
    pub fn catalog() -> Vec<Method> {
        ["smoothquant:0.5", "sqb:0.5", "outliertune:6", "outliertune:8", "ptq161", "fireq", "bitalloc:4.5", "bitalloc:3.5", "llmfp4", "llmfp4:search"]
            .iter()
            .map(|n| n.parse().expect("catalog names parse"))
            .collect()
    }

    /// Methods that choose the weights themselves and cannot take a recipe as well.
    fn sets_weights(&self) -> bool {
        matches!(self, Method::OutlierTune { .. } | Method::Ptq161 | Method::BitAlloc { .. } | Method::LlmFp4 { .. })
    }
}

/// What to do to the model.
#[derive(Debug, Clone, Default)]
pub struct Experiment {
    pub weights: Option<Recipe>,
    pub activations: Option<ActivationSchemes>,
    pub kv: Option<KvScheme>,
    pub probs: Option<ProbScheme>,
    pub method: Option<Method>,
}

/// What a method or search decided, for reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Decisions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration_tokens: Option<usize>,
    /// AdaLog's searched q per layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adalog_q: Option<Vec<u32>>,
    /// The recipe bit allocation chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation: Option<bitalloc::Allocation>,
}

/// The model to evaluate and how it runs.
pub struct Prepared {
    /// The weights a method rewrote (before any recipe quantized them).
    pub transformed: Option<Model>,
    /// The recipe's result (with its codebooks, which the GPU decodes).
    pub quantized: Option<QuantizedModel>,
    pub runtime: RuntimeQuant,
    /// Of the evaluated model, when its weights were quantized (by a recipe or a method).
    pub bits_per_weight: Option<f64>,
    pub decisions: Decisions,
}

/// Tokens of the calibration forward that the AdaLog search reads (its probabilities are
/// `heads × n²` per layer, and the search scores 129 candidates on them).
pub const ADALOG_SEARCH_TOKENS: usize = 64;

impl Experiment {
    pub fn needs_calibration(&self) -> bool {
        self.method.is_some() || matches!(self.probs, Some(ProbScheme::AdaLog { q: None, .. }))
    }

    /// Checks combinations that cannot work, before any work is done.
    pub fn validate(&self) -> Result<(), QuantError> {
        if let Some(method) = self.method {
            let bad = |message: &str| QuantError::BadScheme { input: method.to_string(), message: message.into() };
            if method.sets_weights() && self.weights.is_some() {
                return Err(bad("this method chooses the weights' quantization itself; drop --w/--recipe"));
            }
            if matches!(method, Method::OutlierTune { .. } | Method::LlmFp4 { .. }) && self.activations.is_some() {
                return Err(bad("this method quantizes the activations itself (static scales it calibrated); drop --a"));
            }
        }
        Ok(())
    }

    /// Prepares the experiment on `model` (as loaded), calibrating on `calibration_tokens` in
    /// windows of `window` when a method or a search needs it.
    pub fn prepare(
        &self,
        model: &Model,
        calibration_tokens: &[u32],
        window: usize,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Prepared, ModelError> {
        self.validate()?;
        let mut decisions = Decisions::default();
        // LLM-FP4 searches on the activations themselves (its own forward); every other method
        // reads the calibration statistics.
        let calibration: Option<Calibration> = match self.method {
            Some(Method::LlmFp4 { .. }) | None => None,
            Some(_) => {
                let c = calibrate(model, calibration_tokens, window, progress)?;
                decisions.calibration_tokens = Some(c.tokens);
                Some(c)
            }
        };
        let mut runtime = RuntimeQuant { activations: self.activations, kv: self.kv, ..Default::default() };
        let mut weights = self.weights.clone();
        let mut bits_per_weight = None;
        let transformed: Option<Model> = match (self.method, &calibration) {
            (None, _) => None,
            (Some(Method::LlmFp4 { weight_search }), _) => {
                let fp4 = llmfp4::llmfp4(model, calibration_tokens, weight_search)?;
                decisions.calibration_tokens = Some(calibration_tokens.len().min(llmfp4::SEARCH_TOKENS));
                runtime.inputs = fp4.inputs;
                bits_per_weight = Some(fp4.bits_per_weight);
                Some(fp4.model)
            }
            (Some(Method::SmoothQuant { alpha }), Some(cal)) => Some(smoothquant::smooth(model, cal, alpha)?),
            (Some(Method::SqB { alpha }), Some(cal)) => {
                let (smoothed, inputs) = smoothquant::smooth_with_bias(model, cal, alpha)?;
                runtime.inputs = inputs;
                Some(smoothed)
            }
            (Some(Method::OutlierTune { bits }), Some(cal)) => {
                let tuned = outliertune::outliertune(model, cal, bits)?;
                runtime.inputs = tuned.inputs;
                runtime.activations = Some(tuned.activations);
                bits_per_weight = Some(tuned.bits_per_weight);
                Some(tuned.model)
            }
            (Some(Method::Ptq161), Some(cal)) => {
                let (quantized, bpw) = ptq161::ptq161(model, cal)?;
                bits_per_weight = Some(bpw);
                Some(quantized)
            }
            (Some(Method::FireQ), Some(cal)) => {
                runtime.key_scales = Some(fireq::key_scales(&model.config, cal));
                if runtime.kv.is_none() {
                    runtime.kv = Some("int4-e4m3".parse().expect("a valid KV scheme"));
                }
                None
            }
            (Some(Method::BitAlloc { target }), Some(cal)) => {
                let allocation = bitalloc::allocate(model, cal, target, progress)?;
                weights = Some(allocation.recipe.clone());
                decisions.allocation = Some(allocation);
                None
            }
            // Every statistics-reading method was calibrated above.
            (Some(_), None) => None,
        };
        let base = transformed.as_ref().unwrap_or(model);
        let quantized = match &weights {
            Some(recipe) => {
                let q = quantize_model(base, recipe, progress)?;
                bits_per_weight = Some(q.bits_per_weight);
                Some(q)
            }
            None => None,
        };
        let evaluated_or_loaded = quantized.as_ref().map_or(base, |q| &q.model);
        if let Some(scheme) = self.probs {
            runtime.probs = Some(match scheme {
                ProbScheme::AdaLog { bits, q: None } => {
                    let n = calibration_tokens.len().min(ADALOG_SEARCH_TOKENS);
                    let q = search_adalog(evaluated_or_loaded, &runtime, &calibration_tokens[..n], bits)?;
                    decisions.adalog_q = Some(q.clone());
                    if decisions.calibration_tokens.is_none() {
                        decisions.calibration_tokens = Some(n);
                    }
                    ProbQuantizer::with_layer_q(bits, q)
                }
                _ => ProbQuantizer::new(scheme, model.config.n_layers).map_err(|e| QuantError::BadScheme {
                    input: e.scheme.clone(),
                    message: e.to_string(),
                })?,
            });
        }
        Ok(Prepared { transformed, quantized, runtime, bits_per_weight, decisions })
    }
}

impl Prepared {
    /// The model to evaluate, given the model as loaded.
    pub fn model<'a>(&'a self, loaded: &'a Model) -> &'a Model {
        match (&self.quantized, &self.transformed) {
            (Some(q), _) => &q.model,
            (None, Some(t)) => t,
            (None, None) => loaded,
        }
    }

    pub fn tensors(&self) -> Option<&[TensorReport]> {
        self.quantized.as_ref().map(|q| q.tensors.as_slice())
    }
}

/// Records each layer's values (as the run-time quantizer left them) on top of that quantizer.
struct ValueRecorder<'a> {
    inner: RuntimeQuantizer<'a>,
    values: Vec<Vec<f32>>,
}

impl ForwardHook for ValueRecorder<'_> {
    fn before_linear(&mut self, layer: usize, input: LinearInput, x: &mut [f32], k: usize) {
        self.inner.before_linear(layer, input, x, k);
    }

    fn after_rope(&mut self, layer: usize, q: &mut [f32], k: &mut [f32], v: &mut [f32]) {
        self.inner.after_rope(layer, q, k, v);
        self.values.push(v.to_vec());
    }
}

/// AdaLog's q per layer on `tokens`, with the model running its other run-time quantizers.
fn search_adalog(model: &Model, runtime: &RuntimeQuant, tokens: &[u32], bits: u8) -> Result<Vec<u32>, ModelError> {
    if tokens.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    let mut recorder = ValueRecorder { inner: RuntimeQuantizer::new(runtime, &model.config), values: Vec::new() };
    let options = ForwardOptions { attention_probs: true, ..Default::default() };
    let out = forward_with(model, tokens, options, &mut recorder)?;
    if let Some(e) = recorder.inner.take_error() {
        return Err(e.into());
    }
    let c = &model.config;
    let samples: Vec<Vec<AttentionSample>> = out
        .attention_probs
        .iter()
        .zip(&recorder.values)
        .map(|(probs, values)| {
            vec![AttentionSample {
                probs,
                values,
                heads: c.n_heads,
                kv_heads: c.n_kv_heads,
                head_dim: c.head_dim,
                tokens: tokens.len(),
            }]
        })
        .collect();
    Ok(search_adalog_q(bits, &samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_and_bad_ones_say_why() {
        for m in Method::catalog() {
            assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
        }
        assert_eq!("sqb".parse::<Method>().unwrap(), Method::SqB { alpha: 0.5 });
        assert_eq!("outliertune".parse::<Method>().unwrap(), Method::OutlierTune { bits: 6 });
        for (bad, says) in [
            ("smoothquant:2", "[0, 1]"),
            ("outliertune:9", "2 to 8"),
            ("bitalloc", "target"),
            ("bitalloc:-1", "(0, 32]"),
            ("gptq", "unknown method"),
            ("ptq161:3", "unknown method"),
        ] {
            let e = bad.parse::<Method>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn methods_that_set_weights_refuse_a_recipe() {
        let e = Experiment {
            weights: Some(Recipe::uniform("int4".parse().unwrap())),
            method: Some(Method::Ptq161),
            ..Default::default()
        };
        assert!(e.validate().unwrap_err().to_string().contains("drop --w"));
        let e = Experiment {
            activations: Some(ActivationSchemes { default: "int8-token".parse().unwrap(), down: None }),
            method: Some(Method::OutlierTune { bits: 6 }),
            ..Default::default()
        };
        assert!(e.validate().is_err());
    }
}
