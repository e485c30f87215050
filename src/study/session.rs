//! One sequence on either backend, for predictions and generation: a GPU KV cache with the
//! study's capture options, or the CPU reference (which recomputes the whole sequence).

use super::{Study, StudyGpu};
use crate::error::ModelError;
use crate::gpu::forward::{Capture, KvCache};
use crate::model::generate::{CpuBackend, NextTokenLogits};

pub(super) enum Session<'a> {
    Gpu { gpu: &'a StudyGpu, cache: Box<KvCache>, capture: Capture },
    Cpu(CpuBackend<'a>),
}

impl<'a> Session<'a> {
    /// `as_loaded` runs the reference (the weights as loaded, no intervention) instead of the
    /// model under study; the CPU backend only ever has the weights as loaded, and takes the runs
    /// [`Study::runs_on_cpu`] gives it. `capacity` is the longest sequence the session will hold.
    pub(super) fn new(study: &'a Study, capacity: usize, as_loaded: bool) -> Result<Self, ModelError> {
        Ok(match &study.gpu {
            Some(gpu) if !study.runs_on_cpu(as_loaded) => {
                let capacity = u32::try_from(capacity).unwrap_or(u32::MAX);
                Session::Gpu {
                    gpu,
                    cache: Box::new(gpu.model.new_cache(&gpu.ctx, capacity)?),
                    capture: study.capture(as_loaded),
                }
            }
            _ => Session::Cpu(CpuBackend::new(&study.model)),
        })
    }

    pub(super) fn backend(&self) -> &'static str {
        match self {
            Session::Gpu { .. } => "webgpu",
            Session::Cpu(_) => "cpu",
        }
    }

    pub(super) fn is_cpu(&self) -> bool {
        matches!(self, Session::Cpu(_))
    }

    /// Appends `tokens` and returns the logits after the last one.
    pub(super) async fn advance(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        match self {
            Session::Gpu { gpu, cache, capture } => Ok(gpu.model.step(&gpu.ctx, cache, tokens, capture).await?.logits),
            Session::Cpu(cpu) => cpu.advance(tokens),
        }
    }
}
