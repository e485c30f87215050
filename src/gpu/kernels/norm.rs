//! `shaders/rmsnorm.wgsl`: RMS norm of token rows, one workgroup per row.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, Recorder, ShaderSource};

const KERNEL: &str = "rmsnorm";
const WORKGROUP_SIZE: u32 = 256;

/// `Params` of `shaders/rmsnorm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RmsNormParams {
    n_rows: u32,
    d: u32,
    eps: f32,
    first_row: u32,
}

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/rmsnorm.wgsl"))
}

/// `out[t] = x[t] / sqrt(mean(x[t]²) + eps) * gain`, rows of length `d`.
/// `x` and `out` are `[n_tokens × d]`, `gain` is `[d]`; `out` must not alias `x`.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    gain: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n_tokens: u32,
    d: u32,
    eps: f32,
) -> Result<(), GpuError> {
    rms_norm_rows(ctx, enc, x, 0, gain, out, n_tokens, d, eps)
}

/// [`rms_norm`] of rows `first_row..first_row + n_tokens` of `x` into rows `0..n_tokens` of `out`.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_rows(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    first_row: u32,
    gain: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n_tokens: u32,
    d: u32,
    eps: f32,
) -> Result<(), GpuError> {
    if d == 0 {
        return Err(GpuError::Shape { kernel: KERNEL, message: "row length d is 0".into() });
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(GpuError::Shape { kernel: KERNEL, message: format!("eps must be finite and ≥ 0, got {eps}") });
    }
    if n_tokens == 0 {
        return Ok(());
    }
    let len = n_tokens as u64 * d as u64;
    require_len(KERNEL, "x", x, (first_row as u64 + n_tokens as u64) * d as u64)?;
    require_len(KERNEL, "gain", gain, d as u64)?;
    require_len(KERNEL, "out", out, len)?;
    let pipeline = ctx.pipeline(&source(), "rms_norm", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    ctx.dispatch(enc, &pipeline, &RmsNormParams { n_rows: n_tokens, d, eps, first_row }, &[x, gain, out], n_tokens);
    Ok(())
}
