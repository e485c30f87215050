//! The facade of the GGUF export (`crate::study::export`): the model under study's weights recipe
//! as a file the page downloads and llama.cpp (or the page itself) loads.

use wasm_bindgen::prelude::*;

use super::{js_error, Playground, ProgressThrottle};

#[wasm_bindgen]
impl Playground {
    /// The GGUF file of the weights recipe the model under study holds (what `applyRecipe` applied;
    /// nothing applied: the weights as loaded), quantized from the weights as loaded on the CPU, as
    /// `quantscope export` writes it: the source file's metadata and every tensor as loaded or in
    /// its GGUF type. `progress(stage, done, total)` counts tensors (stage "quantize").
    ///
    /// Returns the file's bytes (a `Uint8Array` of its own, not a view of wasm memory); rejects,
    /// naming the tensor and its scheme, when a scheme is not a GGUF type, and says why when the
    /// model was not loaded from a GGUF file or a calibrated method rewrote its weights.
    #[wasm_bindgen(js_name = exportGguf)]
    pub fn export_gguf(&self, progress: js_sys::Function) -> Result<Vec<u8>, JsError> {
        let throttle = ProgressThrottle::new(&progress);
        self.study.export_gguf(&mut |p| throttle.report(p)).map_err(js_error)
    }
}
