//! The facade of what a configuration breaks (`crate::study::breakage`), for the metrics panel's
//! "why it broke, in words".

use wasm_bindgen::prelude::*;

use super::{js_error, to_js, Playground};
use crate::study::breakage::{BREAKAGE_TOKENS, BREAK_FACTOR};

#[wasm_bindgen]
impl Playground {
    /// Whether the model under study moves the reference's massive activation or its attention
    /// sink by more than `breakFactor` (2×), on the start of the first window `evaluate` runs for
    /// the same arguments (at most 128 tokens, as `quantscope eval` measures it): `{reference:
    /// {massive: {block, token, channel, value}, sink}, under_study, massive_ratio, sink_ratio,
    /// breaks: ["massive activation" | "attention sink"], breakFactor}`.
    pub async fn breakage(&self, max_tokens: usize, window: usize, text: String) -> Result<JsValue, JsError> {
        let (tokens, options) = self.evaluation_tokens(max_tokens, window, &text)?;
        let probed = &tokens[..tokens.len().min(options.window_for(&self.study.model)).min(BREAKAGE_TOKENS)];
        let breakage = self.study.breakage(probed).await.map_err(js_error)?;
        let mut value = serde_json::to_value(&breakage).map_err(js_error)?;
        value["breakFactor"] = BREAK_FACTOR.into();
        to_js(&value)
    }
}
