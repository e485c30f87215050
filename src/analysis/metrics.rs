//! Output metrics of a quantized model against the reference (the model as loaded), accumulated
//! position by position:
//!
//! - KL(P_ref ‖ P_q) of the next-token distributions (nats), averaged over positions;
//! - PD-KL: the same at temperature 4, PD-Quant's prediction-difference metric (docs/quantizers.md
//!   §4.16), which weighs the tail of the distribution more;
//! - top-1 agreement: how often both models' most likely next token is the same;
//! - perplexity of each model on the text, and QiD = mean NLL_q − mean NLL_ref (the loss increase
//!   of "Low-Bit Quantization Favors Undertrained LLMs", §4.17).
//!
//! Everything is computed in f64 from f32 logits.

use serde::Serialize;

/// PD-Quant's temperature.
pub const PD_TEMPERATURE: f64 = 4.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct LogitAccumulator {
    positions: u64,
    kl: f64,
    pd_kl: f64,
    top1_agree: u64,
    nll_reference: f64,
    nll_quantized: f64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LogitMetrics {
    pub positions: u64,
    pub kl: f64,
    pub pd_kl: f64,
    pub top1_agreement: f64,
    pub perplexity: f64,
    pub reference_perplexity: f64,
    pub qid: f64,
}

/// One position's comparison: what [`LogitAccumulator::add`] adds, kept when a caller wants to
/// see where in the text the models part.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PositionMetrics {
    /// The token that actually came next.
    pub next_token: u32,
    pub kl: f64,
    pub reference_top1: u32,
    pub quantized_top1: u32,
    /// −log P(next token) under each model.
    pub nll_reference: f64,
    pub nll_quantized: f64,
}

impl PositionMetrics {
    /// The most likely next token differs between the models.
    pub fn flipped(&self) -> bool {
        self.reference_top1 != self.quantized_top1
    }
}

/// log-softmax of `logits / temperature`.
pub fn log_softmax(logits: &[f32], temperature: f64) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64 / temperature;
    let sum: f64 = logits.iter().map(|&x| (x as f64 / temperature - max).exp()).sum();
    let log_z = max + sum.ln();
    logits.iter().map(|&x| x as f64 / temperature - log_z).collect()
}

/// KL(P ‖ Q) from log-probabilities.
pub fn kl_divergence(log_p: &[f64], log_q: &[f64]) -> f64 {
    log_p.iter().zip(log_q).map(|(&lp, &lq)| if lp == f64::NEG_INFINITY { 0.0 } else { lp.exp() * (lp - lq) }).sum()
}

/// Index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

impl LogitAccumulator {
    /// Adds one position: both models' logits for it, and the token that actually came next.
    /// Returns what it added.
    pub fn add(&mut self, reference: &[f32], quantized: &[f32], next_token: u32) -> PositionMetrics {
        let (lp, lq) = (log_softmax(reference, 1.0), log_softmax(quantized, 1.0));
        let kl = kl_divergence(&lp, &lq).max(0.0);
        self.kl += kl;
        let (tp, tq) = (log_softmax(reference, PD_TEMPERATURE), log_softmax(quantized, PD_TEMPERATURE));
        self.pd_kl += kl_divergence(&tp, &tq).max(0.0);
        let (reference_top1, quantized_top1) = (argmax(reference) as u32, argmax(quantized) as u32);
        self.top1_agree += (reference_top1 == quantized_top1) as u64;
        let (nll_reference, nll_quantized) = (-lp[next_token as usize], -lq[next_token as usize]);
        self.nll_reference += nll_reference;
        self.nll_quantized += nll_quantized;
        self.positions += 1;
        PositionMetrics { next_token, kl, reference_top1, quantized_top1, nll_reference, nll_quantized }
    }

    pub fn finish(&self) -> LogitMetrics {
        let n = self.positions.max(1) as f64;
        LogitMetrics {
            positions: self.positions,
            kl: self.kl / n,
            pd_kl: self.pd_kl / n,
            top1_agreement: self.top1_agree as f64 / n,
            perplexity: (self.nll_quantized / n).exp(),
            reference_perplexity: (self.nll_reference / n).exp(),
            qid: (self.nll_quantized - self.nll_reference) / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_logits_give_zero_kl_full_agreement_and_equal_perplexity() {
        let mut acc = LogitAccumulator::default();
        acc.add(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 2);
        let m = acc.finish();
        assert_eq!((m.kl, m.pd_kl, m.top1_agreement, m.qid), (0.0, 0.0, 1.0, 0.0));
        // P(token 2) = e³/(e+e²+e³).
        let p: f64 = 3f64.exp() / (1f64.exp() + 2f64.exp() + 3f64.exp());
        assert!((m.perplexity - 1.0 / p).abs() < 1e-12);
    }

    #[test]
    fn kl_matches_a_hand_computed_value_and_pd_kl_is_smaller_at_temperature_4() {
        // P = softmax([0, ln 3]) = (1/4, 3/4); Q = uniform. KL = 1/4 ln(1/2) + 3/4 ln(3/2).
        let mut acc = LogitAccumulator::default();
        acc.add(&[0.0, 3f32.ln()], &[0.0, 0.0], 0);
        let m = acc.finish();
        let expected = 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln();
        assert!((m.kl - expected).abs() < 1e-7, "{} vs {expected}", m.kl);
        assert!(m.pd_kl > 0.0 && m.pd_kl < m.kl);
        assert_eq!(m.top1_agreement, 0.0, "argmax 1 vs argmax 0 (first of a tie)");
        // NLL of token 0: ref −ln(1/4), quantized −ln(1/2); QiD = ln 2 − ln 4 (the quantized model is luckier).
        assert!((m.qid - (2f64.ln() - 4f64.ln())).abs() < 1e-7);
    }
}
