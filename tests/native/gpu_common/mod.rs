//! Shared by the GPU kernel tests (lavapipe in CI): one context for all of them, random data
//! that is never all zeros, poisoned outputs, and error reports that show the first mismatches.
//! The target-independent part (random data, comparisons, CPU formulas) is `kernel_reference`,
//! shared with the browser suite (`tests/web_support/mod.rs`) and re-exported here.
#![allow(dead_code)]

#[path = "../../kernel_reference/mod.rs"]
mod kernel_reference;
pub mod matmul_weights;

use std::sync::OnceLock;

pub use kernel_reference::*;
use quantscope::gpu::GpuContext;

/// One device for all tests of a binary. A missing adapter fails the test: scripts/setup
/// installs lavapipe (mesa-vulkan-drivers), so there is always one.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        pollster::block_on(GpuContext::new())
            .unwrap_or_else(|e| panic!("{e}: run scripts/setup (installs mesa-vulkan-drivers for lavapipe)"))
    })
}

/// A storage buffer filled with NaN, so an element a kernel forgot to write fails the comparison.
pub fn poisoned(label: &str, n: usize) -> wgpu::Buffer {
    ctx().upload_f32(label, &vec![f32::NAN; n]).unwrap()
}

pub fn read(buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    pollster::block_on(ctx().read_f32(buffer, n, "test output")).unwrap()
}

pub use crate::common::default_model;
