//! A model file the page reads a range at a time: the worker hands over the file's length and a
//! synchronous `read(offset, length) → Uint8Array` (a `FileReaderSync` over the `Blob` it got from
//! the user's disk or the Cache API), so a model larger than wasm memory never enters it whole.

use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;

use crate::model::bytes::ByteSource;
use crate::model::ModelBytes;

pub struct JsFileReader {
    len: u64,
    read: js_sys::Function,
}

/// A file of `length` bytes read through `read`, or why `length` is not a file's length. Offsets
/// travel to `read` as JS numbers, exact up to 2^53 bytes.
pub fn js_file(length: f64, read: js_sys::Function) -> Result<ModelBytes, String> {
    if !(length >= 0.0 && length <= (1u64 << 53) as f64 && length.fract() == 0.0) {
        return Err(format!("a file length of {length} bytes"));
    }
    Ok(ModelBytes::lazy(Box::new(JsFileReader { len: length as u64, read })))
}

// SAFETY: JS handles are not Send or Sync because a JS value belongs to the thread that made it.
// This build of the engine has one thread (no `atomics` target feature, checked below), so the
// reader is never reached from another; the model that holds it is Sync for the native build's
// threads, which do not exist here.
#[cfg(target_feature = "atomics")]
compile_error!("JsFileReader assumes a single-threaded wasm build");
unsafe impl Send for JsFileReader {}
unsafe impl Sync for JsFileReader {}

impl ByteSource for JsFileReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, start: u64, len: usize) -> Result<Vec<u8>, String> {
        let (at, n) = (JsValue::from_f64(start as f64), JsValue::from_f64(len as f64));
        let value = self.read.call2(&JsValue::NULL, &at, &n).map_err(|e| {
            let message = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()));
            format!("reading bytes {start}..+{len} failed: {}", message.unwrap_or_else(|| format!("{e:?}")))
        })?;
        let bytes = value
            .dyn_into::<js_sys::Uint8Array>()
            .map_err(|_| format!("reading bytes {start}..+{len} gave no Uint8Array"))?;
        if bytes.length() as usize != len {
            return Err(format!("reading bytes {start}..+{len} gave {} bytes", bytes.length()));
        }
        Ok(bytes.to_vec())
    }
}
