//! The facade of a pinned reference (`crate::study::Study::pin_reference`): any configuration
//! the page can hold — a weight recipe, run-time quantizers, a method, an intervention — as the
//! reference of the predictions, the metrics, the token view and why it broke.

use serde::Deserialize;
use wasm_bindgen::prelude::*;

use super::{js_error, recipe_or_scheme, to_js, Playground, ProgressThrottle};
use crate::quant::experiment::Experiment;
use crate::study::RuntimeConfig;

/// What to pin, as the page describes a configuration.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinRequest {
    /// How the page names it (a history row, a link).
    label: String,
    /// A recipe (JSON) or one scheme name; absent or "keep": the weights as loaded.
    #[serde(default)]
    recipe: Option<String>,
    #[serde(default)]
    runtime: RuntimeConfig,
    /// An intervention name, or absent / "" for none.
    #[serde(default)]
    intervention: Option<String>,
}

#[wasm_bindgen]
impl Playground {
    /// Pins a configuration as the reference, from a JSON object `{label, recipe?, runtime?:
    /// {a, aDown, kv, attn, method, calibTokens}, intervention?}`: it is prepared on the CPU
    /// (with `progress(stage, done, total)`), then runs where the model as loaded runs. Resolves
    /// to `{label, backend, bitsPerWeight, interventionCalibration, ms}`; rejects with the bad
    /// part's error, and nothing changed then.
    #[wasm_bindgen(js_name = pinReference)]
    pub async fn pin_reference(&mut self, request: String, progress: js_sys::Function) -> Result<JsValue, JsError> {
        let request: PinRequest =
            serde_json::from_str(&request).map_err(|e| js_error(format!("pinned reference: {e}")))?;
        let weights = match request.recipe.as_deref().map(str::trim) {
            None | Some("") | Some("keep") => None,
            Some(text) => Some(recipe_or_scheme(text)?),
        };
        let intervention = match request.intervention.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(name.parse().map_err(js_error)?),
        };
        let experiment = Experiment { weights, ..request.runtime.experiment().map_err(js_error)? };
        let calibration = request.runtime.calibration_tokens(&experiment, &self.study.model).map_err(js_error)?;
        let window = calibration.len().max(2);
        let throttle = ProgressThrottle::new(&progress);
        let pinned = self
            .study
            .pin_reference(&experiment, intervention, &calibration, window, &request.label, &mut |p| throttle.report(p))
            .await
            .map_err(js_error)?;
        to_js(&pinned)
    }

    /// The model as loaded is the reference again.
    #[wasm_bindgen(js_name = unpinReference)]
    pub fn unpin_reference(&mut self) {
        self.study.unpin_reference();
    }
}
