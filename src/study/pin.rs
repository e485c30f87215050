//! Any configuration as the reference. By default a study compares the model under study with
//! the model as loaded; a pinned configuration (a weight recipe, run-time quantizers, a method,
//! an intervention: an [`Experiment`]) takes that place, so that every comparison — predictions
//! side by side, the metrics, the token view, why it broke — says how configuration B differs
//! from configuration A.
//!
//! The pinned configuration is prepared once, as the CLI prepares an experiment, and runs where
//! the model as loaded runs: on the GPU as a model of its own beside the study's (its weights
//! uploaded when they differ from the weights as loaded), or on the CPU reference when there is
//! no GPU or the CPU was measured faster. The sensitivity map measures single changes against
//! the model as loaded and refuses to run while something is pinned.

use serde::Serialize;

use super::prepared::ReadyRun;
use super::{now_ms, Study};
use crate::error::StudyError;
use crate::model::intervene::{Intervention, MeanMassiveCalibration};
use crate::model::Progress;
use crate::quant::experiment::Experiment;

/// The pinned reference and how it is named.
pub(super) struct PinnedReference {
    pub ready: ReadyRun,
    pub info: PinnedInfo,
}

/// What is pinned, for a front end to show.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PinnedInfo {
    /// The front end's name for the configuration (a recipe file, a history row).
    pub label: String,
    /// "webgpu" or "cpu": where the reference now runs.
    pub backend: &'static str,
    /// Of the pinned weights, when it quantized them.
    pub bits_per_weight: Option<f64>,
    /// What mean-massive was calibrated on, when it is the pinned intervention.
    pub intervention_calibration: Option<MeanMassiveCalibration>,
    /// Preparing (calibrating, quantizing) and uploading, milliseconds.
    pub ms: f64,
}

impl Study {
    /// Makes `experiment` with `intervention` (prepared on the model as loaded, calibrated on
    /// `calibration_tokens` in windows of `window` where it needs calibration) the reference of
    /// every later comparison, replacing any configuration pinned before. On an error nothing has
    /// changed. Progress counts the preparation's stages, then the upload.
    pub async fn pin_reference(
        &mut self,
        experiment: &Experiment,
        intervention: Option<Intervention>,
        calibration_tokens: &[u32],
        window: usize,
        label: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PinnedInfo, StudyError> {
        let t0 = now_ms();
        let on_gpu = !self.cpu_measured_faster();
        let ready = self.prepare_run(experiment, intervention, calibration_tokens, window, on_gpu, progress)?;
        let info = PinnedInfo {
            label: label.to_string(),
            backend: ready.run.backend(),
            bits_per_weight: ready.run.prepared.bits_per_weight,
            intervention_calibration: ready.calibration,
            ms: now_ms() - t0,
        };
        self.pinned = Some(PinnedReference { ready, info: info.clone() });
        Ok(info)
    }

    /// The model as loaded is the reference again.
    pub fn unpin_reference(&mut self) {
        self.pinned = None;
    }

    /// What is pinned as the reference, if anything.
    pub fn pinned_reference(&self) -> Option<&PinnedInfo> {
        self.pinned.as_ref().map(|p| &p.info)
    }

    /// The error of an operation named `what` that compares with the model as loaded only.
    pub(super) fn refuse_while_pinned(&self, what: &'static str) -> Result<(), StudyError> {
        match &self.pinned {
            None => Ok(()),
            Some(p) => Err(StudyError::Invalid {
                what,
                message: format!(
                    "it measures single changes against the model as loaded, and {:?} is pinned as the reference: \
                     unpin it first",
                    p.info.label
                ),
            }),
        }
    }
}
