//! `shaders/runtime_quant.wgsl`: runtime fake quantization in the GPU forward, the same as the CPU
//! references: activations (`quant::activation::fake_quantize`: int2–8 and FP8 per tensor, token
//! or channel, MXFP4, NVFP4) and the new keys and values of the KV cache (int per token per group,
//! optionally with E4M3 group scales, FIRE-Q style; FP8 per token per head).
//!
//! Dispatches: per token, KV, MXFP4: one (a workgroup per scale group); per tensor and per
//! channel: two (max |x|, then the elements); NVFP4: two (the tensor's max |x| for its f32 second
//! level, then the blocks). Percentile clipping (`-clipP`) is refused with a typed error: it needs
//! a select per scale group (see `shaders/select.wgsl`), which is not wired here.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, ShaderSource};
use crate::quant::activation::forward::ActivationSchemes;
use crate::quant::activation::{ActFormat, ActGranularity, ActScheme};
use crate::quant::float::{MX_BLOCK, NVFP4_BLOCK};
use crate::quant::minifloat::Codec;
use crate::quant::MiniFloat;

const KERNEL: &str = "runtime_quant";
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

/// How the KV cache's new keys and values are fake-quantized (the GPU's copy of the CPU's
/// `quant::kv::KvScheme`; see [`GpuKvScheme::parse`] for the names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GpuKvScheme {
    /// Symmetric RTN of `bits` per token per group of `group` channels (None: one head); with
    /// `fp8_scales`, each group scale is stored as E4M3 (RNE), floored at 2^−9.
    Int { bits: u8, group: Option<u32>, fp8_scales: bool },
    /// FP8 per token per head: scale amax / max finite, elements RNE, saturating.
    Fp8 { format: MiniFloat },
}

/// The smallest E4M3 group scale FIRE-Q's INT4 KV cache stores (2^−9, E4M3's smallest subnormal):
/// a group so small that its scale would round to 0 keeps a usable one.
pub const KV_SCALE_FLOOR: f32 = 1.0 / 512.0;

impl GpuKvScheme {
    /// `int8`, `int4`, `intB-gN`, any of them with `-e4m3` (E4M3 group scales), `fp8-e4m3`,
    /// `fp8-e5m2`: the grammar of `quant::kv`.
    pub fn parse(name: &str) -> Result<GpuKvScheme, GpuError> {
        let bad = || shape(format!("unknown KV scheme {name:?} (int8, int4, intB-gN, …-e4m3, fp8-e4m3, fp8-e5m2)"));
        let lowered = name.trim().to_ascii_lowercase();
        let words: Vec<&str> = lowered.split('-').collect();
        match words.as_slice() {
            ["fp8", "e4m3"] => return Ok(GpuKvScheme::Fp8 { format: MiniFloat::E4M3 }),
            ["fp8", "e5m2"] => return Ok(GpuKvScheme::Fp8 { format: MiniFloat::E5M2 }),
            _ => {}
        }
        let (head, rest) = words.split_first().ok_or_else(bad)?;
        let bits: u8 = head.strip_prefix("int").and_then(|b| b.parse().ok()).ok_or_else(bad)?;
        if !(2..=8).contains(&bits) {
            return Err(bad());
        }
        let (mut group, mut fp8_scales) = (None, false);
        for word in rest {
            match *word {
                "e4m3" if !fp8_scales => fp8_scales = true,
                w if group.is_none() && w.starts_with('g') => {
                    group = Some(w[1..].parse::<u32>().ok().filter(|&g| g > 0).ok_or_else(bad)?)
                }
                _ => return Err(bad()),
            }
        }
        Ok(GpuKvScheme::Int { bits, group, fp8_scales })
    }
}

/// The uniform `Params` of the WGSL, field by field.
#[derive(Debug, Clone, Copy, Default)]
struct Params {
    rows: u32,
    cols: u32,
    group: u32,
    rule: u32,
    qmax: u32,
    element: Option<Codec>,
    fp8_scale: bool,
    per_channel: bool,
}

impl Params {
    fn words(&self) -> [u32; 13] {
        let (man_bits, min_normal_exp, max_finite, emax) = match self.element {
            Some(codec) => {
                let max = codec.max_finite();
                (codec.man_bits, 1 - codec.bias, max, max.log2().floor() as i32)
            }
            None => (0, 0, 0.0, 0),
        };
        let group = self.group.max(1);
        [
            self.rows,
            self.cols,
            group,
            self.cols.div_ceil(group),
            self.rule,
            self.qmax,
            man_bits,
            min_normal_exp as u32,
            max_finite.to_bits(),
            emax as u32,
            self.fp8_scale as u32,
            KV_SCALE_FLOOR.to_bits(),
            self.per_channel as u32,
        ]
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
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    p: Params,
    granularity: Granularity,
) -> Result<(), GpuError> {
    let n = p.rows as u64 * p.cols as u64;
    if n > u32::MAX as u64 {
        return Err(shape(format!("{}×{} overflows 32-bit indices", p.rows, p.cols)));
    }
    require_len(KERNEL, "x", x, n)?;
    if n == 0 {
        return Ok(());
    }
    let params = ctx.uniform("runtime quant params", &p.words());
    let n = n as u32;
    match granularity {
        Granularity::Groups => {
            let groups = p.rows as u64 * p.cols.div_ceil(p.group.max(1)) as u64;
            if groups > u32::MAX as u64 {
                return Err(shape(format!("{groups} scale groups overflow the grid")));
            }
            // A workgroup per group: 64 lanes for head- and block-sized groups, 256 for rows.
            let lanes = if p.group <= 64 { 64 } else { 256 };
            let groups_pipeline = ctx.pipeline(&source(), "groups", &[("WORKGROUP_SIZE", lanes as f64)])?;
            let stats = if p.rule == RULE_NV {
                let stats = ctx.storage("runtime quant stats", 4)?;
                enc.clear_buffer(&stats, 0, None);
                let amax = ctx.pipeline(&source(), "tensor_amax", &[("WORKGROUP_SIZE", 256.0)])?;
                ctx.dispatch(enc, &amax, &[&params, x, &stats], n.div_ceil(256 * AMAX_CHUNK));
                stats
            } else {
                // Bound (the layout wants it) but never read outside NVFP4.
                ctx.storage("runtime quant stats (unused)", 4)?
            };
            ctx.dispatch(enc, &groups_pipeline, &[&params, x, &stats], groups as u32);
        }
        Granularity::Tensor => {
            let stats = ctx.storage("runtime quant stats", 4)?;
            enc.clear_buffer(&stats, 0, None);
            let amax = ctx.pipeline(&source(), "tensor_amax", &[("WORKGROUP_SIZE", 256.0)])?;
            ctx.dispatch(enc, &amax, &[&params, x, &stats], n.div_ceil(256 * AMAX_CHUNK));
            let apply = ctx.pipeline(&source(), "elementwise", &[("WORKGROUP_SIZE", 256.0)])?;
            ctx.dispatch(enc, &apply, &[&params, x, &stats], n.div_ceil(256));
        }
        Granularity::Channel => {
            let stats = ctx.storage("runtime quant stats", p.cols as u64 * 4)?;
            let amax = ctx.pipeline(&source(), "channel_amax", &[("WORKGROUP_SIZE", 64.0)])?;
            ctx.dispatch(enc, &amax, &[&params, x, &stats], p.cols.div_ceil(64));
            let apply = ctx.pipeline(&source(), "elementwise", &[("WORKGROUP_SIZE", 256.0)])?;
            ctx.dispatch(enc, &apply, &[&params, x, &stats], n.div_ceil(256));
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
    enc: &mut wgpu::CommandEncoder,
    scheme: &ActScheme,
    x: &wgpu::Buffer,
    tokens: u32,
    k: u32,
) -> Result<(), GpuError> {
    check_activation_scheme(scheme)?;
    if k == 0 {
        return Err(shape("activation rows of 0 channels".into()));
    }
    let per = |p: Params, granularity: ActGranularity| match granularity {
        ActGranularity::Token => (Params { group: k, ..p }, Granularity::Groups),
        ActGranularity::Tensor => (p, Granularity::Tensor),
        ActGranularity::Channel => (Params { per_channel: true, ..p }, Granularity::Channel),
    };
    let (p, granularity) = match scheme.format {
        ActFormat::Int { bits, granularity } => per(int_params(bits), granularity),
        ActFormat::Fp8 { format, granularity } => per(fp_params(format), granularity),
        ActFormat::MxFp4 => (
            Params { rule: RULE_MX, group: MX_BLOCK as u32, ..fp_params(MiniFloat::E2M1) },
            Granularity::Groups,
        ),
        ActFormat::NvFp4 => (
            Params { rule: RULE_NV, group: NVFP4_BLOCK as u32, ..fp_params(MiniFloat::E2M1) },
            Granularity::Groups,
        ),
    };
    record(ctx, enc, x, Params { rows: tokens, cols: k, ..p }, granularity)
}

/// Whether the GPU runs `scheme` (everything but percentile clipping, and int of 2 to 8 bits).
pub fn check_activation_scheme(scheme: &ActScheme) -> Result<(), GpuError> {
    if let Some(p) = scheme.clip {
        return Err(shape(format!(
            "activation scheme {scheme}: percentile clipping (-clip{p}) runs only on the CPU reference"
        )));
    }
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
    enc: &mut wgpu::CommandEncoder,
    scheme: &GpuKvScheme,
    x: &wgpu::Buffer,
    tokens: u32,
    width: u32,
    head_dim: u32,
) -> Result<(), GpuError> {
    if head_dim == 0 || width == 0 || width % head_dim != 0 {
        return Err(shape(format!("KV width {width} is not a positive multiple of head_dim {head_dim}")));
    }
    let p = match *scheme {
        GpuKvScheme::Int { bits, group, fp8_scales } => {
            if !(2..=8).contains(&bits) {
                return Err(shape(format!("KV int takes 2 to 8 bits, not {bits}")));
            }
            Params { group: group.unwrap_or(head_dim), fp8_scale: fp8_scales, ..int_params(bits) }
        }
        GpuKvScheme::Fp8 { format } => Params { group: head_dim, ..fp_params(format) },
    };
    if p.group == 0 {
        return Err(shape("a KV group of 0 channels".into()));
    }
    record(ctx, enc, x, Params { rows: tokens, cols: width, ..p }, Granularity::Groups)
}

/// How attention probabilities are quantized after the softmax, before P·V (the GPU's copy of the
/// CPU's `quant::attention_probs::ProbQuantizer`). Read by `shaders/attention.wgsl`.
#[derive(Debug)]
pub struct GpuProbQuant {
    pub kind: GpuProbKind,
    /// AdaLog: the dequantization tables of every layer, `[layers × 2^bits]`.
    table: Option<wgpu::Buffer>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GpuProbKind {
    /// x̂ = RNE(x·(2^b − 1)) / (2^b − 1).
    Uniform { bits: u8 },
    /// AdaLog with r = [`ADALOG_R`] and the per-layer `q` (one per layer).
    AdaLog { bits: u8, q: Vec<f32> },
    /// BiViT's softmax-aware binarization: 1 where x ≥ 0.25 · the row's max, else 0.
    Sab,
}

/// AdaLog's r: the log base is 2^(q/r).
pub const ADALOG_R: f64 = 37.0;

/// AdaLog's dequantization table for `bits` and `q`: entry k = 2^−T1[k] · T2[k], T1[k] =
/// floor(k·q/r), T2[k] = RNE(2^(−((q·k) mod r)/r) · (2^(b+1) − 2)) / (2^(b+1) − 2).
pub fn adalog_table(bits: u8, q: f64) -> Vec<f32> {
    let denominator = ((1u64 << (bits + 1)) - 2) as f64;
    (0..1u64 << bits)
        .map(|k| {
            let k = k as f64;
            let t1 = (k * q / ADALOG_R).floor();
            let t2 = ((-((q * k) % ADALOG_R) / ADALOG_R).exp2() * denominator).round_ties_even() / denominator;
            ((-t1).exp2() * t2) as f32
        })
        .collect()
}

impl GpuProbQuant {
    pub fn uniform(bits: u8) -> Result<GpuProbQuant, GpuError> {
        if !(1..=16).contains(&bits) {
            return Err(shape(format!("uniform probability quantization takes 1 to 16 bits, not {bits}")));
        }
        Ok(GpuProbQuant { kind: GpuProbKind::Uniform { bits }, table: None })
    }

    pub fn sab() -> GpuProbQuant {
        GpuProbQuant { kind: GpuProbKind::Sab, table: None }
    }

    /// AdaLog of `bits` with `q[layer]` per layer; the tables are built here (f64, as the CPU's)
    /// and uploaded, so the GPU only looks up codes.
    pub fn adalog(ctx: &GpuContext, bits: u8, q: &[f32]) -> Result<GpuProbQuant, GpuError> {
        if !(1..=12).contains(&bits) {
            return Err(shape(format!("AdaLog takes 1 to 12 bits, not {bits}")));
        }
        if q.is_empty() || q.iter().any(|&q| !(q.is_finite() && q > 0.0)) {
            return Err(shape(format!("AdaLog needs a positive finite q per layer, got {q:?}")));
        }
        let table: Vec<f32> = q.iter().flat_map(|&q| adalog_table(bits, q as f64)).collect();
        let table = Some(ctx.upload_f32("adalog tables", &table)?);
        Ok(GpuProbQuant { kind: GpuProbKind::AdaLog { bits, q: q.to_vec() }, table })
    }

    /// The attention kernel's probability words for `layer`: prob_mode, prob_levels, prob_ratio,
    /// prob_codes, prob_table_at.
    pub(crate) fn words(&self, layer: usize) -> Result<[u32; 5], GpuError> {
        Ok(match &self.kind {
            GpuProbKind::Uniform { bits } => [1, (((1u32 << bits) - 1) as f32).to_bits(), 0, 0, 0],
            GpuProbKind::AdaLog { bits, q } => {
                let q = *q.get(layer).ok_or_else(|| shape(format!("AdaLog has no q for layer {layer}")))?;
                let codes = 1u32 << bits;
                [2, 0, ((ADALOG_R / q as f64) as f32).to_bits(), codes, codes * layer as u32]
            }
            GpuProbKind::Sab => [3, 0, 0, 0, 0],
        })
    }

    pub(crate) fn table(&self) -> Option<&wgpu::Buffer> {
        self.table.as_ref()
    }
}

/// Runtime quantization of the model under study in a GPU step (`Capture::runtime`): the linear
/// layers' inputs, the new keys and values, and the attention probabilities. Each part is off
/// when `None`, and then records no work at all.
#[derive(Debug, Default)]
pub struct GpuRuntimeQuant {
    pub activations: Option<ActivationSchemes>,
    pub kv: Option<GpuKvScheme>,
    pub probs: Option<GpuProbQuant>,
}

impl GpuRuntimeQuant {
    /// Checks that the GPU runs every part (percentile clipping does not).
    pub fn new(
        activations: Option<ActivationSchemes>,
        kv: Option<GpuKvScheme>,
        probs: Option<GpuProbQuant>,
    ) -> Result<GpuRuntimeQuant, GpuError> {
        if let Some(a) = &activations {
            check_activation_scheme(&a.default)?;
            if let Some(down) = &a.down {
                check_activation_scheme(down)?;
            }
        }
        Ok(GpuRuntimeQuant { activations, kv, probs })
    }

    pub fn is_off(&self) -> bool {
        self.activations.is_none() && self.kv.is_none() && self.probs.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_names_parse_and_bad_ones_are_refused() {
        let int = |bits, group, fp8_scales| GpuKvScheme::Int { bits, group, fp8_scales };
        assert_eq!(GpuKvScheme::parse("int8").unwrap(), int(8, None, false));
        assert_eq!(GpuKvScheme::parse("int4-g128-e4m3").unwrap(), int(4, Some(128), true));
        assert_eq!(GpuKvScheme::parse("INT4-e4m3").unwrap(), int(4, None, true));
        assert_eq!(GpuKvScheme::parse("fp8-e5m2").unwrap(), GpuKvScheme::Fp8 { format: MiniFloat::E5M2 });
        for bad in ["int9", "int4-g0", "int4-gx", "fp8-e3m4", "int4-e4m3-e4m3", "q8_0", ""] {
            assert!(GpuKvScheme::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_carry_the_cpu_codec_constants() {
        let w = Params { rows: 3, cols: 100, group: 32, ..fp_params(MiniFloat::E2M1) }.words();
        assert_eq!((w[2], w[3]), (32, 4), "groups per row round up: the last block is short");
        assert_eq!((w[6], w[7] as i32, f32::from_bits(w[8]), w[9] as i32), (1, 0, 6.0, 2));
        let w = fp_params(MiniFloat::E4M3).words();
        assert_eq!((w[6], w[7] as i32, f32::from_bits(w[8])), (3, -6, 448.0));
        let w = fp_params(MiniFloat::E5M2).words();
        assert_eq!((w[6], w[7] as i32, f32::from_bits(w[8])), (2, -14, 57344.0));
        assert_eq!(int_params(4).words()[5], 7);
    }
}
