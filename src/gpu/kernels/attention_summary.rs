//! `shaders/attention_summary.wgsl`: per-head sink scores and per-key attention of one layer,
//! reduced on the GPU from the layer's attention probabilities (see the WGSL for the definitions).

use crate::error::GpuError;
use crate::gpu::{GpuContext, Recorder};

const KERNEL: &str = "attention_summary";
const WORKGROUP_SIZE: u32 = 64;

/// Words one layer's summary takes: `n_heads` sink scores, then `n_keys` key attentions.
pub fn summary_words(n_heads: u32, n_keys: u32) -> u64 {
    n_heads as u64 + n_keys as u64
}

/// Records the summary of `probs` (`[n_heads × n_queries × n_keys]`, queries at positions
/// `past..past + n_queries`) into `out` from word `at`.
#[allow(clippy::too_many_arguments)]
pub fn attention_summary(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    probs: &wgpu::Buffer,
    n_heads: u32,
    n_queries: u32,
    past: u32,
    out: &wgpu::Buffer,
    at: u64,
) -> Result<(), GpuError> {
    let n_keys = past + n_queries;
    super::require_len(KERNEL, "probs", probs, n_heads as u64 * n_queries as u64 * n_keys as u64)?;
    super::require_len(KERNEL, "out", out, at + summary_words(n_heads, n_keys))?;
    let at = u32::try_from(at)
        .map_err(|_| GpuError::Shape { kernel: KERNEL, message: format!("offset {at} does not fit in 32 bits") })?;
    let source = crate::gpu::ShaderSource::new(KERNEL, include_str!("../../../shaders/attention_summary.wgsl"));
    let params = SummaryParams { n_heads, n_queries, n_keys, past, at };
    let buffers = [probs, out];
    let sinks = ctx.pipeline(&source, "sinks", &[])?;
    ctx.dispatch(encoder, &sinks, &params, &buffers, n_heads.div_ceil(WORKGROUP_SIZE));
    let keys = ctx.pipeline(&source, "keys", &[])?;
    ctx.dispatch(encoder, &keys, &params, &buffers, n_keys.div_ceil(WORKGROUP_SIZE));
    Ok(())
}

/// `Params` of `shaders/attention_summary.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SummaryParams {
    n_heads: u32,
    n_queries: u32,
    n_keys: u32,
    past: u32,
    at: u32,
}
