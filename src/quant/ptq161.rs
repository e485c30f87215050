//! PTQ1.61's structure (docs/quantizers.md §4.4), without its learned parameters: per linear layer, the
//! input channels whose calibrated activation max `a_c` is in the top 20% are salient and keep
//! 4 bits (asymmetric min-max per row, the row's min and max taken over all its columns, as
//! `high_quant` does); every other weight is binarized per row, `ŵ = α_r·sign(w − μ_r) + μ_r`
//! with `μ_r` the mean of the row's nonzero non-salient weights and `α_r` their mean |w| (the
//! paper's initialization; its α, r1, r2 are then trained for 20 epochs, which this data-free
//! reconstruction does not do: r1 = r2 = 1).
//!
//! Storage: 4 bits per salient weight, 1 per binarized one, a 1-bit mask per input channel, and
//! four 16-bit numbers per row (min and scale of the 4-bit grid, μ and α): ≈ 1.6 bits per weight
//! plus the per-row terms.

use std::collections::HashMap;

use super::apply::{replace_tensors, stored_bits};
use super::calibrate::Calibration;
use super::int::Asymmetric;
use crate::error::ModelError;
use crate::model::reference::LinearInput;
use crate::model::Model;

/// The salient fraction of input channels.
pub const SALIENT_FRACTION: f64 = 0.2;
const SALIENT_BITS: u8 = 4;

/// The linears of a block and the input each reads.
pub const BLOCK_LINEARS: [(&str, LinearInput); 7] = [
    ("attn_q.weight", LinearInput::AttnQkv),
    ("attn_k.weight", LinearInput::AttnQkv),
    ("attn_v.weight", LinearInput::AttnQkv),
    ("attn_output.weight", LinearInput::AttnOutput),
    ("ffn_gate.weight", LinearInput::MlpGateUp),
    ("ffn_up.weight", LinearInput::MlpGateUp),
    ("ffn_down.weight", LinearInput::MlpDown),
];

/// The salient mask: true for the `ceil(0.2·k)` channels of largest `a` (ties: lower index).
pub fn salient_mask(activation_max: &[f32]) -> Vec<bool> {
    let k = activation_max.len();
    let n_salient = (k as f64 * SALIENT_FRACTION).ceil() as usize;
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| activation_max[b].total_cmp(&activation_max[a]).then(a.cmp(&b)));
    let mut mask = vec![false; k];
    for &c in &order[..n_salient] {
        mask[c] = true;
    }
    mask
}

/// One matrix (`rows × k`) quantized under `mask`; returns the values and the stored bits.
pub fn quantize_matrix(w: &[f32], k: usize, mask: &[bool]) -> (Vec<f32>, u64) {
    let rows = w.len() / k;
    let mut out = Vec::with_capacity(w.len());
    for row in w.chunks_exact(k) {
        let (min, max) = row.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let grid = Asymmetric::fit(min, max, SALIENT_BITS);
        let binarized: Vec<f32> = row.iter().zip(mask).filter(|(&v, &m)| !m && v != 0.0).map(|(&v, _)| v).collect();
        let n = binarized.len().max(1) as f64;
        let mu = (binarized.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
        let alpha = (binarized.iter().map(|&v| v.abs() as f64).sum::<f64>() / n) as f32;
        for (&v, &salient) in row.iter().zip(mask) {
            out.push(if salient {
                grid.level(v) as f32 * grid.scale
            } else {
                let d = v - mu;
                let sign = if d > 0.0 { 1.0 } else if d < 0.0 { -1.0 } else { 0.0 };
                alpha * sign + mu
            });
        }
    }
    let n_salient = mask.iter().filter(|&&m| m).count() as u64;
    let per_row = n_salient * SALIENT_BITS as u64 + (k as u64 - n_salient) + 4 * 16;
    (out, rows as u64 * per_row + k as u64)
}

/// Every block linear of `model` under PTQ1.61's structure; the embeddings, norms and output head
/// stay as stored. Returns the model and its bits per weight.
pub fn ptq161(model: &Model, calibration: &Calibration) -> Result<(Model, f64), ModelError> {
    calibration.check_for(model)?;
    let mut replaced = HashMap::new();
    let mut bits = HashMap::new();
    for layer in 0..model.config.n_layers {
        for (suffix, input) in BLOCK_LINEARS.into_iter().filter(|(s, _)| model.config.has_linear(s)) {
            let t = model.tensor(&format!("blk.{layer}.{suffix}"))?;
            let mask = salient_mask(&calibration.stats(layer, input).absmax);
            let (values, stored) = quantize_matrix(&model.weights.dequantize(t)?, t.row_len(), &mask);
            bits.insert(t.name.clone(), stored);
            replaced.insert(t.name.clone(), values);
        }
    }
    let (total, weights) = stored_bits(model, &bits);
    Ok((replace_tensors(model, &replaced)?, total as f64 / weights.max(1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_fifth_of_channels_by_activation_max_is_salient() {
        let mask = salient_mask(&[0.1, 9.0, 0.3, 0.2, 5.0, 0.0, 0.0, 1.0, 0.5, 0.4]);
        assert_eq!(mask.iter().filter(|&&m| m).count(), 2);
        assert!(mask[1] && mask[4]);
        // ceil(0.2·7) = 2; equal maxima: the lower index wins.
        let mask = salient_mask(&[1.0; 7]);
        assert_eq!(mask, vec![true, true, false, false, false, false, false]);
    }

    #[test]
    fn salient_weights_get_four_bits_and_the_rest_two_values_per_row() {
        let k = 5;
        let w = [0.9, -0.1, 0.2, -0.3, 0.05, /* row 2 */ 0.0, 0.4, -0.4, 0.1, -2.0];
        let mask = [true, false, false, false, false];
        let (q, bits) = quantize_matrix(&w, k, &mask);
        // Row 1: non-salient −0.1, 0.2, −0.3, 0.05: μ = −0.0375, α = 0.1625.
        let (mu, alpha) = (-0.0375f32, 0.1625f32);
        assert!((q[1] - (mu - alpha)).abs() < 1e-6 && (q[2] - (mu + alpha)).abs() < 1e-6);
        // The salient 0.9 is on the row's 4-bit grid over [−0.3, 0.9]: step 0.08, zero point
        // RNE(3.75) = 4, so it decodes to 11·0.08.
        assert!((q[0] - 0.88).abs() < 1e-6, "{}", q[0]);
        // Row 2: the zero is excluded from μ and α; the salient 0.0 stays 0.
        assert_eq!(q[5], 0.0);
        let distinct: std::collections::BTreeSet<u32> = q[6..].iter().map(|v| v.to_bits()).collect();
        assert_eq!(distinct.len(), 2);
        assert_eq!(bits, 2 * (4 + 4 + 64) + 5);
    }
}
