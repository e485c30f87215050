//! Time and cooperative yielding, the same on both targets: `std::time::Instant` panics on
//! wasm32, and a browser worker only sees its messages (a "stop", a new request) when a long
//! CPU loop gives the event loop a turn.

/// Milliseconds on a monotonic-enough clock: since the first call natively, since the epoch in
/// the browser. Only differences are meaningful.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Lets the event loop run (a `setTimeout(0)` task in the browser); nothing natively, where
/// the caller owns a thread.
#[cfg(not(target_arch = "wasm32"))]
pub async fn yield_now() {}

#[cfg(target_arch = "wasm32")]
pub async fn yield_now() {
    use wasm_bindgen::{JsCast, JsValue};
    let global = js_sys::global();
    let Ok(set_timeout) = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout")) else { return };
    let Ok(set_timeout) = set_timeout.dyn_into::<js_sys::Function>() else { return };
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let _ = set_timeout.call2(&global, &resolve, &JsValue::from_f64(0.0));
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
