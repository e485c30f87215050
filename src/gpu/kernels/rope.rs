//! `shaders/rope.wgsl`: rotary position embedding in place, with exact angle reduction.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, Recorder, ShaderSource};
use crate::model::config::rope_frequencies;
use crate::model::RopeLayout;

const KERNEL: &str = "rope";
const WORKGROUP_SIZE: u32 = 256;
/// Positions below 2^20: the exact-product pieces then keep ≥ 4 bits each (see `turn_chunks`).
const MAX_POSITION: u32 = 1 << 20;
/// Values per pair in the turn table; `CHUNKS` in the WGSL.
const CHUNKS: usize = 8;

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/rope.wgsl"))
        .include("sincos", include_str!("../../../shaders/sincos.wgsl"))
}

/// Splits `turns` (a frequency in turns per position, > 0) into `CHUNKS` values summing to it
/// (to f64 precision): the first `CHUNKS − 1` have at most `24 − position_bits` significant
/// bits, so `position · piece` is exact in f32 for every position below `2^position_bits`; the
/// last is the remainder, below `turns · 2^(−28)` for `position_bits ≤ 20`, whose product
/// rounds with a negligible absolute error (< 1e-10 turns).
fn turn_chunks(turns: f64, position_bits: u32) -> [f32; CHUNKS] {
    let chunk_bits = 24 - position_bits as i32;
    let mut rest = turns;
    let mut out = [0.0f32; CHUNKS];
    for chunk in out.iter_mut().take(CHUNKS - 1) {
        if rest <= 0.0 {
            break;
        }
        let quantum = 2f64.powi(rest.log2().floor() as i32 - chunk_bits + 1);
        let c = (rest / quantum).floor() * quantum;
        *chunk = c as f32; // exact: c has ≤ chunk_bits bits and a normal f32 exponent
        rest -= c;
    }
    out[CHUNKS - 1] = rest as f32;
    out
}

/// `Params` of `shaders/rope.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RopeParams {
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    position_offset: u32,
    half_split: u32,
    n_kv_heads: u32,
    kv_in_x: u32,
}

/// The frequency table of one RoPE (head_dim, base), exact for positions below `limit`: made
/// once per KV cache, not per step.
pub struct RopeTable {
    turns: wgpu::Buffer,
    head_dim: u32,
    limit: u32,
}

impl RopeTable {
    /// The table for positions `0..limit` (`limit` ≤ 2^20); each pair's frequency divided by its
    /// factor when there are `factors` (Llama 3.1's scaling).
    pub fn new(
        ctx: &GpuContext,
        head_dim: u32,
        base: f32,
        factors: Option<&[f32]>,
        limit: u32,
    ) -> Result<RopeTable, GpuError> {
        let shape = |message: String| GpuError::Shape { kernel: KERNEL, message };
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(shape(format!("head_dim must be even and > 0, got {head_dim}")));
        }
        if !(base.is_finite() && base > 1.0) {
            return Err(shape(format!("rope base must be finite and > 1, got {base}")));
        }
        if limit > MAX_POSITION {
            return Err(shape(format!("position {} is past the supported maximum {}", limit - 1, MAX_POSITION - 1)));
        }
        if let Some(f) =
            factors.filter(|f| f.len() != head_dim as usize / 2 || !f.iter().all(|x| x.is_finite() && *x > 0.0))
        {
            return Err(shape(format!("{} finite positive frequency factors needed, got {f:?}", head_dim / 2)));
        }
        let position_bits = (32 - limit.saturating_sub(1).leading_zeros()).max(1);
        let table: Vec<f32> = rope_frequencies(head_dim as usize, base, factors)
            .into_iter()
            .flat_map(|frequency| turn_chunks(frequency / std::f64::consts::TAU, position_bits))
            .collect();
        let turns = ctx.upload_f32("rope turns per position", &table)?;
        Ok(RopeTable { turns, head_dim, limit })
    }

    /// Checks that tokens at `position_offset..+n_tokens` are within the table.
    fn check(&self, n_tokens: u32, position_offset: u32) -> Result<(), GpuError> {
        let last = position_offset as u64 + n_tokens as u64 - 1;
        if last >= self.limit as u64 {
            let message = format!("position {last} is past this RoPE table's limit {}", self.limit);
            return Err(GpuError::Shape { kernel: KERNEL, message });
        }
        Ok(())
    }
}

/// In place on x: `[n_tokens × n_heads·head_dim]`; token t is at position `position_offset + t`.
/// `angle = pos · base^(-2i/head_dim)` for pair i, the frequency computed in f64 like the CPU
/// reference's table; pairs by `layout`.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    position_offset: u32,
    base: f32,
    layout: RopeLayout,
) -> Result<(), GpuError> {
    if n_tokens == 0 || n_heads == 0 {
        return RopeTable::new(ctx, head_dim, base, None, 1).map(drop);
    }
    let limit = (position_offset as u64 + n_tokens as u64).min(u32::MAX as u64) as u32;
    let table = RopeTable::new(ctx, head_dim, base, None, limit)?;
    rope_with_table(ctx, enc, x, n_tokens, n_heads, position_offset, &table, layout)
}

/// [`rope`] with a table made beforehand (see [`RopeTable`]).
#[allow(clippy::too_many_arguments)]
pub fn rope_with_table(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    n_tokens: u32,
    n_heads: u32,
    position_offset: u32,
    table: &RopeTable,
    layout: RopeLayout,
) -> Result<(), GpuError> {
    if n_tokens == 0 || n_heads == 0 {
        return Ok(());
    }
    table.check(n_tokens, position_offset)?;
    let head_dim = table.head_dim;
    let len = n_tokens as u64 * n_heads as u64 * head_dim as u64;
    let invocations = n_tokens as u64 * n_heads as u64 * (head_dim / 2) as u64;
    if invocations > u32::MAX as u64 {
        let message = format!("{n_tokens} tokens × {n_heads} heads × {head_dim} is too large for one dispatch");
        return Err(GpuError::Shape { kernel: KERNEL, message });
    }
    require_len(KERNEL, "x", x, len)?;
    let pipeline = ctx.pipeline(&source(), "rope", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let params = RopeParams {
        n_tokens,
        n_heads,
        head_dim,
        position_offset,
        half_split: matches!(layout, RopeLayout::HalfSplit) as u32,
        n_kv_heads: 0,
        kv_in_x: 0,
    };
    ctx.dispatch(enc, &pipeline, &params, &[x, &table.turns], (invocations as u32).div_ceil(WORKGROUP_SIZE));
    Ok(())
}

/// Where [`rope_and_append`] finds the new keys and values.
#[derive(Debug, Clone, Copy)]
pub enum NewKeysValues<'a> {
    /// Buffers of their own, `[n_tokens × n_kv_heads·head_dim]` each.
    Buffers(&'a wgpu::Buffer, &'a wgpu::Buffer),
    /// In the queries' buffer after the queries: keys from element `n_tokens·n_heads·head_dim`,
    /// then values (the stacked q|k|v projection of one token).
    AfterQueries,
}

/// The plain forward's fused RoPE and KV-cache append: rotates the queries `q`
/// (`[n_tokens × n_heads·head_dim]`) in place, writes the rotated keys and the values
/// (`[n_tokens × n_kv_heads·head_dim]`, unchanged) from `new` into cache rows
/// `past..past + n_tokens`.
#[allow(clippy::too_many_arguments)]
pub fn rope_and_append(
    ctx: &GpuContext,
    enc: &mut Recorder,
    q: &wgpu::Buffer,
    new: NewKeysValues,
    (k_cache, v_cache): (&wgpu::Buffer, &wgpu::Buffer),
    n_tokens: u32,
    (n_heads, n_kv_heads): (u32, u32),
    past: u32,
    table: &RopeTable,
    layout: RopeLayout,
) -> Result<(), GpuError> {
    if n_tokens == 0 {
        return Ok(());
    }
    table.check(n_tokens, past)?;
    let head_dim = table.head_dim as u64;
    let (n, kv_dim) = (n_tokens as u64, n_kv_heads as u64 * head_dim);
    let q_len = n * n_heads as u64 * head_dim;
    let invocations = n * (n_heads as u64 + n_kv_heads as u64) * head_dim / 2 + n * kv_dim;
    if invocations > u32::MAX as u64
        || (past as u64 + n) * kv_dim > u32::MAX as u64
        || q_len + 2 * n * kv_dim > u32::MAX as u64
    {
        let message = format!("{n_tokens} tokens after {past} overflow 32-bit indices");
        return Err(GpuError::Shape { kernel: KERNEL, message });
    }
    let (k, v, kv_in_x) = match new {
        NewKeysValues::Buffers(k, v) => {
            require_len(KERNEL, "q", q, q_len)?;
            require_len(KERNEL, "k", k, n * kv_dim)?;
            require_len(KERNEL, "v", v, n * kv_dim)?;
            (k, v, 0)
        }
        NewKeysValues::AfterQueries => {
            require_len(KERNEL, "q|k|v", q, q_len + 2 * n * kv_dim)?;
            // Unread, but the layout binds them; read-only, so one stand-in serves both.
            let stand_in = ctx.stand_in()?;
            (stand_in, stand_in, 1)
        }
    };
    require_len(KERNEL, "k cache", k_cache, (past as u64 + n) * kv_dim)?;
    require_len(KERNEL, "v cache", v_cache, (past as u64 + n) * kv_dim)?;
    let pipeline = ctx.pipeline(&source(), "rope_append", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let params = RopeParams {
        n_tokens,
        n_heads,
        head_dim: table.head_dim,
        position_offset: past,
        half_split: matches!(layout, RopeLayout::HalfSplit) as u32,
        n_kv_heads,
        kv_in_x,
    };
    let buffers = [q, &table.turns, k, v, k_cache, v_cache];
    ctx.dispatch(enc, &pipeline, &params, &buffers, (invocations as u32).div_ceil(WORKGROUP_SIZE));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_sum_to_the_frequency_and_products_are_exact() {
        for &(turns, bits) in &[(1.0 / std::f64::consts::TAU, 12), (1e-7, 16), (0.01234567, 20), (0.159, 1)] {
            let c = turn_chunks(turns, bits);
            let sum: f64 = c.iter().map(|&v| v as f64).sum();
            assert!((sum - turns).abs() <= turns * 1e-12, "{turns} bits {bits}: {c:?}");
            let p = ((1u64 << bits) - 1) as f32;
            // The remainder's product is not exact; its rounding error (half an ulp) is negligible.
            let rest_error = p as f64 * c[CHUNKS - 1] as f64 * 2f64.powi(-24);
            assert!(rest_error <= 1e-10, "{turns} bits {bits}: {c:?}");
            for &chunk in &c[..CHUNKS - 1] {
                assert_eq!((p * chunk) as f64, p as f64 * chunk as f64, "{turns} bits {bits}: {c:?}");
            }
        }
    }
}
