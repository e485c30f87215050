//! `shaders/rope.wgsl`: rotary position embedding in place, with exact angle reduction.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, ShaderSource};
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

/// In place on x: `[n_tokens × n_heads·head_dim]`; token t is at position `position_offset + t`.
/// `angle = pos · base^(-2i/head_dim)` for pair i, the frequency computed in f64 like the CPU
/// reference's table; pairs by `layout`.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    position_offset: u32,
    base: f32,
    layout: RopeLayout,
) -> Result<(), GpuError> {
    let shape = |message: String| GpuError::Shape { kernel: KERNEL, message };
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(shape(format!("head_dim must be even and > 0, got {head_dim}")));
    }
    if !(base.is_finite() && base > 1.0) {
        return Err(shape(format!("rope base must be finite and > 1, got {base}")));
    }
    if n_tokens == 0 || n_heads == 0 {
        return Ok(());
    }
    let last = position_offset as u64 + n_tokens as u64 - 1;
    if last >= MAX_POSITION as u64 {
        return Err(shape(format!("position {last} is past the supported maximum {}", MAX_POSITION - 1)));
    }
    let len = n_tokens as u64 * n_heads as u64 * head_dim as u64;
    let invocations = n_tokens as u64 * n_heads as u64 * (head_dim / 2) as u64;
    if invocations > u32::MAX as u64 {
        return Err(shape(format!("{n_tokens} tokens × {n_heads} heads × {head_dim} is too large for one dispatch")));
    }
    require_len(KERNEL, "x", x, len)?;

    let position_bits = (32 - (last as u32).leading_zeros()).max(1);
    let half = head_dim / 2;
    let table: Vec<f32> = (0..half)
        .flat_map(|i| {
            let freq = (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
            turn_chunks(freq / std::f64::consts::TAU, position_bits)
        })
        .collect();
    let table = ctx.upload_f32("rope turns per position", &table)?;
    let pipeline = ctx.pipeline(&source(), "rope", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let half_split = matches!(layout, RopeLayout::HalfSplit) as u32;
    let params = ctx.uniform("rope params", &[n_tokens, n_heads, head_dim, position_offset, half_split]);
    ctx.dispatch(enc, &pipeline, &[&params, x, &table], (invocations as u32).div_ceil(WORKGROUP_SIZE));
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
