//! What a configuration breaks, measured: on one window, the reference's largest residual-stream
//! entry (the massive activation: block, token, channel) and its attention sink (the mean
//! attention of later queries on token 0) against the model under study's at the same place. A
//! configuration breaks one when it moves it by more than a factor of [`BREAK_FACTOR`]. The
//! report's table, `eval` and the page's metrics say it the same way.

use serde::Serialize;

use super::Study;
use crate::error::StudyError;
use crate::gpu::forward::Capture;
use crate::model::reference::ForwardOptions;

/// A tracked outlier moved by more than this factor (either way) is broken.
pub const BREAK_FACTOR: f64 = 2.0;
/// Tokens `eval` measures the breakage on (the start of its first window): the attention
/// probabilities of every block are `heads × n²` floats each.
pub const BREAKAGE_TOKENS: usize = 128;

/// Where the massive activation sits, and its signed value there.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MassiveAt {
    /// The residual stream after this block.
    pub block: usize,
    pub token: usize,
    pub channel: usize,
    pub value: f32,
}

/// The outliers of one forward that a breakage compares.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct OutlierFootprint {
    pub massive: MassiveAt,
    /// Mean attention of queries 1.. on key 0, over blocks 1.. and every head.
    pub sink: f64,
}

/// The model under study's footprint against the reference's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Breakage {
    pub reference: OutlierFootprint,
    pub under_study: OutlierFootprint,
    /// |value under study| / |value of the reference| at the reference's massive entry.
    pub massive_ratio: f64,
    pub sink_ratio: f64,
    /// "massive activation" and/or "attention sink", when moved by more than [`BREAK_FACTOR`].
    pub breaks: Vec<&'static str>,
}

impl Breakage {
    pub fn between(reference: OutlierFootprint, under_study: OutlierFootprint) -> Breakage {
        let massive_ratio = (under_study.massive.value.abs() / reference.massive.value.abs().max(f32::MIN_POSITIVE)) as f64;
        let sink_ratio = under_study.sink / reference.sink.max(f64::MIN_POSITIVE);
        let moved = |ratio: f64| !(1.0 / BREAK_FACTOR..=BREAK_FACTOR).contains(&ratio);
        let mut breaks = Vec::new();
        if moved(massive_ratio) {
            breaks.push("massive activation");
        }
        if moved(sink_ratio) {
            breaks.push("attention sink");
        }
        Breakage { reference, under_study, massive_ratio, sink_ratio, breaks }
    }
}

/// The footprint of residual streams (`[tokens × d_model]` after the embeddings, then after each
/// block) and attention probabilities (per block `[heads × n × n]`), at `at` (block, token,
/// channel) or, without it, at the largest |entry| after any block.
fn footprint(hidden: &[Vec<f32>], attention: &[Vec<f32>], at: Option<(usize, usize, usize)>, d_model: usize, heads: usize, n: usize) -> OutlierFootprint {
    let (block, token, channel) = at.unwrap_or_else(|| {
        let mut best = (0, 0, 0, 0.0f32);
        for (l, h) in hidden.iter().enumerate().skip(1) {
            for (i, &v) in h.iter().enumerate() {
                if v.abs() > best.3 {
                    best = (l - 1, i / d_model, i % d_model, v.abs());
                }
            }
        }
        (best.0, best.1, best.2)
    });
    let value = hidden[block + 1][token * d_model + channel];
    let (mut sink, mut count) = (0.0f64, 0usize);
    for probs in attention.iter().skip(1) {
        for h in 0..heads {
            for q in 1..n {
                sink += probs[(h * n + q) * n] as f64;
                count += 1;
            }
        }
    }
    OutlierFootprint { massive: MassiveAt { block, token, channel, value }, sink: sink / count.max(1) as f64 }
}

impl Study {
    /// The outlier footprint of `tokens` (one window from an empty context) in the reference
    /// (`as_loaded`) or the model under study, wherever that runs; at `at` (block, token,
    /// channel), or at the largest |entry| when `None`.
    pub async fn outlier_footprint(
        &self,
        tokens: &[u32],
        as_loaded: bool,
        at: Option<(usize, usize, usize)>,
    ) -> Result<OutlierFootprint, StudyError> {
        let c = &self.model.config;
        let (hidden, attention) = match &self.gpu {
            Some(gpu) if !self.runs_on_cpu(as_loaded) => {
                let model = self.gpu_model(gpu, as_loaded);
                let capture =
                    Capture { hidden_states: true, attention_layers: (0..c.n_layers).collect(), ..self.capture(as_loaded) };
                let mut cache = model.new_cache(&gpu.ctx, tokens.len() as u32)?;
                let mut out = model.step(&gpu.ctx, &mut cache, tokens, &capture).await?;
                out.attention_probs.sort_by_key(|(layer, _)| *layer);
                (out.hidden_states, out.attention_probs.into_iter().map(|(_, p)| p).collect())
            }
            _ => {
                let options = ForwardOptions { all_logits: false, hidden_states: true, attention_probs: true };
                let out = self.cpu_forward(tokens, options, as_loaded)?;
                (out.hidden_states, out.attention_probs)
            }
        };
        Ok(footprint(&hidden, &attention, at, c.d_model, c.n_heads, tokens.len()))
    }

    /// What the model under study breaks on `tokens` (see the module documentation).
    pub async fn breakage(&self, tokens: &[u32]) -> Result<Breakage, StudyError> {
        let reference = self.outlier_footprint(tokens, true, None).await?;
        let m = reference.massive;
        let under_study = self.outlier_footprint(tokens, false, Some((m.block, m.token, m.channel))).await?;
        Ok(Breakage::between(reference, under_study))
    }
}
