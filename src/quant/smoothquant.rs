//! SmoothQuant (docs/quantizers.md §2.6, mit-han-lab/smoothquant `smooth_ln_fcs`): migrate the
//! activation outliers of a norm's output into the weights that read it, so a per-tensor
//! activation scale is no longer set by a few large channels.
//!
//! For every norm and the linears it feeds, with `a_j` the calibrated max|x| of input channel j
//! and `w_j = max_i |W_ij|` over all those linears' rows,
//! `s_j = clamp(a_j^α / max(w_j, 1e-5)^(1−α), min = 1e-5)`, `γ_j ← γ_j / s_j`, `W_ij ← W_ij · s_j`.
//! In exact arithmetic the output is unchanged: the norm's output channel j is divided by s_j and
//! every weight that reads it is multiplied by s_j.
//!
//! Smoothed pairs in a llama block: `attn_norm` → q, k, v and `ffn_norm` → gate, up. The inputs
//! of o_proj (attended values) and down_proj (silu(gate)·up) have no preceding norm whose gain
//! could absorb 1/s, so they are left alone, as the official code does for llama.
//! RMSNorm has no bias β, so only γ is divided; a LayerNorm's (GPT-2) output channel j is
//! `γ_j x̂_j + β_j`, so its bias is divided too: `β_j ← β_j / s_j`. A plain MLP (GPT-2) has no
//! gate: `ffn_norm` feeds up alone.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::ModelError;
use crate::model::reference::LinearInput;
use crate::model::Model;
use crate::quant::apply::replace_tensors;
use crate::quant::calibrate::Calibration;
use crate::quant::runtime::InputCalibration;

/// The official code's default migration strength.
pub const DEFAULT_ALPHA: f32 = 0.5;

/// What the eval JSON reports as `"smoothquant"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SmoothInfo {
    pub alpha: f32,
    pub calibration_tokens: usize,
}

/// A norm and the linears that read its output, by tensor-name suffix within `blk.{layer}.`.
pub(crate) const PAIRS: [(LinearInput, &str, &[&str]); 2] = [
    (LinearInput::AttnQkv, "attn_norm.weight", &["attn_q.weight", "attn_k.weight", "attn_v.weight"]),
    (LinearInput::MlpGateUp, "ffn_norm.weight", &["ffn_gate.weight", "ffn_up.weight"]),
];

/// The smoothing factors for activation absmax `a` and weight absmax `w` (both per input channel).
pub fn smoothing_factors(a: &[f32], w: &[f32], alpha: f32) -> Vec<f32> {
    a.iter()
        .zip(w)
        .map(|(&a, &w)| {
            // In f64 so the only rounding is the final one to f32.
            let s = (a as f64).powf(alpha as f64) / (w.max(1e-5) as f64).powf(1.0 - alpha as f64);
            s.max(1e-5) as f32
        })
        .collect()
}

/// `model` with every norm→linears pair smoothed by the statistics of `calibration` (taken on
/// `model` itself) and migration strength `alpha` ∈ [0, 1]. The changed gains and matrices are
/// stored as f32; every other tensor is copied as stored.
pub fn smooth(model: &Model, calibration: &Calibration, alpha: f32) -> Result<Model, ModelError> {
    calibration.check_for(model)?;
    Ok(smooth_by(model, &|layer, input| calibration.stats(layer, input).absmax.clone(), alpha)?.model)
}

/// A smoothed model and the factor `s` of every smoothed input (its channels are divided by it).
pub struct Smoothed {
    pub model: Model,
    pub factors: HashMap<(usize, LinearInput), Vec<f32>>,
}

/// MPTQ-ViT's SQ-b (docs/quantizers.md §4.10): centre each smoothed input on its calibrated mid-range
/// `z = (max + min)/2` first, then smooth by the centred absmax `(max − min)/2`. The returned
/// run-time calibration takes `z/s` (the shift in the smoothed basis) out of the input before
/// it is quantized and puts it back after — what folding `W·z` into a bias computes.
pub fn smooth_with_bias(
    model: &Model,
    calibration: &Calibration,
    alpha: f32,
) -> Result<(Model, HashMap<(usize, LinearInput), InputCalibration>), ModelError> {
    calibration.check_for(model)?;
    let centred_absmax = |layer: usize, input: LinearInput| -> Vec<f32> {
        let stats = calibration.stats(layer, input);
        stats.max.iter().zip(&stats.min).map(|(&a, &b)| ((a as f64 - b as f64) / 2.0) as f32).collect()
    };
    let smoothed = smooth_by(model, &centred_absmax, alpha)?;
    let inputs = smoothed
        .factors
        .iter()
        .map(|(&(layer, input), s)| {
            let z = calibration.stats(layer, input).midrange();
            let shift = z.iter().zip(s).map(|(z, s)| z / s).collect();
            ((layer, input), InputCalibration { shift: Some(shift), ..Default::default() })
        })
        .collect();
    Ok((smoothed.model, inputs))
}

/// Smooths every norm→linears pair with the activation absmax `activation_absmax(layer, input)`.
pub fn smooth_by(
    model: &Model,
    activation_absmax: &dyn Fn(usize, LinearInput) -> Vec<f32>,
    alpha: f32,
) -> Result<Smoothed, ModelError> {
    let c = &model.config;
    let mut replaced = HashMap::new();
    let mut factors = HashMap::new();
    for layer in 0..c.n_layers {
        for (input, norm_name, consumers) in PAIRS {
            let name = |suffix: &str| format!("blk.{layer}.{suffix}");
            let norm = model.tensor(&name(norm_name))?;
            let k = norm.n_elements() as usize;
            let mut matrices = Vec::with_capacity(consumers.len());
            let mut w_absmax = vec![0.0f32; k];
            for consumer in consumers.iter().filter(|s| c.has_linear(s)) {
                let t = model.tensor(&name(consumer))?;
                let values = model.weights.dequantize(t)?;
                for row in values.chunks_exact(k) {
                    for (m, &v) in w_absmax.iter_mut().zip(row) {
                        *m = m.max(v.abs());
                    }
                }
                matrices.push((name(consumer), values));
            }
            let s = smoothing_factors(&activation_absmax(layer, input), &w_absmax, alpha);
            let gain: Vec<f32> = model.weights.dequantize(norm)?.iter().zip(&s).map(|(g, s)| g / s).collect();
            replaced.insert(name(norm_name), gain);
            let bias_name = name(&norm_name.replace(".weight", ".bias"));
            if let Some(bias) = model.weights.get(&bias_name) {
                let bias: Vec<f32> = model.weights.dequantize(bias)?.iter().zip(&s).map(|(b, s)| b / s).collect();
                replaced.insert(bias_name, bias);
            }
            for (consumer, mut values) in matrices {
                for row in values.chunks_exact_mut(k) {
                    for (v, s) in row.iter_mut().zip(&s) {
                        *v *= s;
                    }
                }
                replaced.insert(consumer, values);
            }
            factors.insert((layer, input), s);
        }
    }
    Ok(Smoothed { model: replace_tensors(model, &replaced)?, factors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_follow_the_formula_and_its_clamps() {
        // a = 4, w = 1, α = 0.5: √4 / 1 = 2; w below 1e-5 is raised to it; a = 0 clamps s to 1e-5.
        let s = smoothing_factors(&[4.0, 1.0, 0.0, 9.0], &[1.0, 0.0, 2.0, 4.0], 0.5);
        assert!((s[0] - 2.0).abs() < 1e-6);
        assert!((s[1] - 1.0 / 1e-5f64.sqrt() as f32).abs() < 1e-2);
        assert_eq!(s[2], 1e-5);
        assert!((s[3] - 1.5).abs() < 1e-6);
        // α = 1 moves everything into the weights (s = a), α = 0 none of the activation (s = 1/w).
        assert_eq!(smoothing_factors(&[3.0], &[5.0], 1.0), vec![3.0]);
        assert!((smoothing_factors(&[3.0], &[4.0], 0.0)[0] - 0.25).abs() < 1e-7);
    }

    #[test]
    fn after_smoothing_activation_and_weight_absmax_are_balanced_at_half() {
        // With α = 0.5, the smoothed a_j/s_j and w_j·s_j are both √(a_j·w_j): the property the
        // method is named for.
        let (a, w) = ([100.0f32, 0.01, 3.0], [0.5f32, 2.0, 3.0]);
        let s = smoothing_factors(&a, &w, 0.5);
        for j in 0..3 {
            let (a_s, w_s) = (a[j] / s[j], w[j] * s[j]);
            assert!((a_s - w_s).abs() <= 1e-5 * a_s.max(w_s), "channel {j}: {a_s} vs {w_s}");
        }
    }

    /// The transform keeps the float output: on the default model, calibrated and evaluated on
    /// a short prompt, the logits move only by f32 rounding.
    #[test]
    fn the_smoothed_default_model_computes_the_same_logits() {
        use crate::model::reference::{forward, ForwardOptions};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let bytes = std::fs::read(path).expect("the default model (run scripts/setup)");
        let model = Model::from_gguf(bytes, path, &mut |_| {}).unwrap();
        let tokens = model.tokenizer.encode("Summer is warm. Winter is cold.\n").unwrap();
        let calibration = crate::quant::calibrate::calibrate(&model, &tokens, 512, &mut |_| {}).unwrap();
        assert_eq!(calibration.tokens, tokens.len());
        let smoothed = smooth(&model, &calibration, DEFAULT_ALPHA).unwrap();
        // The gains and the five consumer matrices of every block are rewritten.
        let t = smoothed.weights.get("blk.0.attn_q.weight").unwrap();
        assert_eq!(t.dtype, crate::formats::ggml::GgmlType::F32);
        let options = ForwardOptions { all_logits: true, ..Default::default() };
        let a = forward(&model, &tokens, options).unwrap().logits;
        let b = forward(&smoothed, &tokens, options).unwrap().logits;
        let (mut d2, mut r2) = (0.0f64, 0.0f64);
        for (&x, &y) in a.iter().zip(&b) {
            d2 += (x as f64 - y as f64).powi(2);
            r2 += (x as f64).powi(2);
        }
        let rel = (d2 / r2).sqrt();
        assert!(rel <= 1e-5, "relative L2 of the logits {rel:e}");
    }
}
