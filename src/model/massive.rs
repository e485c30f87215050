//! The massive-activation rule (Sun et al. 2024, docs/quantizers.md §3.2): an entry of the residual
//! stream is massive when `|h| > max(100, 1000 · lower median |h|)`. The outlier detectors report
//! it, the interventions remove it and the GPU probes and interventions compute it; all of them
//! take the rule from here.

use serde::Serialize;

use crate::model::stats::lower_median;

/// Both activation rules (massive and Systematic Outliers) flag magnitudes above this multiple of
/// a typical magnitude.
pub const RULE_FACTOR: f32 = 1000.0;
/// The massive-activation rule also requires `|h| > 100`.
pub const MASSIVE_FLOOR: f32 = 100.0;

/// One activation: its token, its channel and its signed value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Entry {
    pub token: usize,
    pub channel: usize,
    pub value: f32,
}

/// The massive-activation threshold of one hidden state : `max(100, 1000 · lower median |h|)`.
pub fn massive_threshold(h: &[f32]) -> f32 {
    (RULE_FACTOR * lower_median(h.iter().map(|x| x.abs()).collect())).max(MASSIVE_FLOOR)
}
