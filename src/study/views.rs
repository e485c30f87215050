//! What the page's outlier views ask of the model under study beyond [`Study::probe`]: the
//! attention maps of one layer, a weight tensor's statistics with the quantization grid of a
//! scheme, and the CPU reference's outlier report.
//!
//! Results stay small: a weight tensor of 28 M values comes back as 256-bin histograms, one
//! ratio per column and one group's grid, never as the tensor itself.

use serde::Serialize;

use super::{now_ms, Study, TokenText};
use crate::analysis::outliers::{self, OutlierReport, OutlierRule, WeightOutliers};
use crate::analysis::weight_grid::{finite_range, grid_at_largest, histogram, QuantLevels, ValueHistogram};
use crate::error::StudyError;
use crate::gpu::forward::Capture;
use crate::model::reference::{forward, ForwardOptions};
use crate::quant::apply::{quantize_tensor, TensorError};
use crate::quant::Scheme;

/// Bins of the weight-value histograms.
const HISTOGRAM_BINS: usize = 256;
/// Weight-outlier columns listed by `weight_stats`.
const TOP_WEIGHT_COLUMNS: usize = 8;
/// Entries, channels and weight columns per layer in `outlier_report` (the CLI's default `--top`).
pub const REPORT_TOP: usize = 5;

/// The attention probabilities of every head of one layer, and what the views read off them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttentionMaps {
    pub tokens: Vec<TokenText>,
    pub layer: usize,
    pub heads: usize,
    pub n: usize,
    /// `[heads × n × n]`: `probs[(h·n + q)·n + k]`, zero above the diagonal. Left out of the
    /// serialized form: the facade hands it over as one typed array.
    #[serde(skip)]
    pub probs: Vec<f32>,
    pub sink_scores: Vec<f32>,
    pub key_attention: Vec<f32>,
    pub outlier_keys: Vec<usize>,
    pub backend: &'static str,
    pub ms: f64,
}

#[derive(Serialize)]
pub struct ErrorSummary {
    pub mse: f64,
    /// None when the tensor came through unchanged (infinite SQNR).
    pub sqnr_db: Option<f64>,
    pub max_abs: f64,
}

/// One weight tensor as loaded and after quantizing it (see [`Study::weight_stats`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightStats {
    pub tensor: String,
    pub scheme: String,
    pub requested: String,
    pub dtype: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub column_ratios: Vec<f32>,
    pub outliers: WeightOutliers,
    pub histogram: ValueHistogram,
    pub levels: Option<QuantLevels>,
    pub clipped: u64,
    pub error: Option<ErrorSummary>,
    pub bits_per_weight: Option<f64>,
    pub ms: f64,
}

impl Study {
    /// The attention probabilities of every head of `layer` for `prompt`. On the GPU: the model
    /// under study (with its intervention), or as loaded with `as_loaded`. Without a GPU nothing
    /// can be quantized, so the CPU reference runs the model as loaded (`backend: "cpu"`).
    pub async fn attention_maps(&self, prompt: &str, layer: usize, as_loaded: bool) -> Result<AttentionMaps, StudyError> {
        let c = &self.model.config;
        let invalid = |message: String| StudyError::Invalid { what: "attention maps", message };
        if layer >= c.n_layers {
            return Err(invalid(format!(
                "layer {layer} does not exist: the model has {} layers (0 to {})",
                c.n_layers,
                c.n_layers.saturating_sub(1)
            )));
        }
        let t0 = now_ms();
        let tokens = self.model.prompt_tokens(prompt)?;
        let n = tokens.len();
        let (probs, backend) = match &self.gpu {
            Some(gpu) => {
                let capture = Capture { attention_layers: vec![layer], ..self.view_capture(as_loaded) };
                let mut cache = gpu.model.new_cache(&gpu.ctx, n as u32)?;
                let out = gpu.model.step(&gpu.ctx, &mut cache, &tokens, &capture).await?;
                let probs = out
                    .attention_probs
                    .into_iter()
                    .find_map(|(l, p)| (l == layer).then_some(p))
                    .ok_or_else(|| invalid(format!("the GPU forward returned no attention for layer {layer}")))?;
                (probs, "webgpu")
            }
            None => {
                let options = ForwardOptions { attention_probs: true, ..Default::default() };
                let mut out = forward(&self.model, &tokens, options)?;
                if layer >= out.attention_probs.len() {
                    return Err(invalid(format!("the CPU forward returned no attention for layer {layer}")));
                }
                (out.attention_probs.swap_remove(layer), "cpu")
            }
        };
        let heads = c.n_heads;
        if probs.len() != heads * n * n {
            return Err(invalid(format!(
                "attention of layer {layer} has {} values, expected {heads} heads × {n} × {n}",
                probs.len()
            )));
        }
        let key_attention = outliers::key_attention(&probs, heads, n);
        Ok(AttentionMaps {
            tokens: self.token_texts(&tokens),
            layer,
            heads,
            n,
            sink_scores: outliers::sink_scores(&probs, heads, n),
            outlier_keys: outliers::outlier_keys(&key_attention),
            key_attention,
            probs,
            backend,
            ms: now_ms() - t0,
        })
    }

    /// Statistics of one weight tensor as loaded, and after quantizing it with `scheme` by the
    /// CPU reference ("keep" or "" for none): the scheme used (after llama.cpp's fallback), the
    /// per-column ratios and weight outliers, value histograms, the grid of the group holding
    /// the largest |w| (`weight_grid::grid_at_largest`) and the weights beyond its group's grid,
    /// the error and the bits per weight.
    pub fn weight_stats(&self, tensor: &str, scheme: &str) -> Result<WeightStats, StudyError> {
        let t0 = now_ms();
        let t = self.model.tensor(tensor)?;
        let (rows, cols) = (t.n_rows(), t.row_len());
        let chosen: Option<Scheme> = match scheme.trim() {
            "" | "keep" => None,
            name => Some(name.parse().map_err(crate::error::ModelError::from)?),
        };
        let (used, quantized, original) = match &chosen {
            Some(s) => {
                let (used, q, original) = quantize_tensor(&self.model, tensor, s)?;
                (Some(used), Some(q), original)
            }
            None => (None, None, self.model.weights.dequantize(t)?),
        };
        let invalid = |message: String| StudyError::Invalid { what: "weight statistics", message };
        if original.is_empty() || cols == 0 {
            return Err(invalid(format!("tensor {tensor:?} has no values")));
        }
        let q_values = quantized.as_ref().map(|q| q.values.as_slice());
        let (min, max) = finite_range([Some(original.as_slice()), q_values].into_iter().flatten());
        let histogram = ValueHistogram {
            min,
            max,
            loaded: histogram(&original, min, max, HISTOGRAM_BINS),
            quantized: q_values.map(|q| histogram(q, min, max, HISTOGRAM_BINS)),
        };
        let (levels, clipped) = match &quantized {
            Some(q) => grid_at_largest(&q.encoding, cols, &original)
                .map_err(|e| invalid(format!("tensor {tensor:?}: {e}")))?
                .map_or((None, 0), |(levels, clipped)| (Some(levels), clipped)),
            None => (None, 0),
        };
        let error = quantized.as_ref().map(|q| {
            let e = TensorError::between(&original, &q.values);
            ErrorSummary { mse: e.mse, sqnr_db: e.sqnr_db.is_finite().then_some(e.sqnr_db), max_abs: e.max_abs }
        });
        Ok(WeightStats {
            tensor: tensor.to_string(),
            scheme: used.map_or_else(|| "keep".to_string(), |s| s.to_string()),
            requested: chosen.map_or_else(|| "keep".to_string(), |s| s.to_string()),
            dtype: t.dtype.name(),
            rows,
            cols,
            column_ratios: outliers::column_ratios(&original, cols),
            outliers: outliers::weight_outliers(&original, cols, TOP_WEIGHT_COLUMNS),
            histogram,
            levels,
            clipped,
            error,
            bits_per_weight: quantized.as_ref().map(|q| q.bits_per_weight()),
            ms: now_ms() - t0,
        })
    }

    /// The outlier report of `prompt` under `rule` on the CPU reference forward of the model as
    /// loaded (what `quantscope outliers` prints), `top` entries per list, and how long it took.
    pub fn outlier_report(&self, prompt: &str, rule: OutlierRule, top: usize) -> Result<(OutlierReport, f64), StudyError> {
        let t0 = now_ms();
        // Rejects an empty prompt with the same error as every other operation.
        self.model.prompt_tokens(prompt)?;
        let report = outliers::outlier_report(&self.model, prompt, rule, top)?;
        Ok((report, now_ms() - t0))
    }
}
