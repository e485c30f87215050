//! The model under study as a GGUF file: the weights recipe it holds, written by
//! `quant::export::export_gguf` from the weights as loaded (what `quantscope export` writes for the
//! same recipe). A GGUF holds weights only: run-time quantizers and an intervention are not in it,
//! and weights a calibrated method rewrote on the CPU are refused rather than silently dropped.

use super::Study;
use crate::error::StudyError;
use crate::model::Progress;
use crate::quant::export::export_gguf;
use crate::quant::Recipe;

impl Study {
    /// The GGUF file of the weights recipe applied to the model under study ([`Study::applied_recipe`];
    /// nothing applied: the weights as loaded). Progress counts tensors (stage "quantize").
    ///
    /// Refused with the tensor and scheme when a scheme is not a GGUF type, when the model was not
    /// loaded from a GGUF file (its metadata is copied), and when the model under study was
    /// prepared on the CPU (a method rewrote its weights: the recipe alone is not that model).
    pub fn export_gguf(&self, progress: &mut dyn FnMut(Progress)) -> Result<Vec<u8>, StudyError> {
        if let Some(run) = &self.prepared {
            if run.prepared.transformed.is_some() || run.prepared.quantized.is_some() {
                let by = run.method.map_or_else(|| "an experiment".to_string(), |m| format!("the method {m}"));
                return Err(StudyError::Invalid {
                    what: "GGUF export",
                    message: format!(
                        "{by} prepared the weights under study on the CPU, and a GGUF of the weights recipe \
                         would not be that model; turn the method off to export the recipe"
                    ),
                });
            }
        }
        let recipe = self.applied_recipe().unwrap_or_else(Recipe::keep_all);
        Ok(export_gguf(&self.model, &recipe, progress)?)
    }
}
