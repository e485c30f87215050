//! `shaders/elementwise.wgsl`: residual add, bias add, factors, SwiGLU and soft-capping, in place
//! on f32 vectors.

use crate::error::GpuError;
use crate::gpu::kernels::{require_len, SOFT_CAP};
use crate::gpu::{GpuContext, Recorder, ShaderSource};

const KERNEL: &str = "elementwise";
const WORKGROUP_SIZE: u32 = 256;

/// `Params` of `shaders/elementwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    n: u32,
    period: u32,
}

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/elementwise.wgsl")).include(SOFT_CAP.0, SOFT_CAP.1)
}

fn record(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    entry: &str,
    acc: &wgpu::Buffer,
    operand: &wgpu::Buffer,
    n: u32,
    period: u32,
) -> Result<(), GpuError> {
    require_len(KERNEL, "acc", acc, n as u64)?;
    require_len(KERNEL, "operand", operand, period as u64)?;
    if period == 0 {
        return Err(GpuError::Shape { kernel: KERNEL, message: "operand period is 0".into() });
    }
    let pipeline = ctx.pipeline(&source(), entry, &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    ctx.dispatch(encoder, &pipeline, &ElementwiseParams { n, period }, &[acc, operand], n.div_ceil(WORKGROUP_SIZE));
    Ok(())
}

/// `acc[i] += delta[i]` for `i < n`.
pub fn add_in_place(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    acc: &wgpu::Buffer,
    delta: &wgpu::Buffer,
    n: u32,
) -> Result<(), GpuError> {
    record(ctx, encoder, "add_in_place", acc, delta, n, n)
}

/// `gate[i] = silu(gate[i]) * up[i]` for `i < n`.
pub fn swiglu_in_place(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    gate: &wgpu::Buffer,
    up: &wgpu::Buffer,
    n: u32,
) -> Result<(), GpuError> {
    record(ctx, encoder, "swiglu_in_place", gate, up, n, n)
}

/// `acc[t][i] += bias[i]` for every row t of length `row_len` in the first `n` values of `acc`.
pub fn add_rows_in_place(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    acc: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    n: u32,
    row_len: u32,
) -> Result<(), GpuError> {
    record(ctx, encoder, "add_rows_in_place", acc, bias, n, row_len)
}

/// `acc[t][i] *= factors[i]` for every row t of length `row_len` in the first `n` values of `acc`.
pub fn mul_rows_in_place(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    acc: &wgpu::Buffer,
    factors: &wgpu::Buffer,
    n: u32,
    row_len: u32,
) -> Result<(), GpuError> {
    record(ctx, encoder, "mul_rows_in_place", acc, factors, n, row_len)
}

/// `acc[i] = cap·tanh(acc[i] / cap)` for `i < n`, `cap` the one value of `cap` (Gemma 2's
/// soft-capping of the logits).
pub fn soft_cap_in_place(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    acc: &wgpu::Buffer,
    cap: &wgpu::Buffer,
    n: u32,
) -> Result<(), GpuError> {
    record(ctx, encoder, "soft_cap_in_place", acc, cap, n, 1)
}
