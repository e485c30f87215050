//! quantscope: run a real transformer, quantize it live, and see what the quantizers do.
//!
//! Data flows one way: `formats` (bytes -> typed files) -> `model` (config, weights, tokenizer,
//! CPU reference forward and its hooks) -> `quant` (quantizers, recipes) -> `gpu` (WGSL kernels,
//! the GPU forward) -> `analysis` (metrics, evaluation, outlier detectors) -> `study` (one model
//! under study: what is applied, where each run goes, the comparisons) -> front ends (`web`
//! facade in the browser, the `quantscope` CLI). No module imports one to its right.

/// Serde for a type whose name is its value (a scheme, a method, an intervention): written as
/// its `Display`, read back through its `FromStr`, so JSON spells it as the command line does.
macro_rules! serde_by_name {
    ($($t:ty),+) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$t, D::Error> {
                let name = <String as serde::Deserialize>::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}

pub mod analysis;
pub mod error;
pub mod formats;
pub mod gpu;
pub mod model;
pub mod quant;
pub mod study;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{FormatError, GpuError, ModelError, QuantError, StudyError};
