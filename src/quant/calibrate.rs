//! The calibration pass (QUANTIZERS.md §1.4): the model as loaded runs over token windows and
//! records, per block and per linear input class, the per-input-channel `max|x|`, `max x` and
//! `min x` of what the linear layers read. SmoothQuant reads the absmax; OutlierTune, PTQ1.61 and
//! FireQ need the signed extremes, so all three are kept.
//!
//! The statistics are taken where [`ForwardHook::before_linear`] sees the input, i.e. exactly
//! the tensor the matmuls multiply (after the norm, with its gain).

use serde::Serialize;

use crate::analysis::eval::{windows, EvalOptions};
use crate::error::ModelError;
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions, LinearInput};
use crate::model::{Model, Progress};

/// Per-input-channel extremes of one linear input over every calibration token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStats {
    pub absmax: Vec<f32>,
    pub max: Vec<f32>,
    pub min: Vec<f32>,
}

impl ChannelStats {
    fn new(k: usize) -> Self {
        ChannelStats { absmax: vec![0.0; k], max: vec![f32::NEG_INFINITY; k], min: vec![f32::INFINITY; k] }
    }

    fn add(&mut self, x: &[f32]) {
        let k = self.absmax.len();
        for row in x.chunks_exact(k) {
            for (j, &v) in row.iter().enumerate() {
                self.absmax[j] = self.absmax[j].max(v.abs());
                self.max[j] = self.max[j].max(v);
                self.min[j] = self.min[j].min(v);
            }
        }
    }
}

/// The four linear inputs of one block (named fields rather than a map so the JSON reads plainly).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerStats {
    pub attn_qkv: ChannelStats,
    pub attn_output: ChannelStats,
    pub mlp_gate_up: ChannelStats,
    pub mlp_down: ChannelStats,
}

impl LayerStats {
    pub fn input(&self, input: LinearInput) -> &ChannelStats {
        match input {
            LinearInput::AttnQkv => &self.attn_qkv,
            LinearInput::AttnOutput => &self.attn_output,
            LinearInput::MlpGateUp => &self.mlp_gate_up,
            LinearInput::MlpDown => &self.mlp_down,
        }
    }

    fn input_mut(&mut self, input: LinearInput) -> &mut ChannelStats {
        match input {
            LinearInput::AttnQkv => &mut self.attn_qkv,
            LinearInput::AttnOutput => &mut self.attn_output,
            LinearInput::MlpGateUp => &mut self.mlp_gate_up,
            LinearInput::MlpDown => &mut self.mlp_down,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Tokens the statistics were collected over.
    pub tokens: usize,
    /// One entry per block.
    pub layers: Vec<LayerStats>,
}

impl Calibration {
    pub fn stats(&self, layer: usize, input: LinearInput) -> &ChannelStats {
        self.layers[layer].input(input)
    }
}

/// Records the linear inputs and changes nothing.
struct Recorder {
    layers: Vec<LayerStats>,
}

impl ForwardHook for Recorder {
    fn before_linear(&mut self, layer: usize, input: LinearInput, x: &mut [f32], _k: usize) {
        self.layers[layer].input_mut(input).add(x);
    }
}

/// Runs the model over `tokens` in independent windows of `window` tokens (clamped to the context,
/// as the evaluation cuts them) and collects the statistics. Progress counts windows.
pub fn calibrate(
    model: &Model,
    tokens: &[u32],
    window: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<Calibration, ModelError> {
    let c = &model.config;
    let layers = (0..c.n_layers)
        .map(|_| LayerStats {
            attn_qkv: ChannelStats::new(c.d_model),
            attn_output: ChannelStats::new(c.q_dim()),
            mlp_gate_up: ChannelStats::new(c.d_model),
            mlp_down: ChannelStats::new(c.d_ff),
        })
        .collect();
    let mut recorder = Recorder { layers };
    let windows = windows(model, tokens, &EvalOptions { max_tokens: None, window });
    if windows.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    let total = windows.len() as u64;
    let mut seen = 0;
    for (i, w) in windows.iter().enumerate() {
        progress(Progress { stage: "calibrate", done: i as u64, total });
        // Only the hook's records are wanted: no logits of every position, no hidden states.
        forward_with(model, w, ForwardOptions::default(), &mut recorder)?;
        seen += w.len();
    }
    progress(Progress { stage: "calibrate", done: total, total });
    Ok(Calibration { tokens: seen, layers: recorder.layers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_stats_keep_per_channel_extremes_over_all_rows() {
        let mut s = ChannelStats::new(3);
        s.add(&[1.0, -2.0, 0.5, -3.0, 1.5, 0.25]);
        s.add(&[0.0, 0.0, -0.75]);
        assert_eq!(s.absmax, vec![3.0, 2.0, 0.75]);
        assert_eq!(s.max, vec![1.0, 1.5, 0.5]);
        assert_eq!(s.min, vec![-3.0, -2.0, -0.75]);
    }

    #[test]
    fn a_recorder_does_not_change_the_input_and_files_it_by_layer_and_class() {
        let stats = || ChannelStats::new(2);
        let layer = || LayerStats { attn_qkv: stats(), attn_output: stats(), mlp_gate_up: stats(), mlp_down: stats() };
        let mut r = Recorder { layers: vec![layer(), layer()] };
        let mut x = vec![4.0, -1.0];
        r.before_linear(1, LinearInput::MlpGateUp, &mut x, 2);
        assert_eq!(x, vec![4.0, -1.0]);
        assert_eq!(r.layers[1].mlp_gate_up.absmax, vec![4.0, 1.0]);
        assert_eq!(r.layers[0].mlp_gate_up.absmax, vec![0.0, 0.0]);
        assert_eq!(r.layers[1].attn_qkv.absmax, vec![0.0, 0.0]);
    }
}
