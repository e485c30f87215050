//! `shaders/runtime_quant.wgsl`: runtime fake quantization in the GPU forward, the same as the CPU
//! references: activations (`quant::activation::fake_quantize`: int2–8 and FP8 per tensor, token
//! or channel, MXFP4, NVFP4) and the new keys and values of the KV cache (int per token per group,
//! optionally with E4M3 group scales, FIRE-Q style; FP8 per token per head).
//!
//! Dispatches: per token, KV, MXFP4: one (a workgroup per scale group, or an invocation per
//! group of ≤ 32); per tensor and per channel: two (max |x|, then the elements); NVFP4: two (the
//! tensor's max |x| for its f32 second level, then the blocks). Percentile clipping (`-clipP`):
//! per tensor, two exact radix selects (`shaders/select.wgsl`, 9 dispatches each) and a clamp
//! before the quantizer; per token or channel (and per token for MX/NVFP4) one more dispatch, a
//! workgroup per group running its own radix select in workgroup memory, then clamping.
//!
//! `+hadamard` (the online rotation) is two more dispatches around the quantizer: each token
//! rotated by H/√block in blocks (f32 sums where the CPU uses f64: a few ulps apart), and back.
//!
//! The calibrated rewrites of `quant::runtime` run here too: a linear input's shift (`x − z`
//! before its quantizer, `+ z` after: two bias-add dispatches), static per-channel scales
//! (OutlierTune, one dispatch, replacing the dynamic scheme), and FireQ's key/query channel scales
//! (two dispatches before the cache quantizer).

use std::collections::HashMap;

use crate::error::GpuError;
use crate::gpu::kernels::attention::{AttentionShape, ProbQuantParams};
use crate::gpu::kernels::elementwise::add_rows_in_place;
use crate::gpu::kernels::intervene::select_abs;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, Recorder, ShaderSource};
use crate::model::reference::LinearInput;
use crate::model::LlamaConfig;
use crate::quant::activation::forward::ActivationSchemes;
use crate::quant::activation::{ActFormat, ActGranularity, ActScheme};
use crate::quant::attention_probs::{ProbQuantizer, ProbScheme, ADALOG_R};
use crate::quant::float::{MX_BLOCK, NVFP4_BLOCK};
use crate::quant::hadamard::block_size;
use crate::quant::kv::{KvFormat, KvScheme, E4M3_SCALE_FLOOR};
use crate::quant::minifloat::Codec;
use crate::quant::runtime::RuntimeQuant;
use crate::quant::MiniFloat;

const KERNEL: &str = "runtime_quant";
/// `MAX_HADAMARD` in the WGSL: the largest rotation block (workgroup memory).
const MAX_HADAMARD: u32 = 2048;
/// Words of a select's state (`shaders/select.wgsl`): found bits, mask, rank, unused, 256 counts.
const SELECT_STATE_WORDS: u64 = 4 + 256;
/// `AMAX_CHUNK` in the WGSL: elements per invocation of `tensor_amax`.
const AMAX_CHUNK: u32 = 8;

const RULE_INT: u32 = 0;
const RULE_FP: u32 = 1;
const RULE_MX: u32 = 2;
const RULE_NV: u32 = 3;

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/runtime_quant.wgsl"))
}

fn shape(message: String) -> GpuError {
    GpuError::Shape { kernel: KERNEL, message }
}

/// The element count of `x` read as `[rows × cols]`: within 32-bit indices and within the buffer.
fn checked_elements(x: &wgpu::Buffer, rows: u32, cols: u32) -> Result<u64, GpuError> {
    let n = rows as u64 * cols as u64;
    if n > u32::MAX as u64 {
        return Err(shape(format!("{rows}×{cols} overflows 32-bit indices")));
    }
    require_len(KERNEL, "x", x, n)?;
    Ok(n)
}

/// The uniform `Params` of the WGSL, field by field.
#[derive(Debug, Clone, Copy, Default)]
struct Params {
    rows: u32,
    cols: u32,
    group: u32,
    /// None: cols / group rounded up (the scale groups of a row).
    groups_per_row: Option<u32>,
    rule: u32,
    qmax: u32,
    element: Option<Codec>,
    fp8_scale: bool,
    per_channel: bool,
}

/// `Params` of `shaders/runtime_quant.wgsl` as the GPU reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct QuantUniform {
    rows: u32,
    cols: u32,
    group: u32,
    groups_per_row: u32,
    rule: u32,
    qmax: u32,
    man_bits: u32,
    min_normal_exp: i32,
    max_finite: f32,
    emax_elem: i32,
    fp8_scale: u32,
    scale_floor: f32,
    per_channel: u32,
}

impl Params {
    fn uniform(&self) -> QuantUniform {
        let (man_bits, min_normal_exp, max_finite, emax) = match self.element {
            Some(codec) => {
                let max = codec.max_finite();
                (codec.man_bits, 1 - codec.bias, max, max.log2().floor() as i32)
            }
            None => (0, 0, 0.0, 0),
        };
        let group = self.group.max(1);
        QuantUniform {
            rows: self.rows,
            cols: self.cols,
            group,
            groups_per_row: self.groups_per_row.unwrap_or(self.cols.div_ceil(group)),
            rule: self.rule,
            qmax: self.qmax,
            man_bits,
            min_normal_exp,
            max_finite,
            emax_elem: emax,
            fp8_scale: self.fp8_scale as u32,
            scale_floor: E4M3_SCALE_FLOOR,
            per_channel: self.per_channel as u32,
        }
    }
}

fn int_params(bits: u8) -> Params {
    Params { rule: RULE_INT, qmax: (1u32 << (bits - 1)) - 1, ..Default::default() }
}

fn fp_params(format: MiniFloat) -> Params {
    Params { rule: RULE_FP, element: Some(Codec::element(format)), ..Default::default() }
}

/// Checks `x` and records the passes for `p` (rows, cols, group filled in).
fn record(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    p: Params,
    granularity: Granularity,
) -> Result<(), GpuError> {
    let n = checked_elements(x, p.rows, p.cols)?;
    if n == 0 {
        return Ok(());
    }
    let params = p.uniform();
    let n = n as u32;
    match granularity {
        Granularity::Groups => {
            let groups = p.rows as u64 * p.cols.div_ceil(p.group.max(1)) as u64;
            if groups > u32::MAX as u64 {
                return Err(shape(format!("{groups} scale groups overflow the grid")));
            }
            // Groups of ≤ 32 (blocks, small KV groups): an invocation each; larger ones (heads,
            // tokens) a workgroup each, of 64 lanes up to a head, 256 for rows.
            let (entry, lanes, workgroups) = match p.group {
                0..=32 => ("small_groups", 64, (groups as u32).div_ceil(64)),
                33..=64 => ("groups", 64, groups as u32),
                _ => ("groups", 256, groups as u32),
            };
            let groups_pipeline = ctx.pipeline(&source(), entry, &[("WORKGROUP_SIZE", lanes as f64)])?;
            let stats = if p.rule == RULE_NV {
                // atomicMax starts from 0 (+0.0's bits); a new buffer is zeroed, the clear says so.
                let stats = ctx.storage("runtime quant stats", 4)?;
                enc.clear_buffer(&stats, 0, None);
                let amax = ctx.pipeline(&source(), "tensor_amax", &[("WORKGROUP_SIZE", 256.0)])?;
                ctx.dispatch(enc, &amax, &params, &[x, &stats], n.div_ceil(256 * AMAX_CHUNK));
                stats
            } else {
                // Bound (the layout wants it) but never read outside NVFP4.
                ctx.storage("runtime quant stats (unused)", 4)?
            };
            ctx.dispatch(enc, &groups_pipeline, &params, &[x, &stats], workgroups);
        }
        Granularity::Tensor => {
            let stats = ctx.storage("runtime quant stats", 4)?;
            enc.clear_buffer(&stats, 0, None);
            let amax = ctx.pipeline(&source(), "tensor_amax", &[("WORKGROUP_SIZE", 256.0)])?;
            ctx.dispatch(enc, &amax, &params, &[x, &stats], n.div_ceil(256 * AMAX_CHUNK));
            let apply = ctx.pipeline(&source(), "elementwise", &[("WORKGROUP_SIZE", 256.0)])?;
            ctx.dispatch(enc, &apply, &params, &[x, &stats], n.div_ceil(256));
        }
        Granularity::Channel => {
            let stats = ctx.storage("runtime quant stats", p.cols as u64 * 4)?;
            let amax = ctx.pipeline(&source(), "channel_amax", &[("WORKGROUP_SIZE", 64.0)])?;
            ctx.dispatch(enc, &amax, &params, &[x, &stats], p.cols.div_ceil(64));
            let apply = ctx.pipeline(&source(), "elementwise", &[("WORKGROUP_SIZE", 256.0)])?;
            ctx.dispatch(enc, &apply, &params, &[x, &stats], n.div_ceil(256));
        }
    }
    Ok(())
}

/// Who shares a scale, as the kernel's entries see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Granularity {
    /// Groups of `group` consecutive elements along a row (a token, a KV group, a block).
    Groups,
    Tensor,
    Channel,
}

/// Fake-quantizes the activation `x` (`[tokens × k]`, row-major, in place) under `scheme`, as
/// `quant::activation::fake_quantize` does on the CPU. `-clipP` is refused (a typed error).
pub fn fake_quantize_activation(
    ctx: &GpuContext,
    enc: &mut Recorder,
    scheme: &ActScheme,
    x: &wgpu::Buffer,
    tokens: u32,
    k: u32,
) -> Result<(), GpuError> {
    check_activation_scheme(scheme)?;
    if k == 0 {
        return Err(shape("activation rows of 0 channels".into()));
    }
    if scheme.hadamard.is_some() {
        // Rotate each token, quantize in the rotated basis, rotate back (H is self-inverse).
        let block = hadamard_block(scheme, k)?;
        let unrotated = ActScheme { hadamard: None, ..*scheme };
        rotate(ctx, enc, x, tokens, k, block)?;
        fake_quantize_activation(ctx, enc, &unrotated, x, tokens, k)?;
        return rotate(ctx, enc, x, tokens, k, block);
    }
    if let Some(percentile) = scheme.clip {
        // Clamp each scale group (the tensor, a token, a channel; a token for the block formats)
        // to ±its percentile of |x|, then quantize unclipped, as the CPU.
        let granularity = match scheme.format {
            ActFormat::Int { granularity, .. } | ActFormat::Fp8 { granularity, .. } => granularity,
            ActFormat::MxFp4 | ActFormat::NvFp4 => ActGranularity::Token,
        };
        match granularity {
            ActGranularity::Tensor => clip_tensor(ctx, enc, x, tokens, k, percentile)?,
            ActGranularity::Token => clip_groups(ctx, enc, x, tokens, k, percentile, false)?,
            ActGranularity::Channel => clip_groups(ctx, enc, x, tokens, k, percentile, true)?,
        }
        let unclipped = ActScheme { clip: None, ..*scheme };
        return fake_quantize_activation(ctx, enc, &unclipped, x, tokens, k);
    }
    let per = |p: Params, granularity: ActGranularity| match granularity {
        ActGranularity::Token => (Params { group: k, ..p }, Granularity::Groups),
        ActGranularity::Tensor => (p, Granularity::Tensor),
        ActGranularity::Channel => (Params { per_channel: true, ..p }, Granularity::Channel),
    };
    let (p, granularity) = match scheme.format {
        ActFormat::Int { bits, granularity } => per(int_params(bits), granularity),
        ActFormat::Fp8 { format, granularity } => per(fp_params(format), granularity),
        ActFormat::MxFp4 => {
            (Params { rule: RULE_MX, group: MX_BLOCK as u32, ..fp_params(MiniFloat::E2M1) }, Granularity::Groups)
        }
        ActFormat::NvFp4 => {
            (Params { rule: RULE_NV, group: NVFP4_BLOCK as u32, ..fp_params(MiniFloat::E2M1) }, Granularity::Groups)
        }
    };
    record(ctx, enc, x, Params { rows: tokens, cols: k, ..p }, granularity)
}

/// The Hadamard block of `scheme` for rows of `k` (the CPU's rule), refused past `MAX_HADAMARD`.
pub fn hadamard_block(scheme: &ActScheme, k: u32) -> Result<u32, GpuError> {
    let requested = scheme.hadamard.unwrap_or(0);
    let block =
        block_size(requested, k as usize).map_err(|reason| shape(format!("activation scheme {scheme}: {reason}")))?;
    if block > MAX_HADAMARD as usize {
        return Err(shape(format!(
            "activation scheme {scheme}: Hadamard blocks above {MAX_HADAMARD} run only on the CPU"
        )));
    }
    Ok(block as u32)
}

/// Clamps `x` (`[rows × cols]`) to ±its `percentile`-th percentile of |x| (numpy's linear
/// interpolation between the two ranks around p/100·(n − 1), both found exactly by the radix
/// select; the interpolation itself in f32).
fn clip_tensor(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    percentile: f64,
) -> Result<(), GpuError> {
    let n = checked_elements(x, rows, cols)?;
    if n == 0 {
        return Ok(());
    }
    let rank = percentile / 100.0 * (n - 1) as f64;
    let (lo, hi) = (rank.floor() as u32, rank.ceil() as u32);
    let (lo_state, hi_state) = (
        ctx.storage("clip select lo", SELECT_STATE_WORDS * 4)?,
        ctx.storage("clip select hi", SELECT_STATE_WORDS * 4)?,
    );
    select_abs(ctx, enc, x, n as u32, lo, &lo_state)?;
    select_abs(ctx, enc, x, n as u32, hi, &hi_state)?;
    // The high rank's value into the low state's unused word 3, so one binding holds both.
    enc.copy_buffer_to_buffer(&hi_state, 0, &lo_state, 12, 4);
    let mut params = Params { rows, cols, ..Default::default() }.uniform();
    params.scale_floor = (rank - lo as f64) as f32; // scale_floor carries the fraction here
    let pipeline = ctx.pipeline(&source(), "clip_tensor", &[("WORKGROUP_SIZE", 256.0)])?;
    ctx.dispatch(enc, &pipeline, &params, &[x, &lo_state], (n as u32).div_ceil(256));
    Ok(())
}

/// Clamps each row (or with `per_channel` each column) of `x` (`[rows × cols]`) to ±its
/// `percentile`-th percentile of |x|: a workgroup per group, its own radix select in workgroup
/// memory for the two ranks around p/100·(m − 1).
#[allow(clippy::too_many_arguments)]
fn clip_groups(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    percentile: f64,
    per_channel: bool,
) -> Result<(), GpuError> {
    let n = checked_elements(x, rows, cols)?;
    if n == 0 {
        return Ok(());
    }
    let (groups, m) = if per_channel { (cols, rows) } else { (rows, cols) };
    let rank = percentile / 100.0 * (m - 1) as f64;
    let (lo, hi) = (rank.floor() as u32, rank.ceil() as u32);
    let mut params = Params { rows, cols, per_channel, ..Default::default() }.uniform();
    // This entry's fields: rank lo in qmax, rank hi in man_bits, the fraction in scale_floor.
    params.qmax = lo;
    params.man_bits = hi;
    params.scale_floor = (rank - lo as f64) as f32;
    let pipeline = ctx.pipeline(&source(), "clip_groups", &[("WORKGROUP_SIZE", 256.0)])?;
    ctx.dispatch(enc, &pipeline, &params, &[x], groups);
    Ok(())
}

/// Rotates every row of `x` (`[rows × cols]`) by `H/√block` in consecutive blocks, in place.
fn rotate(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    block: u32,
) -> Result<(), GpuError> {
    let n = checked_elements(x, rows, cols)?;
    if n == 0 {
        return Ok(());
    }
    let norm = (1.0 / (block as f64).sqrt()) as f32;
    let mut params = Params { rows, cols, group: block, ..Default::default() }.uniform();
    params.max_finite = norm; // max_finite carries the norm for this entry
    let lanes = if block <= 64 { 64 } else { 256 };
    let pipeline = ctx.pipeline(&source(), "hadamard", &[("WORKGROUP_SIZE", lanes as f64)])?;
    // The entry reads no stats, so its layout has bindings 0 and 1 only.
    ctx.dispatch(enc, &pipeline, &params, &[x], rows * (cols / block));
    Ok(())
}

/// Whether the GPU runs `scheme` (int of 2 to 8 bits; every other name the CPU parses).
pub fn check_activation_scheme(scheme: &ActScheme) -> Result<(), GpuError> {
    if let ActFormat::Int { bits, .. } = scheme.format {
        if !(2..=8).contains(&bits) {
            return Err(shape(format!("activation scheme {scheme}: int takes 2 to 8 bits")));
        }
    }
    Ok(())
}

/// Fake-quantizes new keys or values `x` (`[tokens × width]`, `width` = n_kv_heads · head_dim,
/// in place) under `scheme`, as `quant::kv::fake_quantize_kv` does on the CPU.
pub fn fake_quantize_kv(
    ctx: &GpuContext,
    enc: &mut Recorder,
    scheme: &KvScheme,
    x: &wgpu::Buffer,
    tokens: u32,
    width: u32,
    head_dim: u32,
) -> Result<(), GpuError> {
    if head_dim == 0 || width == 0 || !width.is_multiple_of(head_dim) {
        return Err(shape(format!("KV width {width} is not a positive multiple of head_dim {head_dim}")));
    }
    let p = match scheme.format {
        KvFormat::Int { bits, group, e4m3_scales } => {
            if !(2..=8).contains(&bits) {
                return Err(shape(format!("KV scheme {scheme}: int takes 2 to 8 bits")));
            }
            let group = match group {
                None => head_dim,
                Some(g) => u32::try_from(g).map_err(|_| shape(format!("KV scheme {scheme}: group too large")))?,
            };
            Params { group, fp8_scale: e4m3_scales, ..int_params(bits) }
        }
        KvFormat::Fp8(format) => Params { group: head_dim, ..fp_params(format) },
    };
    if p.group == 0 {
        return Err(shape("a KV group of 0 channels".into()));
    }
    record(ctx, enc, x, Params { rows: tokens, cols: width, ..p }, Granularity::Groups)
}

/// The attention probabilities' quantizer ready for `shaders/attention.wgsl`: the CPU's
/// [`ProbQuantizer`] and, for AdaLog, its per-layer dequantization tables uploaded as they are
/// (`[layers × 2^bits]`), so GPU and CPU share every table value; the GPU only computes the code
/// k = RNE(−log2(p)·r/q), in f32 where the CPU uses f64 (a code can differ where that product
/// lies within f32 rounding of a half-integer).
#[derive(Debug)]
pub struct GpuProbQuant {
    pub quantizer: ProbQuantizer,
    table: Option<wgpu::Buffer>,
}

impl GpuProbQuant {
    /// `layers`: the model's layer count (AdaLog's tables are uploaded for each).
    pub fn new(ctx: &GpuContext, quantizer: &ProbQuantizer, layers: usize) -> Result<GpuProbQuant, GpuError> {
        let table = match quantizer.scheme {
            ProbScheme::AdaLog { bits, .. } => {
                if quantizer.layer_q.is_empty() {
                    return Err(shape(format!("{}: AdaLog has no q for any layer", quantizer.scheme)));
                }
                let mut all = Vec::with_capacity(layers << bits);
                for layer in 0..layers {
                    // The CPU's rule: a layer past the searched ones uses the last q.
                    let table = quantizer.table(layer.min(quantizer.layer_q.len() - 1));
                    let table =
                        table.ok_or_else(|| shape(format!("{}: no table for layer {layer}", quantizer.scheme)))?;
                    all.extend_from_slice(table);
                }
                Some(ctx.upload_f32("adalog tables", &all)?)
            }
            _ => None,
        };
        Ok(GpuProbQuant { quantizer: quantizer.clone(), table })
    }

    /// The attention kernel's probability quantization fields for `layer`.
    pub(crate) fn params(&self, layer: usize) -> Result<ProbQuantParams, GpuError> {
        let off = ProbQuantParams::default();
        Ok(match self.quantizer.scheme {
            ProbScheme::Uniform { bits } => {
                ProbQuantParams { prob_mode: 1, prob_levels: ((1u32 << bits) - 1) as f32, ..off }
            }
            ProbScheme::AdaLog { bits, .. } => {
                let q = self.quantizer.layer_q[layer.min(self.quantizer.layer_q.len().saturating_sub(1))];
                let codes = 1u32 << bits;
                let at = u32::try_from(layer as u64 * codes as u64)
                    .map_err(|_| shape(format!("AdaLog table of layer {layer} past 32-bit indices")))?;
                if self.table.as_ref().is_none_or(|t| t.size() < (at as u64 + codes as u64) * 4) {
                    return Err(shape(format!("no AdaLog table uploaded for layer {layer}")));
                }
                let prob_ratio = (ADALOG_R as f64 / q as f64) as f32;
                ProbQuantParams { prob_mode: 2, prob_ratio, prob_codes: codes, prob_table_at: at, ..off }
            }
            ProbScheme::Sab => ProbQuantParams { prob_mode: 3, ..off },
        })
    }

    pub(crate) fn table(&self) -> Option<&wgpu::Buffer> {
        self.table.as_ref()
    }
}

/// Runtime quantization of the model under study in a GPU step (`Capture::runtime`), built from
/// the CPU's description ([`RuntimeQuant`]): the linear layers' inputs, the new keys and values,
/// the attention probabilities. Each part is off when `None`, and then records no work at all.
#[derive(Debug, Default)]
pub struct GpuRuntimeQuant {
    pub activations: Option<ActivationSchemes>,
    pub kv: Option<KvScheme>,
    pub probs: Option<GpuProbQuant>,
    /// Calibrated linear inputs (SQ-b / OutlierTune shifts, static scales), uploaded.
    inputs: HashMap<(usize, LinearInput), GpuInputCalibration>,
    /// FireQ's per-layer key-channel scales, uploaded.
    key_scales: Option<Vec<wgpu::Buffer>>,
}

impl GpuRuntimeQuant {
    /// The GPU version of `quant`, for a model of `config`, its calibrated vectors uploaded.
    /// Refused (a typed error naming the part): percentile clipping of activations.
    pub fn new(ctx: &GpuContext, quant: &RuntimeQuant, config: &LlamaConfig) -> Result<GpuRuntimeQuant, GpuError> {
        if let Some(a) = &quant.activations {
            let classes = [
                (LinearInput::AttnQkv, config.d_model),
                (LinearInput::AttnOutput, config.q_dim()),
                (LinearInput::MlpGateUp, config.d_model),
                (LinearInput::MlpDown, config.d_ff),
            ];
            for (input, k) in classes {
                let scheme = a.for_input(input);
                check_activation_scheme(scheme)?;
                if scheme.hadamard.is_some() {
                    hadamard_block(scheme, k as u32)?;
                }
            }
        }
        let probs = match &quant.probs {
            Some(p) => Some(GpuProbQuant::new(ctx, p, config.n_layers)?),
            None => None,
        };
        let mut inputs = HashMap::new();
        for (&(layer, input), calibration) in &quant.inputs {
            let label = |what: &str| format!("layer {layer} {input:?} {what}");
            if calibration.fp_bias.is_some() {
                return Err(shape(label("LLM-FP4 static FP quantizer: runs only on the CPU reference")));
            }
            let shift = match &calibration.shift {
                Some(z) => {
                    let minus: Vec<f32> = z.iter().map(|v| -v).collect();
                    Some([ctx.upload_f32(&label("−shift"), &minus)?, ctx.upload_f32(&label("shift"), z)?])
                }
                None => None,
            };
            let static_scales = match &calibration.static_scales {
                Some(s) => Some(ctx.upload_f32(&label("static scales"), &s.scales)?),
                None => None,
            };
            let width =
                calibration.shift.as_ref().map(Vec::len).or(calibration.static_scales.as_ref().map(|s| s.scales.len()));
            inputs
                .insert((layer, input), GpuInputCalibration { shift, static_scales, width: width.unwrap_or(0) as u32 });
        }
        let key_scales = match &quant.key_scales {
            Some(layers) => {
                let kv_dim = config.kv_dim();
                if let Some((l, s)) = layers.iter().enumerate().find(|(_, s)| s.len() != kv_dim) {
                    return Err(shape(format!(
                        "FireQ key scales of layer {l}: {} channels, the keys have {kv_dim}",
                        s.len()
                    )));
                }
                let uploads: Result<Vec<_>, _> =
                    layers.iter().enumerate().map(|(l, s)| ctx.upload_f32(&format!("key scales {l}"), s)).collect();
                Some(uploads?)
            }
            None => None,
        };
        Ok(GpuRuntimeQuant { activations: quant.activations, kv: quant.kv, probs, inputs, key_scales })
    }

    pub fn is_off(&self) -> bool {
        self.activations.is_none()
            && self.kv.is_none()
            && self.probs.is_none()
            && self.inputs.is_empty()
            && self.key_scales.is_none()
    }

    /// Whether it changes what the linear layers read: the forward must then keep the normed
    /// rows in a buffer of their own instead of normalizing inside the projections.
    pub fn changes_linear_inputs(&self) -> bool {
        self.activations.is_some() || !self.inputs.is_empty()
    }

    /// Whether it changes the new keys or values before the cache holds them: the forward must
    /// then rotate them apart from the cache append.
    pub fn changes_keys(&self) -> bool {
        self.kv.is_some() || self.key_scales.is_some()
    }

    /// Quantizes the input `x` (`[tokens × k]`) of the linear layers of `layer` that read `input`,
    /// as `RuntimeQuantizer::before_linear`: `x − z`, static scales if calibrated (else the dynamic
    /// scheme, if any), `+ z`.
    #[allow(clippy::too_many_arguments)]
    pub fn quantize_input(
        &self,
        ctx: &GpuContext,
        enc: &mut Recorder,
        layer: usize,
        input: LinearInput,
        x: &wgpu::Buffer,
        tokens: u32,
        k: u32,
    ) -> Result<(), GpuError> {
        let calibration = self.inputs.get(&(layer, input));
        if let Some(c) = calibration {
            if c.width != k {
                return Err(shape(format!(
                    "layer {layer} {input:?}: calibrated for {} channels, the input has {k}",
                    c.width
                )));
            }
        }
        let shift = calibration.and_then(|c| c.shift.as_ref());
        if let Some([minus, _]) = shift {
            add_rows_in_place(ctx, enc, x, minus, tokens * k, k)?;
        }
        match (calibration.and_then(|c| c.static_scales.as_ref()), &self.activations) {
            (Some(scales), _) => per_channel_pass(
                ctx,
                enc,
                "static_channel",
                x,
                scales,
                k,
                Params { rows: tokens, cols: k, ..Default::default() },
            )?,
            (None, Some(schemes)) => fake_quantize_activation(ctx, enc, schemes.for_input(input), x, tokens, k)?,
            (None, None) => {}
        }
        if let Some([_, plus]) = shift {
            add_rows_in_place(ctx, enc, x, plus, tokens * k, k)?;
        }
        Ok(())
    }

    /// FireQ's RoPE-aware rescaling of layer `layer`, as `RuntimeQuantizer::after_rope` does before
    /// the cache quantizer: keys `[tokens × kv_dim]` × σ, queries `[tokens × q_dim]` ÷ σ of their
    /// KV head's channel. Nothing without key scales.
    #[allow(clippy::too_many_arguments)]
    pub fn scale_keys(
        &self,
        ctx: &GpuContext,
        enc: &mut Recorder,
        layer: usize,
        q: &wgpu::Buffer,
        k: &wgpu::Buffer,
        tokens: u32,
        shape: AttentionShape,
    ) -> Result<(), GpuError> {
        let Some(scales) = self.key_scales.as_ref().and_then(|s| s.get(layer)) else { return Ok(()) };
        let AttentionShape { n_heads, n_kv_heads, head_dim } = shape;
        if n_kv_heads == 0 || head_dim == 0 || n_heads % n_kv_heads != 0 {
            return Err(self::shape(format!(
                "FireQ key scales: {n_heads} heads over {n_kv_heads} KV heads of {head_dim}"
            )));
        }
        let keys = Params { rows: tokens, cols: n_kv_heads * head_dim, ..Default::default() };
        let kv_dim = n_kv_heads * head_dim;
        per_channel_pass(ctx, enc, "key_scale", k, scales, kv_dim, keys)?;
        let queries = Params {
            rows: tokens,
            cols: n_heads * head_dim,
            group: head_dim,
            groups_per_row: Some(n_heads / n_kv_heads.max(1)),
            per_channel: true,
            ..Default::default()
        };
        per_channel_pass(ctx, enc, "key_scale", q, scales, kv_dim, queries)
    }
}

/// A calibrated linear input on the GPU: −z and z (for `x − z` and `+ z`), static scales.
#[derive(Debug)]
struct GpuInputCalibration {
    shift: Option<[wgpu::Buffer; 2]>,
    static_scales: Option<wgpu::Buffer>,
    width: u32,
}

/// One invocation per element of `x` with a per-channel vector in the stats binding.
fn per_channel_pass(
    ctx: &GpuContext,
    enc: &mut Recorder,
    entry: &str,
    x: &wgpu::Buffer,
    channels: &wgpu::Buffer,
    channels_len: u32,
    p: Params,
) -> Result<(), GpuError> {
    let n = checked_elements(x, p.rows, p.cols)?;
    require_len(KERNEL, "channel vector", channels, channels_len as u64)?;
    if n == 0 {
        return Ok(());
    }
    let pipeline = ctx.pipeline(&source(), entry, &[("WORKGROUP_SIZE", 256.0)])?;
    ctx.dispatch(enc, &pipeline, &p.uniform(), &[x, channels], (n as u32).div_ceil(256));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_carry_the_cpu_codec_constants() {
        let u = Params { rows: 3, cols: 100, group: 32, ..fp_params(MiniFloat::E2M1) }.uniform();
        assert_eq!((u.group, u.groups_per_row), (32, 4), "groups per row round up: the last block is short");
        assert_eq!((u.man_bits, u.min_normal_exp, u.max_finite, u.emax_elem), (1, 0, 6.0, 2));
        let u = fp_params(MiniFloat::E4M3).uniform();
        assert_eq!((u.man_bits, u.min_normal_exp, u.max_finite), (3, -6, 448.0));
        let u = fp_params(MiniFloat::E5M2).uniform();
        assert_eq!((u.man_bits, u.min_normal_exp, u.max_finite), (2, -14, 57344.0));
        assert_eq!(int_params(4).uniform().qmax, 7);
        assert_eq!(std::mem::size_of::<QuantUniform>(), 13 * 4, "the WGSL struct has 13 scalar fields");
    }
}
