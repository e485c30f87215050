//! `shaders/matmul.wgsl`: y = x · Wᵀ for weights in their stored format (see
//! [`GpuWeight`](crate::gpu::weights::GpuWeight) for the layouts and `shaders/formats/` for the
//! decode functions). One token runs the GEMV kernel, several the GEMM kernel.

use crate::error::GpuError;
use crate::gpu::weights::GpuWeight;
use crate::gpu::{GpuContext, Recorder};

const KERNEL: &str = "matmul";
/// GEMV: invocations per workgroup, and at most this many per row (rows per workgroup = the
/// quotient).
const GEMV_WORKGROUP_SIZE: u32 = 256;
const GEMV_MAX_THREADS_PER_ROW: u32 = 32;

/// Threads sharing one GEMV row: the largest power of two up to 32 that has a chunk for every
/// thread, so short rows (576 values = 18 chunks) do not leave most threads idle.
fn gemv_threads_per_row(n_chunks: u32) -> u32 {
    if n_chunks >= GEMV_MAX_THREADS_PER_ROW {
        GEMV_MAX_THREADS_PER_ROW
    } else {
        1 << n_chunks.max(1).ilog2()
    }
}
/// GEMM: rows per workgroup (one per invocation); tokens per workgroup is the WGSL's
/// `TILE_TOKENS` const.
const GEMM_ROWS: u32 = 64;
const GEMM_TILE_TOKENS: u32 = 8;

/// Fails unless `buffer` holds `rows × cols` f32 values.
fn require(
    what: &str,
    buffer: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    cols_name: &str,
    w: &GpuWeight,
) -> Result<(), GpuError> {
    let needed = rows as u64 * cols as u64;
    if buffer.size() < needed * 4 {
        return Err(GpuError::Shape {
            kernel: KERNEL,
            message: format!(
                "{what} holds {} values, needs n_tokens {rows} × {cols_name} {cols} = {needed} for {}",
                buffer.size() / 4,
                w.name
            ),
        });
    }
    Ok(())
}

/// `y[t][o] = Σ_k x[t][k] · W[o][k]` for `t < n_tokens`. x: `[n_tokens × n_in]` f32,
/// y: `[n_tokens × n_out]` f32.
///
/// One token uses a GEMV kernel (decode: bandwidth-bound, each workgroup reduces rows), more a
/// GEMM kernel (prefill: tiles over tokens so each weight block is decoded once per tile).
pub fn matmul(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    w: &GpuWeight,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n_tokens: u32,
) -> Result<(), GpuError> {
    require("x", x, n_tokens, w.n_in, "n_in", w)?;
    require("y", y, n_tokens, w.n_out, "n_out", w)?;
    if n_tokens == 0 || w.n_out == 0 {
        return Ok(());
    }
    let source = w.shader(KERNEL, include_str!("../../../shaders/matmul.wgsl"));
    let params = w.params(n_tokens);
    let buffers = [w.buffer(), x, y];
    if n_tokens == 1 {
        let threads_per_row = gemv_threads_per_row(w.n_in.div_ceil(32));
        let pipeline = ctx.pipeline(
            &source,
            "gemv",
            &[("WORKGROUP_SIZE", GEMV_WORKGROUP_SIZE as f64), ("THREADS_PER_ROW", threads_per_row as f64)],
        )?;
        let rows_per_group = GEMV_WORKGROUP_SIZE / threads_per_row;
        ctx.dispatch(encoder, &pipeline, &params, &buffers, w.n_out.div_ceil(rows_per_group));
    } else {
        let pipeline = ctx.pipeline(&source, "gemm", &[("GEMM_ROWS", GEMM_ROWS as f64)])?;
        let groups = w.n_out.div_ceil(GEMM_ROWS) as u64 * n_tokens.div_ceil(GEMM_TILE_TOKENS) as u64;
        let groups = u32::try_from(groups).map_err(|_| GpuError::Shape {
            kernel: KERNEL,
            message: format!("{n_tokens} tokens × {} rows of {} need too many workgroups", w.n_out, w.name),
        })?;
        ctx.dispatch(encoder, &pipeline, &params, &buffers, groups);
    }
    Ok(())
}
