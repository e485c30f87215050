//! `shaders/norm.wgsl`: RMS norm of token rows, and GPT-2's LayerNorm (mean-centred, plus a
//! bias), one workgroup per row.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, Recorder, ShaderSource};

const KERNEL: &str = "norm";
const WORKGROUP_SIZE: u32 = 256;

/// `Params` of `shaders/norm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormParams {
    n_rows: u32,
    d: u32,
    eps: f32,
    first_row: u32,
}

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/norm.wgsl"))
}

/// The parameters and buffers both norms check alike.
#[allow(clippy::too_many_arguments)]
fn check_rows(
    x: &wgpu::Buffer,
    first_row: u32,
    vectors: &[(&str, &wgpu::Buffer)],
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
    require_len(KERNEL, "x", x, (first_row as u64 + n_tokens as u64) * d as u64)?;
    for (what, vector) in vectors {
        require_len(KERNEL, what, vector, d as u64)?;
    }
    require_len(KERNEL, "out", out, n_tokens as u64 * d as u64)
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
    check_rows(x, first_row, &[("gain", gain)], out, n_tokens, d, eps)?;
    if n_tokens == 0 {
        return Ok(());
    }
    let pipeline = ctx.pipeline(&source(), "rms_norm", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    ctx.dispatch(enc, &pipeline, &NormParams { n_rows: n_tokens, d, eps, first_row }, &[x, gain, out], n_tokens);
    Ok(())
}

/// `out[t] = (x[r] − mean(x[r])) / sqrt(var(x[r]) + eps) * gain + bias` for rows
/// `r = first_row..first_row + n_tokens` of `x` (length `d`) into rows `0..n_tokens` of `out`,
/// `var` the biased variance (PyTorch's LayerNorm); `gain` and `bias` are `[d]`; `out` must not
/// alias `x`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_rows(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    first_row: u32,
    gain: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n_tokens: u32,
    d: u32,
    eps: f32,
) -> Result<(), GpuError> {
    check_rows(x, first_row, &[("gain", gain), ("bias", bias)], out, n_tokens, d, eps)?;
    if n_tokens == 0 {
        return Ok(());
    }
    let pipeline = ctx.pipeline(&source(), "layer_norm", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let params = NormParams { n_rows: n_tokens, d, eps, first_row };
    ctx.dispatch(enc, &pipeline, &params, &[x, gain, out, bias], n_tokens);
    Ok(())
}
