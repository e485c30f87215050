//! Applying a recipe to a whole model: every matrix the recipe assigns a scheme is quantized from
//! the model *as loaded* (its stored weights, dequantized: the master copy), and a new model is
//! assembled whose tensors hold the result, so the CPU reference forward and the GPU forward both
//! run the quantized weights without knowing about schemes.
//!
//! A tensor whose scheme has a GGUF encoding is stored in that encoding; every other scheme's
//! values are stored as f32 (the values are exactly what the scheme's decoder produces, so the
//! forward computes the same numbers as a kernel that decodes the packed form would, up to the
//! order of its additions).

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{FormatError, QuantError};
use crate::formats::ggml::GgmlType;
use crate::model::{Model, Progress, WeightTensor, Weights};
use crate::quant::recipe::Assignment;
use crate::quant::{quantize, Codebook, Encoding, QuantizedTensor, Recipe, Scheme, SchemeKind};

/// What happened to one tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    pub name: String,
    /// The canonical scheme name, or "keep".
    pub scheme: String,
    /// Set when the requested scheme could not hold this tensor and llama.cpp's fallback was used
    /// (e.g. q4_k on rows of 576 → q5_0): the scheme that was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    pub rows: usize,
    pub cols: usize,
    pub bits_per_weight: f64,
    pub bytes: u64,
    pub error: TensorError,
}

/// How far the quantized tensor is from the loaded one.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TensorError {
    pub mse: f64,
    /// 10·log10(Σx² / Σ(x − x̂)²); +inf (null in JSON) when the tensor is unchanged.
    pub sqnr_db: f64,
    pub max_abs: f64,
}

impl TensorError {
    pub fn between(original: &[f32], quantized: &[f32]) -> TensorError {
        let (mut signal, mut noise, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
        for (&x, &q) in original.iter().zip(quantized) {
            let e = (x as f64 - q as f64).abs();
            signal += (x as f64) * (x as f64);
            noise += e * e;
            max_abs = max_abs.max(e);
        }
        let n = original.len().max(1) as f64;
        TensorError { mse: noise / n, sqnr_db: 10.0 * (signal / noise).log10(), max_abs }
    }
}

pub struct QuantizedModel {
    /// The quantized weights as the forward reads them: GGUF blocks where the scheme is a GGUF
    /// type, else f32 values.
    pub model: Model,
    /// The codebooks of the codebook-quantized matrices, for the GPU, which decodes them in its
    /// kernels instead of reading f32.
    pub codebooks: HashMap<String, Codebook>,
    pub tensors: Vec<TensorReport>,
    /// Stored bits of the whole model (kept tensors at their stored size) / number of weights.
    pub bits_per_weight: f64,
    pub bytes: u64,
}

/// llama.cpp's rule for a K-quant whose rows are not a multiple of 256 (`llama_tensor_get_type`):
/// Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and F16 when even that block does not divide the row.
pub fn gguf_fallback(scheme: &Scheme, cols: usize) -> Option<Scheme> {
    let SchemeKind::Gguf(t) = scheme.kind else { return None };
    if cols % t.block_size() == 0 {
        return None;
    }
    let fallback = match t {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    };
    // F16 is a scheme of its own, not a GGUF block type to quantize into.
    let kind = match fallback {
        GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 if cols % fallback.block_size() == 0 => {
            SchemeKind::Gguf(fallback)
        }
        _ => SchemeKind::F16,
    };
    Some(Scheme { kind, hadamard: scheme.hadamard })
}

/// Quantizes one tensor of `model` (from its loaded values) with `scheme`, applying llama.cpp's
/// fallback where a GGUF block does not divide the row. Returns the scheme actually used.
pub fn quantize_tensor(
    model: &Model,
    name: &str,
    scheme: &Scheme,
) -> Result<(Scheme, QuantizedTensor, Vec<f32>), QuantError> {
    let t = model.weights.get(name).ok_or_else(|| QuantError::MissingTensor { tensor: name.into() })?;
    let original = model.weights.dequantize(t)?;
    let (rows, cols) = (t.n_rows(), t.row_len());
    let used = gguf_fallback(scheme, cols).unwrap_or(*scheme);
    let q = quantize(&used, name, rows, cols, &original)?;
    Ok((used, q, original))
}

/// The model with `recipe` applied. Progress counts tensors.
pub fn quantize_model(
    model: &Model,
    recipe: &Recipe,
    progress: &mut dyn FnMut(Progress),
) -> Result<QuantizedModel, QuantError> {
    let all = model.weights.tensors();
    let mut bytes = Vec::new();
    let mut tensors = Vec::with_capacity(all.len());
    let mut reports = Vec::new();
    let mut codebooks = HashMap::new();
    let (mut total_bits, mut total_weights) = (0u64, 0u64);
    for (i, t) in all.iter().enumerate() {
        let start = bytes.len();
        let (dtype, report) = match recipe.assignment(&t.name, t.dims.len()) {
            Assignment::Keep => {
                bytes.extend_from_slice(&model.weights.data(t)?);
                total_bits += t.len as u64 * 8;
                (t.dtype, None)
            }
            Assignment::Quantize(scheme) => {
                let (used, q, original) = quantize_tensor(model, &t.name, &scheme)?;
                let dtype = match &q.encoding {
                    Encoding::Ggml { dtype, bytes: packed } => {
                        bytes.extend_from_slice(packed);
                        *dtype
                    }
                    _ => {
                        bytes.extend(q.values.iter().flat_map(|v| v.to_le_bytes()));
                        GgmlType::F32
                    }
                };
                total_bits += q.storage_bits;
                let report = TensorReport {
                    name: t.name.clone(),
                    scheme: used.to_string(),
                    requested: (used != scheme).then(|| scheme.to_string()),
                    rows: q.rows,
                    cols: q.cols,
                    bits_per_weight: q.bits_per_weight(),
                    bytes: q.storage_bits.div_ceil(8),
                    error: TensorError::between(&original, &q.values),
                };
                if let Encoding::Codebook(cb) = q.encoding {
                    codebooks.insert(t.name.clone(), cb);
                }
                (dtype, Some(report))
            }
        };
        total_weights += t.n_elements();
        tensors.push(WeightTensor {
            name: t.name.clone(),
            dtype,
            dims: t.dims.clone(),
            start: start as u64,
            len: bytes.len() - start,
        });
        reports.extend(report);
        progress(Progress { stage: "quantize", done: i as u64 + 1, total: all.len() as u64 });
    }
    let quantized = with_weights(model, bytes, tensors)?;
    Ok(QuantizedModel {
        model: quantized,
        codebooks,
        tensors: reports,
        bits_per_weight: total_bits as f64 / total_weights.max(1) as f64,
        bytes: total_bits.div_ceil(8),
    })
}

/// `model` (same name, config and tokenizer) with other weights: `tensors` index into `bytes`.
/// Shared by every transform that writes a new model (quantization, SmoothQuant), so a model
/// field added later cannot be forgotten in one of them.
pub fn with_weights(model: &Model, bytes: Vec<u8>, tensors: Vec<WeightTensor>) -> Result<Model, FormatError> {
    Ok(Model {
        source: model.source.clone(),
        name: model.name.clone(),
        config: model.config.clone(),
        weights: Weights::new(bytes, &model.source, tensors)?,
        tokenizer: model.tokenizer.clone(),
    })
}

/// Stored bits of `scheme` on a `rows × cols` matrix, without quantizing the matrix: every
/// scheme's cost is affine in the number of rows (per-row and per-group parts, plus a per-tensor
/// constant), so quantizing one and two rows of stand-in values gives it exactly. Also what
/// surfaces a shape the scheme refuses, as an error naming the tensor `name` and its real shape.
pub fn storage_bits(scheme: &Scheme, name: &str, rows: usize, cols: usize) -> Result<u64, QuantError> {
    let sample = |n: usize| -> Result<u64, QuantError> {
        let data: Vec<f32> = (0..n * cols).map(|i| ((i * 7919 % 1009) as f32 / 504.5 - 1.0) * 0.02).collect();
        match quantize(scheme, name, n, cols, &data) {
            Ok(q) => Ok(q.storage_bits),
            // The refusal is about the tensor, not the rows sampled from it.
            Err(QuantError::Unsupported { scheme, tensor, cols, reason, .. }) => {
                Err(QuantError::Unsupported { scheme, tensor, rows, cols, reason })
            }
            Err(e) => Err(e),
        }
    };
    let (one, two) = (sample(1)?, sample(2)?);
    Ok((two - one) * rows as u64 + (2 * one - two))
}

/// Stored bits of every tensor of `model` (those named in `replaced` at the given bits, the rest
/// as stored) and the number of weights: a whole-model bits per weight is their ratio.
pub fn stored_bits(model: &Model, replaced: &HashMap<String, u64>) -> (u64, u64) {
    model.weights.tensors().iter().fold((0, 0), |(bits, weights), t| {
        (bits + replaced.get(&t.name).copied().unwrap_or(t.len as u64 * 8), weights + t.n_elements())
    })
}

/// `model` with the tensors named in `replaced` stored as these f32 values (same shapes; the
/// caller checks the lengths) and every other tensor copied as stored.
pub fn replace_tensors(model: &Model, replaced: &HashMap<String, Vec<f32>>) -> Result<Model, FormatError> {
    let mut bytes = Vec::new();
    let mut tensors = Vec::with_capacity(model.weights.tensors().len());
    for t in model.weights.tensors() {
        let start = bytes.len();
        let dtype = match replaced.get(&t.name) {
            Some(values) => {
                bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
                GgmlType::F32
            }
            None => {
                bytes.extend_from_slice(&model.weights.data(t)?);
                t.dtype
            }
        };
        tensors.push(WeightTensor {
            name: t.name.clone(),
            dtype,
            dims: t.dims.clone(),
            start: start as u64,
            len: bytes.len() - start,
        });
    }
    with_weights(model, bytes, tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of 48 (the tiny GPT-2's) fit no 32-value block: every GGUF scheme falls back to the
    /// f16 scheme, which quantizes; a K-quant whose 32-block fallback divides the row takes it.
    #[test]
    fn a_row_no_gguf_block_divides_falls_back_to_the_f16_scheme() {
        let scheme = |name: &str| name.parse::<Scheme>().unwrap();
        for name in ["q8_0", "q4_0", "q4_1", "q4_k", "q6_k"] {
            let used = gguf_fallback(&scheme(name), 48).unwrap();
            assert_eq!(used.kind, SchemeKind::F16, "{name}");
            crate::quant::quantize(&used, "t", 2, 48, &[0.5; 96]).unwrap();
        }
        assert_eq!(gguf_fallback(&scheme("q4_k"), 96).unwrap().kind, SchemeKind::Gguf(GgmlType::Q5_0));
        assert_eq!(gguf_fallback(&scheme("q6_k"), 96).unwrap().kind, SchemeKind::Gguf(GgmlType::Q8_0));
        assert!(gguf_fallback(&scheme("q8_0"), 64).is_none());
    }
}
