//! Evaluating a quantized model against the model as loaded on a text: the text is tokenized, cut
//! into windows of `window` tokens (each an independent forward from an empty context), and every
//! position of every window predicts the next token of the window. Both forwards run side by side
//! window by window, so the reference's logits (vocab × tokens floats) are never all in memory.

use serde::Serialize;

use crate::analysis::metrics::{LogitAccumulator, LogitMetrics, PositionMetrics};
use crate::error::ModelError;
use crate::model::window::{windows, CpuWindows, EvalOptions, WindowForward};
use crate::model::{Model, Progress};

/// Relative L2 error of the residual stream after one block (layer 0 = the embeddings).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LayerError {
    pub layer: usize,
    pub relative_error: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    pub tokens: usize,
    #[serde(flatten)]
    pub logits: LogitMetrics,
    pub layers: Vec<LayerError>,
    /// Per predicted position, in text order, when the accumulator was asked to keep them
    /// ([`EvalAccumulator::keeping_positions`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_position: Option<Vec<PositionMetrics>>,
}

/// Compares `quantized` with `reference` on `tokens` with the CPU reference forward. Progress
/// counts windows.
pub fn evaluate(
    reference: &Model,
    quantized: &Model,
    tokens: &[u32],
    options: &EvalOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<EvalResult, ModelError> {
    evaluate_with(reference, &mut CpuWindows(reference), &mut CpuWindows(quantized), tokens, options, progress)
}

/// Accumulates the metrics window by window, whoever computes the forwards (the CLI's blocking
/// loop below, or the page's async one).
pub struct EvalAccumulator {
    vocab: usize,
    tokens: usize,
    logits: LogitAccumulator,
    diff2: Vec<f64>,
    ref2: Vec<f64>,
    positions: Option<Vec<PositionMetrics>>,
}

impl EvalAccumulator {
    pub fn new(model: &Model) -> EvalAccumulator {
        let layers = model.config.n_layers + 1;
        EvalAccumulator {
            vocab: model.config.vocab_size,
            tokens: 0,
            logits: LogitAccumulator::default(),
            diff2: vec![0.0; layers],
            ref2: vec![0.0; layers],
            positions: None,
        }
    }

    /// Also keeps every position's comparison, for a view of where in the text the models part.
    pub fn keeping_positions(mut self) -> EvalAccumulator {
        self.positions = Some(Vec::new());
        self
    }

    /// One window: its tokens, then each model's logits of every position and residual streams.
    pub fn add_window(
        &mut self,
        window: &[u32],
        (r_logits, r_hidden): &(Vec<f32>, Vec<Vec<f32>>),
        (q_logits, q_hidden): &(Vec<f32>, Vec<Vec<f32>>),
    ) {
        let vocab = self.vocab;
        for p in 0..window.len().saturating_sub(1) {
            let span = p * vocab..(p + 1) * vocab;
            let position = self.logits.add(&r_logits[span.clone()], &q_logits[span], window[p + 1]);
            if let Some(positions) = &mut self.positions {
                positions.push(position);
            }
        }
        for (l, (hr, hq)) in r_hidden.iter().zip(q_hidden).enumerate().take(self.diff2.len()) {
            for (&a, &b) in hr.iter().zip(hq) {
                self.diff2[l] += (a as f64 - b as f64).powi(2);
                self.ref2[l] += (a as f64).powi(2);
            }
        }
        self.tokens += window.len();
    }

    pub fn finish(&self) -> EvalResult {
        let layers = (0..self.diff2.len())
            .map(|l| LayerError {
                layer: l,
                relative_error: (self.diff2[l] / self.ref2[l].max(f64::MIN_POSITIVE)).sqrt(),
            })
            .collect();
        EvalResult { tokens: self.tokens, logits: self.logits.finish(), layers, per_position: self.positions.clone() }
    }
}

/// [`evaluate`] on any pair of forwards (`model` gives the shapes).
pub fn evaluate_with(
    model: &Model,
    reference: &mut dyn WindowForward,
    quantized: &mut dyn WindowForward,
    tokens: &[u32],
    options: &EvalOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<EvalResult, ModelError> {
    let windows = windows(model, tokens, options);
    let mut acc = EvalAccumulator::new(model);
    for (i, w) in windows.iter().enumerate() {
        progress(Progress { stage: "evaluate", done: i as u64, total: windows.len() as u64 });
        acc.add_window(w, &reference.forward_window(w)?, &quantized.forward_window(w)?);
    }
    progress(Progress { stage: "evaluate", done: windows.len() as u64, total: windows.len() as u64 });
    Ok(acc.finish())
}
