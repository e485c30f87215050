//! The facade of the study's run-time quantization and calibrated methods
//! (`crate::study::Study::set_runtime_quant`; docs/quantizers.md §4).

use wasm_bindgen::prelude::*;

use super::{js_error, to_js, Playground, ProgressThrottle};
use crate::study::{RuntimeConfig, RuntimeMenus};

/// Names the page's menus offer: `{activations, kv, attention, methods}`.
#[wasm_bindgen(js_name = runtimeSchemes)]
pub fn runtime_schemes() -> Result<JsValue, JsError> {
    to_js(&RuntimeMenus::catalog())
}

#[wasm_bindgen]
impl Playground {
    /// Sets the run-time quantization of the model under study from a JSON object
    /// `{a, aDown, kv, attn, method, calibTokens}` (names from `runtimeSchemes()`; null, "" or
    /// "none" for off). Calibration (methods, AdaLog's search) runs on the first `calibTokens`
    /// (default 32) tokens of the shipped text on the CPU reference, with `progress(stage, done,
    /// total)`. Rejects with the bad name's error and changes nothing then. Resolves to `{gpu,
    /// cpuMethod, decisions, recipe, bitsPerWeight, ms}`; `recipe` (bit allocation) is for
    /// `applyRecipe`.
    #[wasm_bindgen(js_name = setRuntimeQuant)]
    pub async fn set_runtime_quant(&mut self, config: String, progress: js_sys::Function) -> Result<JsValue, JsError> {
        let config: RuntimeConfig =
            serde_json::from_str(&config).map_err(|e| js_error(format!("runtime quantization: {e}")))?;
        let throttle = ProgressThrottle::new(&progress);
        to_js(&self.study.set_runtime_quant(&config, &mut |p| throttle.report(p)).await.map_err(js_error)?)
    }
}
