//! The CPU reference forward with every linear layer's input fake-quantized: a scheme for all
//! inputs, optionally another for the down projection's input (the QAT scaling law's finding,
//! QUANTIZERS.md §4.18: that input carries the W4A4 bottleneck's outliers, so keeping it at 8 bits
//! while the rest is at 4 is the cheap fix). The output head's input stays in f32, as the usual
//! W/A recipes keep the head unquantized.

use serde::Serialize;

use super::{fake_quantize, ActScheme};
use crate::analysis::eval::WindowForward;
use crate::analysis::intervene::Intervener;
use crate::error::{ModelError, QuantError};
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions, LinearInput};
use crate::model::Model;

/// Which activation scheme each linear input class gets (serialized as the eval JSON's
/// `"activations"`: `{"default": name, "down": name | null}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ActivationSchemes {
    pub default: ActScheme,
    /// For the down projection's input; None: `default`.
    pub down: Option<ActScheme>,
}

impl ActivationSchemes {
    pub fn for_input(&self, input: LinearInput) -> &ActScheme {
        match (input, &self.down) {
            (LinearInput::MlpDown, Some(down)) => down,
            _ => &self.default,
        }
    }
}

/// Fake-quantizes the inputs of the linear layers. A quantizer error (a non-finite activation)
/// cannot stop the forward from inside the hook, so the first one is kept and reported after it.
#[derive(Debug, Clone)]
pub struct ActivationQuantizer {
    pub schemes: ActivationSchemes,
    error: Option<QuantError>,
}

impl ActivationQuantizer {
    pub fn new(schemes: ActivationSchemes) -> Self {
        ActivationQuantizer { schemes, error: None }
    }

    /// The first error since the last call, if any.
    pub fn take_error(&mut self) -> Option<QuantError> {
        self.error.take()
    }
}

impl ForwardHook for ActivationQuantizer {
    fn before_linear(&mut self, _layer: usize, input: LinearInput, x: &mut [f32], k: usize) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = fake_quantize(self.schemes.for_input(input), x, x.len() / k, k) {
            self.error = Some(e);
        }
    }
}

/// The activation quantizer, and an intervention on the same forward if one is asked for: the
/// intervention changes the residual stream and the attention mask, the quantizer the linear
/// inputs, so the two never touch the same values and simply run side by side.
struct Combined<'a> {
    quantizer: &'a mut ActivationQuantizer,
    intervener: Option<&'a mut Intervener>,
}

impl ForwardHook for Combined<'_> {
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
}

/// A model (quantized or not) with quantized activations, optionally intervened, as an evaluation
/// forward (for `evaluate_with`).
pub struct QuantizedActivations<'a> {
    pub model: &'a Model,
    pub quantizer: ActivationQuantizer,
    pub intervener: Option<Intervener>,
}

impl WindowForward for QuantizedActivations<'_> {
    fn forward_window(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, Vec<Vec<f32>>), ModelError> {
        let options = ForwardOptions { all_logits: true, hidden_states: true, attention_probs: false };
        let mut hook = Combined { quantizer: &mut self.quantizer, intervener: self.intervener.as_mut() };
        let out = forward_with(self.model, tokens, options, &mut hook)?;
        if let Some(e) = self.quantizer.take_error() {
            return Err(e.into());
        }
        Ok((out.logits, out.hidden_states))
    }
}
