//! Which activation scheme each linear input gets (run by `quant::runtime`): a scheme for all
//! inputs, optionally another for the down projection's input (the QAT scaling law's finding,
//! docs/quantizers.md §4.18: that input carries the W4A4 bottleneck's outliers, so keeping it at 8 bits
//! while the rest is at 4 is the cheap fix). The output head's input stays in f32, as the usual
//! W/A recipes keep the head unquantized.

use serde::Serialize;

use super::ActScheme;
use crate::model::reference::LinearInput;

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
