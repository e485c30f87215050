//! The facade of the sensitivity map (`crate::study::sensitivity`): which (layer, tensor class)
//! can take a weight scheme, one matrix at a time, each cell handed to the page as it arrives.

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use super::{js_error, to_js, Playground, ProgressThrottle};
use crate::study::sensitivity::{SensitivityCell, SensitivityConfig};

/// What the page asks for: the weight scheme each cell applies to its one matrix, and optionally
/// a glob of the matrices to measure (e.g. `"blk.0.*"`). Weights only: run-time quantizers would
/// send every cell to the CPU reference, minutes per cell in wasm.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageSensitivityConfig {
    scheme: String,
    #[serde(default)]
    tensors: Option<String>,
}

#[wasm_bindgen]
impl Playground {
    /// The sensitivity map of `config` (JSON `{scheme, tensors?}`) on the first `max_tokens`
    /// tokens of the shipped evaluation text in windows of `window`: each matrix (layer × class,
    /// those matching `tensors`) quantized alone with `scheme`, the rest as loaded, against the
    /// model as loaded. `on_cell(cell)` is called with each `{layer, class, tensor, kl,
    /// top1Agreement, perplexity, finalError}` as it is measured; `progress(stage, done, total)`
    /// counts cells, and returning `false` from it cancels before the next cell (rejects with "the
    /// sensitivity map was cancelled"). Finished, cancelled or failed, the model under study is
    /// left exactly as it was (its recipe, run-time quantizers and intervention).
    ///
    /// Resolves to `{scheme, tokens, window, layers, classes, cells, perClass: [{name, kl,
    /// maxKl}], perLayer, referencePerplexity, backend, ms}`.
    pub async fn sensitivity(
        &mut self,
        config: String,
        max_tokens: usize,
        window: usize,
        on_cell: js_sys::Function,
        progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let asked: PageSensitivityConfig =
            serde_json::from_str(&config).map_err(|e| js_error(format!("sensitivity: {e}")))?;
        let config = SensitivityConfig {
            scheme: asked.scheme.parse().map_err(js_error)?,
            activations: None,
            kv: None,
            tensors: asked.tensors.filter(|glob| !glob.is_empty()),
        };
        let (tokens, options) = self.evaluation_tokens(max_tokens, window, "")?;
        let throttle = ProgressThrottle::new(&progress);
        let mut send_cell = |cell: &SensitivityCell| match to_js(cell) {
            Ok(value) => {
                if let Err(e) = on_cell.call1(&JsValue::NULL, &value) {
                    web_sys::console::warn_2(&JsValue::from_str("quantscope: onCell threw"), &e);
                }
            }
            Err(e) => web_sys::console::warn_1(&JsValue::from(e)),
        };
        let map = self
            .study
            .sensitivity(&config, &tokens, &options, &mut send_cell, &mut |p| throttle.report(p), &|| {
                throttle.stop_asked()
            })
            .await
            .map_err(js_error)?;
        to_js(&map)
    }
}
