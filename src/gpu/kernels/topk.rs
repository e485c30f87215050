//! `shaders/topk.wgsl`: the k largest logits, sorted, ties by lower index; one or two stages.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, Recorder, ShaderSource};

const KERNEL: &str = "topk";
const WORKGROUP_SIZE: u32 = 256;
/// Largest supported k.
pub const MAX_K: u32 = 64;
/// Input elements per stage-1 workgroup (at least; grows so stage 2 sees ≤ MAX_GROUPS·k).
const SEGMENT: u32 = 4096;
const MAX_GROUPS: u32 = 64;

/// `Params` of `shaders/topk.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TopKParams {
    n: u32,
    k: u32,
    segment: u32,
    from_candidates: u32,
}

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/topk.wgsl"))
}

/// The k largest values of `logits[0..n]` (k ≤ 64), sorted descending, ties by lower index, into
/// `ids` (u32) and `values` (f32), each of at least k elements. NaN logits are not supported.
#[allow(clippy::too_many_arguments)]
pub fn top_k(
    ctx: &GpuContext,
    enc: &mut Recorder,
    logits: &wgpu::Buffer,
    n: u32,
    k: u32,
    ids: &wgpu::Buffer,
    values: &wgpu::Buffer,
) -> Result<(), GpuError> {
    let err = |message: String| GpuError::Shape { kernel: KERNEL, message };
    if k == 0 || k > MAX_K {
        return Err(err(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    if k > n {
        return Err(err(format!("k = {k} is more than the {n} values")));
    }
    require_len(KERNEL, "logits", logits, n as u64)?;
    require_len(KERNEL, "ids", ids, k as u64)?;
    require_len(KERNEL, "values", values, k as u64)?;
    let pipeline = ctx.pipeline(&source(), "top_k", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;

    // in_ids is unread when from_candidates = 0, but the layout binds it; a buffer may not be
    // bound read-only and read-write in one dispatch, so it gets its own stand-in.
    let unused_ids = ctx.storage("topk ids (unused)", 4)?;
    let segment = SEGMENT.max(n.div_ceil(MAX_GROUPS).next_multiple_of(WORKGROUP_SIZE));
    let groups = n.div_ceil(segment);
    if groups == 1 {
        let params = TopKParams { n, k, segment: n, from_candidates: 0 };
        ctx.dispatch(enc, &pipeline, &params, &[logits, &unused_ids, values, ids], 1);
        return Ok(());
    }
    let candidates = groups * k;
    let cand_values = ctx.storage("topk candidate values", candidates as u64 * 4)?;
    let cand_ids = ctx.storage("topk candidate ids", candidates as u64 * 4)?;
    let stage1 = TopKParams { n, k, segment, from_candidates: 0 };
    ctx.dispatch(enc, &pipeline, &stage1, &[logits, &unused_ids, &cand_values, &cand_ids], groups);
    let stage2 = TopKParams { n: candidates, k, segment: candidates, from_candidates: 1 };
    ctx.dispatch(enc, &pipeline, &stage2, &[&cand_values, &cand_ids, values, ids], 1);
    Ok(())
}
