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

    /// As [`NextTokenLogits::advance`], returning only the `k` largest logits as [`ranked`]
    /// orders them (ids, logits). A backend that can find them where the logits are (the GPU)
    /// overrides it, so a greedy decode does not read back the whole vocabulary.
    fn advance_top(&mut self, new_tokens: &[u32], k: usize) -> Result<(Vec<u32>, Vec<f32>), ModelError> {
        Ok(ranked_top(&self.advance(new_tokens)?, k))
    }
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

/// The first `k` of [`ranked`].
pub fn ranked_top(logits: &[f32], k: usize) -> (Vec<u32>, Vec<f32>) {
    let (mut ids, mut sorted) = ranked(logits);
    ids.truncate(k);
    sorted.truncate(k);
    (ids, sorted)
}

/// All token ids sorted by logit, descending (ties: lower id first): the sampler's candidates.
pub fn ranked(logits: &[f32]) -> (Vec<u32>, Vec<f32>) {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    let sorted = ids.iter().map(|&i| logits[i as usize]).collect();
    (ids, sorted)
}

/// The state of one continuation, shared by every generation loop (this module's, and the async
/// one of the web facade): which tokens were picked and how much of their text was shown.
pub struct Continuation {
    max_tokens: usize,
    tokens: Vec<u32>,
    shown: String,
}

/// What [`Continuation::step`] did with one set of logits.
pub enum Step {
    /// The sampler picked the end-of-sequence token: nothing was added.
    EndOfSequence,
    /// `token` was added; `piece` is the text it completes (empty while a character is still
    /// split over tokens).
    Token { token: u32, piece: String },
}

impl Continuation {
    pub fn new(max_tokens: usize) -> Self {
        Continuation { max_tokens, tokens: Vec::with_capacity(max_tokens), shown: String::new() }
    }

    /// Whether another token may be added.
    pub fn wants_more(&self) -> bool {
        self.tokens.len() < self.max_tokens
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Samples the next token from `logits` and adds it, unless it is the tokenizer's EOS.
    pub fn step(&mut self, model: &Model, sampler: &mut Sampler, logits: &[f32]) -> Result<Step, ModelError> {
        let (ids, sorted) = ranked(logits);
        self.step_ranked(model, sampler, &ids, &sorted)
    }

    /// [`Continuation::step`] from candidates already ranked (ids and their logits, descending):
    /// all of them, or for a greedy sampler at least the first.
    pub fn step_ranked(
        &mut self,
        model: &Model,
        sampler: &mut Sampler,
        ids: &[u32],
        sorted: &[f32],
    ) -> Result<Step, ModelError> {
        let token = sampler.pick(ids, sorted);
        if Some(token) == model.tokenizer.eos {
            return Ok(Step::EndOfSequence);
        }
        self.tokens.push(token);
        // Decode the whole continuation: a character split over tokens shows once complete.
        let text = model.tokenizer.decode_continuation(&self.tokens)?;
        let mut piece = String::new();
        if !text.ends_with('\u{FFFD}') && text.len() > self.shown.len() && text.starts_with(self.shown.as_str()) {
            piece = text[self.shown.len()..].to_string();
            self.shown = text;
        }
        Ok(Step::Token { token, piece })
    }

    /// The tokens, their whole text, and the text not yet shown by [`Continuation::step`].
    pub fn finish(self, model: &Model) -> Result<(Vec<u32>, String, String), ModelError> {
        let text = model.tokenizer.decode_continuation(&self.tokens)?;
        let mut rest = String::new();
        if text.len() > self.shown.len() && text.starts_with(self.shown.as_str()) {
            rest = text[self.shown.len()..].to_string();
        }
        Ok((self.tokens, text, rest))
    }
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
    let prompt_tokens = model.prompt_tokens(prompt)?;
    // A greedy pick needs only the largest logit; sampling needs them all, ranked.
    let candidates = if sampler.is_greedy() { 1 } else { usize::MAX };
    let mut ranked = backend.advance_top(&prompt_tokens, candidates)?;
    let mut continuation = Continuation::new(max_tokens);
    let mut stop = "max-tokens";
    while continuation.wants_more() {
        match continuation.step_ranked(model, sampler, &ranked.0, &ranked.1)? {
            Step::EndOfSequence => {
                stop = "eos";
                break;
            }
            Step::Token { token, piece } => {
                if !piece.is_empty() {
                    on_text(&piece);
                }
                if continuation.wants_more() {
                    ranked = backend.advance_top(&[token], candidates)?;
                }
            }
        }
    }
    let (tokens, text, rest) = continuation.finish(model)?;
    if !rest.is_empty() {
        on_text(&rest);
    }
    Ok(Generation { prompt_tokens, tokens, text, stop })
}

impl Model {
    /// The prompt's token ids; an empty encoding is an error, since there is nothing to continue.
    pub fn prompt_tokens(&self, prompt: &str) -> Result<Vec<u32>, ModelError> {
        let tokens = self.tokenizer.encode(prompt)?;
        if tokens.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        Ok(tokens)
    }

    /// The `top_k` most likely next tokens after `prompt`, from any backend.
    pub fn predict_with(
        &self,
        backend: &mut dyn NextTokenLogits,
        prompt: &str,
        top_k: usize,
    ) -> Result<crate::model::Prediction, ModelError> {
        let tokens = self.prompt_tokens(prompt)?;
        let logits = backend.advance(&tokens)?;
        Ok(crate::model::Prediction {
            model: self.source.clone(),
            prompt: prompt.into(),
            tokens,
            top: self.top_tokens(&logits, top_k),
        })
    }
}
