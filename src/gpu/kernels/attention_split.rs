//! `shaders/attention_split.wgsl`: causal grouped-query attention over a KV cache split over
//! the keys (flash-decoding), for decode steps, where [`attention`] has one workgroup per (head,
//! query token) and leaves most of a GPU idle. Same inputs and output as [`attention`] without
//! probabilities; the result differs from it only in the order of summation.
//!
//! [`attention`]: crate::gpu::kernels::attention::attention

use crate::error::GpuError;
use crate::gpu::kernels::attention::{AttentionIo, AttentionShape, Scores};
use crate::gpu::kernels::{require_len, SOFT_CAP};
use crate::gpu::{GpuContext, Recorder, ShaderSource};

const KERNEL: &str = "attention_split";
/// `partial`'s invocations per workgroup.
const WORKGROUP_SIZE: u32 = 128;
/// Invocations that share one key's q·k in `partial`: a quarter of a 64-dim row (four vec4s)
/// each, so a tile's key rows are read by adjacent invocations.
const KEY_LANES: u32 = 4;
/// Keys `partial` scores per tile: split lengths are multiples of it, so only the last tile of
/// a window is partial.
const TILE_KEYS: u32 = WORKGROUP_SIZE / KEY_LANES;
/// `merge`'s invocations per workgroup (at least 32: one per vec4 of the largest head).
const MERGE_WORKGROUP_SIZE: u32 = 64;
/// The `partial` workgroups a plan aims for: a few per streaming multiprocessor of a large GPU
/// (100–150 of them), enough to keep memory requests in flight; more would only shrink the
/// splits towards the floor and grow the merge.
const TARGET_WORKGROUPS: u64 = 512;
/// The fewest keys a split gets, one tile (split lengths are multiples of it): below it a
/// workgroup's fixed cost (loading q, writing its record, a record to merge) outweighs its keys.
pub const MIN_SPLIT_KEYS: u32 = TILE_KEYS;

/// `Params` of `shaders/attention_split.wgsl`, shared by both entry points.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AttentionSplitParams {
    n_tokens: u32,
    past: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    scale: f32,
    softcap: f32,
    drop_key0: u32,
    splits: u32,
    split_keys: u32,
}

fn source(head_dim: u32) -> ShaderSource {
    // Whole-vec4 rows can be read with 16-byte loads; other head sizes need the scalar loads.
    let (name, loads) = if head_dim.is_multiple_of(4) {
        ("kv_loads/vec4", include_str!("../../../shaders/kv_loads/vec4.wgsl"))
    } else {
        ("kv_loads/scalar", include_str!("../../../shaders/kv_loads/scalar.wgsl"))
    };
    ShaderSource::new(KERNEL, include_str!("../../../shaders/attention_split.wgsl"))
        .include(name, loads)
        .include(SOFT_CAP.0, SOFT_CAP.1)
}

/// How [`attention_split`] divides the keys, and the scratch buffer it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPlan {
    /// Splits per (head, query token): the last query's window `past + n_tokens` keys, in
    /// `split_keys` pieces (an earlier query's later splits are empty).
    pub splits: u32,
    /// Keys per split, a multiple of the kernel's tile.
    pub split_keys: u32,
    /// The 4-byte words the scratch buffer must hold. It depends only on the shape and
    /// `n_tokens`, not on `past`: one buffer serves every decode step of a context.
    pub scratch_words: u64,
}

/// The split for `n_tokens` queries after `past` cached keys: enough splits that
/// `n_heads × n_tokens × splits` reaches about 512 (`TARGET_WORKGROUPS`) where the context has
/// the keys for it, each split at least [`MIN_SPLIT_KEYS`] long and a whole number of tiles. A
/// prefill with that many (head, token) pairs already gets one split.
pub fn split_plan(shape: AttentionShape, n_tokens: u32, past: u32) -> SplitPlan {
    let rows = shape.n_heads as u64 * n_tokens as u64;
    let max_splits = TARGET_WORKGROUPS.div_ceil(rows.max(1));
    let keys = past as u64 + n_tokens as u64;
    let splits = max_splits.min(keys.div_ceil(MIN_SPLIT_KEYS as u64)).max(1);
    let split_keys = keys.div_ceil(splits).next_multiple_of(TILE_KEYS as u64).max(MIN_SPLIT_KEYS as u64);
    // Rounding split_keys up to whole tiles can only lower the count, never above max_splits,
    // which is what bounds the scratch for every past.
    let splits = keys.div_ceil(split_keys).max(1);
    SplitPlan {
        splits: splits.min(u32::MAX as u64) as u32,
        split_keys: split_keys.min(u32::MAX as u64) as u32,
        scratch_words: rows * max_splits * record_words(shape.head_dim),
    }
}

/// One split's record in the scratch buffer: (m, l, 0, 0), then the accumulator in vec4s.
fn record_words(head_dim: u32) -> u64 {
    4 * (1 + head_dim.div_ceil(4) as u64)
}

/// Causal GQA attention of `n_tokens` new queries at positions `past..past+n_tokens` over the
/// KV cache rows `0..past+n_tokens` (`io`), as [`attention_quantized`] without probabilities or
/// their quantization: scores by `scores`, and with `drop_key0` the queries at
/// positions ≥ 1 do not attend to key 0. Records two dispatches: per (head, token, split) the
/// split's max, exp-sum and weighted values into `scratch`, then per (head, token) their exact
/// merge into `out`. `scratch` must hold at least [`split_plan`]'s `scratch_words` (more is
/// fine: keep one across steps).
///
/// [`attention_quantized`]: crate::gpu::kernels::attention::attention_quantized
pub fn attention_split(
    ctx: &GpuContext,
    enc: &mut Recorder,
    shape: AttentionShape,
    scores: Scores,
    io: AttentionIo,
    drop_key0: bool,
    scratch: &wgpu::Buffer,
) -> Result<(), GpuError> {
    shape.check(KERNEL)?;
    let (scale, softcap) = scores.params(KERNEL)?;
    let AttentionShape { n_heads, n_kv_heads, head_dim } = shape;
    let AttentionIo { q, k_cache, v_cache, out, n_tokens, past } = io;
    if n_tokens == 0 {
        return Ok(());
    }
    let plan = split_plan(shape, n_tokens, past);
    let (hd, keys) = (head_dim as u64, io.keys());
    let rows = n_heads as u64 * n_tokens as u64;
    let partials = rows * plan.splits as u64;
    // The kernels index in u32: the cache rows, the scratch in vec4s, the last split's end.
    let too_big = keys * n_kv_heads as u64 * hd > u32::MAX as u64
        || rows * hd > u32::MAX as u64
        || partials * record_words(head_dim) / 4 > u32::MAX as u64
        || plan.splits as u64 * plan.split_keys as u64 > u32::MAX as u64;
    if too_big {
        return Err(io.overflow(KERNEL, shape));
    }
    io.check_lengths(KERNEL, shape)?;
    require_len(KERNEL, "scratch", scratch, plan.scratch_words)?;

    let source = source(head_dim);
    let constants = [
        ("WORKGROUP_SIZE", WORKGROUP_SIZE as f64),
        ("KEY_LANES", KEY_LANES as f64),
        ("MERGE_WORKGROUP_SIZE", MERGE_WORKGROUP_SIZE as f64),
    ];
    let partial = ctx.pipeline(&source, "partial", &constants)?;
    let merge = ctx.pipeline(&source, "merge", &constants)?;
    let params = AttentionSplitParams {
        n_tokens,
        past,
        n_heads,
        n_kv_heads,
        head_dim,
        scale,
        softcap,
        drop_key0: drop_key0 as u32,
        splits: plan.splits,
        split_keys: plan.split_keys,
    };
    ctx.dispatch(enc, &partial, &params, &[q, k_cache, v_cache, scratch], partials as u32);
    ctx.dispatch(enc, &merge, &params, &[scratch, out], rows as u32);
    Ok(())
}
