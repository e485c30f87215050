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

use super::calibrate::Calibration;
use super::ptq161::BLOCK_LINEARS;
use super::recipe::{Assignment, Recipe, Rule};
use super::{quantize, Scheme};
use crate::error::ModelError;
use crate::model::{Model, Progress};

/// The ladder, from most to fewest bits.
pub const LADDER: [&str; 5] = ["int8-g128-asym", "int6-g128-asym", "int4-g128-asym", "int3-g128-asym", "int2-g64-asym"];

/// One linear's options: per rung, stored bits and error proxy.
struct Options {
    name: String,
    bits: Vec<u64>,
    error: Vec<f64>,
}

/// What the allocation chose.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Allocation {
    pub recipe: Recipe,
    pub target_bits_per_weight: f64,
    pub bits_per_weight: f64,
    /// Linears per rung, in ladder order.
    pub rung_counts: Vec<(String, usize)>,
}

/// Allocates rungs of [`LADDER`] to the block linears of `model` for `target` bits per weight
/// (counted over the whole model; embeddings, norms and the head stay as stored).
pub fn allocate(
    model: &Model,
    calibration: &Calibration,
    target: f64,
    progress: &mut dyn FnMut(Progress),
) -> Result<Allocation, ModelError> {
    let ladder: Vec<Scheme> = LADDER.iter().map(|n| n.parse().expect("ladder names parse")).collect();
    let c = &model.config;
    calibration.check_for(model)?;
    let total = (c.n_layers * BLOCK_LINEARS.len()) as u64;
    let mut options = Vec::with_capacity(total as usize);
    let mut fixed_bits = 0u64;
    let mut weights = 0u64;
    let linear_names: std::collections::HashSet<String> = (0..c.n_layers)
        .flat_map(|l| BLOCK_LINEARS.iter().map(move |(s, _)| format!("blk.{l}.{s}")))
        .collect();
    for t in model.weights.tensors() {
        weights += t.n_elements();
        if !linear_names.contains(&t.name) {
            fixed_bits += t.len as u64 * 8;
        }
    }
    for layer in 0..c.n_layers {
        for (suffix, input) in BLOCK_LINEARS {
            progress(Progress { stage: "allocate", done: options.len() as u64, total });
            let t = model.tensor(&format!("blk.{layer}.{suffix}"))?;
            let (rows, k) = (t.n_rows(), t.row_len());
            let w = model.weights.dequantize(t)?;
            let h = calibration.stats(layer, input).mean_squares();
            let (mut bits, mut error) = (Vec::new(), Vec::new());
            for scheme in &ladder {
                let q = quantize(scheme, &t.name, rows, k, &w)?;
                let mut e = 0.0f64;
                for (row_w, row_q) in w.chunks_exact(k).zip(q.values.chunks_exact(k)) {
                    for ((&a, &b), &hc) in row_w.iter().zip(row_q).zip(&h) {
                        e += hc * ((a - b) as f64).powi(2);
                    }
                }
                bits.push(q.storage_bits);
                error.push(e);
            }
            options.push(Options { name: t.name.clone(), bits, error });
        }
    }
    progress(Progress { stage: "allocate", done: total, total });
    let mut rung = vec![0usize; options.len()];
    let mut model_bits: u64 = fixed_bits + options.iter().map(|o| o.bits[0]).sum::<u64>();
    let budget = (target * weights as f64) as u64;
    while model_bits > budget {
        let best = options
            .iter()
            .enumerate()
            .filter(|(i, o)| rung[*i] + 1 < o.bits.len())
            .map(|(i, o)| {
                let r = rung[i];
                let saved = o.bits[r].saturating_sub(o.bits[r + 1]).max(1) as f64;
                (i, (o.error[r + 1] - o.error[r]).max(0.0) / saved)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let Some((i, _)) = best else { break };
        let r = rung[i];
        model_bits = model_bits - options[i].bits[r] + options[i].bits[r + 1];
        rung[i] = r + 1;
    }
    let rules = options
        .iter()
        .zip(&rung)
        .map(|(o, &r)| Rule { tensors: o.name.clone(), layers: None, scheme: Assignment::Quantize(ladder[r]) })
        .collect();
    let rung_counts =
        LADDER.iter().enumerate().map(|(r, name)| (name.to_string(), rung.iter().filter(|&&x| x == r).count())).collect();
    Ok(Allocation {
        recipe: Recipe { default: Assignment::Keep, rules },
        target_bits_per_weight: target,
        bits_per_weight: model_bits as f64 / weights.max(1) as f64,
        rung_counts,
    })
}
