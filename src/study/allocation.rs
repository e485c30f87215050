//! A recipe chosen from measurements: the bit allocation of `quant::bitalloc` (a greedy descent
//! along a ladder of schemes to a bits-per-weight budget), costed by the sensitivity maps of the
//! ladder's schemes instead of the Hessian-proxy error. The cost of a linear on a rung is the KL
//! measured with that linear alone quantized with the rung's scheme; the descent adds these up
//! over linears, the first-order estimate of quantizing several together (docs/sensitivity.md).
//!
//! One map per rung, so the top rung is measured too: its KL is small but not zero, and the
//! descent compares the step down from it with the others.

use serde::Serialize;

use super::sensitivity::{SensitivityConfig, SensitivityMap};
use super::Study;
use crate::error::StudyError;
use crate::model::window::EvalOptions;
use crate::model::Progress;
use crate::quant::apply::storage_bits;
use crate::quant::bitalloc::{descend, proxy_rungs, Allocation, BudgetOver, LinearRungs};
use crate::quant::calibrate::calibrate;
use crate::quant::Scheme;

/// The allocations (one per budget) and the maps they were chosen from (one per rung, in ladder
/// order).
#[derive(Debug, Clone, Serialize)]
pub struct MeasuredAllocation {
    pub allocations: Vec<Allocation>,
    pub maps: Vec<SensitivityMap>,
    /// Tokens the sensitivities were measured on.
    pub tokens: usize,
    pub ms: f64,
}

impl Study {
    /// Chooses a rung of `ladder` (most bits first) for every block linear (those matching
    /// `tensors`, a glob; the rest stay as loaded) so that the model reaches each of `targets`
    /// bits per weight, by the KL measured on `tokens` (once for all targets). Progress counts
    /// the cells of all maps; `cancelled` is asked before each cell, and a cancelled run leaves
    /// the study as it was.
    #[allow(clippy::too_many_arguments)]
    pub async fn allocate_by_measurement(
        &mut self,
        ladder: &[Scheme],
        targets: &[f64],
        over: BudgetOver,
        tensors: Option<String>,
        tokens: &[u32],
        options: &EvalOptions,
        progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<MeasuredAllocation, StudyError> {
        let t0 = super::now_ms();
        if ladder.is_empty() {
            return Err(StudyError::Invalid { what: "ladder", message: "give at least one scheme".into() });
        }
        let mut maps = Vec::with_capacity(ladder.len());
        for (rung, &scheme) in ladder.iter().enumerate() {
            let config = SensitivityConfig { scheme, activations: None, kv: None, tensors: tensors.clone() };
            let mut rung_progress = |p: Progress| {
                let total = p.total * ladder.len() as u64;
                progress(Progress { stage: "measure", done: rung as u64 * p.total + p.done, total })
            };
            maps.push(self.sensitivity(&config, tokens, options, &mut |_| {}, &mut rung_progress, cancelled).await?);
        }
        let linears = linear_rungs(self, ladder, &maps)?;
        let allocations = targets.iter().map(|&t| descend(&self.model, ladder, &linears, t, over)).collect();
        Ok(MeasuredAllocation { allocations, maps, tokens: tokens.len(), ms: super::now_ms() - t0 })
    }

    /// [`Study::allocate_by_measurement`]'s twin costed by the Hessian-proxy error of
    /// `quant::bitalloc` (what `--method bitalloc:BPW` does on its own ladder), calibrated on
    /// `calibration_tokens`: the baseline a measured recipe is compared with.
    pub fn allocate_by_proxy(
        &self,
        ladder: &[Scheme],
        targets: &[f64],
        over: BudgetOver,
        calibration_tokens: &[u32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Allocation>, StudyError> {
        let window = calibration_tokens.len().max(2);
        let calibration = calibrate(&self.model, calibration_tokens, window, progress)?;
        let linears = proxy_rungs(&self.model, &calibration, ladder, progress)?;
        Ok(targets.iter().map(|&t| descend(&self.model, ladder, &linears, t, over)).collect())
    }
}

/// Every measured linear's stored bits and KL per rung. The maps list the same tensors in the
/// same order (they differ only in their scheme), so a linear's cells share its index.
fn linear_rungs(study: &Study, ladder: &[Scheme], maps: &[SensitivityMap]) -> Result<Vec<LinearRungs>, StudyError> {
    maps[0]
        .cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let t = study.model.tensor(&cell.tensor)?;
            let bits = ladder
                .iter()
                .map(|scheme| storage_bits(scheme, &t.name, t.n_rows(), t.row_len()))
                .collect::<Result<_, _>>()?;
            let cost = maps.iter().map(|m| m.cells[i].kl).collect();
            Ok(LinearRungs { name: cell.tensor.clone(), weights: t.n_elements(), bits, cost })
        })
        .collect()
}
