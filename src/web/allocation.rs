//! The facade of a recipe chosen from measurements (`crate::study::allocation`): one sensitivity
//! map per rung of a ladder, then the greedy descent to a bits-per-weight budget.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use super::{js_error, to_js, Playground, ProgressThrottle};
use crate::quant::bitalloc::{default_ladder, BudgetOver};
use crate::quant::Scheme;

/// What the page asks for: the budget, and optionally the ladder (most bits first; default
/// bitalloc's), what the budget counts (default the linears) and a glob of the linears that get
/// a rung (the rest stay as loaded).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PageAllocationConfig {
    budget: f64,
    #[serde(default)]
    ladder: Option<Vec<String>>,
    #[serde(default)]
    over: Option<BudgetOver>,
    #[serde(default)]
    tensors: Option<String>,
}

/// The chosen recipe and what it reaches.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageAllocation {
    /// Recipe JSON, for `applyRecipe` (and the URL, the history, the download).
    recipe: String,
    target_bits_per_weight: f64,
    bits_per_weight: f64,
    budget_over: BudgetOver,
    /// Linears per rung, in ladder order: `[[scheme, count]]`.
    rung_counts: Vec<(String, usize)>,
    /// Cells measured (maps × matrices), and the tokens they were measured on.
    cells: usize,
    tokens: usize,
    ms: f64,
}

#[wasm_bindgen]
impl Playground {
    /// A recipe for `config.budget` bits per weight (JSON `{budget, ladder?, over?: "linears" |
    /// "model", tensors?}`), chosen by the KL each block linear costs on each rung, measured as
    /// the sensitivity map does on the first `max_tokens` tokens of the shipped text in windows
    /// of `window`. `progress(stage, done, total)` counts the cells of all maps; returning
    /// `false` cancels before the next cell. Finished, cancelled or failed, the model under study
    /// is left exactly as it was: the recipe is returned, not applied.
    ///
    /// Resolves to `{recipe, targetBitsPerWeight, bitsPerWeight, budgetOver, rungCounts, cells,
    /// tokens, ms}`.
    #[wasm_bindgen(js_name = allocateByMeasurement)]
    pub async fn allocate_by_measurement(
        &mut self,
        config: String,
        max_tokens: usize,
        window: usize,
        progress: js_sys::Function,
    ) -> Result<JsValue, JsError> {
        let asked: PageAllocationConfig =
            serde_json::from_str(&config).map_err(|e| js_error(format!("recipe from measurements: {e}")))?;
        let ladder: Vec<Scheme> = match asked.ladder {
            Some(names) => names.iter().map(|n| n.trim().parse()).collect::<Result<_, _>>().map_err(js_error)?,
            None => default_ladder(),
        };
        let (tokens, options) = self.evaluation_tokens(max_tokens, window, "")?;
        let throttle = ProgressThrottle::new(&progress);
        let measured = self
            .study
            .allocate_by_measurement(
                &ladder,
                &[asked.budget],
                asked.over.unwrap_or(BudgetOver::Linears),
                asked.tensors.filter(|glob| !glob.is_empty()),
                &tokens,
                &options,
                &mut |p| throttle.report(p),
                &|| throttle.stop_asked(),
            )
            .await
            .map_err(js_error)?;
        let allocation = &measured.allocations[0];
        to_js(&PageAllocation {
            recipe: allocation.recipe.to_json(),
            target_bits_per_weight: allocation.target_bits_per_weight,
            bits_per_weight: allocation.bits_per_weight,
            budget_over: allocation.budget_over,
            rung_counts: allocation.rung_counts.clone(),
            cells: measured.maps.iter().map(|m| m.cells.len()).sum(),
            tokens: measured.tokens,
            ms: measured.ms,
        })
    }
}
