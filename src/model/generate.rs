//! Prediction and generation over any backend that turns tokens into next-token logits: the
//! CPU reference (recomputes the whole sequence; slow, trusted) or the GPU (KV cache).

use crate::error::ModelError;
use crate::model::reference::{forward, ForwardOptions};
use crate::model::sampling::Sampler;
use crate::model::Model;

/// Something that consumes tokens and returns the logits after the last one.
pub trait NextTokenLogits {
    /// Appends `new_tokens` to the sequence and returns the logits that follow it.
    fn advance(&mut self, new_tokens: &[u32]) -> Result<Vec<f32>, ModelError>;
}

/// The CPU reference as a backend: it keeps the sequence and runs the full forward each step.
pub struct CpuBackend<'a> {
    model: &'a Model,
    tokens: Vec<u32>,
}

impl<'a> CpuBackend<'a> {
    pub fn new(model: &'a Model) -> Self {
        CpuBackend { model, tokens: Vec::new() }
    }
}

impl NextTokenLogits for CpuBackend<'_> {
    fn advance(&mut self, new_tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        let mut tokens = self.tokens.clone();
        tokens.extend_from_slice(new_tokens);
        let logits = forward(self.model, &tokens, ForwardOptions::default())?.logits;
        self.tokens = tokens;
        Ok(logits)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    /// Why it stopped: "max-tokens" or "eos".
    pub stop: &'static str,
}

/// All token ids sorted by logit, descending (ties: lower id first): the sampler's candidates.
pub fn ranked(logits: &[f32]) -> (Vec<u32>, Vec<f32>) {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    let sorted = ids.iter().map(|&i| logits[i as usize]).collect();
    (ids, sorted)
}

/// Generates up to `max_tokens` after `prompt`, calling `on_text` with each new piece of text
/// as soon as it decodes to whole characters. Stops early at the tokenizer's EOS.
pub fn generate(
    model: &Model,
    backend: &mut dyn NextTokenLogits,
    prompt: &str,
    max_tokens: usize,
    sampler: &mut Sampler,
    on_text: &mut dyn FnMut(&str),
) -> Result<Generation, ModelError> {
    let prompt_tokens = model.tokenizer.encode(prompt)?;
    if prompt_tokens.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    let mut logits = backend.advance(&prompt_tokens)?;
    let mut tokens = Vec::with_capacity(max_tokens);
    let mut shown = String::new();
    let mut stop = "max-tokens";
    while tokens.len() < max_tokens {
        let (ids, sorted) = ranked(&logits);
        let next = sampler.pick(&ids, &sorted);
        if Some(next) == model.tokenizer.eos {
            stop = "eos";
            break;
        }
        tokens.push(next);
        // Decode the whole continuation: a character split over tokens shows once complete.
        let text = model.tokenizer.decode(&tokens)?;
        if !text.ends_with('\u{FFFD}') && text.len() > shown.len() && text.starts_with(shown.as_str()) {
            on_text(&text[shown.len()..]);
            shown = text;
        }
        if tokens.len() < max_tokens {
            logits = backend.advance(&[next])?;
        }
    }
    let text = model.tokenizer.decode(&tokens)?;
    if text.len() > shown.len() && text.starts_with(shown.as_str()) {
        on_text(&text[shown.len()..]);
    }
    Ok(Generation { prompt_tokens, tokens, text, stop })
}

impl Model {
    /// The `top_k` most likely next tokens after `prompt`, from any backend.
    pub fn predict_with(
        &self,
        backend: &mut dyn NextTokenLogits,
        prompt: &str,
        top_k: usize,
    ) -> Result<crate::model::Prediction, ModelError> {
        let tokens = self.tokenizer.encode(prompt)?;
        if tokens.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        let logits = backend.advance(&tokens)?;
        Ok(crate::model::Prediction {
            model: self.source.clone(),
            prompt: prompt.into(),
            tokens,
            top: self.top_tokens(&logits, top_k),
        })
    }
}
