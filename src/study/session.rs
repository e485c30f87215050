//! One sequence on whichever backend runs it, for predictions and generation: a GPU KV cache
//! with the study's capture options, the CPU reference (which recomputes the whole sequence), or
//! a model under study prepared on the CPU (likewise).

use super::prepared::PreparedRun;
use super::{Study, StudyGpu};
use crate::error::{ModelError, StudyError};
use crate::gpu::forward::{Capture, GpuModel, KvCache};
use crate::gpu::kernels::topk::MAX_K;
use crate::model::generate::{ranked_top, CpuBackend, NextTokenLogits};
use crate::model::reference::ForwardOptions;
use crate::model::Model;

pub(super) enum Session<'a> {
    Gpu { gpu: &'a StudyGpu, model: &'a GpuModel, cache: Box<KvCache>, capture: Capture },
    Cpu(CpuBackend<'a>),
    Prepared { run: &'a PreparedRun, loaded: &'a Model, tokens: Vec<u32> },
}

impl<'a> Session<'a> {
    /// `as_loaded` runs the reference (the weights as loaded, no intervention) instead of the
    /// model under study, on the backend [`Study::runs_on_cpu`] gives it. `capacity` is the
    /// longest sequence the session will hold.
    pub(super) fn new(study: &'a Study, capacity: usize, as_loaded: bool) -> Result<Self, ModelError> {
        Ok(match &study.gpu {
            Some(gpu) if !study.runs_on_cpu(as_loaded) => {
                let model = study.gpu_model(gpu, as_loaded);
                let capacity = u32::try_from(capacity).unwrap_or(u32::MAX);
                Session::Gpu {
                    gpu,
                    model,
                    cache: Box::new(model.new_cache(&gpu.ctx, capacity)?),
                    capture: study.capture(as_loaded),
                }
            }
            _ => match study.prepared_run(as_loaded) {
                Some(run) => Session::Prepared { run, loaded: &study.model, tokens: Vec::new() },
                None => Session::Cpu(CpuBackend::new(&study.model)),
            },
        })
    }

    pub(super) fn backend(&self) -> &'static str {
        match self {
            Session::Gpu { .. } => "webgpu",
            Session::Cpu(_) | Session::Prepared { .. } => "cpu",
        }
    }

    pub(super) fn is_cpu(&self) -> bool {
        !matches!(self, Session::Gpu { .. })
    }

    /// Appends `tokens` and returns the logits after the last one.
    pub(super) async fn advance(&mut self, tokens: &[u32]) -> Result<Vec<f32>, StudyError> {
        match self {
            Session::Gpu { gpu, model, cache, capture } => Ok(model.step(&gpu.ctx, cache, tokens, capture).await?.logits),
            Session::Cpu(cpu) => Ok(cpu.advance(tokens)?),
            Session::Prepared { run, loaded, tokens: sequence } => {
                let mut all = sequence.clone();
                all.extend_from_slice(tokens);
                let logits = run.forward(loaded, &all, ForwardOptions::default())?.logits;
                *sequence = all;
                Ok(logits)
            }
        }
    }

    /// As [`Session::advance`], returning the `k` largest logits, ranked (ids, logits). The GPU
    /// finds them where the logits are, so a greedy decode does not read back the vocabulary.
    pub(super) async fn advance_top(&mut self, tokens: &[u32], k: usize) -> Result<(Vec<u32>, Vec<f32>), StudyError> {
        if let Session::Gpu { gpu, model, cache, capture } = self {
            if let Some(k) = u32::try_from(k).ok().filter(|&k| (1..=MAX_K).contains(&k)) {
                let capture = Capture { top_k: Some(k), ..capture.clone() };
                let out = model.step(&gpu.ctx, cache, tokens, &capture).await?;
                return Ok(out.top.into_iter().unzip());
            }
        }
        Ok(ranked_top(&self.advance(tokens).await?, k))
    }
}
