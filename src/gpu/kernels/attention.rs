//! `shaders/attention.wgsl`: causal grouped-query attention over a KV cache (prefill and
//! decode), online softmax, optional probability output.

use crate::error::GpuError;
use crate::gpu::kernels::runtime_quant::GpuProbQuant;
use crate::gpu::kernels::{require_len, SOFT_CAP};
use crate::gpu::{GpuContext, Recorder, ShaderSource};
use crate::model::LlamaConfig;

const KERNEL: &str = "attention";
/// Keys per chunk and invocations per workgroup.
const WORKGROUP_SIZE: u32 = 64;
/// `MAX_HEAD_DIM` in the WGSL: the query row and accumulator live in workgroup memory.
pub const MAX_HEAD_DIM: u32 = 256;

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/attention.wgsl")).include(SOFT_CAP.0, SOFT_CAP.1)
}

/// Head counts of one attention layer. Query head h reads key/value head
/// `h / (n_heads / n_kv_heads)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
}

impl AttentionShape {
    /// Fails (naming `kernel`) unless the query heads share the key/value heads evenly and the
    /// head size is one the attention kernels take.
    pub(crate) fn check(self, kernel: &'static str) -> Result<(), GpuError> {
        let err = |message: String| GpuError::Shape { kernel, message };
        let AttentionShape { n_heads, n_kv_heads, head_dim } = self;
        if n_heads == 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(err(format!("n_heads {n_heads} must be a positive multiple of n_kv_heads {n_kv_heads}")));
        }
        if head_dim == 0 || head_dim > MAX_HEAD_DIM {
            return Err(err(format!("head_dim {head_dim} must be in 1..={MAX_HEAD_DIM}")));
        }
        Ok(())
    }
}

/// How the attention kernels turn `q·k` into the score the softmax sees: `q·k · scale`, then
/// `softcap·tanh(s / softcap)` where there is a cap (Gemma 2), as `model::reference` does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub scale: f32,
    pub softcap: Option<f32>,
}

impl Scores {
    /// `1/√head_dim`, no cap: every model but Gemma's 27B and Gemma 2.
    pub fn standard(head_dim: u32) -> Scores {
        Scores { scale: 1.0 / (head_dim as f32).sqrt(), softcap: None }
    }

    /// A model's: its [`LlamaConfig::attention_scale`] and `attn_logit_softcap`.
    pub fn of(c: &LlamaConfig) -> Scores {
        Scores { scale: c.attention_scale(), softcap: c.attn_logit_softcap }
    }

    /// The kernels' (scale, softcap) fields, a cap of 0 meaning none; an error (naming `kernel`)
    /// for a scale or cap that is not finite, or a cap that is not positive.
    pub(crate) fn params(self, kernel: &'static str) -> Result<(f32, f32), GpuError> {
        let cap = self.softcap.unwrap_or(0.0);
        if !self.scale.is_finite() || !cap.is_finite() || self.softcap.is_some_and(|c| c <= 0.0) {
            return Err(GpuError::Shape { kernel, message: format!("scores {self:?} out of range") });
        }
        Ok((self.scale, cap))
    }
}

/// `Params` of `shaders/attention.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AttentionParams {
    n_tokens: u32,
    past: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    scale: f32,
    softcap: f32,
    write_probs: u32,
    drop_key0: u32,
    prob: ProbQuantParams,
}

/// The probability quantizer's fields of the attention `Params` (all zero: off).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ProbQuantParams {
    pub prob_mode: u32,
    pub prob_levels: f32,
    pub prob_ratio: f32,
    pub prob_codes: u32,
    pub prob_table_at: u32,
}

/// The operands of one attention call: `n_tokens` new queries at positions
/// `past..past+n_tokens` over the KV cache rows `0..past+n_tokens` (the caller has already copied
/// the new tokens' K and V into the cache rows `past..`). `q`, `out`: `[n_tokens × n_heads·hd]`;
/// `k_cache`, `v_cache`: `[capacity × n_kv_heads·hd]`.
#[derive(Clone, Copy)]
pub struct AttentionIo<'a> {
    pub q: &'a wgpu::Buffer,
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub n_tokens: u32,
    pub past: u32,
}

impl AttentionIo<'_> {
    /// Keys the last query sees.
    pub(crate) fn keys(&self) -> u64 {
        self.past as u64 + self.n_tokens as u64
    }

    /// Fails (naming `kernel`) when a buffer is too small for `shape`.
    pub(crate) fn check_lengths(&self, kernel: &'static str, shape: AttentionShape) -> Result<(), GpuError> {
        let (hd, n, keys) = (shape.head_dim as u64, self.n_tokens as u64, self.keys());
        require_len(kernel, "q", self.q, n * shape.n_heads as u64 * hd)?;
        require_len(kernel, "k_cache", self.k_cache, keys * shape.n_kv_heads as u64 * hd)?;
        require_len(kernel, "v_cache", self.v_cache, keys * shape.n_kv_heads as u64 * hd)?;
        require_len(kernel, "out", self.out, n * shape.n_heads as u64 * hd)
    }

    /// The error of a call whose indices do not fit the kernels' 32 bits.
    pub(crate) fn overflow(&self, kernel: &'static str, shape: AttentionShape) -> GpuError {
        let message = format!(
            "{} tokens after {} with {} heads overflow 32-bit indices",
            self.n_tokens, self.past, shape.n_heads
        );
        GpuError::Shape { kernel, message }
    }
}

/// Causal GQA attention of `io` (see [`AttentionIo`]), scores [`Scores::standard`]. Online softmax, so
/// any length up to the cache capacity works without a T×T buffer. If `probs` is `Some`, also
/// writes the normalized probabilities `[n_heads × n_tokens × (past+n_tokens)]` (zeros for
/// masked keys).
pub fn attention(
    ctx: &GpuContext,
    enc: &mut Recorder,
    shape: AttentionShape,
    io: AttentionIo,
    probs: Option<&wgpu::Buffer>,
) -> Result<(), GpuError> {
    attention_quantized(ctx, enc, shape, Scores::standard(shape.head_dim), io, probs, false, None)
}

/// [`attention`] with `scores`, where with `drop_key0` the queries at positions ≥ 1 do not attend to key 0
/// (the drop-sink intervention: StreamingLLM's window without its sink), and with `prob_quant` =
/// (quantizer, layer) the probabilities are quantized after the softmax and P·V uses them, not renormalized (the captured `probs` are
/// then the quantized ones); a second pass over the keys does it, and only then.
#[allow(clippy::too_many_arguments)]
pub fn attention_quantized(
    ctx: &GpuContext,
    enc: &mut Recorder,
    shape: AttentionShape,
    scores: Scores,
    io: AttentionIo,
    probs: Option<&wgpu::Buffer>,
    drop_key0: bool,
    prob_quant: Option<(&GpuProbQuant, usize)>,
) -> Result<(), GpuError> {
    shape.check(KERNEL)?;
    let (scale, softcap) = scores.params(KERNEL)?;
    let AttentionShape { n_heads, n_kv_heads, head_dim } = shape;
    let AttentionIo { q, k_cache, v_cache, out, n_tokens, past } = io;
    if n_tokens == 0 {
        return Ok(());
    }
    let (n, keys) = (n_tokens as u64, io.keys());
    let workgroups = n_heads as u64 * n;
    if keys > u32::MAX as u64 || workgroups > u32::MAX as u64 || n_heads as u64 * n * keys > u32::MAX as u64 {
        return Err(io.overflow(KERNEL, shape));
    }
    io.check_lengths(KERNEL, shape)?;
    if let Some(probs) = probs {
        require_len(KERNEL, "probs", probs, n_heads as u64 * n * keys)?;
    }

    let pipeline = ctx.pipeline(&source(), "attention", &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let prob = match prob_quant {
        Some((quant, layer)) => quant.params(layer)?,
        None => ProbQuantParams::default(),
    };
    let params = AttentionParams {
        n_tokens,
        past,
        n_heads,
        n_kv_heads,
        head_dim,
        scale,
        softcap,
        write_probs: probs.is_some() as u32,
        drop_key0: drop_key0 as u32,
        prob,
    };
    // The layout binds probs either way; without it the kernel never touches this stand-in.
    let probs = match probs {
        Some(p) => p,
        None => ctx.stand_in()?,
    };
    // Without AdaLog the kernel never reads the table: `q` (also read-only) stands in, so the
    // plain forward allocates nothing more.
    let table = prob_quant.and_then(|(quant, _)| quant.table()).unwrap_or(q);
    ctx.dispatch(enc, &pipeline, &params, &[q, k_cache, v_cache, out, probs, table], workgroups as u32);
    Ok(())
}
