//! Everything that is quantized while the model runs, as one [`ForwardHook`] on the CPU reference:
//! the inputs of the linear layers (dynamic schemes of `activation`, or the static per-channel
//! scales a calibrated method fixed), the KV cache (`kv`), and the attention probabilities
//! (`attention_probs`); plus the calibrated rewrites that act at run time: a per-channel shift
//! taken out of a linear input before it is quantized and put back after (SQ-b's and
//! OutlierTune's symmetrization; deployed, `W·z` is folded into a bias), and FireQ's per-channel
//! key scales (queries get the inverse, so q·k is unchanged before quantization).
//!
//! Order inside a block, as a deployed kernel would run it:
//! - linear input: `x − z` → quantize (static or dynamic) → `+ z`;
//! - after RoPE: keys `× σ`, queries `÷ σ` (FireQ) → keys and values quantized as cached;
//! - after the softmax: the probabilities quantized.

use std::collections::HashMap;

use serde::Serialize;

use super::activation::fake_quantize;
use super::activation::forward::ActivationSchemes;
use super::attention_probs::ProbQuantizer;
use super::kv::{fake_quantize_kv, KvScheme};
use crate::error::{ModelError, QuantError};
use crate::model::intervene::Intervener;
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions, LinearInput};
use crate::model::window::WindowForward;
use crate::model::{LlamaConfig, Model};

/// Static symmetric per-channel quantization of a linear input (OutlierTune's "pre-executed
/// dequantization": the scales are folded into the weights' columns, so at run time
/// `x_int = RNE(x/s)` multiplies them directly). Like the released code, no clamp.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticChannelScales {
    pub bits: u8,
    pub scales: Vec<f32>,
}

impl StaticChannelScales {
    fn apply(&self, x: &mut [f32]) {
        let k = self.scales.len();
        for row in x.chunks_exact_mut(k) {
            for (v, &s) in row.iter_mut().zip(&self.scales) {
                if s > 0.0 {
                    *v = (*v / s).round_ties_even() * s;
                } else {
                    *v = 0.0;
                }
            }
        }
    }
}

/// What a calibrated method fixed for one linear input of one block.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InputCalibration {
    /// Per-channel shift `z` subtracted before quantizing and added back after.
    pub shift: Option<Vec<f32>>,
    /// Static scales that replace the dynamic activation scheme for this input.
    pub static_scales: Option<StaticChannelScales>,
    /// LLM-FP4's static FP quantizer (tensor bias, per-channel shifts), likewise replacing it.
    pub fp_bias: Option<super::llmfp4::FpChannelBias>,
}

/// The run-time quantization of a model: each part optional.
#[derive(Debug, Clone, Default)]
pub struct RuntimeQuant {
    pub activations: Option<ActivationSchemes>,
    pub kv: Option<KvScheme>,
    pub probs: Option<ProbQuantizer>,
    pub inputs: HashMap<(usize, LinearInput), InputCalibration>,
    /// FireQ: per layer, a scale per key channel (`kv_dim`); queries are divided by it.
    pub key_scales: Option<Vec<Vec<f32>>>,
}

impl RuntimeQuant {
    pub fn is_empty(&self) -> bool {
        self.activations.is_none()
            && self.kv.is_none()
            && self.probs.is_none()
            && self.inputs.is_empty()
            && self.key_scales.is_none()
    }
}

/// [`RuntimeQuant`] as a forward hook. A quantizer error (a non-finite value) cannot stop the
/// forward from inside the hook, so the first one is kept and reported after it.
pub struct RuntimeQuantizer<'a> {
    pub quant: &'a RuntimeQuant,
    config: LlamaConfig,
    error: Option<QuantError>,
}

impl<'a> RuntimeQuantizer<'a> {
    pub fn new(quant: &'a RuntimeQuant, config: &LlamaConfig) -> Self {
        RuntimeQuantizer { quant, config: config.clone(), error: None }
    }

    pub fn take_error(&mut self) -> Option<QuantError> {
        self.error.take()
    }

    fn keep(&mut self, result: Result<(), QuantError>) {
        if let (Err(e), None) = (result, &self.error) {
            self.error = Some(e);
        }
    }
}

fn add_shift(x: &mut [f32], shift: &[f32], sign: f32) {
    for row in x.chunks_exact_mut(shift.len()) {
        for (v, &z) in row.iter_mut().zip(shift) {
            *v += sign * z;
        }
    }
}

impl ForwardHook for RuntimeQuantizer<'_> {
    fn before_linear(&mut self, layer: usize, input: LinearInput, x: &mut [f32], k: usize) {
        let calibration = self.quant.inputs.get(&(layer, input));
        let shift = calibration.and_then(|c| c.shift.as_deref());
        if let Some(z) = shift {
            add_shift(x, z, -1.0);
        }
        let fp_bias = calibration.and_then(|c| c.fp_bias.as_ref());
        match (calibration.and_then(|c| c.static_scales.as_ref()), &self.quant.activations) {
            (Some(scales), _) => scales.apply(x),
            (None, _) if fp_bias.is_some() => fp_bias.into_iter().for_each(|fp| fp.apply(x)),
            (None, Some(schemes)) => {
                let result = fake_quantize(schemes.for_input(input), x, x.len() / k, k);
                self.keep(result);
            }
            (None, None) => {}
        }
        if let Some(z) = shift {
            add_shift(x, z, 1.0);
        }
    }

    fn after_rope(&mut self, layer: usize, q: &mut [f32], k: &mut [f32], v: &mut [f32]) {
        let c = &self.config;
        let (kv_dim, q_dim, hd) = (c.kv_dim(), c.q_dim(), c.head_dim);
        if let Some(scales) = self.quant.key_scales.as_ref().and_then(|s| s.get(layer)) {
            let group = c.n_heads / c.n_kv_heads;
            for row in k.chunks_exact_mut(kv_dim) {
                for (v, s) in row.iter_mut().zip(scales) {
                    *v *= s;
                }
            }
            for row in q.chunks_exact_mut(q_dim) {
                for (h, head) in row.chunks_exact_mut(hd).enumerate() {
                    let kv_scales = &scales[(h / group) * hd..][..hd];
                    for (v, s) in head.iter_mut().zip(kv_scales) {
                        *v /= s;
                    }
                }
            }
        }
        if let Some(scheme) = &self.quant.kv {
            let tokens = k.len() / kv_dim;
            let result = fake_quantize_kv(scheme, k, tokens, kv_dim, hd);
            self.keep(result);
            let result = fake_quantize_kv(scheme, v, tokens, kv_dim, hd);
            self.keep(result);
        }
    }

    fn after_softmax(&self, layer: usize, probs: &mut [f32]) {
        if let Some(quantizer) = &self.quant.probs {
            quantizer.quantize_row(layer, probs);
        }
    }
}

/// The run-time quantizer and an intervention on one forward: the intervention changes the
/// residual stream and the mask, the quantizer the linear inputs, the cache and the
/// probabilities, so they never touch the same values and simply run side by side.
struct Combined<'h, 'q> {
    quantizer: &'h mut RuntimeQuantizer<'q>,
    intervener: Option<&'h mut Intervener>,
}

impl ForwardHook for Combined<'_, '_> {
    fn after_block(&mut self, layer: usize, x: &mut [f32]) {
        if let Some(intervener) = self.intervener.as_deref_mut() {
            intervener.after_block(layer, x);
        }
    }

    fn masks_key(&self, query: usize, key: usize) -> bool {
        self.intervener.as_deref().is_some_and(|i| i.masks_key(query, key))
    }

    fn before_linear(&mut self, layer: usize, input: LinearInput, x: &mut [f32], k: usize) {
        self.quantizer.before_linear(layer, input, x, k);
    }

    fn after_rope(&mut self, layer: usize, q: &mut [f32], k: &mut [f32], v: &mut [f32]) {
        self.quantizer.after_rope(layer, q, k, v);
    }

    fn after_softmax(&self, layer: usize, probs: &mut [f32]) {
        self.quantizer.after_softmax(layer, probs);
    }
}

/// A model (quantized or not) run with its run-time quantization and optionally an intervention,
/// as an evaluation forward (for `evaluate_with`).
pub struct RuntimeWindows<'a> {
    pub model: &'a Model,
    pub quant: &'a RuntimeQuant,
    pub intervener: Option<Intervener>,
}

impl RuntimeWindows<'_> {
    /// One forward of `tokens` with `options`.
    pub fn forward(
        &mut self,
        tokens: &[u32],
        options: ForwardOptions,
    ) -> Result<crate::model::reference::ForwardOutput, ModelError> {
        let mut quantizer = RuntimeQuantizer::new(self.quant, &self.model.config);
        let mut hook = Combined { quantizer: &mut quantizer, intervener: self.intervener.as_mut() };
        let out = forward_with(self.model, tokens, options, &mut hook)?;
        if let Some(e) = quantizer.take_error() {
            return Err(e.into());
        }
        Ok(out)
    }
}

impl WindowForward for RuntimeWindows<'_> {
    fn forward_window(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, Vec<Vec<f32>>), ModelError> {
        let options = ForwardOptions { all_logits: true, hidden_states: true, attention_probs: false };
        let out = self.forward(tokens, options)?;
        Ok((out.logits, out.hidden_states))
    }
}
