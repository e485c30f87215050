//! Interventions on the CPU reference forward (docs/quantizers.md §3.2, §3.3): change what the outlier
//! papers change and measure the effect with the same metrics as a quantizer (KL, top-1,
//! perplexity; `quantscope eval --intervene NAME`).
//!
//! - `zero-massive`: after every block, the residual-stream entries the massive-activation rule
//!   flags in that forward (`|h| > max(100, 1000·median|h|)`) are set to 0 (Sun et al.'s "set to
//!   zero").
//! - `mean-massive`: the same entries are set to their mean over a calibration text, per (layer,
//!   channel) (Sun et al.'s "set to mean"); a channel the calibration never flagged in that layer
//!   gets 0, since there is no mean to give it. Every front end calibrates it the same way
//!   ([`Intervener::calibrated`]) and reports on what ([`MeanMassiveCalibration`]).
//! - `drop-sink`: every query ≥ 1 stops attending to key 0 (StreamingLLM's window attention that
//!   evicted the sink); query 0 still attends to itself, so token 0's own output stays.
//! - `clip:P`: after every block, the residual stream is clipped to ±(the P-th percentile of |x| of
//!   that block's output in that forward; linear interpolation, as numpy's default).
//!
//! Nothing about a model is hard-coded: the flagged entries and the percentiles come from the data
//! of each forward.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::ModelError;
use crate::model::massive::massive_threshold;
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions};
use crate::model::stats::abs_percentile;
use crate::model::window::{eval_tokens, windows, EvalOptions, EVAL_TEXT};
use crate::model::Model;

/// One intervention, named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intervention {
    ZeroMassive,
    MeanMassive,
    DropSink,
    /// Clip at this percentile of |x|, in (0, 100].
    Clip(f64),
}

/// Why an intervention name was not understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterventionParseError {
    #[error("unknown intervention {0:?} (zero-massive, mean-massive, drop-sink or clip:P)")]
    Unknown(String),
    #[error("clip:{0}: the percentile is not a number (e.g. clip:99.9)")]
    NotANumber(String),
    #[error("clip:{0}: the percentile must be in (0, 100]")]
    OutOfRange(String),
}

impl FromStr for Intervention {
    type Err = InterventionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zero-massive" => Ok(Intervention::ZeroMassive),
            "mean-massive" => Ok(Intervention::MeanMassive),
            "drop-sink" => Ok(Intervention::DropSink),
            _ => {
                let Some(p) = s.strip_prefix("clip:") else {
                    return Err(InterventionParseError::Unknown(s.into()));
                };
                let percentile: f64 = p.trim().parse().map_err(|_| InterventionParseError::NotANumber(p.into()))?;
                // `!(0 < p ≤ 100)` also rejects NaN.
                if !(percentile > 0.0 && percentile <= 100.0) {
                    return Err(InterventionParseError::OutOfRange(p.into()));
                }
                Ok(Intervention::Clip(percentile))
            }
        }
    }
}

impl fmt::Display for Intervention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Intervention::ZeroMassive => f.write_str("zero-massive"),
            Intervention::MeanMassive => f.write_str("mean-massive"),
            Intervention::DropSink => f.write_str("drop-sink"),
            Intervention::Clip(p) => write!(f, "clip:{p}"),
        }
    }
}

serde_by_name!(Intervention);

/// The number an intervention takes after its name and a colon (`clip:P`), and the range a front
/// end offers for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InterventionParameter {
    pub name: &'static str,
    pub min: f64,
    pub max: f64,
    pub default: f64,
}

/// One entry of [`Intervention::catalog`]: the name (without its number), words for a menu, and
/// the number it takes, if any.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InterventionInfo {
    pub name: &'static str,
    pub label: &'static str,
    pub parameter: Option<InterventionParameter>,
}

impl InterventionInfo {
    /// The intervention this entry names, with its parameter's default.
    pub fn with_default(&self) -> Intervention {
        let name = match self.parameter {
            Some(p) => format!("{}:{}", self.name, p.default),
            None => self.name.to_string(),
        };
        name.parse().expect("every catalog entry parses with its default")
    }
}

impl Intervention {
    /// Every intervention, as a menu lists them (the page's comes from here). Clipping is offered
    /// from the 50th percentile up: below it, it clips most of the residual stream, not its outliers.
    pub fn catalog() -> [InterventionInfo; 4] {
        [
            InterventionInfo { name: "zero-massive", label: "zero the massive activations", parameter: None },
            InterventionInfo { name: "mean-massive", label: "replace them by their mean", parameter: None },
            InterventionInfo { name: "drop-sink", label: "drop the attention sink", parameter: None },
            InterventionInfo {
                name: "clip",
                label: "clip activations at the P-th percentile",
                parameter: Some(InterventionParameter { name: "P", min: 50.0, max: 100.0, default: 99.9 }),
            },
        ]
    }
}

/// Per (layer, channel), the mean value of the residual-stream entries the massive rule flagged
/// over a calibration text (signed: a massive channel keeps its sign).
#[derive(Debug, Clone, PartialEq)]
pub struct MassiveMeans {
    channels: usize,
    /// `[layers × channels]`: sum and count of the flagged entries.
    sum: Vec<f64>,
    count: Vec<u64>,
}

impl MassiveMeans {
    fn new(layers: usize, channels: usize) -> Self {
        MassiveMeans { channels, sum: vec![0.0; layers * channels], count: vec![0; layers * channels] }
    }

    /// Runs `tokens` window by window (as the evaluation does) and records the flagged entries.
    pub fn calibrate(model: &Model, tokens: &[u32], options: &EvalOptions) -> Result<Self, ModelError> {
        let mut means = MassiveMeans::new(model.config.n_layers, model.config.d_model);
        for window in windows(model, tokens, options) {
            forward_with(model, window, ForwardOptions::default(), &mut Recorder(&mut means))?;
        }
        Ok(means)
    }

    fn record(&mut self, layer: usize, x: &[f32]) {
        let threshold = massive_threshold(x);
        for (i, &v) in x.iter().enumerate() {
            if v.abs() > threshold {
                let at = layer * self.channels + i % self.channels;
                self.sum[at] += v as f64;
                self.count[at] += 1;
            }
        }
    }

    /// The mean flagged value of `channel` after block `layer`; None if it was never flagged.
    pub fn mean(&self, layer: usize, channel: usize) -> Option<f32> {
        let at = layer * self.channels + channel;
        (self.count[at] > 0).then(|| (self.sum[at] / self.count[at] as f64) as f32)
    }

    /// How many (layer, channel) pairs were flagged at least once.
    pub fn flagged_pairs(&self) -> usize {
        self.count.iter().filter(|&&c| c > 0).count()
    }
}

/// Observes the forward for [`MassiveMeans::calibrate`], changing nothing.
struct Recorder<'a>(&'a mut MassiveMeans);

impl ForwardHook for Recorder<'_> {
    fn after_block(&mut self, layer: usize, x: &mut [f32]) {
        self.0.record(layer, x);
    }
}

/// Sets every entry of `x` above the massive threshold to `replacement(channel)`; returns how many.
fn replace_massive(x: &mut [f32], channels: usize, replacement: impl Fn(usize) -> f32) -> usize {
    let threshold = massive_threshold(x);
    let mut replaced = 0;
    for (i, v) in x.iter_mut().enumerate() {
        if v.abs() > threshold {
            *v = replacement(i % channels);
            replaced += 1;
        }
    }
    replaced
}

/// Clips `x` to ±(its `percentile`-th percentile of |x|).
fn clip_at_percentile(x: &mut [f32], percentile: f64) {
    let limit = abs_percentile(x, percentile);
    for v in x.iter_mut() {
        *v = v.clamp(-limit, limit);
    }
}

/// How mean-massive is calibrated, in the CLI, the report and the page alike: on the model as
/// loaded (the means are the unquantized model's, whatever is quantized afterwards), over the
/// first this-many tokens of the shipped evaluation text, in windows of
/// [`MEAN_MASSIVE_CALIBRATION_WINDOW`]. The massive activations sit on each window's first token,
/// so the windows, not the tokens, make the sample: on the default model (eval of 512 tokens in
/// windows of 128), one window of 64 tokens left late-layer channels without a mean (KL 0.018,
/// top-1 95.7%), four windows of 32 gave KL 0.0009 and four of 64 KL 0.0004, top-1 99.4%. The CLI
/// used to take 512 tokens in `predict`, the evaluated tokens in `eval` and the page 64: three
/// answers to one question.
pub const MEAN_MASSIVE_CALIBRATION_TOKENS: usize = 256;
/// See [`MEAN_MASSIVE_CALIBRATION_TOKENS`].
pub const MEAN_MASSIVE_CALIBRATION_WINDOW: usize = 64;

/// What mean-massive was calibrated on, for the reports (`eval --json`, the page's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanMassiveCalibration {
    /// Always "as loaded".
    pub model: &'static str,
    /// Always the shipped evaluation text.
    pub text: &'static str,
    pub tokens: usize,
    pub window: usize,
    /// (layer, channel) pairs flagged at least once: how many means there are.
    pub flagged_pairs: usize,
}

/// An intervention ready to run: for `mean-massive`, with its calibration.
#[derive(Debug, Clone)]
pub struct Intervener {
    pub intervention: Intervention,
    channels: usize,
    means: Option<MassiveMeans>,
    calibration: Option<MeanMassiveCalibration>,
}

impl Intervener {
    /// Prepares `intervention` for `model`; `mean-massive` calibrates on `calibration` (the
    /// evaluation text's tokens, in windows of `options.window`), the others ignore it.
    pub fn new(
        model: &Model,
        intervention: Intervention,
        calibration: &[u32],
        options: &EvalOptions,
    ) -> Result<Self, ModelError> {
        let means = match intervention {
            Intervention::MeanMassive => Some(MassiveMeans::calibrate(model, calibration, options)?),
            _ => None,
        };
        Ok(Intervener { intervention, channels: model.config.d_model, means, calibration: None })
    }

    /// `intervention` prepared the one way every front end uses (see
    /// [`MEAN_MASSIVE_CALIBRATION_TOKENS`]); `model_as_loaded` must be the model as loaded, not
    /// the quantized one the intervention is then applied to.
    pub fn calibrated(model_as_loaded: &Model, intervention: Intervention) -> Result<Self, ModelError> {
        if intervention != Intervention::MeanMassive {
            return Intervener::new(model_as_loaded, intervention, &[], &EvalOptions::default());
        }
        let options =
            EvalOptions { max_tokens: Some(MEAN_MASSIVE_CALIBRATION_TOKENS), window: MEAN_MASSIVE_CALIBRATION_WINDOW, skip: 0 };
        let tokens = eval_tokens(model_as_loaded, EVAL_TEXT, &options)?;
        let mut intervener = Intervener::new(model_as_loaded, intervention, &tokens, &options)?;
        intervener.calibration = Some(MeanMassiveCalibration {
            model: "as loaded",
            text: "the shipped evaluation text (data/eval.txt)",
            tokens: tokens.len(),
            window: MEAN_MASSIVE_CALIBRATION_WINDOW,
            flagged_pairs: intervener.means.as_ref().map_or(0, MassiveMeans::flagged_pairs),
        });
        Ok(intervener)
    }

    /// What mean-massive was calibrated on (None for the other interventions, and for one made
    /// with [`Intervener::new`] on tokens of the caller's choosing).
    pub fn calibration(&self) -> Option<&MeanMassiveCalibration> {
        self.calibration.as_ref()
    }

    pub fn means(&self) -> Option<&MassiveMeans> {
        self.means.as_ref()
    }
}

impl ForwardHook for Intervener {
    fn after_block(&mut self, layer: usize, x: &mut [f32]) {
        match self.intervention {
            Intervention::ZeroMassive => {
                replace_massive(x, self.channels, |_| 0.0);
            }
            Intervention::MeanMassive => {
                let means = self.means.as_ref().expect("mean-massive is calibrated in Intervener::new");
                replace_massive(x, self.channels, |c| means.mean(layer, c).unwrap_or(0.0));
            }
            Intervention::Clip(p) => clip_at_percentile(x, p),
            Intervention::DropSink => {}
        }
    }

    fn masks_key(&self, query: usize, key: usize) -> bool {
        self.intervention == Intervention::DropSink && key == 0 && query >= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_names_a_distinct_intervention_that_round_trips() {
        let catalog = Intervention::catalog();
        let parsed: Vec<Intervention> = catalog.iter().map(InterventionInfo::with_default).collect();
        for (info, i) in catalog.iter().zip(&parsed) {
            assert_eq!(i.to_string().parse::<Intervention>(), Ok(*i), "{}", info.name);
            let shown = i.to_string();
            assert_eq!(shown.split(':').next(), Some(info.name), "the name is the prefix of {shown}");
            if let Some(p) = info.parameter {
                assert!(p.min <= p.default && p.default <= p.max, "{}: default in range", info.name);
                assert!(format!("{}:{}", info.name, p.max).parse::<Intervention>().is_ok(), "max parses");
            }
        }
        for (k, a) in parsed.iter().enumerate() {
            assert!(!parsed[k + 1..].contains(a), "{a} is listed twice");
        }
    }

    /// 4 tokens × 3 channels with two massive entries: lower median |h| = 0.5, threshold 500.
    fn planted() -> Vec<f32> {
        vec![
            900.0, 0.5, -0.25, //
            0.75, -0.5, 0.5, //
            0.25, -700.0, 0.5, //
            -0.5, 0.5, 0.25,
        ]
    }

    fn intervener(intervention: Intervention, means: Option<MassiveMeans>) -> Intervener {
        Intervener { intervention, channels: 3, means, calibration: None }
    }

    #[test]
    fn zero_massive_zeroes_exactly_the_flagged_entries() {
        let before = planted();
        let threshold = massive_threshold(&before);
        assert_eq!(threshold, 500.0, "1000 × lower median 0.5");
        let mut x = before.clone();
        intervener(Intervention::ZeroMassive, None).after_block(0, &mut x);
        for (i, (&b, &a)) in before.iter().zip(&x).enumerate() {
            if b.abs() > threshold {
                assert_eq!(a, 0.0, "entry {i} was flagged");
            } else {
                assert_eq!(a.to_bits(), b.to_bits(), "entry {i} was not flagged but changed");
            }
        }
        assert_eq!(x.iter().filter(|&&v| v == 0.0).count(), 2);
    }

    #[test]
    fn the_floor_of_100_keeps_small_tensors_untouched() {
        // median 0.01 → 1000·median = 10, but the rule also needs |h| > 100.
        let before = vec![0.01f32, -0.01, 50.0, 0.01, 0.02, -0.01];
        let mut x = before.clone();
        intervener(Intervention::ZeroMassive, None).after_block(0, &mut x);
        assert_eq!(x, before);
    }

    #[test]
    fn mean_massive_sets_the_calibrated_mean_per_layer_and_channel() {
        let mut means = MassiveMeans::new(2, 3);
        means.record(1, &planted());
        let mut shifted = planted();
        shifted[0] = 1100.0;
        means.record(1, &shifted);
        assert_eq!(means.mean(1, 0), Some(1000.0));
        assert_eq!(means.mean(1, 1), Some(-700.0));
        assert_eq!(means.mean(1, 2), None);
        assert_eq!(means.mean(0, 0), None, "layer 0 never saw a massive entry");
        assert_eq!(means.flagged_pairs(), 2);

        let mut hook = intervener(Intervention::MeanMassive, Some(means));
        let mut x = planted();
        hook.after_block(1, &mut x);
        let mut expected = planted();
        expected[0] = 1000.0;
        expected[7] = -700.0;
        assert_eq!(x, expected);
        // In a layer where calibration flagged nothing, a flagged entry has no mean: it becomes 0.
        let mut x = planted();
        hook.after_block(0, &mut x);
        assert_eq!((x[0], x[7]), (0.0, 0.0));
    }

    #[test]
    fn clip_bounds_the_stream_by_the_numpy_percentile() {
        // |x| sorted: 0..=100 as 101 values → the p-th percentile is p itself.
        let values: Vec<f32> = (0..=100).map(|i| if i % 2 == 0 { i as f32 } else { -(i as f32) }).collect();
        assert_eq!(abs_percentile(&values, 50.0), 50.0);
        assert_eq!(abs_percentile(&values, 100.0), 100.0);
        // Rank 0.999·100 = 99.9: between 99 and 100.
        assert!((abs_percentile(&values, 99.9) - 99.9).abs() < 1e-4);
        // numpy.percentile([1, 2, 4], 75) = 3.0 (rank 1.5).
        assert_eq!(abs_percentile(&[4.0, -1.0, 2.0], 75.0), 3.0);

        let mut x = planted();
        let limit = abs_percentile(&x, 90.0);
        intervener(Intervention::Clip(90.0), None).after_block(3, &mut x);
        let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(max, limit);
        assert_eq!(x[0], limit);
        assert_eq!(x[7], -limit);
        assert_eq!(&x[1..7], &planted()[1..7], "entries within the limit stay");
    }

    #[test]
    fn drop_sink_masks_only_key_zero_for_later_queries() {
        let hook = intervener(Intervention::DropSink, None);
        assert!(!hook.masks_key(0, 0), "query 0 must keep itself");
        for q in 1..5 {
            assert!(hook.masks_key(q, 0));
            for k in 1..=q {
                assert!(!hook.masks_key(q, k));
            }
        }
        let mut x = planted();
        intervener(Intervention::DropSink, None).after_block(0, &mut x);
        assert_eq!(x, planted(), "drop-sink leaves the residual stream alone");
        for other in [Intervention::ZeroMassive, Intervention::MeanMassive, Intervention::Clip(99.0)] {
            assert!(!intervener(other, None).masks_key(3, 0));
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_say_what_is_wrong() {
        for name in ["zero-massive", "mean-massive", "drop-sink", "clip:99.9", "clip:100", "clip:0.5"] {
            let parsed: Intervention = name.parse().unwrap();
            assert_eq!(parsed.to_string(), name);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), format!("\"{name}\""));
        }
        assert_eq!("clip:99.9".parse::<Intervention>().unwrap(), Intervention::Clip(99.9));
        let err = |s: &str| s.parse::<Intervention>().unwrap_err();
        assert_eq!(err("zero"), InterventionParseError::Unknown("zero".into()));
        assert_eq!(err("clip:abc"), InterventionParseError::NotANumber("abc".into()));
        assert_eq!(err("clip:"), InterventionParseError::NotANumber("".into()));
        for bad in ["0", "-1", "100.5", "NaN", "inf"] {
            assert_eq!(err(&format!("clip:{bad}")), InterventionParseError::OutOfRange(bad.into()));
        }
        assert!(err("clip:abc").to_string().contains("not a number"));
        assert!(err("clip:0").to_string().contains("(0, 100]"));
        assert!(err("zero").to_string().contains("zero-massive, mean-massive, drop-sink or clip:P"));
    }
}
