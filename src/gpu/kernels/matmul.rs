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
use crate::model::config::GateActivation;

const KERNEL: &str = "matmul";

/// How the kernels compute. All accumulate in f32 over k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// f32 values; the GEMV adds its partial sums through workgroup memory.
    Portable,
    /// Needs shader-f16: x staged and W decoded in f16, each 4-term dot product in f16 (half the
    /// workgroup memory and packed half arithmetic), everything above that in f32. Less precise
    /// than f32: up to 6 f16 roundings (2⁻¹¹) per term, bounded by 9 · 2⁻¹¹ · Σ_k |x_k| · (largest
    /// |w| of k's chunk) (tests/native/gpu_matmul.rs; measured up to 5e-4 of Σ|w·x| on random data), and
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
    /// y = act(gate[t][o]) · (acc (+ bias)), gate: `[n_tokens × n_out]`, another buffer than y,
    /// act SiLU (SwiGLU) or tanh-GELU (GeGLU): the gated activation fused into the up projection.
    Gated(&'a wgpu::Buffer, GateActivation),
    /// y = act(acc (+ bias)): a plain MLP's up projection and its activation (GPT-2's tanh-GELU),
    /// with no gate.
    Activated(GateActivation),
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
    /// Row width of y (the whole weight's n_out) and where this part's rows start in it.
    y_stride: u32,
    y_offset: u32,
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

/// Fails unless the adapter has what `variant` needs (never silently replaced).
fn check_variant(ctx: &GpuContext, variant: MatmulVariant) -> Result<(), GpuError> {
    if !variant.is_available(ctx.features()) {
        return Err(GpuError::Shape {
            kernel: KERNEL,
            message: format!("the {} variant needs a feature adapter {} lacks", variant.name(), ctx.summary.name),
        });
    }
    Ok(())
}

/// `source` with what the GEMV kernels share (`matmul_shared.wgsl`) and `variant`'s `reduce_rows`.
fn gemv_parts(source: ShaderSource, variant: MatmulVariant) -> ShaderSource {
    // wgpu 30's WebGPU backend does not map the subgroups feature, so in the browser the subgroup
    // snippet is never composed (Tint would also want `enable subgroups;`, which naga rejects).
    let reduce = match variant {
        MatmulVariant::Subgroup => {
            ("matmul_reduce_subgroup", include_str!("../../../shaders/matmul_reduce_subgroup.wgsl"))
        }
        _ => ("matmul_reduce_wg", include_str!("../../../shaders/matmul_reduce_wg.wgsl")),
    };
    source.include(reduce.0, reduce.1).include("matmul_shared", include_str!("../../../shaders/matmul_shared.wgsl"))
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
    check_variant(ctx, variant)?;
    require("x", x, n_tokens, w.n_in, "n_in", w)?;
    require("y", y, n_tokens, w.n_out, "n_out", w)?;
    if let Some((gain, _)) = options.rms_norm {
        require("the RMSNorm gain", gain, 1, w.n_in, "n_in", w)?;
    }
    if let Some(bias) = options.bias {
        require("the bias", bias, 1, w.n_out, "n_out", w)?;
    }
    if let MatmulOutput::Gated(gate, _) = options.output {
        require("the gate", gate, n_tokens, w.n_out, "n_out", w)?;
    }
    if n_tokens == 0 || w.n_out == 0 {
        return Ok(());
    }

    let source = gemv_parts(ShaderSource::new(KERNEL, include_str!("../../../shaders/matmul.wgsl")), variant);
    let source = w.decoder(source, variant == MatmulVariant::F16);

    let eps = options.rms_norm.map_or(0.0, |(_, eps)| eps);
    // Options that are off still need a binding: x, read-only like them.
    let gain = options.rms_norm.map_or(x, |(gain, _)| gain);
    let bias = options.bias.unwrap_or(x);
    let (output, gate) = match options.output {
        MatmulOutput::Store => (0, x),
        MatmulOutput::Accumulate => (1, x),
        MatmulOutput::Gated(gate, _) => (2, gate),
        MatmulOutput::Activated(_) => (3, x),
    };
    let mut constants = vec![
        ("RMS_NORM", options.rms_norm.is_some() as u32 as f64),
        ("BIAS", options.bias.is_some() as u32 as f64),
        ("OUTPUT", output as f64),
        ("GATE_GELU", gelu_gate(options.output) as u32 as f64),
    ];
    // Workgroups tile the rows (GEMV: `rows_per_group` of one token; GEMM: 64 rows × 32 tokens).
    let (pipeline, rows_per_group, token_groups) = if n_tokens == 1 {
        let (kt, rows_per_thread) = gemv_shape(w.n_chunks());
        constants.extend([("KT", kt as f64), ("ROWS_PER_THREAD", rows_per_thread as f64)]);
        (ctx.pipeline(&source, "gemv", &constants)?, GEMV_WG / kt * rows_per_thread, 1)
    } else {
        (ctx.pipeline(&source, "gemm", &constants)?, GEMM_ROWS, n_tokens.div_ceil(GEMM_TOKENS))
    };
    // One dispatch per part of the weight (one, unless it exceeds a binding).
    for part in w.parts() {
        let params =
            MatmulParams { weight: w.part_params(part, n_tokens), eps, y_stride: w.n_out, y_offset: part.first_row };
        let buffers = [&part.buffer, x, y, gain, bias, gate];
        let n_out = part.rows;
        let groups = n_out.div_ceil(rows_per_group) as u64 * token_groups as u64;
        let groups = u32::try_from(groups).map_err(|_| GpuError::Shape {
            kernel: KERNEL,
            message: format!("{n_tokens} tokens × {n_out} rows of {} need too many workgroups", w.name),
        })?;
        ctx.dispatch(encoder, &pipeline, &params, &buffers, groups);
    }
    Ok(())
}

/// Whether an output's gate goes through tanh-GELU (`GATE_GELU` of the WGSL) rather than SiLU.
fn gelu_gate(output: MatmulOutput) -> bool {
    matches!(
        output,
        MatmulOutput::Gated(_, GateActivation::GeluTanh) | MatmulOutput::Activated(GateActivation::GeluTanh)
    )
}

/// What [`matmul_stacked`] stores in y.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StackedOutput {
    /// y = [W0·x | W1·x | W2·x] (+ bias): 1 to 3 weights, y and the bias of Σ n_out values
    /// (the q/k/v projections; their biases concatenated).
    #[default]
    Concatenate,
    /// y[o] = act(W0·x + b0)[o] · (W1·x + b1)[o]: exactly 2 weights of one n_out, y of n_out
    /// values, the bias (if any) of 2 · n_out (b0 then b1). The formula of [`MatmulOutput::Gated`]
    /// after a separate gate matmul (the gate/up projections).
    GatedPair(GateActivation),
}

/// The options of [`matmul_stacked`]: as [`MatmulOptions`], with the output of a stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct StackedOptions<'a> {
    /// x holds an un-normed row: RMSNorm it (x / sqrt(mean(x²) + eps) * gain, gain: `[n_in]`)
    /// before the products, as [`MatmulOptions::rms_norm`].
    pub rms_norm: Option<(&'a wgpu::Buffer, f32)>,
    /// Added to the outputs: Σ n_out values (the weights' biases concatenated, in order).
    pub bias: Option<&'a wgpu::Buffer>,
    pub output: StackedOutput,
}

/// The most weights [`matmul_stacked`] takes (bindings: 3 weights, x, y, gain and bias are 7
/// storage buffers, within WebGPU's default limit of 8 per stage).
pub const MAX_STACKED: usize = 3;

/// The uniform params of `shaders/matmul_stacked.wgsl` (its `Params`): weight 0's layout fields
/// first (read by its decode as by matmul's), then the stack's, then weights 1 and 2's (a struct
/// member of a uniform starts at a multiple of 16 bytes and takes 32 here).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StackedParams {
    w0: WeightParams,
    eps: f32,
    n_weights: u32,
    _pad0: u32,
    out_offset: [u32; 4],
    first_group: [u32; 4],
    w1: WeightParams,
    _pad1: [u32; 3],
    w2: WeightParams,
    _pad2: [u32; 3],
}

/// The stacked GEMV's shape for rows of `n_chunks` chunks: (KT, accumulator slots per thread,
/// output rows per workgroup). KT is [`gemv_shape`]'s (so each output adds its terms in the same
/// order as a separate GEMV), except that the SwiGLU pair keeps ≥ 32 threads along k: its slots
/// hold a gate and an up row each, and 16 row groups × 2 would pass the WGSL's 16 rows.
fn stacked_shape(n_chunks: u32, output: StackedOutput) -> (u32, u32, u32) {
    let (kt, rows_per_thread) = gemv_shape(n_chunks);
    match output {
        StackedOutput::Concatenate => (kt, rows_per_thread, GEMV_WG / kt * rows_per_thread),
        StackedOutput::GatedPair(_) => {
            let kt = kt.max(32);
            let row_groups = GEMV_WG / kt;
            let per = (GEMV_MAX_ROWS / row_groups / 2).clamp(1, 2);
            (kt, 2 * per, row_groups * per)
        }
    }
}

fn stacked_error(message: String) -> GpuError {
    GpuError::Shape { kernel: "matmul_stacked", message }
}

/// Fails unless `buffer` holds `needed` f32 values.
fn require_values(what: &str, buffer: &wgpu::Buffer, needed: u64, why: &str) -> Result<(), GpuError> {
    if buffer.size() < needed * 4 {
        return Err(stacked_error(format!("{what} holds {} values, needs {why} = {needed}", buffer.size() / 4)));
    }
    Ok(())
}

/// One token's products with up to 3 weights of the same n_in in ONE dispatch (the decode step's
/// q/k/v, or gate/up with SwiGLU), each weight in its own format; x: `[n_in]` f32, y: f32 (see
/// [`StackedOutput`]). Every output equals what [`matmul_with`] gives for its weight alone, with
/// the same options (bit for bit in the portable and f16 variants on lavapipe; tests/native/gpu_matmul_stacked.rs).
/// In the adapter's [`MatmulVariant::best`] variant.
pub fn matmul_stacked(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    weights: &[&GpuWeight],
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    options: &StackedOptions,
) -> Result<(), GpuError> {
    let variant = MatmulVariant::best(ctx.features());
    matmul_stacked_variant(ctx, encoder, weights, x, y, options, variant)
}

/// [`matmul_stacked`] in a chosen variant; an error if the adapter lacks the feature it needs.
pub fn matmul_stacked_variant(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    weights: &[&GpuWeight],
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    options: &StackedOptions,
    variant: MatmulVariant,
) -> Result<(), GpuError> {
    check_variant(ctx, variant)?;
    let names = || weights.iter().map(|w| w.name.as_str()).collect::<Vec<_>>().join(", ");
    let pair = matches!(options.output, StackedOutput::GatedPair(_));
    if pair && weights.len() != 2 {
        return Err(stacked_error(format!("a SwiGLU pair takes 2 weights, got {} ({})", weights.len(), names())));
    }
    if weights.is_empty() || weights.len() > MAX_STACKED {
        return Err(stacked_error(format!("takes 1 to {MAX_STACKED} weights, got {} ({})", weights.len(), names())));
    }
    let w0 = weights[0];
    for w in &weights[1..] {
        if w.n_in != w0.n_in {
            return Err(stacked_error(format!(
                "weights differ in n_in: {} has {}, {} has {}",
                w0.name, w0.n_in, w.name, w.n_in
            )));
        }
    }
    if pair && weights[1].n_out != w0.n_out {
        return Err(stacked_error(format!(
            "a SwiGLU pair needs one n_out: {} has {}, {} has {}",
            w0.name, w0.n_out, weights[1].name, weights[1].n_out
        )));
    }
    // First output of each weight (in y for Concatenate, in the bias for both).
    let mut out_offset = [0u32; 4];
    for (i, w) in weights.iter().enumerate() {
        out_offset[i + 1] = out_offset[i]
            .checked_add(w.n_out)
            .ok_or_else(|| stacked_error(format!("the outputs of {} pass 2³² values", names())))?;
    }
    let total = out_offset[weights.len()];
    let n_in = w0.n_in as u64;
    require_values("x", x, n_in, &format!("n_in {n_in} of {}", names()))?;
    let y_len = if pair { w0.n_out } else { total };
    require_values("y", y, y_len as u64, &format!("the outputs of {}", names()))?;
    if let Some((gain, _)) = options.rms_norm {
        require_values("the RMSNorm gain", gain, n_in, &format!("n_in {n_in} of {}", names()))?;
    }
    if let Some(bias) = options.bias {
        require_values("the bias", bias, total as u64, &format!("Σ n_out of {}", names()))?;
    }
    if total == 0 {
        return Ok(());
    }

    let f16 = variant == MatmulVariant::F16;
    let source = ShaderSource::new("matmul_stacked", include_str!("../../../shaders/matmul_stacked.wgsl"));
    let mut source = w0.decoder(gemv_parts(source, variant), f16);
    // Weights 1 and 2 as renamed copies; an absent one is weight 0's format, never called.
    let copies = [
        crate::gpu::SnippetCopy { suffix: "1", params: "params.w1", binding: 6 },
        crate::gpu::SnippetCopy { suffix: "2", params: "params.w2", binding: 7 },
    ];
    for (i, copy) in copies.into_iter().enumerate() {
        source = weights.get(i + 1).unwrap_or(&w0).decoder_copy(source, copy);
    }

    let (kt, slots, out_rows) = stacked_shape(w0.n_chunks(), options.output);
    let mut first_group = [0u32; 4];
    let groups = if pair {
        w0.n_out.div_ceil(out_rows)
    } else {
        for (i, w) in weights.iter().enumerate() {
            first_group[i + 1] = first_group[i] + w.n_out.div_ceil(out_rows);
        }
        first_group[weights.len()]
    };
    let weight = |i: usize| weights.get(i).unwrap_or(&w0).params(1);
    let params = StackedParams {
        w0: weight(0),
        eps: options.rms_norm.map_or(0.0, |(_, eps)| eps),
        n_weights: weights.len() as u32,
        _pad0: 0,
        out_offset,
        first_group,
        w1: weight(1),
        _pad1: [0; 3],
        w2: weight(2),
        _pad2: [0; 3],
    };
    let constants = [
        ("RMS_NORM", options.rms_norm.is_some() as u32 as f64),
        ("BIAS", options.bias.is_some() as u32 as f64),
        ("OUTPUT", pair as u32 as f64),
        ("GATE_GELU", (options.output == StackedOutput::GatedPair(GateActivation::GeluTanh)) as u32 as f64),
        ("KT", kt as f64),
        ("ROWS_PER_THREAD", slots as f64),
    ];
    let pipeline = ctx.pipeline(&source, "gemv_stacked", &constants)?;
    // Options that are off still need a binding: x, read-only like them.
    let gain = options.rms_norm.map_or(x, |(gain, _)| gain);
    let bias = options.bias.unwrap_or(x);
    let buffer = |i: usize| weights.get(i).unwrap_or(&w0).buffer("matmul_stacked");
    let buffers = [buffer(0)?, x, y, gain, bias, buffer(1)?, buffer(2)?];
    ctx.dispatch(encoder, &pipeline, &params, &buffers, groups);
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

    #[test]
    fn stacked_shape_fits_the_wgsl() {
        // q/k/v of the default model: the GEMV's own shape.
        assert_eq!(stacked_shape(18, StackedOutput::Concatenate), (32, 2, 16));
        // gate/up: 8 row groups, one gate and one up row per thread.
        let pair = StackedOutput::GatedPair(GateActivation::Silu);
        assert_eq!(stacked_shape(18, pair), (32, 2, 8));
        assert_eq!(stacked_shape(4, pair), (32, 2, 8));
        for n_chunks in 1..600 {
            for output in [StackedOutput::Concatenate, pair] {
                let (kt, slots, rows) = stacked_shape(n_chunks, output);
                assert!(kt.is_power_of_two() && kt <= GEMV_WG && (1..=4).contains(&slots), "{n_chunks}");
                assert!(GEMV_WG / kt * slots <= GEMV_MAX_ROWS, "{n_chunks}");
                if output == pair {
                    assert!(slots % 2 == 0 && rows == GEMV_WG / kt * slots / 2, "{n_chunks}");
                } else {
                    assert_eq!(kt, gemv_shape(n_chunks).0);
                }
            }
        }
    }
}
