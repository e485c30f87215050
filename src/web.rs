//! The browser facade: what `www/worker.js` calls, through wasm-bindgen.
//!
//! Kept deliberately thin: it converts between JS values and the engine's types and nothing
//! else, so the page and the CLI exercise the same code. Conventions at this boundary:
//!
//! - Bulk bytes cross as typed arrays (`Uint8Array` -> `Vec<u8>`, one copy into wasm memory);
//!   serde (serde-wasm-bindgen) only carries small objects (summary, prediction).
//! - Every failure becomes a `JsError` whose message is the engine error's `Display` text, which
//!   names the file, offset or tensor. Nothing here unwraps.
//! - Loading is a constructor: a file that fails to load leaves any `Playground` that JS already
//!   holds untouched, so the page keeps its previous model.
//! - A panic is a bug, not an input error. It aborts the wasm instance (wasm32 has no unwinding),
//!   so the panic hook installed at start-up records the message where [`take_panic_message`]
//!   can hand it to the worker, which then reports the crash instead of a bare
//!   "RuntimeError: unreachable".

use std::sync::Mutex;

use wasm_bindgen::prelude::*;

use crate::model::{Model, Progress};

/// The message of the last panic, kept for [`take_panic_message`].
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs once when the wasm module is instantiated: route panics to the console and to
/// [`LAST_PANIC`].
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("quantscope panicked: {info}");
        web_sys::console::error_1(&JsValue::from_str(&message));
        if let Ok(mut slot) = LAST_PANIC.lock() {
            *slot = Some(message);
        }
    }));
}

/// The message of the last panic, if any (and clears it). After a panic the instance must not
/// be used for anything else: the worker that owns it calls this once, reports, and is replaced.
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|mut slot| slot.take())
}

/// The crate version, for the page footer and bug reports.
#[wasm_bindgen(js_name = engineVersion)]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Calls the JS progress callback, but not for every tiny step: at most about 200 calls per
/// stage (each call crosses into JS and, in the worker, posts a message to the page).
struct ProgressThrottle<'a> {
    callback: &'a js_sys::Function,
    stage: &'static str,
    last_done: u64,
}

impl<'a> ProgressThrottle<'a> {
    const STEPS_PER_STAGE: u64 = 200;

    fn new(callback: &'a js_sys::Function) -> Self {
        Self { callback, stage: "", last_done: 0 }
    }

    fn report(&mut self, p: Progress) {
        let new_stage = p.stage != self.stage;
        let step = (p.total / Self::STEPS_PER_STAGE).max(1);
        let finished = p.done >= p.total;
        if !new_stage && !finished && p.done < self.last_done.saturating_add(step) {
            return;
        }
        self.stage = p.stage;
        self.last_done = p.done;
        // u64 -> f64 is exact below 2^53, far above any byte or tensor count here.
        let result = self.callback.call3(
            &JsValue::NULL,
            &JsValue::from_str(p.stage),
            &JsValue::from_f64(p.done as f64),
            &JsValue::from_f64(p.total as f64),
        );
        if let Err(e) = result {
            // A broken progress callback must not fail the load: log it and go on.
            web_sys::console::warn_2(&JsValue::from_str("quantscope: progress callback threw"), &e);
        }
    }
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    // Maps as plain objects so the page can read them with `.field`; u64 counts stay Numbers.
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    value.serialize(&serializer).map_err(|e| JsError::new(&format!("cannot convert the result for JavaScript: {e}")))
}

/// One loaded model, owned by the worker.
#[wasm_bindgen]
pub struct Playground {
    model: Model,
}

#[wasm_bindgen]
impl Playground {
    /// Parses and validates a GGUF file. `name` is the file name shown in errors and the
    /// summary. `progress(stage, done, total)` is called as work proceeds.
    ///
    /// Throws an `Error` whose message names what is wrong and where; the bytes are dropped.
    pub fn load(bytes: Vec<u8>, name: &str, progress: &js_sys::Function) -> Result<Playground, JsError> {
        let mut throttle = ProgressThrottle::new(progress);
        let model =
            Model::from_gguf(bytes, name, &mut |p| throttle.report(p)).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Playground { model })
    }

    /// The model summary: source, name, config, parameter and byte counts, and every tensor's
    /// name, dtype, shape and size (see `quantscope::model::ModelSummary`).
    pub fn summary(&self) -> Result<JsValue, JsError> {
        to_js(&self.model.summary())
    }

    /// The `top_k` most likely next tokens after `prompt`, with probabilities and logits
    /// (see `quantscope::model::Prediction`).
    pub fn predict(&self, prompt: &str, top_k: usize) -> Result<JsValue, JsError> {
        if top_k == 0 {
            return Err(JsError::new("top_k must be at least 1"));
        }
        let prediction = self.model.predict(prompt, top_k).map_err(|e| JsError::new(&e.to_string()))?;
        to_js(&prediction)
    }
}
