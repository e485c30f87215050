//! The sensitivity map: which (layer, tensor class) can take a scheme. Each cell quantizes one
//! matrix with the scheme, everything else as loaded, and measures the model against the model as
//! loaded on the same tokens (KL, top-1 agreement, perplexity, the final residual stream's
//! error). The reference's windows are computed once and kept for every cell.
//!
//! Two ways to run a cell, both leaving the study exactly as it was afterwards (also when
//! cancelled or failed):
//! - live on the GPU (the page's way, weights only): the matrix is re-quantized in place
//!   ([`Study::apply_recipe`] with a one-tensor recipe) and put back from the master copy, so a
//!   cell costs one re-quantization and one evaluation;
//! - on the CPU reference (without a GPU, or with run-time activation or KV quantizers): each
//!   cell is exactly `quantscope eval --recipe R` for the one-tensor recipe R. Weights only, a
//!   cell's model equals the model as loaded before its block, so its forward starts there from
//!   the reference's residual stream (`reference::forward_from`): the same numbers for about half
//!   the work.

use serde::Serialize;

use super::{now_ms, yield_now, ReferenceWindows, Study};
use crate::analysis::eval::{EvalAccumulator, EvalResult};
use crate::error::StudyError;
use crate::model::reference::{forward_from, ForwardOptions, NoHook, ResumeAt};
use crate::model::window::{windows, EvalOptions};
use crate::model::Progress;
use crate::quant::activation::forward::ActivationSchemes;
use crate::quant::apply::quantize_model;
use crate::quant::experiment::Experiment;
use crate::quant::kv::KvScheme;
use crate::quant::recipe::{glob_matches, Assignment, Rule};
use crate::quant::{Recipe, Scheme};

/// The per-block matrices, in the order of the forward.
pub const TENSOR_CLASSES: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// What each cell applies to its one matrix (weights), and the run-time quantizers every cell
/// runs with.
#[derive(Debug, Clone)]
pub struct SensitivityConfig {
    pub scheme: Scheme,
    pub activations: Option<ActivationSchemes>,
    pub kv: Option<KvScheme>,
    /// Measure only the matrices whose name matches this glob (None: every one).
    pub tensors: Option<String>,
}

/// One cell of the map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SensitivityCell {
    pub layer: usize,
    pub class: &'static str,
    pub tensor: String,
    /// KL of the model as loaded to the model with this one matrix quantized, nats per token.
    pub kl: f64,
    pub top1_agreement: f64,
    pub perplexity: f64,
    /// Relative L2 error of the residual stream after the last block.
    pub final_error: f64,
}

/// Sums over the cells of one class or one layer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SensitivityTotal {
    pub name: String,
    /// Sum of the cells' KL: to first order, what quantizing all of them together costs.
    pub kl: f64,
    /// The largest KL of one cell.
    pub max_kl: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SensitivityMap {
    pub scheme: String,
    pub activations: Option<ActivationSchemes>,
    pub kv: Option<KvScheme>,
    /// Evaluated tokens and the window they ran in.
    pub tokens: usize,
    pub window: usize,
    pub layers: usize,
    pub classes: Vec<&'static str>,
    /// Row-major: layer by layer, classes in [`TENSOR_CLASSES`] order.
    pub cells: Vec<SensitivityCell>,
    pub per_class: Vec<SensitivityTotal>,
    pub per_layer: Vec<SensitivityTotal>,
    /// The reference's perplexity on these tokens.
    pub reference_perplexity: f64,
    /// "webgpu" (live re-quantization) or "cpu" (the CPU reference).
    pub backend: &'static str,
    pub ms: f64,
}

/// The recipe that quantizes `tensor` with `scheme` and keeps everything else.
pub fn single_tensor_recipe(tensor: &str, scheme: Scheme) -> Recipe {
    Recipe {
        default: Assignment::Keep,
        rules: vec![Rule { tensors: tensor.to_string(), layers: None, scheme: Assignment::Quantize(scheme) }],
    }
}

fn totals(cells: &[SensitivityCell], key: impl Fn(&SensitivityCell) -> String) -> Vec<SensitivityTotal> {
    let mut out: Vec<SensitivityTotal> = Vec::new();
    for cell in cells {
        let name = key(cell);
        match out.iter_mut().find(|t| t.name == name) {
            Some(t) => {
                t.kl += cell.kl;
                t.max_kl = t.max_kl.max(cell.kl);
            }
            None => out.push(SensitivityTotal { name, kl: cell.kl, max_kl: cell.kl }),
        }
    }
    out
}

impl Study {
    /// The sensitivity map of `config` on `tokens` evaluated with `options` (see the module
    /// documentation). `on_cell` sees each cell as it is measured; progress counts cells;
    /// `cancelled` is asked before each cell. Live on the GPU when there is one and the config has
    /// no run-time quantizers, else on the CPU reference; either way the study is left as it was.
    pub async fn sensitivity(
        &mut self,
        config: &SensitivityConfig,
        tokens: &[u32],
        options: &EvalOptions,
        on_cell: &mut dyn FnMut(&SensitivityCell),
        progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<SensitivityMap, StudyError> {
        self.refuse_while_pinned("the sensitivity map")?;
        let t0 = now_ms();
        let layers = self.model.config.n_layers;
        let tensors: Vec<(usize, &'static str, String)> = (0..layers)
            .flat_map(|l| TENSOR_CLASSES.iter().map(move |&c| (l, c, format!("blk.{l}.{c}.weight"))))
            .filter(|(_, _, name)| self.model.tensor(name).is_ok())
            .filter(|(_, _, name)| config.tensors.as_deref().is_none_or(|glob| glob_matches(glob, name)))
            .collect();
        if tensors.is_empty() {
            let glob = config.tensors.clone().unwrap_or_default();
            return Err(StudyError::Invalid { what: "sensitivity", message: format!("no matrix matches {glob:?}") });
        }
        let live = self.gpu.is_some() && config.activations.is_none() && config.kv.is_none();
        // What the study holds now, put back at the end whatever happens.
        let before_applied = self.applied_recipe();
        let before = (self.prepared.take(), self.intervention.take(), self.runtime.take());
        let measured = self.measure_cells(config, &tensors, tokens, options, live, on_cell, progress, cancelled).await;
        (self.prepared, self.intervention, self.runtime) = before;
        if live {
            // Whatever the cells left on the GPU (a finished, cancelled or failed run): the recipe
            // applied before, or the weights as loaded.
            let recipe = before_applied.unwrap_or_else(Recipe::keep_all);
            self.apply_recipe(&recipe, &mut |_| {}).await?;
        }
        let (cells, reference_perplexity) = measured?;
        Ok(SensitivityMap {
            scheme: config.scheme.to_string(),
            activations: config.activations,
            kv: config.kv,
            tokens: tokens.len(),
            window: options.window_for(&self.model),
            layers,
            classes: TENSOR_CLASSES.to_vec(),
            // Cells run layer by layer with the classes in order, so the totals keep that order.
            per_class: totals(&cells, |cell| cell.class.to_string()),
            per_layer: totals(&cells, |cell| cell.layer.to_string()),
            cells,
            reference_perplexity,
            backend: if live { "webgpu" } else { "cpu" },
            ms: now_ms() - t0,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn measure_cells(
        &mut self,
        config: &SensitivityConfig,
        tensors: &[(usize, &'static str, String)],
        tokens: &[u32],
        options: &EvalOptions,
        live: bool,
        on_cell: &mut dyn FnMut(&SensitivityCell),
        progress: &mut dyn FnMut(Progress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(Vec<SensitivityCell>, f64), StudyError> {
        if live {
            // Each cell starts from the weights as loaded.
            self.apply_recipe(&Recipe::keep_all(), &mut |_| {}).await?;
        }
        let mut reference = ReferenceWindows::default();
        // Weights only on the CPU: a cell's model equals the model as loaded up to its block, so
        // its forward resumes there from the reference's residual stream (the same numbers as a
        // whole forward, about half the work on average).
        let resumes = !live && config.activations.is_none() && config.kv.is_none() && self.applied.is_empty();
        if resumes {
            self.evaluate_tokens(tokens, options, Some(&mut reference), &mut |_| {}, &|| false).await?;
        }
        let mut cells = Vec::with_capacity(tensors.len());
        let mut reference_perplexity = f64::NAN;
        for (i, (layer, class, tensor)) in tensors.iter().enumerate() {
            progress(Progress { stage: "sensitivity", done: i as u64, total: tensors.len() as u64 });
            if cancelled() {
                return Err(StudyError::Cancelled { what: "the sensitivity map" });
            }
            let recipe = single_tensor_recipe(tensor, config.scheme);
            let result = if resumes {
                self.resumed_cell(&recipe, *layer, tokens, options, &reference)?
            } else {
                if live {
                    // One matrix re-quantized; the previous cell's put back from its master copy.
                    self.apply_recipe(&recipe, &mut |_| {}).await?;
                } else {
                    let experiment = Experiment {
                        weights: Some(recipe),
                        activations: config.activations,
                        kv: config.kv,
                        ..Default::default()
                    };
                    self.set_experiment(&experiment, None, &[], 512, false, &mut |_| {}).await?;
                }
                self.evaluate_tokens(tokens, options, Some(&mut reference), &mut |_| {}, &|| false).await?.0
            };
            yield_now().await;
            reference_perplexity = result.logits.reference_perplexity;
            let cell = SensitivityCell {
                layer: *layer,
                class,
                tensor: tensor.clone(),
                kl: result.logits.kl,
                top1_agreement: result.logits.top1_agreement,
                perplexity: result.logits.perplexity,
                final_error: result.layers.last().map_or(0.0, |l| l.relative_error),
            };
            on_cell(&cell);
            cells.push(cell);
        }
        progress(Progress { stage: "sensitivity", done: tensors.len() as u64, total: tensors.len() as u64 });
        Ok((cells, reference_perplexity))
    }

    /// One weights-only cell on the CPU: `recipe`'s model (it differs from the model as loaded
    /// from block `block` on) run from that block on the reference's residual streams.
    fn resumed_cell(
        &self,
        recipe: &Recipe,
        block: usize,
        tokens: &[u32],
        options: &EvalOptions,
        reference: &ReferenceWindows,
    ) -> Result<EvalResult, StudyError> {
        let quantized = quantize_model(&self.model, recipe, &mut |_| {})?;
        let cpu_options = ForwardOptions { all_logits: true, hidden_states: true, attention_probs: false };
        let mut acc = EvalAccumulator::new(&self.model);
        for (w, window_reference) in windows(&self.model, tokens, options).iter().zip(&reference.windows) {
            let resume = ResumeAt { block, residual: &window_reference.1[block] };
            let out = forward_from(&quantized.model, w, cpu_options, &mut NoHook, Some(resume))?;
            let mut hidden = window_reference.1[..block].to_vec();
            hidden.extend(out.hidden_states);
            acc.add_window(w, window_reference, &(out.logits, hidden));
        }
        Ok(acc.finish())
    }
}
