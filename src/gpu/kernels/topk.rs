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

/// The buffers [`top_k_into`] needs beyond its output, for `n` values and `k`: made once by the
/// caller that runs it every step.
#[derive(Clone)]
pub struct TopKScratch {
    /// in_ids is unread when from_candidates = 0, but the layout binds it; a buffer may not be
    /// bound read-only and read-write in one dispatch, so it gets its own stand-in.
    unused_ids: wgpu::Buffer,
    /// Stage 1's candidates (k per workgroup), where there are several workgroups.
    candidates: Option<(wgpu::Buffer, wgpu::Buffer)>,
    n: u32,
    k: u32,
}

/// Stage 1's segment length and workgroup count for `n` values.
fn segments(n: u32) -> (u32, u32) {
    let segment = SEGMENT.max(n.div_ceil(MAX_GROUPS).next_multiple_of(WORKGROUP_SIZE));
    (segment, n.div_ceil(segment))
}

impl TopKScratch {
    pub fn new(ctx: &GpuContext, n: u32, k: u32) -> Result<TopKScratch, GpuError> {
        let groups = segments(n).1;
        let candidates = if groups > 1 {
            let words = (groups * k) as u64 * 4;
            Some((ctx.storage("topk candidate values", words)?, ctx.storage("topk candidate ids", words)?))
        } else {
            None
        };
        Ok(TopKScratch { unused_ids: ctx.storage("topk ids (unused)", 4)?, candidates, n, k })
    }

    /// Whether it serves `n` values and `k`.
    pub fn fits(&self, n: u32, k: u32) -> bool {
        self.n == n && self.k == k
    }
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
    check(logits, n, k, ids, values)?;
    top_k_into(ctx, enc, logits, n, k, ids, values, &TopKScratch::new(ctx, n, k)?)
}

fn check(logits: &wgpu::Buffer, n: u32, k: u32, ids: &wgpu::Buffer, values: &wgpu::Buffer) -> Result<(), GpuError> {
    let err = |message: String| GpuError::Shape { kernel: KERNEL, message };
    if k == 0 || k > MAX_K {
        return Err(err(format!("k must be in 1..={MAX_K}, got {k}")));
    }
    if k > n {
        return Err(err(format!("k = {k} is more than the {n} values")));
    }
    require_len(KERNEL, "logits", logits, n as u64)?;
    require_len(KERNEL, "ids", ids, k as u64)?;
    require_len(KERNEL, "values", values, k as u64)
}

/// [`top_k`] with the caller's [`TopKScratch`] (made for the same `n` and `k`).
#[allow(clippy::too_many_arguments)]
pub fn top_k_into(
    ctx: &GpuContext,
    enc: &mut Recorder,
    logits: &wgpu::Buffer,
    n: u32,
    k: u32,
    ids: &wgpu::Buffer,
    values: &wgpu::Buffer,
    scratch: &TopKScratch,
) -> Result<(), GpuError> {
    check(logits, n, k, ids, values)?;
    if !scratch.fits(n, k) {
        return Err(GpuError::Shape {
            kernel: KERNEL,
            message: format!("scratch made for {} values and k = {}, used for {n} and {k}", scratch.n, scratch.k),
        });
    }
    let pipeline = ctx.pipeline(&source(), "top_k", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let (segment, groups) = segments(n);
    let unused_ids = &scratch.unused_ids;
    let Some((cand_values, cand_ids)) = &scratch.candidates else {
        let params = TopKParams { n, k, segment: n, from_candidates: 0 };
        ctx.dispatch(enc, &pipeline, &params, &[logits, unused_ids, values, ids], 1);
        return Ok(());
    };
    let candidates = groups * k;
    let stage1 = TopKParams { n, k, segment, from_candidates: 0 };
    ctx.dispatch(enc, &pipeline, &stage1, &[logits, unused_ids, cand_values, cand_ids], groups);
    let stage2 = TopKParams { n: candidates, k, segment: candidates, from_candidates: 1 };
    ctx.dispatch(enc, &pipeline, &stage2, &[cand_values, cand_ids, values, ids], 1);
    Ok(())
}
