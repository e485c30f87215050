//! The facade of "where it breaks" on the evaluation text (`crate::study::token_view`): every
//! predicted token's KL and top-1 flip, and one position seen closely.

use wasm_bindgen::prelude::*;

use super::{js_error, to_js, Playground, ProgressThrottle};
use crate::model::window::{eval_tokens, EvalOptions, EVAL_TEXT};

impl Playground {
    /// The tokens `evaluate` runs on for the same arguments: the first `max_tokens` of `text`, or
    /// of the shipped evaluation text when it is empty.
    pub(super) fn evaluation_tokens(
        &self,
        max_tokens: usize,
        window: usize,
        text: &str,
    ) -> Result<(Vec<u32>, EvalOptions), JsError> {
        let options = EvalOptions { max_tokens: Some(max_tokens), window, skip: 0 };
        let text = if text.is_empty() { EVAL_TEXT } else { text };
        let tokens = eval_tokens(&self.study.model, text, &options).map_err(js_error)?;
        Ok((tokens, options))
    }
}

#[wasm_bindgen]
impl Playground {
    /// `evaluate` position by position, on the same tokens and windows: `{tokens: [{index, id,
    /// text}], positions: [{index, nextToken, kl, referenceTop1, quantizedTop1, nllReference,
    /// nllQuantized, flipped}], worst: [indices into positions, largest KL first], result: the
    /// metrics as `evaluate` gives them, window, ms}`. `progress` as in `evaluate` (returning
    /// `false` cancels before the next window).
    #[wasm_bindgen(js_name = tokenView)]
    pub async fn token_view(
        &self,
        max_tokens: usize,
        window: usize,
        text: String,
        progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let (tokens, options) = self.evaluation_tokens(max_tokens, window, &text)?;
        let throttle = ProgressThrottle::new(&progress);
        let view =
            self.study.token_view(&tokens, &options, &mut |p| throttle.report(p), &|| throttle.stop_asked()).await;
        to_js(&view.map_err(js_error)?)
    }

    /// Token `index` of the tokens `tokenView` ran on, as it was predicted: `{index, reference:
    /// [{id, token, prob, logit}] (top 10), quantized, layerErrors: [after the embeddings, after
    /// each block] (relative error of the predicting token's residual stream), massiveAfter:
    /// [blocks after which that token carries a massive activation in the reference]}`. Rejects a
    /// token that was not predicted (the first of each window).
    #[wasm_bindgen(js_name = positionDetail)]
    pub async fn position_detail(
        &self,
        index: usize,
        max_tokens: usize,
        window: usize,
        text: String,
    ) -> Result<JsValue, JsError> {
        let (tokens, options) = self.evaluation_tokens(max_tokens, window, &text)?;
        to_js(&self.study.position_detail(&tokens, index, &options).await.map_err(js_error)?)
    }
}
