//! `shaders/probe.wgsl`: outlier summaries of an activation tensor `[tokens × channels]` reduced on
//! the GPU (per-token and per-channel max |x| with their argmax, Σ|x| per token, each token's 8
//! largest entries, a 256-bin histogram of |x|), so a whole model's statistics come back in a few
//! kilobytes per probe point. [`ProbeSummary`] decodes them into the quantities of
//! `analysis::outliers` (exact maxima, argmaxima and top entries; the median to one histogram bin).

use serde::Serialize;

use crate::error::GpuError;
use crate::gpu::{GpuContext, Recorder};
use crate::model::massive::Entry;

const KERNEL: &str = "probe";
const WORKGROUP_SIZE: u32 = 64;
/// Largest entries kept per token (so a global top-k is exact for k ≤ this).
pub const ROW_TOP: usize = 8;
pub const HISTOGRAM_BINS: usize = 256;
/// Histogram bins per octave of |x|, and the octave of bin 0 (2^−16).
pub const BINS_PER_OCTAVE: usize = 8;
pub const LOWEST_OCTAVE: i32 = -16;
/// Values run through a histogram workgroup's invocations in runs of this many.
const HISTOGRAM_RUN: u64 = 32;

/// Words one probe of `[tokens × channels]` writes.
pub fn probe_words(tokens: u32, channels: u32) -> u64 {
    (3 + 2 * ROW_TOP as u64) * tokens as u64 + 2 * channels as u64 + HISTOGRAM_BINS as u64
}

/// The histogram bin of a magnitude `a` ≥ 0: its binary exponent and top three mantissa bits,
/// clamped to 2^−16 .. 2^16 (the WGSL computes the same from the bits, so both sides agree exactly).
pub fn bin_of(a: f32) -> usize {
    let bits = a.to_bits();
    let octave = (bits >> 23) as i32 - 127 - LOWEST_OCTAVE;
    (octave * BINS_PER_OCTAVE as i32 + ((bits >> 20) & 7) as i32).clamp(0, HISTOGRAM_BINS as i32 - 1) as usize
}

/// The magnitudes bin `b` holds: `[low, high)` (bin 0 also holds everything smaller, the last
/// bin everything larger).
pub fn bin_range(b: usize) -> (f32, f32) {
    let edge = |b: usize| {
        let octave = (b / BINS_PER_OCTAVE) as i32 + LOWEST_OCTAVE;
        2f32.powi(octave) * (1.0 + (b % BINS_PER_OCTAVE) as f32 / BINS_PER_OCTAVE as f32)
    };
    (edge(b), edge(b + 1))
}

/// Records the probe of `x` (`tokens × channels` f32) into `out` from word `at` (`out` must be
/// zero there for the histogram, as a new buffer is).
#[allow(clippy::too_many_arguments)]
pub fn probe(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    x: &wgpu::Buffer,
    tokens: u32,
    channels: u32,
    out: &wgpu::Buffer,
    at: u64,
) -> Result<(), GpuError> {
    let shape = |message: String| GpuError::Shape { kernel: KERNEL, message };
    super::require_len(KERNEL, "x", x, tokens as u64 * channels as u64)?;
    super::require_len(KERNEL, "out", out, at + probe_words(tokens, channels))?;
    let at = u32::try_from(at).map_err(|_| shape(format!("probe offset {at} does not fit in 32 bits")))?;
    if tokens == 0 || channels == 0 {
        return Err(shape(format!("nothing to probe in {tokens}×{channels}")));
    }
    let source = crate::gpu::ShaderSource::new(KERNEL, include_str!("../../../shaders/probe.wgsl"));
    let params = ProbeParams { n_tokens: tokens, n_channels: channels, at };
    let buffers = [x, out];
    let rows = ctx.pipeline(&source, "rows", &[])?;
    ctx.dispatch(encoder, &rows, &params, &buffers, tokens.div_ceil(WORKGROUP_SIZE));
    let columns = ctx.pipeline(&source, "channels", &[])?;
    ctx.dispatch(encoder, &columns, &params, &buffers, channels.div_ceil(WORKGROUP_SIZE));
    let histogram = ctx.pipeline(&source, "histogram", &[])?;
    let values = tokens as u64 * channels as u64;
    let groups = values.div_ceil(HISTOGRAM_RUN * 256);
    ctx.dispatch(encoder, &histogram, &params, &buffers, u32::try_from(groups).map_err(|_| shape("too many values".into()))?);
    Ok(())
}

/// `Params` of `shaders/probe.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ProbeParams {
    n_tokens: u32,
    n_channels: u32,
    at: u32,
}

/// A probe's words, decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeSummary {
    pub tokens: usize,
    pub channels: usize,
    pub max_abs: f32,
    /// Σ|x| / (tokens · channels), from the per-token f32 sums (summed here in f64).
    pub mean_abs: f64,
    /// The bin holding the lower median of |x|, and its range.
    pub median_bin: usize,
    pub median_range: (f32, f32),
    pub histogram: Vec<u32>,
    pub channel_max_abs: Vec<f32>,
    pub channel_argmax_token: Vec<usize>,
    pub token_max_abs: Vec<f32>,
    pub token_argmax_channel: Vec<usize>,
    /// The largest entries of the tensor (at most [`ROW_TOP`]), largest first, ties token-major.
    pub top: Vec<Entry>,
    /// Every token's [`ROW_TOP`] largest entries (fewer where a row is shorter), largest first.
    pub token_top: Vec<Vec<Entry>>,
}

impl ProbeSummary {
    pub fn decode(words: &[u32], tokens: usize, channels: usize) -> ProbeSummary {
        let f = |i: usize| f32::from_bits(words[i]);
        let n = tokens;
        let token_max_abs: Vec<f32> = (0..n).map(f).collect();
        let token_argmax_channel = (0..n).map(|t| words[n + t] as usize).collect();
        let sum: f64 = (0..n).map(|t| f(2 * n + t) as f64).sum();
        let token_top: Vec<Vec<Entry>> = (0..n)
            .map(|t| {
                (0..ROW_TOP)
                    .map(|i| 3 * n + (t * ROW_TOP + i) * 2)
                    .filter(|&w| words[w + 1] != u32::MAX)
                    .map(|w| Entry { token: t, channel: words[w + 1] as usize, value: f(w) })
                    .collect()
            })
            .collect();
        let mut top: Vec<Entry> = token_top.iter().flatten().copied().collect();
        top.sort_by(|a, b| {
            b.value.abs().total_cmp(&a.value.abs()).then(a.token.cmp(&b.token)).then(a.channel.cmp(&b.channel))
        });
        top.truncate(ROW_TOP);
        let base = (3 + 2 * ROW_TOP) * n;
        let channel_max_abs = (0..channels).map(|c| f(base + c)).collect();
        let channel_argmax_token = (0..channels).map(|c| words[base + channels + c] as usize).collect();
        let histogram: Vec<u32> = words[base + 2 * channels..base + 2 * channels + HISTOGRAM_BINS].to_vec();
        let median_bin = percentile_bin(&histogram, (tokens * channels).saturating_sub(1) / 2);
        ProbeSummary {
            tokens,
            channels,
            max_abs: token_max_abs.iter().copied().fold(0.0, f32::max),
            mean_abs: sum / (tokens * channels).max(1) as f64,
            median_bin,
            median_range: bin_range(median_bin),
            histogram,
            channel_max_abs,
            channel_argmax_token,
            token_max_abs,
            token_argmax_channel,
            top,
            token_top,
        }
    }
}

/// The bin holding the value of rank `rank` (0 = smallest) in a histogram.
pub fn percentile_bin(histogram: &[u32], rank: usize) -> usize {
    let mut seen = 0usize;
    for (b, &count) in histogram.iter().enumerate() {
        seen += count as usize;
        if seen > rank {
            return b;
        }
    }
    histogram.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_the_exponent_and_the_top_mantissa_bits() {
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(1.0), 16 * 8);
        assert_eq!(bin_of(1.124), 16 * 8);
        assert_eq!(bin_of(1.125), 16 * 8 + 1);
        assert_eq!(bin_of(1.99), 16 * 8 + 7);
        assert_eq!(bin_of(2.0), 17 * 8);
        assert_eq!(bin_of(1e9), 255);
        assert_eq!(bin_of(1e-9), 0);
        for b in 1..255 {
            let (lo, hi) = bin_range(b);
            assert_eq!(bin_of(lo), b);
            assert_eq!(bin_of(hi), b + 1);
            assert_eq!(bin_of(f32::from_bits(hi.to_bits() - 1)), b);
        }
    }

    #[test]
    fn percentile_bin_counts_ranks_from_zero() {
        let h = [2, 0, 3, 1];
        assert_eq!(percentile_bin(&h, 0), 0);
        assert_eq!(percentile_bin(&h, 1), 0);
        assert_eq!(percentile_bin(&h, 2), 2);
        assert_eq!(percentile_bin(&h, 4), 2);
        assert_eq!(percentile_bin(&h, 5), 3);
    }
}
