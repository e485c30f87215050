//! Automatic bit allocation to a target bits per weight (docs/quantizers.md §4.10; MPTQ-ViT's greedy mixed
//! precision with a ShiftAddLLM-style sensitivity score).
//!
//! Each block linear starts on the highest rung of a ladder of RTN schemes; its cost on rung r is
//! the output-error proxy `Σ_c h_c · Σ_rows (W_rc − Ŵ_rc)²`, with `h_c` the calibrated mean x² of
//! input channel c (the diagonal of the Hessian proxy `Σ xᵀx`, so an error in a channel that
//! carries large activations counts for more). Greedily, the linear whose next rung down costs the
//! least added error per bit saved moves down, until the whole model's bits per weight reaches the
//! target (or every linear is on the lowest rung). The result is a recipe: one rule per tensor,
//! which the CLI, the page and `export` all read.

use super::apply::stored_bits;
use super::calibrate::Calibration;
use super::ptq161::BLOCK_LINEARS;
use super::recipe::{Assignment, Recipe, Rule};
use super::{quantize, Scheme};
use crate::error::ModelError;
use crate::model::{Model, Progress};
use std::collections::HashMap;

/// The ladder, from most to fewest bits.
pub const LADDER: [&str; 5] = ["int8-g128-asym", "int6-g128-asym", "int4-g128-asym", "int3-g128-asym", "int2-g64-asym"];

/// One linear's choices along a ladder: per rung, its stored bits and what choosing that rung
/// costs (any measure that adds up over linears: an error proxy, a measured KL).
#[derive(Debug, Clone)]
pub struct LinearRungs {
    pub name: String,
    /// Its number of weights.
    pub weights: u64,
    pub bits: Vec<u64>,
    pub cost: Vec<f64>,
}

/// What the allocation chose.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Allocation {
    pub recipe: Recipe,
    pub target_bits_per_weight: f64,
    /// What the two bits per weight count.
    pub budget_over: BudgetOver,
    pub bits_per_weight: f64,
    /// Linears per rung, in ladder order.
    pub rung_counts: Vec<(String, usize)>,
}

/// The ladder's schemes, from most to fewest bits.
pub fn default_ladder() -> Vec<Scheme> {
    LADDER.iter().map(|n| n.parse().expect("ladder names parse")).collect()
}

/// Allocates rungs of [`LADDER`] to the block linears of `model` for `target` bits per weight
/// (counted over the whole model; embeddings, norms and the head stay as stored).
pub fn allocate(
    model: &Model,
    calibration: &Calibration,
    target: f64,
    progress: &mut dyn FnMut(Progress),
) -> Result<Allocation, ModelError> {
    let ladder = default_ladder();
    let linears = proxy_rungs(model, calibration, &ladder, progress)?;
    Ok(descend(model, &ladder, &linears, target, BudgetOver::Model))
}

/// Every block linear on every rung of `ladder`, costed by the Hessian-proxy error.
pub fn proxy_rungs(
    model: &Model,
    calibration: &Calibration,
    ladder: &[Scheme],
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<LinearRungs>, ModelError> {
    let c = &model.config;
    calibration.check_for(model)?;
    let block_linears: Vec<_> = BLOCK_LINEARS.into_iter().filter(|(s, _)| c.has_linear(s)).collect();
    let total = (c.n_layers * block_linears.len()) as u64;
    let mut linears = Vec::with_capacity(total as usize);
    for layer in 0..c.n_layers {
        for &(suffix, input) in &block_linears {
            progress(Progress { stage: "allocate", done: linears.len() as u64, total });
            let t = model.tensor(&format!("blk.{layer}.{suffix}"))?;
            let (rows, k) = (t.n_rows(), t.row_len());
            let w = model.weights.dequantize(t)?;
            let h = calibration.stats(layer, input).mean_squares();
            let (mut bits, mut cost) = (Vec::new(), Vec::new());
            for scheme in ladder {
                let q = quantize(scheme, &t.name, rows, k, &w)?;
                let mut e = 0.0f64;
                for (row_w, row_q) in w.chunks_exact(k).zip(q.values.chunks_exact(k)) {
                    for ((&a, &b), &hc) in row_w.iter().zip(row_q).zip(&h) {
                        e += hc * ((a - b) as f64).powi(2);
                    }
                }
                bits.push(q.storage_bits);
                cost.push(e);
            }
            linears.push(LinearRungs { name: t.name.clone(), weights: t.n_elements(), bits, cost });
        }
    }
    progress(Progress { stage: "allocate", done: total, total });
    Ok(linears)
}

/// What a bits-per-weight budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetOver {
    /// Every tensor of the model (what `--method bitalloc:BPW` and `eval`'s bits per weight
    /// count); the tensors that get no rung count as stored.
    Model,
    /// Only the linears that get a rung (the usual count of mixed-precision papers): a budget
    /// below what the embeddings alone would allow the whole model stays meaningful.
    Linears,
}

/// The greedy descent, whatever the cost: every linear starts on the ladder's top rung; while the
/// model's bits per weight is above `target`, the linear whose next rung down adds the least cost
/// per bit saved moves down (ties: the earlier linear). Bits per weight over `over`.
pub fn descend(model: &Model, ladder: &[Scheme], linears: &[LinearRungs], target: f64, over: BudgetOver) -> Allocation {
    let (mut model_bits, weights) = match over {
        BudgetOver::Model => {
            let top: HashMap<String, u64> = linears.iter().map(|l| (l.name.clone(), l.bits[0])).collect();
            stored_bits(model, &top)
        }
        BudgetOver::Linears => linears.iter().fold((0, 0), |(b, w), l| (b + l.bits[0], w + l.weights)),
    };
    let mut rung = vec![0usize; linears.len()];
    let budget = (target * weights as f64) as u64;
    while model_bits > budget {
        let best = linears
            .iter()
            .enumerate()
            .filter(|(i, l)| rung[*i] + 1 < l.bits.len())
            .map(|(i, l)| {
                let r = rung[i];
                let saved = l.bits[r].saturating_sub(l.bits[r + 1]).max(1) as f64;
                (i, (l.cost[r + 1] - l.cost[r]).max(0.0) / saved)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let Some((i, _)) = best else { break };
        let r = rung[i];
        model_bits = model_bits - linears[i].bits[r] + linears[i].bits[r + 1];
        rung[i] = r + 1;
    }
    let rules = linears
        .iter()
        .zip(&rung)
        .map(|(l, &r)| Rule { tensors: l.name.clone(), layers: None, scheme: Assignment::Quantize(ladder[r]) })
        .collect();
    let rung_counts = ladder
        .iter()
        .enumerate()
        .map(|(r, scheme)| (scheme.to_string(), rung.iter().filter(|&&x| x == r).count()))
        .collect();
    Allocation {
        recipe: Recipe { default: Assignment::Keep, rules },
        target_bits_per_weight: target,
        budget_over: over,
        bits_per_weight: model_bits as f64 / weights.max(1) as f64,
        rung_counts,
    }
}
