//! Where in the text the model under study parts from the model as loaded: every predicted
//! position's KL and whether the most likely next token flips, the worst positions first, and for
//! one position both top-10s, the per-layer error of the residual stream that made the prediction
//! (the token before it) and whether that token carries a massive activation in the reference.

use serde::Serialize;

use super::{now_ms, Study, TokenText};
use crate::analysis::eval::{EvalAccumulator, EvalResult};
use crate::analysis::metrics::PositionMetrics;
use crate::error::StudyError;
use crate::model::massive::massive_threshold;
use crate::model::window::{windows, EvalOptions};
use crate::model::{Progress, TopToken};

/// How many positions [`TokenView::worst`] lists.
pub const WORST_POSITIONS: usize = 20;
/// The top-k [`PositionDetail`] shows of each model.
pub const DETAIL_TOP: usize = 10;

/// One predicted token of the text.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionView {
    /// Index in the text of the token that was predicted (from the tokens before it in its window).
    pub index: usize,
    #[serde(flatten)]
    pub metrics: PositionMetrics,
    pub flipped: bool,
}

/// The evaluation with every position kept.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub tokens: Vec<TokenText>,
    pub positions: Vec<PositionView>,
    /// Indices into `positions`, by KL, largest first (at most [`WORST_POSITIONS`]).
    pub worst: Vec<usize>,
    /// The metrics over the whole text (without its positions, which are above).
    pub result: EvalResult,
    pub window: usize,
    pub ms: f64,
}

/// One position seen closely.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionDetail {
    pub index: usize,
    pub reference: Vec<TopToken>,
    pub quantized: Vec<TopToken>,
    /// Relative L2 error, after the embeddings and after each block, of the residual stream of
    /// the token that predicted this one (the one before it).
    pub layer_errors: Vec<f64>,
    /// Blocks after which that predicting token holds a massive activation in the reference (it
    /// is an outlier carrier, like the first token or a delimiter).
    pub massive_after: Vec<usize>,
}

fn relative_l2(reference: &[f32], other: &[f32]) -> f64 {
    let (mut d2, mut r2) = (0.0f64, 0.0f64);
    for (&a, &b) in reference.iter().zip(other) {
        d2 += (a as f64 - b as f64).powi(2);
        r2 += (a as f64).powi(2);
    }
    (d2 / r2.max(f64::MIN_POSITIVE)).sqrt()
}

impl Study {
    /// The evaluation of `tokens` with `options`, position by position (see the module
    /// documentation). Progress counts windows; `cancelled` as in [`Study::evaluate`].
    pub async fn token_view(
        &self,
        tokens: &[u32],
        options: &EvalOptions,
        progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<TokenView, StudyError> {
        let t0 = now_ms();
        let acc = EvalAccumulator::new(&self.model).keeping_positions();
        let (mut result, window) = self.evaluate_into(tokens, options, None, acc, progress, cancelled).await?;
        // Each window predicts all its tokens but the first, from an empty context.
        let mut indices = Vec::new();
        let mut start = 0;
        for w in windows(&self.model, tokens, options) {
            indices.extend(start + 1..start + w.len());
            start += w.len();
        }
        let positions: Vec<PositionView> = result
            .per_position
            .take()
            .unwrap_or_default()
            .into_iter()
            .zip(indices)
            .map(|(metrics, index)| PositionView { index, metrics, flipped: metrics.flipped() })
            .collect();
        let mut worst: Vec<usize> = (0..positions.len()).collect();
        worst.sort_by(|&a, &b| positions[b].metrics.kl.total_cmp(&positions[a].metrics.kl).then(a.cmp(&b)));
        worst.truncate(WORST_POSITIONS);
        Ok(TokenView { tokens: self.token_texts(tokens), positions, worst, result, window, ms: now_ms() - t0 })
    }

    /// Token `index` of `tokens` as the evaluation with `options` predicted it (from the tokens
    /// before it in its window): both models' top-10, the residual-stream error per layer of the
    /// token before it, and the blocks after which that token carries a massive activation.
    pub async fn position_detail(
        &self,
        tokens: &[u32],
        index: usize,
        options: &EvalOptions,
    ) -> Result<PositionDetail, StudyError> {
        let window = options.window_for(&self.model);
        let start = index / window * window;
        if index >= tokens.len() || index == start {
            return Err(StudyError::Invalid {
                what: "position",
                message: format!(
                    "token {index} is not predicted: the text has {} tokens in windows of {window}, and each \
                     window's first token has no context",
                    tokens.len()
                ),
            });
        }
        // The whole window, as the evaluation ran it: causal, so the row of the token before
        // `index` is what predicted it, and the massive rule sees every token of the window.
        let run = &tokens[start..(start + window).min(tokens.len())];
        let at = index - 1 - start;
        let (vocab, d) = (self.model.config.vocab_size, self.model.config.d_model);
        let logits_at = |logits: &[f32]| logits[at * vocab..(at + 1) * vocab].to_vec();
        let row = |h: &[f32]| h[at * d..(at + 1) * d].to_vec();
        let (r_logits, r_hidden) = self.forward_window(run, true).await?;
        let (q_logits, q_hidden) = self.forward_window(run, false).await?;
        let layer_errors = r_hidden.iter().zip(&q_hidden).map(|(r, q)| relative_l2(&row(r), &row(q))).collect();
        let massive_after = r_hidden
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, h)| {
                let threshold = massive_threshold(h);
                row(h).iter().any(|x| x.abs() > threshold)
            })
            .map(|(layer, _)| layer - 1)
            .collect();
        Ok(PositionDetail {
            index,
            reference: self.model.top_tokens(&logits_at(&r_logits), DETAIL_TOP),
            quantized: self.model.top_tokens(&logits_at(&q_logits), DETAIL_TOP),
            layer_errors,
            massive_after,
        })
    }
}
