//! How a text is run for evaluation and calibration: tokenized, cut into windows of `window`
//! tokens, each an independent forward from an empty context. The evaluation (`analysis::eval`),
//! the calibrated quantizers and the interventions' calibration all cut the same way.

use crate::error::ModelError;
use crate::model::reference::{forward, ForwardOptions};
use crate::model::Model;

/// The evaluation text shipped with quantscope: the opening of Shakespeare's *Coriolanus* (public
/// domain), as it begins the "tinyshakespeare" corpus; see data/README.md.
pub const EVAL_TEXT: &str = include_str!("../../data/eval.txt");

#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// Use at most this many tokens of the text (None: all of it).
    pub max_tokens: Option<usize>,
    /// Tokens per forward.
    pub window: usize,
    /// Tokens of the text passed over before the first one used: a text's later part held back
    /// from whatever its beginning was used for (a recipe measured on it, a calibration).
    pub skip: usize,
}

impl EvalOptions {
    /// The window actually run: `window` clamped to the model's context, and at least 2 (one
    /// prediction). What a report of the evaluation should say it used.
    pub fn window_for(&self, model: &Model) -> usize {
        self.window.clamp(2, model.config.context_length.max(2))
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { max_tokens: None, window: 512, skip: 0 }
    }
}

/// The tokens of `text` an evaluation runs on: after the first `options.skip`, at most
/// `options.max_tokens`, at least two (one prediction).
pub fn eval_tokens(model: &Model, text: &str, options: &EvalOptions) -> Result<Vec<u32>, ModelError> {
    let mut tokens = model.tokenizer.encode(text)?;
    tokens.drain(..options.skip.min(tokens.len()));
    if let Some(max) = options.max_tokens {
        tokens.truncate(max);
    }
    if tokens.len() < 2 {
        return Err(ModelError::TooFewTokens { what: "the evaluation", tokens: tokens.len() });
    }
    Ok(tokens)
}

/// The windows `tokens` is evaluated in: consecutive runs of `options.window` (clamped to the
/// context), each with at least two tokens (one prediction).
pub fn windows<'t>(model: &Model, tokens: &'t [u32], options: &EvalOptions) -> Vec<&'t [u32]> {
    tokens.chunks(options.window_for(model)).filter(|w| w.len() >= 2).collect()
}

/// A forward over one window of a text from an empty context: the logits of every position
/// (`[tokens × vocab]`) and the residual stream after the embeddings and after each block. The
/// CPU reference provides it ([`CpuWindows`], and with run-time quantizers and an intervention
/// `quant::runtime::RuntimeWindows`); the GPU's windows are `study::Study::evaluate`'s.
pub trait WindowForward {
    fn forward_window(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, Vec<Vec<f32>>), ModelError>;
}

pub struct CpuWindows<'a>(pub &'a Model);

impl WindowForward for CpuWindows<'_> {
    fn forward_window(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, Vec<Vec<f32>>), ModelError> {
        let out =
            forward(self.0, tokens, ForwardOptions { all_logits: true, hidden_states: true, attention_probs: false })?;
        Ok((out.logits, out.hidden_states))
    }
}
