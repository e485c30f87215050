//! The calibration pass (docs/quantizers.md §1.4): the model as loaded runs over token windows and
//! records, per block and per linear input class, the per-input-channel `max|x|`, `max x` and
//! `min x` of what the linear layers read. SmoothQuant reads the absmax; OutlierTune, PTQ1.61 and
//! FireQ need the signed extremes, so all three are kept.
//!
//! The statistics are taken where [`ForwardHook::before_linear`] sees the input, i.e. exactly
//! the tensor the matmuls multiply (after the norm, with its gain).

use serde::Serialize;

use crate::error::ModelError;
use crate::model::config::RopeLayout;
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions, LinearInput};
use crate::model::window::{windows, EvalOptions};
use crate::model::{Model, Progress};

/// Per-input-channel extremes of one linear input over every calibration token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStats {
    pub absmax: Vec<f32>,
    pub max: Vec<f32>,
    pub min: Vec<f32>,
    /// Σ x² per channel: the diagonal of the Hessian proxy `Σ xᵀx` (bit allocation's weights).
    pub sum_squares: Vec<f64>,
    /// Σ over calibration samples (windows) of each sample's per-channel mid-range
    /// `(max + min)/2`: OutlierTune's symmetrization shift is its mean.
    pub midrange_sum: Vec<f64>,
    /// Samples (windows) and rows (tokens) seen.
    pub samples: usize,
    pub rows: usize,
}

impl ChannelStats {
    #[cfg(test)]
    pub(crate) fn new_for_tests(k: usize) -> Self {
        Self::new(k)
    }

    fn new(k: usize) -> Self {
        ChannelStats {
            absmax: vec![0.0; k],
            max: vec![f32::NEG_INFINITY; k],
            min: vec![f32::INFINITY; k],
            sum_squares: vec![0.0; k],
            midrange_sum: vec![0.0; k],
            samples: 0,
            rows: 0,
        }
    }

    /// Adds one sample (the input of one forward): `[rows × k]`.
    fn add(&mut self, x: &[f32]) {
        let k = self.absmax.len();
        let (mut sample_max, mut sample_min) = (vec![f32::NEG_INFINITY; k], vec![f32::INFINITY; k]);
        for row in x.chunks_exact(k) {
            for (j, &v) in row.iter().enumerate() {
                self.absmax[j] = self.absmax[j].max(v.abs());
                sample_max[j] = sample_max[j].max(v);
                sample_min[j] = sample_min[j].min(v);
                self.sum_squares[j] += (v as f64) * (v as f64);
            }
            self.rows += 1;
        }
        for j in 0..k {
            self.max[j] = self.max[j].max(sample_max[j]);
            self.min[j] = self.min[j].min(sample_min[j]);
            self.midrange_sum[j] += (sample_max[j] as f64 + sample_min[j] as f64) / 2.0;
        }
        self.samples += 1;
    }

    /// OutlierTune's symmetrization shift: the mean over samples of the per-sample mid-range.
    pub fn mean_midrange(&self) -> Vec<f32> {
        self.midrange_sum.iter().map(|&m| (m / self.samples.max(1) as f64) as f32).collect()
    }

    /// SQ-b's shift: the mid-range over all samples.
    pub fn midrange(&self) -> Vec<f32> {
        self.max.iter().zip(&self.min).map(|(&a, &b)| ((a as f64 + b as f64) / 2.0) as f32).collect()
    }

    /// Mean x² per channel.
    pub fn mean_squares(&self) -> Vec<f64> {
        self.sum_squares.iter().map(|&s| s / self.rows.max(1) as f64).collect()
    }
}

/// Key statistics of one block (FireQ's RoPE-aware scaling), per key channel (`kv_dim`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStats {
    /// max |k| after RoPE.
    pub absmax: Vec<f32>,
    /// max over tokens of the norm of the channel's RoPE pair `√(k_i² + k_partner²)`, the same
    /// for both members; RoPE rotates a pair without changing its norm, so this is also the
    /// pre-RoPE pair norm.
    pub pair_norm_max: Vec<f32>,
}

impl KeyStats {
    fn new(kv_dim: usize) -> Self {
        KeyStats { absmax: vec![0.0; kv_dim], pair_norm_max: vec![0.0; kv_dim] }
    }

    fn add(&mut self, k: &[f32], head_dim: usize, layout: RopeLayout) {
        let kv_dim = self.absmax.len();
        for row in k.chunks_exact(kv_dim) {
            for (c, &v) in row.iter().enumerate() {
                self.absmax[c] = self.absmax[c].max(v.abs());
                let partner = rope_partner(c, head_dim, layout);
                let norm = (v * v + row[partner] * row[partner]).sqrt();
                self.pair_norm_max[c] = self.pair_norm_max[c].max(norm);
            }
        }
    }
}

/// The channel that RoPE rotates together with channel `c` (same head).
pub fn rope_partner(c: usize, head_dim: usize, layout: RopeLayout) -> usize {
    let (head, d) = (c / head_dim, c % head_dim);
    let half = head_dim / 2;
    let partner = match layout {
        RopeLayout::Interleaved => d ^ 1,
        RopeLayout::HalfSplit => (d + half) % head_dim,
    };
    head * head_dim + partner
}

/// The four linear inputs of one block (named fields rather than a map so the JSON reads plainly).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerStats {
    pub attn_qkv: ChannelStats,
    pub attn_output: ChannelStats,
    pub mlp_gate_up: ChannelStats,
    pub mlp_down: ChannelStats,
    pub keys: KeyStats,
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
    /// Refuses a calibration taken on a model with another number of blocks.
    pub fn check_for(&self, model: &Model) -> Result<(), ModelError> {
        let n = model.config.n_layers;
        if self.layers.len() != n {
            return Err(ModelError::BadConfig {
                file: model.source.clone(),
                message: format!("a calibration of {} layers for a model of {n}", self.layers.len()),
            });
        }
        Ok(())
    }

    pub fn stats(&self, layer: usize, input: LinearInput) -> &ChannelStats {
        self.layers[layer].input(input)
    }
}

/// Records the linear inputs and changes nothing.
struct Recorder {
    layers: Vec<LayerStats>,
    head_dim: usize,
    layout: RopeLayout,
}

impl ForwardHook for Recorder {
    fn before_linear(&mut self, layer: usize, input: LinearInput, x: &mut [f32], _k: usize) {
        self.layers[layer].input_mut(input).add(x);
    }

    fn after_rope(&mut self, layer: usize, _q: &mut [f32], k: &mut [f32], _v: &mut [f32]) {
        self.layers[layer].keys.add(k, self.head_dim, self.layout);
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
            keys: KeyStats::new(c.kv_dim()),
        })
        .collect();
    let mut recorder = Recorder { layers, head_dim: c.head_dim, layout: c.rope_layout };
    let windows = windows(model, tokens, &EvalOptions { max_tokens: None, window, skip: 0 });
    if windows.is_empty() {
        return Err(ModelError::TooFewTokens { what: "calibration", tokens: tokens.len() });
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
        // Sample 1's mid-ranges are (1−3)/2, (1.5−2)/2, (0.5+0.25)/2; sample 2's are 0, 0, −0.75.
        assert_eq!(s.mean_midrange(), vec![-0.5, -0.125, -0.1875]);
        assert_eq!(s.midrange(), vec![-1.0, -0.25, -0.125]);
        assert_eq!((s.samples, s.rows), (2, 3));
        assert_eq!(s.mean_squares()[1], (4.0 + 2.25) / 3.0);
    }

    #[test]
    fn key_pairs_share_one_norm_under_either_rope_layout() {
        assert_eq!(rope_partner(5, 4, RopeLayout::Interleaved), 4);
        assert_eq!(rope_partner(5, 4, RopeLayout::HalfSplit), 7);
        let mut keys = KeyStats::new(4);
        keys.add(&[3.0, 0.5, 4.0, -1.0], 4, RopeLayout::HalfSplit);
        assert_eq!(keys.pair_norm_max, vec![5.0, 1.25f32.sqrt(), 5.0, 1.25f32.sqrt()]);
        assert_eq!(keys.absmax, vec![3.0, 0.5, 4.0, 1.0]);
    }

    #[test]
    fn a_recorder_does_not_change_the_input_and_files_it_by_layer_and_class() {
        let stats = || ChannelStats::new(2);
        let layer = || LayerStats {
            attn_qkv: stats(),
            attn_output: stats(),
            mlp_gate_up: stats(),
            mlp_down: stats(),
            keys: KeyStats::new(2),
        };
        let mut r = Recorder { layers: vec![layer(), layer()], head_dim: 2, layout: RopeLayout::HalfSplit };
        let mut x = vec![4.0, -1.0];
        r.before_linear(1, LinearInput::MlpGateUp, &mut x, 2);
        assert_eq!(x, vec![4.0, -1.0]);
        assert_eq!(r.layers[1].mlp_gate_up.absmax, vec![4.0, 1.0]);
        assert_eq!(r.layers[0].mlp_gate_up.absmax, vec![0.0, 0.0]);
        assert_eq!(r.layers[1].attn_qkv.absmax, vec![0.0, 0.0]);
    }
}
