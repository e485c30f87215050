//! Generation pulled a token at a time: the caller calls [`Generation::next`] in its own loop,
//! shows each piece as it comes, and stops whenever it likes (a stop button, a new request);
//! [`Generation::finish`] then says what was generated and why it ended.

use serde::Serialize;

use super::session::Session;
use super::{now_ms, yield_now, Study};
use crate::error::StudyError;
use crate::model::generate::{Continuation, Step};
use crate::model::sampling::{Sampler, SamplingParams};

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// It generated the tokens it was asked for (or reached the context).
    MaxTokens,
    /// The model produced its end-of-sequence token.
    Eos,
    /// The caller stopped pulling.
    Stopped,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::MaxTokens => "max-tokens",
            StopReason::Eos => "eos",
            StopReason::Stopped => "stopped",
        })
    }
}

/// One generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedToken {
    pub token: u32,
    /// The new text (empty while a character is split over tokens).
    pub piece: String,
    /// Tokens generated so far, this one included.
    pub count: usize,
}

/// What a finished generation produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationSummary {
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    /// The continuation only (not the prompt), decoded as a whole.
    pub text: String,
    pub stop: StopReason,
    pub backend: &'static str,
    /// Generated tokens per second, from the prompt on (prefill included), like the CLI.
    pub tokens_per_second: f64,
    /// The prompt's forward pass (prefill), then the whole run, milliseconds.
    pub prompt_ms: f64,
    pub ms: f64,
    /// Text held back at the end because it was not yet a whole character; the pieces plus this
    /// are `text`.
    #[serde(skip)]
    pub rest: String,
}

/// A generation in progress (see the module documentation).
pub struct Generation<'a> {
    study: &'a Study,
    session: Session<'a>,
    sampler: Sampler,
    continuation: Continuation,
    prompt_tokens: Vec<u32>,
    /// The candidates the next token is drawn from, ranked (ids, logits): all of them, or the
    /// first for a greedy sampler.
    ranked: (Vec<u32>, Vec<f32>),
    /// How many candidates each step asks for.
    candidates: usize,
    /// The last token drawn, not yet run through the model: it runs only if another is pulled.
    pending: Option<u32>,
    ended: Option<StopReason>,
    started_ms: f64,
    prompt_ms: f64,
}

impl Study {
    /// Starts generating up to `max_tokens` after `prompt` (fewer if the context ends first):
    /// runs the prompt, then waits to be pulled. Greedy when `params.temperature` is 0, else
    /// temperature + top-p sampling seeded by `params.seed`. `as_loaded` generates with the
    /// model as loaded (the reference), so a front end can show both continuations.
    pub async fn generation(
        &self,
        prompt: &str,
        max_tokens: usize,
        params: SamplingParams,
        as_loaded: bool,
    ) -> Result<Generation<'_>, StudyError> {
        if !(params.top_p > 0.0 && params.top_p <= 1.0) {
            return Err(StudyError::Invalid {
                what: "top-p",
                message: format!("must be in (0, 1], not {}", params.top_p),
            });
        }
        if params.temperature.is_nan() || params.temperature < 0.0 {
            return Err(StudyError::Invalid {
                what: "the temperature",
                message: format!("must be 0 or more, not {}", params.temperature),
            });
        }
        let started_ms = now_ms();
        let prompt_tokens = self.model.prompt_tokens(prompt)?;
        let context = self.model.config.context_length;
        let max_tokens = max_tokens.min(context.saturating_sub(prompt_tokens.len()));
        let mut session = Session::new(self, prompt_tokens.len() + max_tokens, as_loaded)?;
        let sampler = Sampler::new(params);
        // A greedy pick needs only the largest logit; sampling needs them all, ranked.
        let candidates = if sampler.is_greedy() { 1 } else { usize::MAX };
        let ranked = session.advance_top(&prompt_tokens, candidates).await?;
        Ok(Generation {
            study: self,
            session,
            sampler,
            candidates,
            continuation: Continuation::new(max_tokens),
            prompt_tokens,
            ranked,
            pending: None,
            ended: None,
            started_ms,
            prompt_ms: now_ms() - started_ms,
        })
    }
}

impl Generation<'_> {
    /// The next token, or `None` once the generation has ended (then [`Generation::finish`]).
    pub async fn next(&mut self) -> Result<Option<GeneratedToken>, StudyError> {
        if self.ended.is_some() {
            return Ok(None);
        }
        if !self.continuation.wants_more() {
            self.ended = Some(StopReason::MaxTokens);
            return Ok(None);
        }
        if let Some(token) = self.pending.take() {
            if self.session.is_cpu() {
                // The CPU reference never awaits: give the event loop a turn between tokens.
                yield_now().await;
            }
            self.ranked = self.session.advance_top(&[token], self.candidates).await?;
        }
        let (ids, logits) = &self.ranked;
        match self.continuation.step_ranked(&self.study.model, &mut self.sampler, ids, logits)? {
            Step::EndOfSequence => {
                self.ended = Some(StopReason::Eos);
                Ok(None)
            }
            Step::Token { token, piece } => {
                self.pending = Some(token);
                Ok(Some(GeneratedToken { token, piece, count: self.continuation.tokens().len() }))
            }
        }
    }

    /// Which backend runs the tokens: "webgpu" or "cpu".
    pub fn backend(&self) -> &'static str {
        self.session.backend()
    }

    /// Ends the generation (stopped by the caller unless it had ended by itself) and says what
    /// it produced.
    pub fn finish(self) -> Result<GenerationSummary, StudyError> {
        let stop = self.ended.unwrap_or(StopReason::Stopped);
        let backend = self.session.backend();
        let (tokens, text, rest) = self.continuation.finish(&self.study.model)?;
        let ms = now_ms() - self.started_ms;
        let tokens_per_second = if ms > 0.0 { tokens.len() as f64 / (ms / 1000.0) } else { 0.0 };
        Ok(GenerationSummary {
            prompt_tokens: self.prompt_tokens,
            tokens,
            text,
            stop,
            backend,
            tokens_per_second,
            prompt_ms: self.prompt_ms,
            ms,
            rest,
        })
    }
}
