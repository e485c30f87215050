//! quantscope: run a real transformer, quantize it live, and see what the quantizers do.
//!
//! Data flows one way: `formats` (bytes -> typed files) -> `model` (config, weights, tokenizer,
//! CPU reference forward and its hooks) -> `quant` (quantizers, recipes) -> `gpu` (WGSL kernels,
//! the GPU forward) -> `analysis` (metrics, evaluation, outlier detectors) -> `study` (one model
//! under study: what is applied, where each run goes, the comparisons) -> front ends (`web`
//! facade in the browser, the `quantscope` CLI). No module imports one to its right.

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
