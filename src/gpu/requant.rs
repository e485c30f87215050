//! Re-quantization on the GPU (`shaders/quantize.wgsl`): from a master weight already on the GPU
//! (the model as loaded, in its stored format) straight to the codebook layout the forward decodes,
//! without the weights leaving the GPU. This is what makes switching schemes live: the whole
//! default model re-quantizes in two dispatches per matrix.
//!
//! The data-parallel schemes run here: RTN int (symmetric and asymmetric, per row or group), NF4
//! (without double quantization), scaled small floats (per row or group), OCP MX, powers of two and
//! StatsQ. The rest (per-tensor scales, GGUF blocks, NVFP4's tensor scale, POST's percentile,
//! LLM-FP4, BCQ, PB-LLM, SplitQuant, double quantization, Hadamard) are quantized by the CPU
//! reference and uploaded ([`gpu_quantizable`] says which).
//!
//! The values agree with the CPU quantizers' except where an element lies on a rounding boundary
//! and the GPU's division lands on the other side (WGSL division is not correctly rounded), and
//! where the master's decode differs from the CPU's in the last bit (an FMA); such an element is
//! one level away. `tests/native/gpu_requant.rs` bounds how many.

use crate::error::GpuError;
use crate::gpu::weights::{CodebookLayout, GpuWeight};
use crate::gpu::{GpuContext, Recorder};
use crate::quant::minifloat::{self, Codec, LevelTable};
use crate::quant::{nf4, Granularity, MiniFloat, Scheme, SchemeKind, Sharing};

const KERNEL: &str = "quantize";
const WORKGROUP_SIZE: u32 = 64;

const RULE_INT_SYM: u32 = 0;
const RULE_INT_ASYM: u32 = 1;
const RULE_NEAREST_AMAX: u32 = 2;
const RULE_NEAREST_MX: u32 = 3;
const RULE_STATSQ: u32 = 4;

/// Everything the kernel needs to know about a scheme.
/// `Quant` of `shaders/quantize.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct QuantizeParams {
    rule: u32,
    group: u32,
    groups_per_row: u32,
    n_levels: u32,
    zero_code: u32,
    qmax: u32,
    divisor: f32,
    emax: i32,
    code_bits: u32,
    codes_at: u32,
    levels_at: u32,
    scales_at: u32,
    tie_parity: u32,
}

struct Plan {
    rule: u32,
    sharing: Sharing,
    /// The table every element indexes (empty for asymmetric int, whose tables are per group and
    /// written by the kernel).
    levels: Vec<f32>,
    /// Asymmetric int: 2^b levels per group.
    levels_per_group_table: usize,
    zero_code: u32,
    qmax: u32,
    divisor: f32,
    emax: i32,
    tie_parity: u32,
}

fn row_or_group(granularity: Granularity) -> Option<Sharing> {
    match granularity {
        Granularity::Tensor => None,
        Granularity::Channel => Some(Sharing::Row),
        Granularity::Group(n) => Some(Sharing::Group(n)),
    }
}

fn float_table(format: MiniFloat) -> (Vec<f32>, u32, f32) {
    let table = LevelTable::new(Codec::element(format));
    let zero = table.zero() as u32;
    (table.levels.clone(), zero, table.codec.max_finite())
}

fn plan(scheme: &Scheme) -> Option<Plan> {
    if scheme.hadamard.is_some() {
        return None;
    }
    let base = Plan {
        rule: RULE_NEAREST_AMAX,
        sharing: Sharing::Row,
        levels: Vec::new(),
        levels_per_group_table: 0,
        zero_code: 0,
        qmax: 0,
        divisor: 1.0,
        emax: 0,
        tie_parity: 0,
    };
    Some(match scheme.kind {
        SchemeKind::Int { bits, granularity, symmetric: true } => {
            let qmax = (1i32 << (bits - 1)) - 1;
            Plan {
                rule: RULE_INT_SYM,
                sharing: row_or_group(granularity)?,
                levels: (-qmax - 1..=qmax).map(|q| q as f32).collect(),
                zero_code: qmax as u32 + 1,
                qmax: qmax as u32,
                ..base
            }
        }
        SchemeKind::Int { bits, granularity, symmetric: false } => Plan {
            rule: RULE_INT_ASYM,
            sharing: row_or_group(granularity)?,
            levels_per_group_table: 1 << bits,
            qmax: (1u32 << bits) - 1,
            ..base
        },
        SchemeKind::Nf4 { block, double_quant: false } => Plan {
            sharing: Sharing::Group(block),
            levels: nf4::NF4.to_vec(),
            zero_code: nf4::NF4.iter().position(|&v| v == 0.0)? as u32,
            ..base
        },
        SchemeKind::Fp { format, granularity } => {
            let (levels, zero_code, max) = float_table(format);
            Plan {
                sharing: row_or_group(granularity)?,
                levels,
                zero_code,
                divisor: max,
                tie_parity: zero_code & 1,
                ..base
            }
        }
        SchemeKind::Mx { format } => {
            let (levels, zero_code, max) = float_table(format);
            Plan {
                rule: RULE_NEAREST_MX,
                sharing: Sharing::Group(crate::quant::float::MX_BLOCK),
                levels,
                zero_code,
                emax: minifloat::exponent(max as f64),
                tie_parity: zero_code & 1,
                ..base
            }
        }
        SchemeKind::Pot { bits } => {
            let levels = crate::quant::levels::pot_levels(bits);
            let zero_code = levels.iter().position(|&v| v == 0.0)? as u32;
            Plan { levels, zero_code, ..base }
        }
        SchemeKind::StatsQ { bits } => {
            let n = 1i32 << (bits - 1);
            Plan {
                rule: RULE_STATSQ,
                levels: (-n..n).map(|k| (k as f32 + 0.5) / n as f32).collect(),
                qmax: n as u32,
                ..base
            }
        }
        _ => return None,
    })
}

/// Whether [`quantize_on_gpu`] takes `scheme`.
pub fn gpu_quantizable(scheme: &Scheme) -> bool {
    plan(scheme).is_some()
}

/// Quantizes `master` with `scheme` on the GPU into a new codebook weight of the same name. The
/// work is recorded into `encoder` (submit it before using the result).
pub fn quantize_on_gpu(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    master: &GpuWeight,
    scheme: &Scheme,
) -> Result<GpuWeight, GpuError> {
    let shape = |message: String| GpuError::Shape { kernel: KERNEL, message };
    let plan = plan(scheme).ok_or_else(|| shape(format!("{scheme} is not quantized on the GPU")))?;
    let (rows, cols) = (master.n_out as usize, master.n_in as usize);
    let (group, groups_per_row) = match plan.sharing {
        Sharing::Group(0) => return Err(shape(format!("{scheme}: a group of 0"))),
        Sharing::Group(n) => (n, plan.sharing.groups_per_row(cols)),
        _ => (cols, 1),
    };
    let (levels_per_table, table_sharing) = if plan.levels_per_group_table > 0 {
        (plan.levels_per_group_table, plan.sharing)
    } else {
        (plan.levels.len(), Sharing::Tensor)
    };
    let code_bits = crate::quant::codebook::code_bits(levels_per_table);
    let layout = CodebookLayout::new(rows, cols, code_bits, levels_per_table, table_sharing, plan.sharing, false)
        .ok_or_else(|| shape(format!("{} quantized as {scheme} is too large for 32-bit indexing", master.name)))?;
    let out = ctx.storage(&format!("weight {} ({scheme})", master.name), layout.total as u64 * 4)?;
    ctx.queue.write_buffer(&out, 0, bytemuck::cast_slice(&layout.header));
    if !plan.levels.is_empty() {
        ctx.queue.write_buffer(&out, layout.levels_at as u64 * 4, bytemuck::cast_slice(&plan.levels));
    }
    let quant = QuantizeParams {
        rule: plan.rule,
        group: group as u32,
        groups_per_row: groups_per_row as u32,
        n_levels: plan.levels.len() as u32,
        zero_code: plan.zero_code,
        qmax: plan.qmax,
        divisor: plan.divisor,
        emax: plan.emax,
        code_bits,
        codes_at: layout.codes_at as u32,
        levels_at: layout.levels_at as u32,
        scales_at: layout.scales_at as u32,
        tie_parity: plan.tie_parity,
    };
    let quant = ctx.uniform("quantize params", &quant);
    let params = ctx.uniform("quantize weight params", &master.params(0));
    let source = master.shader(KERNEL, include_str!("../../shaders/quantize.wgsl"));
    let buffers = [&params, master.buffer("quantize")?, &out, &quant];
    let n_groups =
        u32::try_from(rows * groups_per_row).map_err(|_| shape(format!("too many groups in {}", master.name)))?;
    let scales = ctx.pipeline(&source, "scales", &[])?;
    ctx.dispatch_buffers(encoder, &scales, &buffers, n_groups);
    let chunks = master.n_out as u64 * master.n_chunks() as u64;
    let workgroups = u32::try_from(chunks.div_ceil(WORKGROUP_SIZE as u64))
        .map_err(|_| shape(format!("too many chunks in {}", master.name)))?;
    let codes = ctx.pipeline(&source, "codes", &[])?;
    ctx.dispatch_buffers(encoder, &codes, &buffers, workgroups);
    Ok(GpuWeight::from_codebook_buffer(&master.name, master.n_in, master.n_out, code_bits, out))
}
