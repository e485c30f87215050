//! What the page's outlier views (`www/src/views`) ask the engine for, beyond [`Playground::probe`]:
//! the attention maps of one layer, a weight tensor's statistics with the quantization grid of a
//! scheme, and the CPU reference outlier report. Shapes are documented on each method and typed
//! in `www/src/views/types.ts`.
//!
//! Outputs stay small: a weight tensor of 28 M values comes back as 256-bin histograms, one
//! ratio per column and one group's grid, never as the tensor itself.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::{js_error, to_js, Playground};
use crate::analysis::outliers::{self, OutlierRule, WeightOutliers};
use crate::formats::blocks::{self, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0, scale_min_k4, F16Le};
use crate::formats::ggml::GgmlType;
use crate::gpu::forward::Capture;
use crate::model::reference::{forward, ForwardOptions};
use crate::quant::apply::{quantize_tensor, TensorError};
use crate::quant::codebook::{Codebook, Sharing};
use crate::quant::{hadamard, Encoding, Scheme};
use crate::study::{now_ms, TokenText};

/// Bins of the weight-value histograms.
const HISTOGRAM_BINS: usize = 256;
/// Weight-outlier columns listed by `weightStats`.
const TOP_WEIGHT_COLUMNS: usize = 8;
/// Entries, channels and weight columns per layer in `outlierReport` (the CLI's default `--top`).
const REPORT_TOP: usize = 5;

/// `attentionMaps` without its typed array.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttentionMaps {
    tokens: Vec<TokenText>,
    layer: usize,
    heads: usize,
    n: usize,
    sink_scores: Vec<f32>,
    key_attention: Vec<f32>,
    outlier_keys: Vec<usize>,
    backend: &'static str,
    ms: f64,
}

/// Equal-width histograms of the weights as loaded and as quantized, over one shared range.
#[derive(Debug, Serialize, PartialEq)]
struct ValueHistogram {
    min: f32,
    max: f32,
    loaded: Vec<u32>,
    quantized: Option<Vec<u32>>,
}

/// The values one group of a quantized tensor can take (see [`grid_at_largest`]).
#[derive(Debug, Serialize, PartialEq)]
struct QuantLevels {
    source: &'static str,
    basis: &'static str,
    shared: String,
    row: usize,
    start: usize,
    end: usize,
    column: usize,
    value: f32,
    values: Vec<f32>,
}

#[derive(Serialize)]
struct ErrorSummary {
    mse: f64,
    /// None when the tensor came through unchanged (infinite SQNR).
    sqnr_db: Option<f64>,
    max_abs: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WeightStats {
    tensor: String,
    scheme: String,
    requested: String,
    dtype: &'static str,
    rows: usize,
    cols: usize,
    column_ratios: Vec<f32>,
    outliers: WeightOutliers,
    histogram: ValueHistogram,
    levels: Option<QuantLevels>,
    clipped: u64,
    error: Option<ErrorSummary>,
    bits_per_weight: Option<f64>,
    ms: f64,
}

/// Counts of `values` in `bins` equal bins over [min, max] (the max lands in the last bin;
/// anything outside is clamped to the end bins, non-finite values are skipped).
fn histogram(values: &[f32], min: f32, max: f32, bins: usize) -> Vec<u32> {
    let mut counts = vec![0u32; bins];
    let span = (max - min) as f64;
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = if span > 0.0 { (((v - min) as f64 / span) * bins as f64).floor() as i64 } else { 0 };
        counts[b.clamp(0, bins as i64 - 1) as usize] += 1;
    }
    counts
}

/// The finite range of one or two sets of values; (0, 0) when there is none.
fn finite_range<'a>(sets: impl IntoIterator<Item = &'a [f32]>) -> (f32, f32) {
    let mut range: Option<(f32, f32)> = None;
    for &v in sets.into_iter().flatten().filter(|v| v.is_finite()) {
        range = Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
    }
    range.unwrap_or((0.0, 0.0))
}

/// Index of the largest |v| (the first on ties).
fn argmax_abs(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if v.abs() > values[best].abs() {
            best = i;
        }
    }
    best
}

/// The columns [start, end) of row-sharing `s` that hold column `c`.
fn sharing_span(s: Sharing, cols: usize, c: usize) -> (usize, usize) {
    match s {
        Sharing::Tensor | Sharing::Row => (0, cols),
        Sharing::Group(n) => {
            let n = n.max(1);
            let start = c / n * n;
            (start, (start + n).min(cols))
        }
    }
}

fn describe_sharing(table: Sharing, scale: Sharing) -> String {
    match (table, scale) {
        (Sharing::Group(a), Sharing::Group(b)) => format!("group of {} columns", a.min(b)),
        (Sharing::Group(n), _) | (_, Sharing::Group(n)) => format!("group of {n} columns"),
        (Sharing::Row, _) | (_, Sharing::Row) => "row".into(),
        (Sharing::Tensor, Sharing::Tensor) => "tensor".into(),
    }
}

/// One GGUF (sub-)block's grid: the values `step · q + offset` for the integer codes `q` in
/// `codes`. Every type the schemes produce is affine in its code within a block (K-quants: within
/// a sub-block, whose scale and minimum are 6-bit codes of the super-block's f16 pair).
struct BlockGrid {
    step: f32,
    offset: f32,
    codes: std::ops::RangeInclusive<i32>,
}

impl BlockGrid {
    fn ends(&self) -> GridEnds {
        let (first, last) = (*self.codes.start() as f32, *self.codes.end() as f32);
        GridEnds { low: first, high: last, low_spacing: 1.0, high_spacing: 1.0 }.scaled(self.step, self.offset)
    }

    fn levels(&self) -> Vec<f32> {
        sorted_levels(self.codes.clone().map(|q| self.step * q as f32 + self.offset).collect())
    }
}

/// Elements per sub-block sharing one scale, for the GGUF types whose grid [`block_grid`] reads;
/// None for the others (the float types' "grid" is every representable float).
fn gguf_sub_block(t: GgmlType) -> Option<usize> {
    match t {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => Some(t.block_size()),
        GgmlType::Q4_K => Some(q4_k::SUB_BLOCK_WEIGHTS),
        GgmlType::Q5_K => Some(q5_k::SUB_BLOCK_WEIGHTS),
        GgmlType::Q6_K => Some(q6_k::SUB_BLOCK_WEIGHTS),
        _ => None,
    }
}

/// The grid of sub-block `sub` of the block `b` (its bytes) of type `t`, decoded from the
/// block's scales as `formats::ggml`'s dequantizers apply them.
fn block_grid(t: GgmlType, b: &[u8], sub: usize) -> Option<BlockGrid> {
    let grid = |step, offset, codes| Some(BlockGrid { step, offset, codes });
    // K-quant sub-block j: x = (d * sc_j) * q - (dmin * m_j).
    let k_quant_grid = |d: F16Le, dmin: F16Le, (sc, m): (u8, u8), codes| {
        grid(d.to_f32() * sc as f32, -(dmin.to_f32() * m as f32), codes)
    };
    match t {
        GgmlType::Q8_0 => grid(blocks::view::<q8_0::Block>(b).d.to_f32(), 0.0, -128..=127),
        GgmlType::Q4_0 => grid(blocks::view::<q4_0::Block>(b).d.to_f32(), 0.0, -8..=7),
        GgmlType::Q5_0 => grid(blocks::view::<q5_0::Block>(b).d.to_f32(), 0.0, -16..=15),
        GgmlType::Q4_1 => {
            let block: &q4_1::Block = blocks::view(b);
            grid(block.d.to_f32(), block.m.to_f32(), 0..=15)
        }
        GgmlType::Q5_1 => {
            let block: &q5_1::Block = blocks::view(b);
            grid(block.d.to_f32(), block.m.to_f32(), 0..=31)
        }
        GgmlType::Q4_K => {
            let block: &q4_k::Block = blocks::view(b);
            k_quant_grid(block.d, block.dmin, scale_min_k4(sub, &block.scales), 0..=15)
        }
        GgmlType::Q5_K => {
            let block: &q5_k::Block = blocks::view(b);
            k_quant_grid(block.d, block.dmin, scale_min_k4(sub, &block.scales), 0..=31)
        }
        GgmlType::Q6_K => {
            let block: &q6_k::Block = blocks::view(b);
            grid(block.d.to_f32() * block.scales[sub] as f32, 0.0, -32..=31)
        }
        _ => None,
    }
}

/// Sorted, without repeats.
fn sorted_levels(mut values: Vec<f32>) -> Vec<f32> {
    values.retain(|v| v.is_finite());
    values.sort_by(f32::total_cmp);
    values.dedup();
    values
}

/// The two ends of a grid and the spacing of the grid next to each.
///
/// A weight counts as *clipped* when it lies beyond an end by more than half that spacing: a
/// grid continuing at the same spacing would have rounded it to a level of its own, so its
/// error comes from where the grid stops, not from its resolution. (Merely rounding onto the
/// end level is not clipping: that is what every absmax-scaled block does with its largest
/// weight, up to the rounding of a stored scale.)
#[derive(Debug, Clone, Copy)]
struct GridEnds {
    low: f32,
    high: f32,
    low_spacing: f32,
    high_spacing: f32,
}

impl GridEnds {
    /// The ends of sorted, distinct `levels` (at least one).
    fn of_sorted(levels: &[f32]) -> GridEnds {
        let n = levels.len();
        let spacing = |a: usize, b: usize| if n > 1 { levels[b] - levels[a] } else { 0.0 };
        GridEnds {
            low: levels[0],
            high: levels[n - 1],
            low_spacing: spacing(0, 1),
            high_spacing: spacing(n - 2, n - 1),
        }
    }

    /// The ends once every level `l` becomes `l·scale + offset`.
    fn scaled(self, scale: f32, offset: f32) -> GridEnds {
        let (a, b) = (self.low * scale + offset, self.high * scale + offset);
        let (sa, sb) = (self.low_spacing * scale.abs(), self.high_spacing * scale.abs());
        if scale >= 0.0 {
            GridEnds { low: a, high: b, low_spacing: sa, high_spacing: sb }
        } else {
            GridEnds { low: b, high: a, low_spacing: sb, high_spacing: sa }
        }
    }

    fn clips(&self, w: f32) -> bool {
        w < self.low - self.low_spacing / 2.0 || w > self.high + self.high_spacing / 2.0
    }
}

/// A codebook's grid in the group holding the largest |w| of `basis` (the weights in the basis
/// the codebook quantized), and how many weights lie outside their own group's grid.
fn codebook_grid(cb: &Codebook, basis: &[f32]) -> (QuantLevels, u64) {
    let cols = cb.cols;
    let at = argmax_abs(basis);
    let (r, c) = (at / cols, at % cols);
    let table = cb.table_sharing.index(cols, r, c);
    let scale_index = cb.scale_sharing.index(cols, r, c);
    let offset = |s: usize| cb.offsets.get(s).copied().unwrap_or(0.0);
    let levels = &cb.levels[table * cb.levels_per_table..(table + 1) * cb.levels_per_table];
    let values = sorted_levels(levels.iter().map(|l| l * cb.scales[scale_index] + offset(scale_index)).collect());
    let (t0, t1) = sharing_span(cb.table_sharing, cols, c);
    let (s0, s1) = sharing_span(cb.scale_sharing, cols, c);

    let tables: Vec<GridEnds> =
        cb.levels.chunks_exact(cb.levels_per_table).map(|t| GridEnds::of_sorted(&sorted_levels(t.to_vec()))).collect();
    let mut clipped = 0u64;
    for (i, &w) in basis.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        let s = cb.scale_sharing.index(cols, r, c);
        if tables[cb.table_sharing.index(cols, r, c)].scaled(cb.scales[s], offset(s)).clips(w) {
            clipped += 1;
        }
    }
    let levels = QuantLevels {
        source: "codebook",
        basis: "original",
        shared: describe_sharing(cb.table_sharing, cb.scale_sharing),
        row: r,
        start: t0.max(s0),
        end: t1.min(s1),
        column: c,
        value: basis[at],
        values,
    };
    (levels, clipped)
}

/// A GGUF type's grid in the (sub-)block holding the largest |w| of `basis`, read from that
/// block's scales, and how many weights lie outside their own (sub-)block's grid. None for a
/// type without a grid here (see [`gguf_sub_block`]).
fn gguf_grid(t: GgmlType, bytes: &[u8], cols: usize, basis: &[f32]) -> Result<Option<(QuantLevels, u64)>, String> {
    let Some(sub) = gguf_sub_block(t) else { return Ok(None) };
    let (block, size) = (t.block_size(), t.type_size());
    if !cols.is_multiple_of(block) || bytes.len() != basis.len() / block * size {
        return Err(format!("{} blocks do not tile rows of {cols} ({} bytes)", t.name(), bytes.len()));
    }
    let grid_of = |r: usize, c: usize| {
        let at = (r * (cols / block) + c / block) * size;
        block_grid(t, &bytes[at..at + size], (c % block) / sub)
    };
    let mut clipped = 0u64;
    for (i, w) in basis.chunks_exact(sub).enumerate() {
        let (r, c) = (i * sub / cols, i * sub % cols);
        let Some(grid) = grid_of(r, c) else { return Ok(None) };
        let ends = grid.ends();
        clipped += w.iter().filter(|&&x| ends.clips(x)).count() as u64;
    }
    let at = argmax_abs(basis);
    let (r, c) = (at / cols, at % cols);
    let Some(grid) = grid_of(r, c) else { return Ok(None) };
    let start = c / sub * sub;
    let shared =
        if sub == block { format!("block of {block}") } else { format!("sub-block of {sub} (super-block of {block})") };
    let levels = QuantLevels {
        source: "gguf-block",
        basis: "original",
        shared,
        row: r,
        start,
        end: start + sub,
        column: c,
        value: basis[at],
        values: grid.levels(),
    };
    Ok(Some((levels, clipped)))
}

/// The grid of `encoding` around the tensor's largest |w| and the count of clipped weights,
/// in the basis the scheme quantized (Hadamard-rotated rows for a rotated scheme). None for a
/// float encoding.
fn grid_at_largest(encoding: &Encoding, cols: usize, original: &[f32]) -> Result<Option<(QuantLevels, u64)>, String> {
    match encoding {
        Encoding::Codebook(cb) => Ok(Some(codebook_grid(cb, original))),
        Encoding::Ggml { dtype, bytes } => gguf_grid(*dtype, bytes, cols, original),
        Encoding::Rotated { block, inner } => {
            let rotated = hadamard::rotate_rows(*block, cols, original);
            Ok(grid_at_largest(inner, cols, &rotated)?.map(|(mut levels, clipped)| {
                levels.basis = "rotated";
                (levels, clipped)
            }))
        }
    }
}

/// Sets `key` of the JS object `target` to a `Float32Array` copy of `values`.
fn set_f32_array(target: &JsValue, key: &str, values: &[f32]) -> Result<(), JsError> {
    js_sys::Reflect::set(target, &JsValue::from_str(key), &js_sys::Float32Array::from(values).into())
        .map(|_| ())
        .map_err(|_| JsError::new(&format!("cannot set {key} on the result")))
}

#[wasm_bindgen]
impl Playground {
    /// The attention probabilities of every head of `layer` for `prompt`: `{tokens: [{index, id,
    /// text}], layer, heads, n, probs: Float32Array [heads × n × n] (probs[(h·n + q)·n + k], zero
    /// above the diagonal), sinkScores, keyAttention, outlierKeys, backend, ms}`.
    ///
    /// On the GPU: the model as now quantized (with the intervention), or as loaded with
    /// `as_loaded`. Without WebGPU nothing can be quantized, so the CPU reference runs the model
    /// as loaded (`backend: "cpu"`).
    #[wasm_bindgen(js_name = attentionMaps)]
    pub async fn attention_maps(&self, prompt: String, layer: usize, as_loaded: bool) -> Result<JsValue, JsError> {
        let c = &self.study.model.config;
        if layer >= c.n_layers {
            return Err(JsError::new(&format!(
                "layer {layer} does not exist: the model has {} layers (0 to {})",
                c.n_layers,
                c.n_layers.saturating_sub(1)
            )));
        }
        let t0 = now_ms();
        let tokens = self.study.model.prompt_tokens(&prompt).map_err(js_error)?;
        let n = tokens.len();
        let (probs, backend) = match &self.study.gpu {
            Some(gpu) => {
                let capture = Capture { attention_layers: vec![layer], ..self.study.capture(as_loaded) };
                let mut cache = gpu.model.new_cache(&gpu.ctx, n as u32).map_err(js_error)?;
                let out = gpu.model.step(&gpu.ctx, &mut cache, &tokens, &capture).await.map_err(js_error)?;
                let probs =
                    out.attention_probs.into_iter().find_map(|(l, p)| (l == layer).then_some(p)).ok_or_else(|| {
                        JsError::new(&format!("the GPU forward returned no attention for layer {layer}"))
                    })?;
                (probs, "webgpu")
            }
            None => {
                let options = ForwardOptions { attention_probs: true, ..Default::default() };
                let mut out = forward(&self.study.model, &tokens, options).map_err(js_error)?;
                if layer >= out.attention_probs.len() {
                    return Err(JsError::new(&format!("the CPU forward returned no attention for layer {layer}")));
                }
                (out.attention_probs.swap_remove(layer), "cpu")
            }
        };
        let heads = c.n_heads;
        if probs.len() != heads * n * n {
            return Err(JsError::new(&format!(
                "attention of layer {layer} has {} values, expected {heads} heads × {n} × {n}",
                probs.len()
            )));
        }
        let sink_scores = outliers::sink_scores(&probs, heads, n);
        let key_attention = outliers::key_attention(&probs, heads, n);
        let outlier_keys = outliers::outlier_keys(&key_attention);
        let value = to_js(&AttentionMaps {
            tokens: self.study.token_texts(&tokens),
            layer,
            heads,
            n,
            sink_scores,
            key_attention,
            outlier_keys,
            backend,
            ms: now_ms() - t0,
        })?;
        set_f32_array(&value, "probs", &probs)?;
        Ok(value)
    }

    /// Statistics of one weight tensor as loaded, and after quantizing it with `scheme` by the
    /// CPU reference ("keep" or "" for none): `{tensor, scheme (used, after llama.cpp's fallback),
    /// requested, dtype, rows, cols, columnRatios, outliers: {rows, cols, max_ratio, median_ratio,
    /// top_columns}, histogram: {min, max, loaded, quantized}, levels, clipped, error, bitsPerWeight,
    /// ms}`.
    ///
    /// `levels` is every value the scheme can give the weights of the group holding the tensor's
    /// largest |w|: for codebook schemes `levels[table]·scale + offset` of that group; for GGUF
    /// types `step·q + offset` over the type's codes, with step and offset decoded from that
    /// block's stored scales (the sub-block's, for K-quants). Both come from what was stored, so
    /// they are exactly the grid the decoder uses. Null for float schemes and "keep". For a
    /// Hadamard scheme the grid is in the rotated basis (`basis: "rotated"`). `clipped` counts
    /// the weights beyond the ends of their own group's grid by more than half its spacing there
    /// (see `GridEnds`). One caveat: asymmetric int schemes share one table of `2·(2^b−1)+1`
    /// levels among groups that each reach `2^b` of them, and the grid drawn is that table.
    #[wasm_bindgen(js_name = weightStats)]
    pub fn weight_stats(&self, tensor: String, scheme: String) -> Result<JsValue, JsError> {
        let t0 = now_ms();
        let t = self.study.model.tensor(&tensor).map_err(js_error)?;
        let (rows, cols) = (t.n_rows(), t.row_len());
        let requested = scheme.trim();
        let chosen: Option<Scheme> = match requested {
            "" | "keep" => None,
            name => Some(name.parse().map_err(js_error)?),
        };
        let (used, quantized, original) = match &chosen {
            Some(s) => {
                let (used, q, original) = quantize_tensor(&self.study.model, &tensor, s).map_err(js_error)?;
                (Some(used), Some(q), original)
            }
            None => (None, None, self.study.model.weights.dequantize(t).map_err(js_error)?),
        };
        if original.is_empty() || cols == 0 {
            return Err(JsError::new(&format!("tensor {tensor:?} has no values")));
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
                .map_err(|e| JsError::new(&format!("tensor {tensor:?}: {e}")))?
                .map_or((None, 0), |(levels, clipped)| (Some(levels), clipped)),
            None => (None, 0),
        };
        let error = quantized.as_ref().map(|q| {
            let e = TensorError::between(&original, &q.values);
            ErrorSummary { mse: e.mse, sqnr_db: e.sqnr_db.is_finite().then_some(e.sqnr_db), max_abs: e.max_abs }
        });
        to_js(&WeightStats {
            tensor: tensor.clone(),
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

    /// The outlier report of `prompt` under `rule` ("systematic" or "massive"), exactly as
    /// `quantscope outliers --json` writes it (README.md), plus `ms`. It runs the CPU reference
    /// forward of the model as loaded and reads every block's linear weights, single-threaded:
    /// about a second per few tokens in wasm, so keep the prompt short.
    #[wasm_bindgen(js_name = outlierReport)]
    pub fn outlier_report(&self, prompt: String, rule: String) -> Result<JsValue, JsError> {
        let rule: OutlierRule = rule.parse().map_err(|e: String| JsError::new(&e))?;
        let t0 = now_ms();
        // Rejects an empty prompt with the same error as every other method.
        self.study.model.prompt_tokens(&prompt).map_err(js_error)?;
        let report = outliers::outlier_report(&self.study.model, &prompt, rule, REPORT_TOP).map_err(js_error)?;
        let mut value = serde_json::to_value(&report).map_err(js_error)?;
        value["ms"] = (now_ms() - t0).into();
        to_js(&value)
    }
}
