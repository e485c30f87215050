//! What the page's outlier views (`www/src/views`) ask the engine for, beyond [`Playground::probe`]:
//! the attention maps of one layer, a weight tensor's statistics with the quantization grid of a
//! scheme, and the CPU reference outlier report, computed by `study::views`. Shapes are
//! documented on each method and typed in `www/src/views/types.ts`.

use wasm_bindgen::prelude::*;

use super::{js_error, to_js, Playground};
use crate::analysis::outliers::OutlierRule;
use crate::gpu::forward::ProbePoint;
use crate::study::views::REPORT_TOP;

/// Sets `key` of the JS object `target` to a `Float32Array` copy of `values`.
fn set_f32_array(target: &JsValue, key: &str, values: &[f32]) -> Result<(), JsError> {
    js_sys::Reflect::set(target, &JsValue::from_str(key), &js_sys::Float32Array::from(values).into())
        .map(|_| ())
        .map_err(|_| JsError::new(&format!("cannot set {key} on the result")))
}

/// The probe points the views offer, in menu order (names as `probe` takes them).
#[wasm_bindgen(js_name = probePoints)]
pub fn probe_points() -> Result<JsValue, JsError> {
    to_js(&ProbePoint::MENU)
}

/// The outlier rules `outlierReport` takes, in menu order.
#[wasm_bindgen(js_name = outlierRules)]
pub fn outlier_rules() -> Result<JsValue, JsError> {
    to_js(&OutlierRule::ALL)
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
        let maps = self.study.attention_maps(&prompt, layer, as_loaded).await.map_err(js_error)?;
        let value = to_js(&maps)?;
        set_f32_array(&value, "probs", &maps.probs)?;
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
        to_js(&self.study.weight_stats(&tensor, &scheme).map_err(js_error)?)
    }

    /// The outlier report of `prompt` under `rule` ("systematic" or "massive"), exactly as
    /// `quantscope outliers --json` writes it (README.md), plus `ms`. It runs the CPU reference
    /// forward of the model as loaded and reads every block's linear weights, single-threaded:
    /// about a second per few tokens in wasm, so keep the prompt short.
    #[wasm_bindgen(js_name = outlierReport)]
    pub fn outlier_report(&self, prompt: String, rule: String) -> Result<JsValue, JsError> {
        let rule: OutlierRule = rule.parse().map_err(|e: String| JsError::new(&e))?;
        let (report, ms) = self.study.outlier_report(&prompt, rule, REPORT_TOP).map_err(js_error)?;
        let mut value = serde_json::to_value(&report).map_err(js_error)?;
        value["ms"] = ms.into();
        to_js(&value)
    }
}
