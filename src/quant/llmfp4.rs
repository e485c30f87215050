//! LLM-FP4 as a calibrated W4A4 method (docs/quantizers.md §4.2): FP4 activations with one static
//! exponent bias per linear input, searched with the format on calibration data, and the
//! per-channel "pre-shifted exponent bias" folded into the weights.
//!
//! For each linear input (block, class), on the calibration window's input x:
//! - per channel, the min-max bias `b_c` of its max |x|; for a tensor bias `t`, the channel's
//!   integer shift `k_c = clamp(round(b_c) − round(t), 0, 2^E − 1)`, so channel c is quantized
//!   with bias `t + k_c`: `Q_{t+k}(x) = 2^−k · Q_t(2^k·x)`, and the `2^−k` moves into column c of
//!   every weight that reads the input (a pure exponent shift);
//! - search: every 4-bit format (E3M0, E2M1, E1M2) and `t = f·b0` for the paper's factors f
//!   (plus f = 1), `b0` the tensor's min-max bias; the objective is the layer's output error
//!   through the diagonal proxy `Σ_c ‖W_:c‖² · Σ_t (x̂_tc − x_tc)²` (the paper's exact output
//!   MSE needs a matmul per candidate).
//! Weights: E2M1 with a per-output-channel bias (min-max, or the paper's search on the weight
//! error with `llmfp4:search`), quantized as `W·diag(2^−k)` and stored back as
//! `Q(W·diag(2^−k))·diag(2^k)` in f32, so the CPU reference computes exactly the deployed product.

use std::collections::HashMap;

use serde::Serialize;

use super::apply::{replace_tensors, stored_bits};
use super::float::{llmfp_grid, llmfp_minmax_bias, llmfp_scale, llmfp_search_factors, quantize_llmfp};
use super::ptq161::BLOCK_LINEARS;
use super::runtime::InputCalibration;
use super::MiniFloat;
use crate::error::{ModelError, QuantError};
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions, LinearInput};
use crate::model::Model;

/// The 4-bit formats of the format search.
pub const FORMATS: [MiniFloat; 3] = [
    MiniFloat { exp_bits: 3, man_bits: 0 },
    MiniFloat::E2M1,
    MiniFloat { exp_bits: 1, man_bits: 2 },
];

/// Tokens of the calibration window the search reads.
pub const SEARCH_TOKENS: usize = 32;

/// A static FP activation quantizer with a per-channel integer shift of the exponent bias.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FpChannelBias {
    #[serde(serialize_with = "as_name")]
    pub format: MiniFloat,
    pub tensor_bias: f32,
    pub shift: Vec<u8>,
}

fn as_name<S: serde::Serializer>(format: &MiniFloat, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(format)
}

impl FpChannelBias {
    /// The channel's step scale: `s_{t+k} = s_t · 2^−k`.
    fn scales(&self) -> Vec<f32> {
        let base = llmfp_scale(self.format, self.tensor_bias);
        self.shift.iter().map(|&k| base * (-(k as f32)).exp2()).collect()
    }

    /// Quantizes `x` (`[tokens × K]`) in place.
    pub fn apply(&self, x: &mut [f32]) {
        let grid = llmfp_grid(self.format);
        let scales = self.scales();
        for row in x.chunks_exact_mut(scales.len()) {
            for (v, &s) in row.iter_mut().zip(&scales) {
                *v = grid.round(*v / s) * s;
            }
        }
    }
}

fn shifts(format: MiniFloat, channel_max: &[f32], tensor_bias: f32) -> Vec<u8> {
    let top = (1i32 << format.exp_bits) - 1;
    let t = tensor_bias.round() as i32;
    channel_max
        .iter()
        .map(|&a| if a == 0.0 { top } else { (llmfp_minmax_bias(format, a).round() as i32 - t).clamp(0, top) } as u8)
        .collect()
}

/// The best quantizer of one input `x` (`[tokens × K]`) for columns weighted by `column_weight`.
pub fn search_input(x: &[f32], column_weight: &[f64]) -> FpChannelBias {
    let k = column_weight.len();
    let mut channel_max = vec![0.0f32; k];
    for row in x.chunks_exact(k) {
        for (m, v) in channel_max.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let amax = channel_max.iter().copied().fold(0.0f32, f32::max).max(f32::MIN_POSITIVE);
    let mut factors = llmfp_search_factors();
    factors.push(1.0);
    let mut best: Option<(f64, FpChannelBias)> = None;
    for format in FORMATS {
        let b0 = llmfp_minmax_bias(format, amax);
        for &f in &factors {
            let candidate = FpChannelBias { format, tensor_bias: f * b0, shift: shifts(format, &channel_max, f * b0) };
            let mut quantized = x.to_vec();
            candidate.apply(&mut quantized);
            let mut error = 0.0f64;
            for (row_q, row_x) in quantized.chunks_exact(k).zip(x.chunks_exact(k)) {
                for ((&q, &v), &w) in row_q.iter().zip(row_x).zip(column_weight) {
                    error += w * ((q - v) as f64).powi(2);
                }
            }
            if error.is_finite() && best.as_ref().is_none_or(|(e, _)| error < *e) {
                best = Some((error, candidate));
            }
        }
    }
    best.map(|(_, b)| b).unwrap_or(FpChannelBias { format: MiniFloat::E2M1, tensor_bias: 0.0, shift: vec![0; k] })
}

/// Runs the search on each linear input as the calibration forward reaches it.
struct Searcher {
    column_weights: HashMap<(usize, LinearInput), Vec<f64>>,
    found: HashMap<(usize, LinearInput), FpChannelBias>,
}

impl ForwardHook for Searcher {
    fn before_linear(&mut self, layer: usize, input: LinearInput, x: &mut [f32], _k: usize) {
        if let Some(weights) = self.column_weights.get(&(layer, input)) {
            self.found.insert((layer, input), search_input(x, weights));
        }
    }
}

/// What the method produced.
pub struct LlmFp4 {
    pub model: Model,
    pub inputs: HashMap<(usize, LinearInput), InputCalibration>,
    pub bits_per_weight: f64,
}

/// LLM-FP4 W4A4 on `model`, calibrated on `tokens` (the first [`SEARCH_TOKENS`] are used).
pub fn llmfp4(model: &Model, tokens: &[u32], weight_search: bool) -> Result<LlmFp4, ModelError> {
    let tokens = &tokens[..tokens.len().min(SEARCH_TOKENS)];
    let c = &model.config;
    let mut column_weights: HashMap<(usize, LinearInput), Vec<f64>> = HashMap::new();
    for layer in 0..c.n_layers {
        for (suffix, input) in BLOCK_LINEARS.into_iter().filter(|(s, _)| c.has_linear(s)) {
            let t = model.tensor(&format!("blk.{layer}.{suffix}"))?;
            let w = model.weights.dequantize(t)?;
            let k = t.row_len();
            let acc = column_weights.entry((layer, input)).or_insert_with(|| vec![0.0; k]);
            for row in w.chunks_exact(k) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += (v as f64) * (v as f64);
                }
            }
        }
    }
    let mut searcher = Searcher { column_weights, found: HashMap::new() };
    forward_with(model, tokens, ForwardOptions::default(), &mut searcher)?;
    let mut replaced = HashMap::new();
    let mut bits = HashMap::new();
    for layer in 0..c.n_layers {
        for (suffix, input) in BLOCK_LINEARS.into_iter().filter(|(s, _)| c.has_linear(s)) {
            let t = model.tensor(&format!("blk.{layer}.{suffix}"))?;
            let (rows, k) = (t.n_rows(), t.row_len());
            let shift = &searcher.found.get(&(layer, input)).ok_or(ModelError::EmptyPrompt)?.shift;
            let mut w = model.weights.dequantize(t)?;
            for row in w.chunks_exact_mut(k) {
                for (v, &s) in row.iter_mut().zip(shift) {
                    *v *= (-(s as f32)).exp2();
                }
            }
            let q = quantize_llmfp(MiniFloat::E2M1, weight_search, rows, k, &w).map_err(|reason| {
                QuantError::Unsupported { scheme: "llmfp4".into(), tensor: t.name.clone(), rows, cols: k, reason }
            })?;
            let mut values = q.values;
            for row in values.chunks_exact_mut(k) {
                for (v, &s) in row.iter_mut().zip(shift) {
                    *v *= (s as f32).exp2();
                }
            }
            bits.insert(t.name.clone(), q.storage_bits);
            replaced.insert(t.name.clone(), values);
        }
    }
    let (total, weights) = stored_bits(model, &bits);
    let inputs = searcher
        .found
        .into_iter()
        .map(|(key, fp)| (key, InputCalibration { fp_bias: Some(fp), ..Default::default() }))
        .collect();
    Ok(LlmFp4 { model: replace_tensors(model, &replaced)?, inputs, bits_per_weight: total as f64 / weights.max(1) as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shifting a channel's bias by k is the same as scaling it by 2^k, quantizing with the tensor
    /// bias, and scaling back: what makes the fold into the weights exact.
    #[test]
    fn a_shifted_bias_equals_the_folded_power_of_two() {
        let x: Vec<f32> = (0..24).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
        let shifted = FpChannelBias { format: MiniFloat::E2M1, tensor_bias: 1.3, shift: vec![0, 1, 2, 3] };
        let mut a = x.clone();
        shifted.apply(&mut a);
        let plain = FpChannelBias { shift: vec![0; 4], ..shifted.clone() };
        let mut b: Vec<f32> = x.iter().enumerate().map(|(i, v)| v * (shifted.shift[i % 4] as f32).exp2()).collect();
        plain.apply(&mut b);
        for (i, (qa, qb)) in a.iter().zip(&b).enumerate() {
            assert_eq!(*qa, qb * (-(shifted.shift[i % 4] as f32)).exp2(), "element {i}");
        }
    }

    /// A channel with a small range gets a large shift (finer steps); the search never does worse
    /// than the min-max bias of E2M1 without shifts.
    #[test]
    fn the_search_shifts_small_channels_and_beats_plain_min_max() {
        let k = 4;
        let x: Vec<f32> = (0..32).map(|i| [8.0, 0.05, 1.0, -0.3][i % k] * (1.0 + (i / k) as f32 * 0.1)).collect();
        let weights = vec![1.0; k];
        let best = search_input(&x, &weights);
        assert!(best.shift[1] > best.shift[0], "{:?}", best.shift);
        let error = |q: &FpChannelBias| {
            let mut y = x.clone();
            q.apply(&mut y);
            y.iter().zip(&x).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>()
        };
        let amax = 8.0 * 1.7;
        let b0 = llmfp_minmax_bias(MiniFloat::E2M1, amax);
        let plain = FpChannelBias { format: MiniFloat::E2M1, tensor_bias: b0, shift: vec![0; k] };
        assert!(error(&best) <= error(&plain));
    }
}
