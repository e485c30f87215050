//! OutlierTune (docs/quantizers.md §4.8): per-channel activation quantization made cheap by
//! symmetrization and pre-executed dequantization, W`b`A`b` (the code's default b = 6).
//!
//! For each norm→linears pair (q/k/v after `attn_norm`, gate/up after `ffn_norm`):
//! 1. LLaMA has no norm bias to absorb a shift, so, as the released code does for LLaMA, the
//!    norm gain γ is folded into the consumers' columns (`W[:,c] ← W[:,c]·γ_c`, γ ← 1): the float
//!    output is unchanged ([`fold_norm_gains`]).
//! 2. Symmetrization: `z_c` = the mean over calibration samples of the per-sample mid-range of
//!    channel c (of the γ-free input); deployed, `W·z` is a bias. At run time `x − z` is
//!    quantized and `z` added back (`runtime::InputCalibration::shift`).
//! 3. Pre-executed dequantization: `s_c = a_c/(2^(b−1)−1)` with `a_c` the absmax of `x − z`;
//!    the weights are quantized as `W·diag(s)` (per output channel, asymmetric min-max, b bits),
//!    which is what multiplies the integer activations `RNE((x−z)/s)` directly. Stored here as
//!    `Q(W·diag(s))·diag(1/s)` in f32, so the CPU reference computes exactly that product.
//! The o_proj and down_proj inputs have no norm before them: per-token dynamic int`b`, weights
//! int`b` per output channel, as the paper does.

use std::collections::HashMap;

use super::activation::forward::ActivationSchemes;
use super::apply::{replace_tensors, stored_bits};
use super::calibrate::{Calibration, ChannelStats};
use super::runtime::{InputCalibration, StaticChannelScales};
use super::smoothquant::PAIRS;
use super::{quantize, Granularity, Scheme, SchemeKind};
use crate::error::ModelError;
use crate::model::reference::LinearInput;
use crate::model::Model;

/// A model rewritten by OutlierTune and what it runs with.
pub struct OutlierTuned {
    pub model: Model,
    pub inputs: HashMap<(usize, LinearInput), InputCalibration>,
    pub activations: ActivationSchemes,
    /// Stored bits of every tensor (kept ones as stored) over the number of weights.
    pub bits_per_weight: f64,
}

/// `model` with every norm gain folded into the linears that read the norm (γ ← 1).
pub fn fold_norm_gains(model: &Model) -> Result<Model, ModelError> {
    let mut replaced = HashMap::new();
    for layer in 0..model.config.n_layers {
        for (_, norm_name, consumers) in PAIRS {
            let name = |suffix: &str| format!("blk.{layer}.{suffix}");
            let gain = model.weights.dequantize(model.tensor(&name(norm_name))?)?;
            for consumer in consumers {
                let mut w = model.weights.dequantize(model.tensor(&name(consumer))?)?;
                for row in w.chunks_exact_mut(gain.len()) {
                    for (v, g) in row.iter_mut().zip(&gain) {
                        *v *= g;
                    }
                }
                replaced.insert(name(consumer), w);
            }
            replaced.insert(name(norm_name), vec![1.0; gain.len()]);
        }
    }
    Ok(replace_tensors(model, &replaced)?)
}

/// The shift and static scales of one γ-folded input, from the statistics of the input with γ
/// (`x' = x/γ`: a negative gain swaps max and min; a zero gain gives a zero column of W, so the
/// channel's scale is left 0 and it quantizes to 0).
fn symmetrized_scales(stats: &ChannelStats, gain: &[f32], bits: u8) -> (Vec<f32>, Vec<f32>) {
    let qmax = ((1u32 << (bits - 1)) - 1) as f32;
    let midrange = stats.mean_midrange();
    let (mut shift, mut scales) = (Vec::with_capacity(gain.len()), Vec::with_capacity(gain.len()));
    for (c, &g) in gain.iter().enumerate() {
        if g == 0.0 {
            shift.push(0.0);
            scales.push(0.0);
            continue;
        }
        let (a, b) = (stats.max[c] / g, stats.min[c] / g);
        let (max, min) = if g > 0.0 { (a, b) } else { (b, a) };
        let z = midrange[c] / g;
        shift.push(z);
        scales.push((max - z).max(z - min).max(0.0) / qmax);
    }
    (shift, scales)
}

/// OutlierTune at `bits` (2..=8) from `calibration` (taken on `model`).
pub fn outliertune(model: &Model, calibration: &Calibration, bits: u8) -> Result<OutlierTuned, ModelError> {
    let bad = |message: String| ModelError::BadConfig { file: model.source.clone(), message };
    if !(2..=8).contains(&bits) {
        return Err(bad(format!("OutlierTune takes 2 to 8 bits, not {bits}")));
    }
    calibration.check_for(model)?;
    let per_row = Scheme::new(SchemeKind::Int { bits, granularity: Granularity::Channel, symmetric: false });
    let folded = fold_norm_gains(model)?;
    let mut replaced = HashMap::new();
    let mut inputs = HashMap::new();
    let mut quantized_bits = HashMap::new();
    for layer in 0..model.config.n_layers {
        let name = |suffix: &str| format!("blk.{layer}.{suffix}");
        for (input, norm_name, consumers) in PAIRS {
            let gain = model.weights.dequantize(model.tensor(&name(norm_name))?)?;
            let (shift, scales) = symmetrized_scales(calibration.stats(layer, input), &gain, bits);
            for consumer in consumers {
                let t = folded.tensor(&name(consumer))?;
                let (rows, k) = (t.n_rows(), t.row_len());
                let mut w = folded.weights.dequantize(t)?;
                for row in w.chunks_exact_mut(k) {
                    for (v, s) in row.iter_mut().zip(&scales) {
                        *v *= s;
                    }
                }
                let q = quantize(&per_row, &t.name, rows, k, &w)?;
                let mut values = q.values;
                for row in values.chunks_exact_mut(k) {
                    for (v, &s) in row.iter_mut().zip(&scales) {
                        *v = if s > 0.0 { *v / s } else { 0.0 };
                    }
                }
                quantized_bits.insert(t.name.clone(), q.storage_bits);
                replaced.insert(t.name.clone(), values);
            }
            let static_scales = Some(StaticChannelScales { bits, scales });
            inputs.insert((layer, input), InputCalibration { shift: Some(shift), static_scales, ..Default::default() });
        }
        for plain in ["attn_output.weight", "ffn_down.weight"] {
            let t = folded.tensor(&name(plain))?;
            let q = quantize(&per_row, &t.name, t.n_rows(), t.row_len(), &folded.weights.dequantize(t)?)?;
            quantized_bits.insert(t.name.clone(), q.storage_bits);
            replaced.insert(t.name.clone(), q.values);
        }
    }
    let (mut bits_total, weights) = stored_bits(&folded, &quantized_bits);
    // The static scales and shifts: 16 bits each per input channel.
    bits_total += inputs.values().map(|c| 32 * c.shift.as_ref().map_or(0, Vec::len) as u64).sum::<u64>();
    let token = format!("int{bits}-token").parse().expect("a valid activation scheme");
    Ok(OutlierTuned {
        model: replace_tensors(&folded, &replaced)?,
        inputs,
        activations: ActivationSchemes { default: token, down: None },
        bits_per_weight: bits_total as f64 / weights.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_come_from_the_symmetrized_range_of_the_gain_free_input() {
        let mut stats = ChannelStats::new_for_tests(3);
        stats.max = vec![3.0, 1.0, 5.0];
        stats.min = vec![-1.0, -3.0, 1.0];
        stats.midrange_sum = vec![1.0, -1.0, 3.0];
        stats.samples = 1;
        // Gains 1, −2 (swaps max and min and halves), 0 (dead channel).
        let (shift, scales) = symmetrized_scales(&stats, &[1.0, -2.0, 0.0], 3);
        assert_eq!(shift, vec![1.0, 0.5, 0.0]);
        // Channel 0: x − z ∈ [−2, 2] → 2/3. Channel 1: x' ∈ [−0.5, 1.5], z' = 0.5 → 1/3.
        assert_eq!(scales, vec![2.0 / 3.0, 1.0 / 3.0, 0.0]);
    }
}
