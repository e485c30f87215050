//! Weight quantizers: the CPU reference of every scheme (readable, the ground truth the GPU is
//! checked against), the scheme names, and recipes that assign schemes to tensors.
//!
//! Every quantizer takes a `rows × cols` row-major f32 tensor (rows = output features, the ggml
//! rows; cols = the input dimension K along which groups run) and returns a [`QuantizedTensor`]:
//! the dequantized values, the encoding they came from (GGUF blocks, a [`Codebook`], or dense), and
//! the storage cost in bits by the accounting rule of docs/quantizers.md §1.3.

pub mod activation;
pub mod apply;
pub mod attention_probs;
pub mod bcq;
pub mod bitalloc;
pub mod calibrate;
pub mod codebook;
pub mod experiment;
pub mod export;
pub mod fireq;
pub mod float;
pub mod gguf_blocks;
pub mod hadamard;
pub mod int;
pub mod kv;
pub mod levels;
pub mod llmfp4;
pub mod minifloat;
pub mod nf4;
pub mod outliertune;
pub mod pbllm;
pub mod ptq161;
pub mod recipe;
pub mod runtime;
pub mod scheme;
pub mod smoothquant;
pub mod split;

pub use codebook::{Codebook, Sharing};

/// Test vectors shared by the quantizers' unit tests.
#[cfg(test)]
pub(crate) mod known_answers {
    /// docs/quantizers.md §6's block: `random.seed(0)`, gauss·0.05 rounded to 6 decimals, element 5
    /// forced to −0.31.
    pub const BLOCK: [f32; 32] = [
        0.047086, -0.069829, -0.033986, 0.018525, -0.050817, -0.31, 0.00896, -0.041555, -0.065452, 0.009694, 0.049662,
        -0.032349, -0.016683, 0.082284, -0.027944, -0.025708, 0.120206, -0.076554, 0.039823, -0.100182, -0.029848,
        0.075184, 0.061072, -0.045056, -0.022685, 0.004012, -0.062905, 0.027611, 0.111379, -0.067762, -0.099077,
        0.014412,
    ];
}
pub use recipe::Recipe;
pub use scheme::{BlockScale, Granularity, MiniFloat, Scheme, SchemeKind};

use crate::error::QuantError;
use crate::formats::ggml::{self, GgmlType};

/// How a quantized tensor is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// GGUF block bytes of this type, row after row.
    Ggml { dtype: GgmlType, bytes: Vec<u8> },
    /// Codes, level tables and scales (every other scheme).
    Codebook(Codebook),
    /// The inner encoding holds the quantized weights in a basis rotated by blocks of `block`
    /// along each row; the values of the [`QuantizedTensor`] are rotated back.
    Rotated { block: usize, inner: Box<Encoding> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    pub rows: usize,
    pub cols: usize,
    /// Dequantized values in the original basis, row-major.
    pub values: Vec<f32>,
    pub encoding: Encoding,
    /// Stored bits, metadata included (docs/quantizers.md §1.3).
    pub storage_bits: u64,
}

impl QuantizedTensor {
    /// Values from the codebook itself, so they can never disagree with what the GPU decodes.
    pub fn from_codebook(codebook: Codebook, storage_bits: u64) -> Result<QuantizedTensor, String> {
        codebook.validate()?;
        Ok(QuantizedTensor {
            rows: codebook.rows,
            cols: codebook.cols,
            values: codebook.dequantize(),
            encoding: Encoding::Codebook(codebook),
            storage_bits,
        })
    }

    pub fn bits_per_weight(&self) -> f64 {
        self.storage_bits as f64 / (self.rows * self.cols).max(1) as f64
    }
}

/// Quantizes one tensor. `tensor` only names it in errors.
pub fn quantize(
    scheme: &Scheme,
    tensor: &str,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<QuantizedTensor, QuantError> {
    let unsupported = |reason: String| QuantError::Unsupported {
        scheme: scheme.to_string(),
        tensor: tensor.into(),
        rows,
        cols,
        reason,
    };
    if rows * cols != data.len() || rows == 0 || cols == 0 {
        return Err(unsupported(format!("{} values do not make a {rows}×{cols} tensor", data.len())));
    }
    if let Some(index) = data.iter().position(|x| !x.is_finite()) {
        return Err(QuantError::NonFinite { tensor: tensor.into(), index, value: data[index] });
    }
    match scheme.hadamard {
        None => quantize_kind(&scheme.kind, rows, cols, data).map_err(unsupported),
        Some(requested) => {
            let block = hadamard::block_size(requested, cols).map_err(&unsupported)?;
            let rotated = hadamard::rotate_rows(block, cols, data);
            let inner = quantize_kind(&scheme.kind, rows, cols, &rotated).map_err(unsupported)?;
            Ok(QuantizedTensor {
                rows,
                cols,
                values: hadamard::rotate_rows(block, cols, &inner.values),
                encoding: Encoding::Rotated { block, inner: Box::new(inner.encoding) },
                storage_bits: inner.storage_bits,
            })
        }
    }
}

fn quantize_kind(kind: &SchemeKind, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    let n = (rows * cols) as u64;
    let dense = |dtype: GgmlType, bytes: Vec<u8>| -> Result<QuantizedTensor, String> {
        let values = ggml::dequantize(dtype, &bytes, rows * cols, "quantizer", "tensor").map_err(|e| e.to_string())?;
        Ok(QuantizedTensor {
            rows,
            cols,
            values,
            storage_bits: bytes.len() as u64 * 8,
            encoding: Encoding::Ggml { dtype, bytes },
        })
    };
    match *kind {
        SchemeKind::F32 => dense(GgmlType::F32, data.iter().flat_map(|x| x.to_le_bytes()).collect()),
        SchemeKind::F16 => {
            dense(GgmlType::F16, data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect())
        }
        SchemeKind::BF16 => {
            dense(GgmlType::BF16, data.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect())
        }
        SchemeKind::Gguf(dtype) => {
            if cols % dtype.block_size() != 0 {
                return Err(format!(
                    "rows of {cols} are not a multiple of the {} block of {}",
                    dtype.name(),
                    dtype.block_size()
                ));
            }
            dense(dtype, gguf_blocks::quantize(dtype, data)?)
        }
        SchemeKind::Int { bits, granularity, symmetric } => {
            int::quantize(bits, granularity, symmetric, rows, cols, data)
        }
        SchemeKind::Nf4 { block, double_quant } => nf4::quantize(block, double_quant, rows, cols, data),
        SchemeKind::Fp { format, granularity } => float::quantize_fp(format, granularity, rows, cols, data),
        SchemeKind::Mx { format } => float::quantize_mx(format, rows, cols, data),
        SchemeKind::NvFp4 { scale } => float::quantize_nvfp4(scale, rows, cols, data),
        SchemeKind::LlmFp { format, search } => float::quantize_llmfp(format, search, rows, cols, data),
        SchemeKind::Bcq { bits, group, rounds } => bcq::quantize(bits, group, rounds, rows, cols, data),
        SchemeKind::PbLlm { salient_fraction } => pbllm::quantize(salient_fraction, rows, cols, data),
        SchemeKind::Post { bits, base } => levels::quantize_post(bits, base, rows, cols, data),
        SchemeKind::StatsQ { bits } => levels::quantize_statsq(bits, rows, cols, data),
        SchemeKind::Pot { bits } => levels::quantize_pot(bits, rows, cols, data),
        SchemeKind::Split { bits } => split::quantize(bits, rows, cols, data),
    }
    .map(|q| {
        debug_assert_eq!(q.values.len() as u64, n);
        q
    })
}
