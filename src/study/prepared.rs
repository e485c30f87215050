//! A model under study prepared whole by an [`Experiment`] on the CPU reference: a weight recipe
//! quantized on the CPU, the weights a calibrated method rewrote, its run-time quantizers, and an
//! intervention. This is how the CLI studies a model (`predict`, `eval`, `report`), and how the
//! page runs a method that rewrites weights and norms.
//!
//! Where it runs is decided once, when it is set: on the CPU reference, or on the GPU as a model
//! of its own (its weights uploaded beside the model as loaded, its run-time quantizers and
//! intervention in the GPU forward). Every operation of the study then takes it from there.

use std::sync::Arc;

use serde::Serialize;

use super::{now_ms, Study};
use crate::error::StudyError;
use crate::gpu::forward::GpuModel;
use crate::gpu::kernels::intervene::GpuIntervention;
use crate::gpu::kernels::runtime_quant::GpuRuntimeQuant;
use crate::model::intervene::{Intervener, Intervention, MeanMassiveCalibration};
use crate::model::reference::{forward, ForwardOptions, ForwardOutput};
use crate::model::{Model, Progress};
use crate::quant::experiment::{Experiment, Method, Prepared};
use crate::quant::runtime::RuntimeWindows;

/// The prepared model under study and where it runs.
pub(super) struct PreparedRun {
    pub prepared: Prepared,
    /// The method that prepared it, for a front end to name.
    pub method: Option<Method>,
    /// The intervention of its CPU runs (its GPU runs use the study's `intervention`).
    pub intervener: Option<Intervener>,
    /// Whether its runs go to the GPU.
    pub on_gpu: bool,
    /// Its weights on the GPU, when it runs there and they differ from the weights as loaded.
    pub gpu_model: Option<GpuModel>,
}

impl PreparedRun {
    /// "webgpu" or "cpu": where its runs go.
    pub fn backend(&self) -> &'static str {
        if self.on_gpu {
            "webgpu"
        } else {
            "cpu"
        }
    }

    /// One CPU forward of the prepared model (its weights, run-time quantizers, intervention).
    pub fn forward(&self, loaded: &Model, tokens: &[u32], options: ForwardOptions) -> Result<ForwardOutput, StudyError> {
        let model = self.prepared.model(loaded);
        if self.prepared.runtime.is_empty() && self.intervener.is_none() {
            // Without hooks the reference forward keeps its fast path.
            return Ok(forward(model, tokens, options)?);
        }
        let mut windows = RuntimeWindows {
            model,
            quant: &self.prepared.runtime,
            intervener: self.intervener.clone(),
        };
        Ok(windows.forward(tokens, options)?)
    }
}

/// A prepared run and the GPU kernels of its intervention and run-time quantizers (on the GPU
/// forward they go in the step's [`crate::gpu::forward::Capture`], not in the run).
pub(super) struct ReadyRun {
    pub run: PreparedRun,
    pub intervention: Option<Arc<GpuIntervention>>,
    pub runtime: Option<Arc<GpuRuntimeQuant>>,
    /// What mean-massive was calibrated on, when it is the intervention.
    pub calibration: Option<MeanMassiveCalibration>,
}

/// What [`Study::set_experiment`] set up.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSet {
    /// "webgpu" or "cpu": where the model under study runs.
    pub backend: &'static str,
    /// What mean-massive was calibrated on, when it is the intervention.
    pub intervention_calibration: Option<MeanMassiveCalibration>,
    /// Preparing (calibrating, quantizing) and uploading, milliseconds.
    pub ms: f64,
}

impl Study {
    /// Makes the model under study `experiment` prepared on the model as loaded (calibrated on
    /// `calibration_tokens` in windows of `window` when it needs calibration) with
    /// `intervention` (mean-massive calibrated as everywhere: [`Intervener::calibrated`]).
    /// With `on_gpu` and a GPU its runs go to the GPU, else to the CPU reference. Replaces any
    /// earlier recipe, intervention, run-time quantization or method; on an error nothing has
    /// changed. Progress counts the preparation's stages, then the upload.
    pub async fn set_experiment(
        &mut self,
        experiment: &Experiment,
        intervention: Option<Intervention>,
        calibration_tokens: &[u32],
        window: usize,
        on_gpu: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ExperimentSet, StudyError> {
        let t0 = now_ms();
        if !self.applied.is_empty() {
            return Err(StudyError::Invalid {
                what: "experiment",
                message: "a recipe is applied on the GPU; an experiment starts from the weights as loaded".into(),
            });
        }
        let ready = self.prepare_run(experiment, intervention, calibration_tokens, window, on_gpu, progress)?;
        let backend = ready.run.backend();
        self.intervention = ready.intervention;
        self.runtime = ready.runtime;
        self.prepared = Some(ready.run);
        Ok(ExperimentSet { backend, intervention_calibration: ready.calibration, ms: now_ms() - t0 })
    }

    /// `experiment` prepared on the model as loaded, with `intervention`, and with `on_gpu` (and
    /// a GPU) put on the GPU: its weights uploaded when they differ from the weights as loaded,
    /// its intervention and run-time quantizers made GPU kernels. The study is not changed.
    pub(super) fn prepare_run(
        &self,
        experiment: &Experiment,
        intervention: Option<Intervention>,
        calibration_tokens: &[u32],
        window: usize,
        on_gpu: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ReadyRun, StudyError> {
        experiment.validate()?;
        let prepared = experiment.prepare(&self.model, calibration_tokens, window, progress)?;
        let intervener = intervention.map(|i| Intervener::calibrated(&self.model, i)).transpose()?;
        let calibration = intervener.as_ref().and_then(|i| i.calibration().copied());
        let mut run = PreparedRun { prepared, method: experiment.method, intervener, on_gpu: false, gpu_model: None };
        let (mut gpu_intervention, mut gpu_runtime) = (None, None);
        if let (true, Some(gpu)) = (on_gpu, &self.gpu) {
            let c = &self.model.config;
            run.gpu_model = match (&run.prepared.quantized, &run.prepared.transformed) {
                (Some(q), _) => Some(GpuModel::upload_quantized(&gpu.ctx, q, progress)?),
                (None, Some(m)) => Some(GpuModel::upload(&gpu.ctx, m, progress)?),
                (None, None) => None,
            };
            gpu_intervention =
                run.intervener.as_ref().map(|i| GpuIntervention::new(&gpu.ctx, i, c.n_layers, c.d_model)).transpose()?;
            gpu_runtime = if run.prepared.runtime.is_empty() {
                None
            } else {
                Some(Arc::new(GpuRuntimeQuant::new(&gpu.ctx, &run.prepared.runtime, c)?))
            };
            run.on_gpu = true;
        }
        Ok(ReadyRun { run, intervention: gpu_intervention, runtime: gpu_runtime, calibration })
    }

    /// The experiment [`Study::set_experiment`] prepared, if any.
    pub fn prepared(&self) -> Option<&Prepared> {
        self.prepared.as_ref().map(|run| &run.prepared)
    }

    /// One forward on the CPU reference: of the reference with `reference` (the model as loaded,
    /// or the pinned configuration), else of the model under study as the CPU computes it (a
    /// prepared model, or the model as loaded when none is; what is applied on the GPU only — a
    /// recipe, the page's intervention and run-time quantizers — is not seen here).
    pub fn cpu_forward(&self, tokens: &[u32], options: ForwardOptions, reference: bool) -> Result<ForwardOutput, StudyError> {
        match self.prepared_run(reference) {
            Some(run) => run.forward(&self.model, tokens, options),
            None => Ok(forward(&self.model, tokens, options)?),
        }
    }
}
