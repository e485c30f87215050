//! Applying a weight recipe to the model under study on the GPU, incrementally: only matrices
//! whose scheme changed since the last application are re-quantized, from the weights as loaded
//! (on the GPU where the kernels can, else by the CPU reference and uploaded); "keep" puts a
//! matrix back as loaded.

use serde::Serialize;

use super::{now_ms, yield_now, Study};
use crate::error::{GpuError, StudyError};
use crate::formats::ggml::GgmlType;
use crate::gpu::requant::gpu_quantizable;
use crate::gpu::weights::GpuWeight;
use crate::gpu::GpuContext;
use crate::model::{Progress, Weights};
use crate::quant::apply::{gguf_fallback, quantize_tensor, storage_bits, stored_bits};
use crate::quant::recipe::{Assignment, Rule};
use crate::quant::{Encoding, QuantizedTensor, Recipe};

/// Stored bits of one quantized matrix and where it was quantized.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorCost {
    pub bits: u64,
    pub on_gpu: bool,
}

/// What one application did, and the model it left.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Matrices re-quantized by this call, on the GPU and on the CPU (then uploaded).
    pub requantized_on_gpu: usize,
    pub requantized_on_cpu: usize,
    /// Matrices put back as loaded by this call.
    pub restored: usize,
    /// Matrices left as they were (same scheme as before).
    pub unchanged: usize,
    /// Stored bits of the whole model / its weights, and bytes.
    pub bits_per_weight: f64,
    pub bytes: u64,
    /// Per matrix: name, canonical scheme (or "keep"), bits per weight, where it was quantized.
    pub tensors: Vec<AppliedTensor>,
    pub ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedTensor {
    pub name: String,
    pub scheme: String,
    pub bits_per_weight: f64,
    pub on_gpu: bool,
}

/// Uploads a CPU-quantized matrix: GGUF blocks in their GPU layout, codebooks as codebooks, and a
/// Hadamard-rotated scheme as its f32 values (the GPU does not rotate activations yet).
fn upload_quantized_matrix(ctx: &GpuContext, name: &str, q: QuantizedTensor) -> Result<GpuWeight, GpuError> {
    let single = |dtype, bytes: Vec<u8>| -> Result<GpuWeight, GpuError> {
        let (weights, t) = Weights::single("quantized", name, dtype, q.rows, q.cols, bytes)
            .map_err(|e| GpuError::Shape { kernel: "upload", message: e.to_string() })?;
        GpuWeight::upload(ctx, &weights, &t)
    };
    match q.encoding {
        Encoding::Codebook(cb) => GpuWeight::upload_codebook(ctx, name, &cb),
        Encoding::Ggml { dtype, bytes } if GpuWeight::is_supported(dtype) => single(dtype, bytes),
        _ => single(GgmlType::F32, q.values.iter().flat_map(|v| v.to_le_bytes()).collect()),
    }
}

impl Study {
    /// What [`Study::apply_recipe`] has left on the GPU, as a recipe that applies it again (None:
    /// the weights as loaded).
    pub fn applied_recipe(&self) -> Option<Recipe> {
        if self.applied.is_empty() {
            return None;
        }
        let mut names: Vec<&String> = self.applied.keys().collect();
        names.sort();
        let rules = names
            .into_iter()
            .map(|name| Rule {
                tensors: name.clone(),
                layers: None,
                scheme: Assignment::Quantize(self.applied[name].0),
            })
            .collect();
        Some(Recipe { default: Assignment::Keep, rules })
    }

    /// Applies `recipe` to the model under study on the GPU (see the module documentation);
    /// predictions, generation and `evaluate` then use the result. Every assignment is checked
    /// first, so a scheme that cannot hold a tensor changes nothing. Progress counts matrices.
    pub async fn apply_recipe(
        &mut self,
        recipe: &Recipe,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied, StudyError> {
        let t0 = now_ms();
        let Some(gpu) = self.gpu.as_mut() else {
            return Err(self.no_gpu("re-quantization"));
        };
        let names = gpu.model.matrix_names();
        let mut plan = Vec::with_capacity(names.len());
        for name in &names {
            let t = self.model.tensor(name)?;
            let assignment = match recipe.assignment(name, t.dims.len()) {
                Assignment::Quantize(s) => Assignment::Quantize(gguf_fallback(&s, t.row_len()).unwrap_or(s)),
                keep => keep,
            };
            if let Assignment::Quantize(s) = &assignment {
                if !gpu_quantizable(s) || !gpu.model.can_requantize_on_gpu(name) {
                    // Surfaces a shape the scheme refuses before anything is replaced.
                    storage_bits(s, name, t.n_rows(), t.row_len())?;
                }
            }
            plan.push((name.clone(), t.n_rows(), t.row_len(), assignment));
        }
        let (mut on_gpu, mut on_cpu, mut restored, mut unchanged) = (0, 0, 0, 0);
        let mut encoder = gpu.ctx.encoder();
        for (i, (name, rows, cols, assignment)) in plan.iter().enumerate() {
            progress(Progress { stage: "quantize", done: i as u64, total: plan.len() as u64 });
            match assignment {
                Assignment::Keep => {
                    if self.applied.remove(name).is_some() {
                        gpu.model.restore_matrix(name);
                        restored += 1;
                    } else {
                        unchanged += 1;
                    }
                }
                Assignment::Quantize(scheme) => {
                    if self.applied.get(name).is_some_and(|(s, _)| s == scheme) {
                        unchanged += 1;
                        continue;
                    }
                    let bits = storage_bits(scheme, name, *rows, *cols)?;
                    let gpu_side = gpu_quantizable(scheme) && gpu.model.can_requantize_on_gpu(name);
                    if gpu_side {
                        gpu.model.requantize(&gpu.ctx, &mut encoder, name, scheme)?;
                        on_gpu += 1;
                    } else {
                        let (_, q, _) = quantize_tensor(&self.model, name, scheme)?;
                        let weight = upload_quantized_matrix(&gpu.ctx, name, q)?;
                        gpu.model.replace_matrix(weight)?;
                        on_cpu += 1;
                        yield_now().await;
                    }
                    self.applied.insert(name.clone(), (*scheme, TensorCost { bits, on_gpu: gpu_side }));
                }
            }
        }
        gpu.ctx.submit(encoder);
        gpu.ctx.check("re-quantizing")?;
        progress(Progress { stage: "quantize", done: plan.len() as u64, total: plan.len() as u64 });
        let replaced = self.applied.iter().map(|(name, (_, cost))| (name.clone(), cost.bits)).collect();
        let (bits, weights) = stored_bits(&self.model, &replaced);
        let tensors = plan
            .iter()
            .map(|(name, rows, cols, _)| {
                let (scheme, bpw, on_gpu) = match self.applied.get(name) {
                    Some((s, cost)) => (s.to_string(), cost.bits as f64 / (rows * cols) as f64, cost.on_gpu),
                    None => {
                        ("keep".to_string(), self.model.tensor(name).map_or(0.0, |t| t.dtype.bits_per_weight()), false)
                    }
                };
                AppliedTensor { name: name.clone(), scheme, bits_per_weight: bpw, on_gpu }
            })
            .collect();
        Ok(Applied {
            requantized_on_gpu: on_gpu,
            requantized_on_cpu: on_cpu,
            restored,
            unchanged,
            bits_per_weight: bits as f64 / weights.max(1) as f64,
            bytes: bits.div_ceil(8),
            tensors,
            ms: now_ms() - t0,
        })
    }
}
