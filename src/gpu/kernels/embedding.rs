//! `shaders/embedding.wgsl`: rows of a weight table (in its stored format) gathered by token id.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::weights::{GpuWeight, WeightParams};
use crate::gpu::{GpuContext, Recorder, ShaderSource};

const KERNEL: &str = "embedding";
const WORKGROUP_SIZE: u32 = 256;

/// `out[t][:]` = dequantized row `ids[t]` of `w`, for `t < n_tokens`. ids: u32 buffer of
/// `n_tokens`; out: `[n_tokens × n_in]` f32. Ids `>= n_out` read nothing and write zeros (the
/// CPU side validates ids before). A weight in several parts takes one dispatch per part.
pub fn embedding(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    w: &GpuWeight,
    ids: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n_tokens: u32,
) -> Result<(), GpuError> {
    require_len(KERNEL, "ids", ids, n_tokens as u64)?;
    let needed = n_tokens as u64 * w.n_in as u64;
    if out.size() < needed * 4 {
        return Err(GpuError::Shape {
            kernel: KERNEL,
            message: format!(
                "out holds {} values, needs n_tokens {n_tokens} × n_in {} = {needed} for {}",
                out.size() / 4,
                w.n_in,
                w.name
            ),
        });
    }
    let invocations = n_tokens as u64 * w.n_chunks() as u64;
    if invocations == 0 {
        return Ok(());
    }
    // The kernel's linear invocation index is a u32.
    if invocations > u32::MAX as u64 {
        return Err(GpuError::Shape {
            kernel: KERNEL,
            message: format!("{n_tokens} tokens × {} values of {} are too many", w.n_in, w.name),
        });
    }
    let groups = invocations.div_ceil(WORKGROUP_SIZE as u64) as u32;
    let source = w.decoder(ShaderSource::new(KERNEL, include_str!("../../../shaders/embedding.wgsl")), false);
    let pipeline = ctx.pipeline(&source, "embedding", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    for part in w.parts() {
        let params =
            EmbeddingParams { weight: w.part_params(part, n_tokens), first_row: part.first_row, total_rows: w.n_out };
        ctx.dispatch(encoder, &pipeline, &params, &[&part.buffer, ids, out], groups);
    }
    Ok(())
}

/// `Params` of `shaders/embedding.wgsl`: the part's layout fields, then where its rows start.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EmbeddingParams {
    weight: WeightParams,
    first_row: u32,
    total_rows: u32,
}
