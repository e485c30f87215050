//! The GPU engine: device acquisition, WGSL composition and pipeline cache, and one Rust wrapper
//! per kernel family (in `kernels/`). The same code runs natively (wgpu on Vulkan/Metal/DX12;
//! lavapipe in CI) and in the browser (WebGPU).

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod context;
pub mod forward;
pub mod kernels;
pub mod recorder;
pub mod requant;
pub mod shader;
pub mod weights;

pub use context::{GpuContext, GpuFeatures};
pub use recorder::{Recorder, Reuse};
pub use shader::{ShaderSource, SnippetCopy};
