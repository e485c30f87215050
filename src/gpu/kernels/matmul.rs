//! `shaders/matmul.wgsl`: y = x · Wᵀ for weights in their stored format (see
//! [`GpuWeight`](crate::gpu::weights::GpuWeight) for the layouts and `shaders/formats/` for the
//! decode functions), with an optional fused RMSNorm of x, bias and output epilogue
//! ([`MatmulOptions`]). One token runs the GEMV kernel, several the tiled GEMM kernel.
//!
//! Variants ([`MatmulVariant`]) are separate pipelines composed from the same WGSL: the portable
//! one needs no optional feature (Chromium's SwiftShader has none); the others are used only on
//! adapters that have the feature they need.

use crate::error::GpuError;
use crate::gpu::context::GpuFeatures;
use crate::gpu::weights::{GpuWeight, WeightParams};
use crate::gpu::{GpuContext, Recorder, ShaderSource};

const KERNEL: &str = "matmul";

/// How the kernels compute. All accumulate in f32 over k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// f32 values; the GEMV adds its partial sums through workgroup memory.
    Portable,
    /// Needs shader-f16: x staged and W decoded in f16, each 4-term dot product in f16 (half the
    /// workgroup memory and packed half arithmetic), everything above that in f32. Less precise
    /// than f32: up to 6 f16 roundings (2⁻¹¹) per term, bounded by 9 · 2⁻¹¹ · Σ_k |x_k| · (largest
    /// |w| of k's chunk) (tests/gpu_matmul.rs; measured up to 5e-4 of Σ|w·x| on random data), and
    /// x must fit f16's range (|x| < 65504 after the RMSNorm). So [`MatmulVariant::best`] never
    /// picks it; callers choose it.
    F16,
    /// Needs subgroups (wgpu's `SUBGROUP`): as Portable, but the GEMV adds its partial sums with
    /// `subgroupAdd`, then one value per subgroup (two barriers instead of three, and less
    /// workgroup memory traffic). The GEMM has no cross-thread reduction in its loop and is the
    /// portable one.
    Subgroup,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 3] = [MatmulVariant::Portable, MatmulVariant::F16, MatmulVariant::Subgroup];

    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Portable => "portable",
            MatmulVariant::F16 => "f16",
            MatmulVariant::Subgroup => "subgroup",
        }
    }

    /// Whether an adapter with `features` can run this variant.
    pub fn is_available(self, features: GpuFeatures) -> bool {
        match self {
            MatmulVariant::Portable => true,
            MatmulVariant::F16 => features.shader_f16,
            MatmulVariant::Subgroup => features.subgroups,
        }
    }

    /// The variants an adapter with `features` can run.
    pub fn available(features: GpuFeatures) -> Vec<MatmulVariant> {
        Self::ALL.into_iter().filter(|v| v.is_available(features)).collect()
    }

    /// What [`matmul`] and [`matmul_with`] use: the fastest variant that computes in f32 (the
    /// forward is checked against the CPU's f32 at 1e-4 on the logits, which f16 products would
    /// not meet).
    pub fn best(features: GpuFeatures) -> MatmulVariant {
        if features.subgroups {
            MatmulVariant::Subgroup
        } else {
            MatmulVariant::Portable
        }
    }
}

/// What to store in y ([`MatmulOptions::output`]).
#[derive(Debug, Clone, Copy, Default)]
pub enum MatmulOutput<'a> {
    /// y = acc (+ bias).
    #[default]
    Store,
    /// y += acc (+ bias): the residual add after the o and down projections.
    Accumulate,
    /// y = silu(gate[t][o]) · (acc (+ bias)), gate: `[n_tokens × n_out]`, another buffer than y
    /// (SwiGLU fused into the up projection).
    SwiGlu(&'a wgpu::Buffer),
}

/// A prologue and epilogue fused into the matmul, so the forward needs no separate dispatches.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatmulOptions<'a> {
    /// x holds un-normed rows: normalize each token row as RMSNorm does
    /// (x / sqrt(mean(x²) + eps) * gain, gain: `[n_in]`) before the product.
    pub rms_norm: Option<(&'a wgpu::Buffer, f32)>,
    /// y[t][o] += bias[o] (Qwen2's q/k/v biases).
    pub bias: Option<&'a wgpu::Buffer>,
    pub output: MatmulOutput<'a>,
}

/// The uniform params of `shaders/matmul.wgsl` (its `Params`): the weight's layout fields, then
/// the kernel's own.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    weight: WeightParams,
    eps: f32,
}

/// GEMV workgroup size, and the most rows a workgroup may own (the WGSL's GEMV_WG, MAX_ROWS).
const GEMV_WG: u32 = 256;
const GEMV_MAX_ROWS: u32 = 16;
/// Parts (8 values) of x staged at a time: the WGSL's X_TILE / 8.
const GEMV_TILE_PARTS: u32 = 256;

/// GEMV shape for rows of `n_chunks` chunks: (KT threads along k, rows per thread). KT is the
/// power of two from 32 to 256 that keeps the largest share of its threads busy on a tile's parts,
/// and 16 where none keeps 3/4 busy: 576 values = 72 parts get KT = 32, 3 rounds with 72 of 96
/// busy, not 256 threads with 184 idle; 1536 values = 192 parts get 64. Ties go to 128 (long
/// rows): 8 rows a workgroup, so the x tile staged from L2 is shared by 8 rows, while an
/// 11008 × 4096 matrix still has 1376 workgroups to spread. The rest of the workgroup takes more
/// rows; rows per thread reuse each x quad loaded from workgroup memory, up to 4 and within the
/// WGSL's 16 rows per workgroup.
fn gemv_shape(n_chunks: u32) -> (u32, u32) {
    let parts = (4 * n_chunks).clamp(1, GEMV_TILE_PARTS);
    let busy = |kt: u32| parts as f64 / (kt * parts.div_ceil(kt)) as f64;
    let kt = [128, 256, 64, 32].into_iter().fold(128, |best, kt| if busy(kt) > busy(best) { kt } else { best });
    let kt = if busy(kt) < 0.75 { 16 } else { kt };
    let row_groups = GEMV_WG / kt;
    (kt, (GEMV_MAX_ROWS / row_groups).clamp(1, 4))
}

/// GEMM tile: rows × tokens per workgroup (the WGSL's TM, TN).
const GEMM_ROWS: u32 = 64;
const GEMM_TOKENS: u32 = 32;

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
/// y: `[n_tokens × n_out]` f32. [`matmul_with`] with no options.
pub fn matmul(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    w: &GpuWeight,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n_tokens: u32,
) -> Result<(), GpuError> {
    matmul_with(ctx, encoder, w, x, y, n_tokens, &MatmulOptions::default())
}

/// [`matmul`] with a fused RMSNorm of x, bias and output epilogue, in the adapter's
/// [`MatmulVariant::best`] variant.
pub fn matmul_with(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    w: &GpuWeight,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n_tokens: u32,
    options: &MatmulOptions,
) -> Result<(), GpuError> {
    let variant = MatmulVariant::best(ctx.features());
    matmul_variant(ctx, encoder, w, x, y, n_tokens, options, variant)
}

/// [`matmul_with`] in a chosen variant (tests and the benchmark compare them); an error if the
/// adapter lacks the feature it needs.
///
/// One token uses the GEMV kernel (decode: bandwidth-bound, threads share rows and reduce), more
/// the GEMM kernel (prefill: 64 × 32 output tiles from weight and activation tiles in workgroup
/// memory, so each weight word is read once per 32 tokens).
#[allow(clippy::too_many_arguments)]
pub fn matmul_variant(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    w: &GpuWeight,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n_tokens: u32,
    options: &MatmulOptions,
    variant: MatmulVariant,
) -> Result<(), GpuError> {
    if !variant.is_available(ctx.features()) {
        return Err(GpuError::Shape {
            kernel: KERNEL,
            message: format!("the {} variant needs a feature adapter {} lacks", variant.name(), ctx.summary.name),
        });
    }
    require("x", x, n_tokens, w.n_in, "n_in", w)?;
    require("y", y, n_tokens, w.n_out, "n_out", w)?;
    if let Some((gain, _)) = options.rms_norm {
        require("the RMSNorm gain", gain, 1, w.n_in, "n_in", w)?;
    }
    if let Some(bias) = options.bias {
        require("the bias", bias, 1, w.n_out, "n_out", w)?;
    }
    if let MatmulOutput::SwiGlu(gate) = options.output {
        require("the SwiGLU gate", gate, n_tokens, w.n_out, "n_out", w)?;
    }
    if n_tokens == 0 || w.n_out == 0 {
        return Ok(());
    }

    // wgpu 30's WebGPU backend does not map the subgroups feature, so in the browser the subgroup
    // snippet is never composed (Tint would also want `enable subgroups;`, which naga rejects).
    let reduce = match variant {
        MatmulVariant::Subgroup => {
            ("matmul_reduce_subgroup", include_str!("../../../shaders/matmul_reduce_subgroup.wgsl"))
        }
        _ => ("matmul_reduce_wg", include_str!("../../../shaders/matmul_reduce_wg.wgsl")),
    };
    let source = ShaderSource::new(KERNEL, include_str!("../../../shaders/matmul.wgsl")).include(reduce.0, reduce.1);
    let source = w.decoder(source, variant == MatmulVariant::F16);

    let weight = w.params(n_tokens);
    let (n_out, n_chunks) = (weight.n_out, weight.n_chunks);
    let eps = options.rms_norm.map_or(0.0, |(_, eps)| eps);
    let params = MatmulParams { weight, eps };
    // Options that are off still need a binding: x, read-only like them.
    let gain = options.rms_norm.map_or(x, |(gain, _)| gain);
    let bias = options.bias.unwrap_or(x);
    let (output, gate) = match options.output {
        MatmulOutput::Store => (0, x),
        MatmulOutput::Accumulate => (1, x),
        MatmulOutput::SwiGlu(gate) => (2, gate),
    };
    let buffers = [w.buffer(), x, y, gain, bias, gate];
    let mut constants = vec![
        ("RMS_NORM", options.rms_norm.is_some() as u32 as f64),
        ("BIAS", options.bias.is_some() as u32 as f64),
        ("OUTPUT", output as f64),
    ];
    if n_tokens == 1 {
        let (kt, rows_per_thread) = gemv_shape(n_chunks);
        constants.extend([("KT", kt as f64), ("ROWS_PER_THREAD", rows_per_thread as f64)]);
        let pipeline = ctx.pipeline(&source, "gemv", &constants)?;
        let rows_per_group = GEMV_WG / kt * rows_per_thread;
        ctx.dispatch(encoder, &pipeline, &params, &buffers, n_out.div_ceil(rows_per_group));
    } else {
        let pipeline = ctx.pipeline(&source, "gemm", &constants)?;
        let groups = n_out.div_ceil(GEMM_ROWS) as u64 * n_tokens.div_ceil(GEMM_TOKENS) as u64;
        let groups = u32::try_from(groups).map_err(|_| GpuError::Shape {
            kernel: KERNEL,
            message: format!("{n_tokens} tokens × {n_out} rows of {} need too many workgroups", w.name),
        })?;
        ctx.dispatch(encoder, &pipeline, &params, &buffers, groups);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemv_shape_keeps_threads_busy_on_short_rows() {
        // 576 values = 18 chunks = 72 parts: 32 threads along k do 3 rounds, 72 of 96 busy.
        assert_eq!(gemv_shape(18), (32, 2));
        // 1536 values = 192 parts: 64 threads along k do 3 rounds, all busy.
        assert_eq!(gemv_shape(48), (64, 4));
        // Long rows: two row groups of 128 threads, 4 rows each.
        assert_eq!(gemv_shape(128), (128, 4));
        assert_eq!(gemv_shape(344), (128, 4));
        // 100 values = 4 chunks = 16 parts.
        assert_eq!(gemv_shape(4), (16, 1));
        for n_chunks in 1..600 {
            let (kt, r) = gemv_shape(n_chunks);
            assert!(kt.is_power_of_two() && kt <= GEMV_WG && (1..=4).contains(&r));
            assert!(GEMV_WG / kt * r <= GEMV_MAX_ROWS, "{n_chunks}");
        }
    }
}
