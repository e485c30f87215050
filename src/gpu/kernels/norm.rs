//! `shaders/rmsnorm.wgsl`: RMS norm of token rows, one workgroup per row.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, ShaderSource};

const KERNEL: &str = "rmsnorm";
const WORKGROUP_SIZE: u32 = 256;

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/rmsnorm.wgsl"))
}

/// `out[t] = x[t] / sqrt(mean(x[t]²) + eps) * gain`, rows of length `d`.
/// `x` and `out` are `[n_tokens × d]`, `gain` is `[d]`; `out` must not alias `x`.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
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
    require_len(KERNEL, "x", x, len)?;
    require_len(KERNEL, "gain", gain, d as u64)?;
    require_len(KERNEL, "out", out, len)?;
    let pipeline = ctx.pipeline(&source(), "rms_norm", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let params = ctx.uniform("rmsnorm params", &[n_tokens, d, eps.to_bits()]);
    ctx.dispatch(enc, &pipeline, &[&params, x, gain, out], n_tokens);
    Ok(())
}
