//! Named weight tensors that stay in their stored format (GGUF blocks, f16, bf16, f32) inside one
//! byte buffer, dequantized a row at a time when used. A 135M-parameter model stays ~100 MB in
//! memory (wasm included) instead of ~540 MB of f32.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::error::FormatError;
use crate::formats::ggml::{self, GgmlType};
use crate::model::bytes::{ByteSegments, ModelBytes};

#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub name: String,
    pub dtype: GgmlType,
    /// ggml order: dims[0] is the contiguous row length (a linear layer's input width).
    pub dims: Vec<u64>,
    /// Byte range inside the weights' bytes (all their buffers, one after the other). The start
    /// is a u64: a file read lazily may be larger than wasm32's address space; one tensor is not.
    pub start: u64,
    pub len: usize,
}

impl WeightTensor {
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }

    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// How much of a tensor the finite check reads at once.
const CHECK_READ_BYTES: usize = 16 << 20;

pub struct Weights {
    /// The file (or files) as loaded, mapped natively; tensors are views into them.
    bytes: ByteSegments,
    pub source: String,
    tensors: Vec<WeightTensor>,
    by_name: HashMap<String, usize>,
}

impl Weights {
    /// Takes tensors whose byte ranges the caller's parser has already bounds-checked; checks again
    /// here (cheaply) so that a Weights value can never index out of its buffer.
    pub fn new(bytes: impl Into<ByteSegments>, source: &str, tensors: Vec<WeightTensor>) -> Result<Self, FormatError> {
        let bytes = bytes.into();
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            let bad = |message: String| FormatError::BadTensor { file: source.into(), tensor: t.name.clone(), message };
            let expected = t.dtype.bytes_for(t.n_elements()).ok_or_else(|| {
                bad(format!(
                    "{} elements do not fill whole {} blocks of {}",
                    t.n_elements(),
                    t.dtype.name(),
                    t.dtype.block_size()
                ))
            })?;
            if expected != t.len as u64 {
                return Err(bad(format!("has {} bytes, {:?} of {} needs {expected}", t.len, t.dims, t.dtype.name())));
            }
            if t.row_len() % t.dtype.block_size() != 0 {
                return Err(bad(format!(
                    "row length {} is not a multiple of the {} block size",
                    t.row_len(),
                    t.dtype.name()
                )));
            }
            if !bytes.contains(t.start, t.len) {
                return Err(FormatError::TensorOutOfBounds {
                    file: source.into(),
                    tensor: t.name.clone(),
                    start: t.start,
                    end: t.start + t.len as u64,
                    file_len: bytes.len(),
                });
            }
            if by_name.insert(t.name.clone(), i).is_some() {
                return Err(FormatError::Duplicate {
                    file: source.into(),
                    what: "tensor".into(),
                    name: t.name.clone(),
                });
            }
        }
        Ok(Weights { bytes, source: source.into(), tensors, by_name })
    }

    /// A buffer holding one `rows × cols` tensor of `dtype` (a re-quantized matrix, a kernel
    /// test's or the benchmark's random weights), checked like any other.
    pub fn single(
        source: &str,
        name: &str,
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
    ) -> Result<(Weights, WeightTensor), FormatError> {
        let t =
            WeightTensor { name: name.into(), dtype, dims: vec![cols as u64, rows as u64], start: 0, len: bytes.len() };
        Ok((Weights::new(bytes, source, vec![t.clone()])?, t))
    }

    pub fn tensors(&self) -> &[WeightTensor] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&WeightTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// `t`'s stored bytes: borrowed where the file is in memory or mapped, read where it is
    /// read lazily (the page's large files), which can fail.
    pub fn data(&self, t: &WeightTensor) -> Result<Cow<'_, [u8]>, FormatError> {
        self.read(t.start, t.len)
    }

    /// Rows `first .. first + count` of `t`, as [`Weights::data`] gives the whole.
    pub fn rows(&self, t: &WeightTensor, first: usize, count: usize) -> Result<Cow<'_, [u8]>, FormatError> {
        let row_bytes = t.len / t.n_rows().max(1);
        if first + count > t.n_rows().max(1) {
            return Err(FormatError::BadTensor {
                file: self.source.clone(),
                tensor: t.name.clone(),
                message: format!("rows {first}..{} of {}", first + count, t.n_rows()),
            });
        }
        self.read(t.start + (first * row_bytes) as u64, count * row_bytes)
    }

    fn read(&self, start: u64, len: usize) -> Result<Cow<'_, [u8]>, FormatError> {
        self.bytes.read(start, len).map_err(|message| FormatError::Io { file: self.source.clone(), message })
    }

    /// The (first) file the weights were read from: a GGUF's metadata.
    pub fn file(&self) -> Option<&ModelBytes> {
        self.bytes.first()
    }

    /// Hands `t`'s pages back to the OS where its file is mapped (see `ModelBytes::release`):
    /// called once a tensor has been checked or uploaded, so a model bigger than memory streams
    /// through it. Reading `t` again afterwards is correct, only slower.
    pub fn release(&self, t: &WeightTensor) {
        self.bytes.release(t.start, t.len);
    }

    /// Dequantizes row `row` of `t` into `out` (length `t.row_len()`).
    pub fn dequantize_row(&self, t: &WeightTensor, row: usize, out: &mut [f32]) -> Result<(), FormatError> {
        let src = self.rows(t, row, 1)?;
        ggml::dequantize_into(t.dtype, &src, out, &self.source, &t.name)
    }

    /// The whole tensor as f32, row-major over ggml rows.
    pub fn dequantize(&self, t: &WeightTensor) -> Result<Vec<f32>, FormatError> {
        ggml::dequantize(t.dtype, &self.data(t)?, t.n_elements() as usize, &self.source, &t.name)
    }

    /// Rejects weights a forward would turn into NaN: every value of every tensor must be finite.
    /// Reports progress per tensor since it touches every byte of the model.
    pub fn check_finite(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<(), FormatError> {
        let total = self.tensors.len() as u64;
        let mut row = Vec::new();
        for (i, t) in self.tensors.iter().enumerate() {
            if !t.dtype.can_dequantize() {
                return Err(FormatError::UnsupportedTensorType {
                    file: self.source.clone(),
                    tensor: t.name.clone(),
                    ty: t.dtype.name().into(),
                });
            }
            row.resize(t.row_len(), 0.0);
            let n_rows = t.n_rows().max(1);
            let row_bytes = t.len / n_rows;
            // Where the file is read lazily: a few large reads, not one per row, nor the whole
            // of a 128k-token embedding table at once.
            let rows_per_read = (CHECK_READ_BYTES / row_bytes.max(1)).max(1);
            for first in (0..n_rows).step_by(rows_per_read) {
                let count = rows_per_read.min(n_rows - first);
                let data = self.rows(t, first, count)?;
                for (r, src) in data.chunks_exact(row_bytes.max(1)).enumerate() {
                    ggml::dequantize_into(t.dtype, src, &mut row, &self.source, &t.name)?;
                    if let Some(j) = row.iter().position(|x| !x.is_finite()) {
                        return Err(FormatError::NonFinite {
                            file: self.source.clone(),
                            tensor: t.name.clone(),
                            index: ((first + r) * t.row_len() + j) as u64,
                            value: row[j],
                        });
                    }
                }
            }
            self.release(t);
            progress(i as u64 + 1, total);
        }
        Ok(())
    }
}
