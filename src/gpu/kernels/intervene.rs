//! Interventions in the GPU forward (`shaders/select.wgsl`, `shaders/intervene.wgsl`), the same as
//! the CPU reference's `model::intervene`: zero-massive and mean-massive need the exact lower
//! median of |x| of the layer's residual stream, clip:P the two ranks around its percentile; both
//! come from a radix select that runs entirely on the GPU, so the forward stays one encoder with no
//! readback. Drop-sink is a flag of the attention kernel.

use std::sync::Arc;

use crate::error::GpuError;
use crate::gpu::{GpuContext, Recorder, ShaderSource};
use crate::model::intervene::{Intervener, Intervention};
use crate::model::massive::{MASSIVE_FLOOR, RULE_FACTOR};

const KERNEL: &str = "intervene";
/// Words of a select's state: found bits, mask, remaining rank, unused, 256 digit counts.
const SELECT_STATE_WORDS: u64 = 4 + 256;
const SELECT_RUN: u64 = 32;

/// An intervention ready for the GPU forward: for mean-massive, its calibrated means uploaded
/// (`[layers × channels]`, 0 where the calibration never flagged the channel, as on the CPU).
#[derive(Debug)]
pub struct GpuIntervention {
    pub intervention: Intervention,
    means: Option<wgpu::Buffer>,
}

impl GpuIntervention {
    pub fn new(
        ctx: &GpuContext,
        intervener: &Intervener,
        layers: usize,
        channels: usize,
    ) -> Result<Arc<GpuIntervention>, GpuError> {
        let means = match intervener.means() {
            Some(m) => {
                let values: Vec<f32> =
                    (0..layers * channels).map(|i| m.mean(i / channels, i % channels).unwrap_or(0.0)).collect();
                Some(ctx.upload_f32("massive means", &values)?)
            }
            None => None,
        };
        Ok(Arc::new(GpuIntervention { intervention: intervener.intervention, means }))
    }

    pub fn drops_sink(&self) -> bool {
        self.intervention == Intervention::DropSink
    }
}

/// `Params` of `shaders/select.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SelectParams {
    n: u32,
    shift: u32,
    rank: u32,
}

/// `Params` of `shaders/intervene.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct InterveneParams {
    n: u32,
    channels: u32,
    mode: u32,
    layer: u32,
    fraction: f32,
    floor: f32,
    factor: f32,
}

/// Records a select of the value of rank `rank` among |x| (`n` values) into `state`.
pub fn select_abs(
    ctx: &GpuContext,
    enc: &mut Recorder,
    x: &wgpu::Buffer,
    n: u32,
    rank: u32,
    state: &wgpu::Buffer,
) -> Result<(), GpuError> {
    super::require_len(KERNEL, "x", x, n as u64)?;
    super::require_len(KERNEL, "select state", state, SELECT_STATE_WORDS)?;
    let source = ShaderSource::new("select", include_str!("../../../shaders/select.wgsl"));
    let (init, count, pick) = (
        ctx.pipeline(&source, "init", &[])?,
        ctx.pipeline(&source, "count", &[])?,
        ctx.pipeline(&source, "pick", &[])?,
    );
    let groups = (n as u64).div_ceil(SELECT_RUN * 256) as u32;
    ctx.dispatch(enc, &init, &SelectParams { n, shift: 0, rank }, &[state], 1);
    for shift in [24u32, 16, 8, 0] {
        let params = SelectParams { n, shift, rank };
        ctx.dispatch(enc, &count, &params, &[state, x], groups);
        ctx.dispatch(enc, &pick, &params, &[state], 1);
    }
    Ok(())
}

/// Applies `intervention` to the residual stream `x` (`tokens × channels`) after block `layer`.
pub fn intervene_after_block(
    ctx: &GpuContext,
    enc: &mut Recorder,
    intervention: &GpuIntervention,
    x: &wgpu::Buffer,
    tokens: u32,
    channels: u32,
    layer: usize,
) -> Result<(), GpuError> {
    let n = tokens * channels;
    let shape = |message: String| GpuError::Shape { kernel: KERNEL, message };
    let (mode, lo_rank, hi_rank, fraction) = match intervention.intervention {
        Intervention::DropSink => return Ok(()),
        // The lower median, as model::stats::lower_median.
        Intervention::ZeroMassive => (0u32, (n - 1) / 2, (n - 1) / 2, 0.0f32),
        Intervention::MeanMassive => (1, (n - 1) / 2, (n - 1) / 2, 0.0),
        Intervention::Clip(p) => {
            // numpy's linear interpolation between the ranks around p/100 · (n − 1).
            let rank = p / 100.0 * (n - 1) as f64;
            (2, rank.floor() as u32, rank.ceil() as u32, (rank - rank.floor()) as f32)
        }
    };
    let lo = ctx.storage("select lo", SELECT_STATE_WORDS * 4)?;
    select_abs(ctx, enc, x, n, lo_rank, &lo)?;
    let hi = if hi_rank != lo_rank {
        let hi = ctx.storage("select hi", SELECT_STATE_WORDS * 4)?;
        select_abs(ctx, enc, x, n, hi_rank, &hi)?;
        hi
    } else {
        lo.clone()
    };
    let stand_in;
    let means = match (&intervention.means, mode) {
        (Some(m), _) => m,
        (None, 1) => return Err(shape("mean-massive without calibrated means".into())),
        (None, _) => {
            stand_in = ctx.storage("means (unused)", 4)?;
            &stand_in
        }
    };
    let source = ShaderSource::new(KERNEL, include_str!("../../../shaders/intervene.wgsl"));
    let pipeline = ctx.pipeline(&source, "intervene", &[])?;
    let params = InterveneParams {
        n,
        channels,
        mode,
        layer: layer as u32,
        fraction,
        floor: MASSIVE_FLOOR,
        factor: RULE_FACTOR,
    };
    ctx.dispatch(enc, &pipeline, &params, &[x, &lo, &hi, means], n.div_ceil(256));
    Ok(())
}
