//! Weight matrices on the GPU, kept in their stored format (no dequantization to f32).
//!
//! Each supported format has a word-aligned layout here and a matching decode function in
//! `shaders/formats/<fmt>.wgsl` (`fn decode_part(row, chunk, part) -> array<vec4<H>, 2>`: 8 of a
//! chunk's values; `shaders/formats/common.wgsl` builds `decode_chunk` from it), which the
//! matmul, embedding and quantize kernels compose in. Every format is addressed in chunks of 32 values; the
//! chunk index `g = row · n_chunks + chunk` (with `n_chunks = ceil(n_in / 32)`) locates the data:
//!
//! | format | bytes/block | GPU layout (one `array<u32>`)                                     |
//! |--------|-------------|-------------------------------------------------------------------|
//! | F32    | 4 / value   | rows zero-padded to `32 · n_chunks` values                        |
//! | F16    | 2 / value   | rows zero-padded to `32 · n_chunks` values, two per word          |
//! | BF16   | 2 / value   | as F16 (a bf16 widens to f32 by a shift)                          |
//! | Q4_1   | 20          | GGUF blocks unchanged (5 words each)                              |
//! | Q5_1   | 24          | GGUF blocks unchanged (6 words each)                              |
//! | Q4_K   | 144         | GGUF super-blocks unchanged (36 words each)                       |
//! | Q8_0   | 34          | quants (8 words / block) \| f16 `d`s, two per word (aux segment)   |
//! | Q4_0   | 18          | quants (4 words / block) \| f16 `d`s (aux segment)                 |
//! | Q5_0   | 22          | qh, quants (5 words / block) \| f16 `d`s (aux segment)             |
//! | Q6_K   | 210         | ql, qh, scales (52 words / block) \| f16 `d`s (aux segment)        |
//!
//! Blocks whose size is not a multiple of 4 bytes have their f16 `d` moved to the aux segment,
//! which starts at word `aux_offset` of the same buffer, so every kernel binds one weight buffer.
//! The GGUF block layouts themselves are those of [`crate::formats::blocks`].
//!
//! Every non-GGUF scheme (RTN int, NF4, FP8/6/4, MX, NVFP4, POST, BCQ, …) arrives as a
//! [`Codebook`] and has one layout and one decoder, `shaders/formats/codebook.wgsl` (see
//! [`codebook_words`]).

use crate::error::GpuError;
use std::mem::offset_of;

use crate::formats::blocks::{q4_0, q5_0, q6_k, q8_0, F16Le};
use crate::formats::ggml::GgmlType;
use crate::gpu::GpuContext;
use crate::model::weights::{WeightTensor, Weights};
use crate::quant::{Codebook, Sharing};

/// Values per chunk: the unit of the weight layouts (`decode_chunk` returns one).
pub(crate) const CHUNK: u32 = 32;

/// `Params` of `shaders/formats/params.wgsl` (and the first fields of matmul's): the weight's
/// shape and layout, and the token count.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct WeightParams {
    pub n_in: u32,
    pub n_out: u32,
    pub n_tokens: u32,
    pub n_chunks: u32,
    pub aux_offset: u32,
}

/// How a [`GpuWeight`] is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Ggml(GgmlType),
    /// A [`Codebook`] with codes of this many bits.
    Codebook {
        code_bits: u32,
    },
}

/// A weight matrix on the GPU in a kernel-friendly layout of its stored format.
#[derive(Debug)]
pub struct GpuWeight {
    pub name: String,
    pub format: WeightFormat,
    /// Row length (ggml dims[0]): a linear layer's input width.
    pub n_in: u32,
    /// Number of rows: a linear layer's output width (or an embedding table's vocabulary).
    pub n_out: u32,
    /// The rows in consecutive ranges, each in a buffer of its own: one part, unless the matrix is
    /// larger than one storage binding may be (a 262k-token vocabulary's embeddings); then the
    /// matmul and the embedding gather dispatch once per part.
    parts: Vec<RowPart>,
}

/// Rows `first_row .. first_row + rows` of a weight, in its GPU layout in a buffer of their own.
#[derive(Debug)]
pub(crate) struct RowPart {
    pub first_row: u32,
    pub rows: u32,
    pub buffer: wgpu::Buffer,
    /// Word index of the aux (f16 scale) segment inside `buffer`; 0 where there is none.
    pub aux_offset: u32,
}

/// Byte offset of the f16 `d` that moves to the aux segment, for blocks that are not
/// word-aligned.
fn split_scale_offset(dtype: GgmlType) -> Option<usize> {
    match dtype {
        GgmlType::Q8_0 => Some(offset_of!(q8_0::Block, d)),
        GgmlType::Q4_0 => Some(offset_of!(q4_0::Block, d)),
        GgmlType::Q5_0 => Some(offset_of!(q5_0::Block, d)),
        GgmlType::Q6_K => Some(offset_of!(q6_k::Block, d)),
        _ => None,
    }
}

impl GpuWeight {
    /// Repacks the GGUF blocks (no dequantization to f32) and uploads. Supported: F32, F16, BF16,
    /// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K.
    pub fn upload(ctx: &GpuContext, weights: &Weights, t: &WeightTensor) -> Result<GpuWeight, GpuError> {
        let shape = |message: String| GpuError::Shape { kernel: "matmul", message };
        if format_source(t.dtype).is_none() {
            return Err(shape(format!("unsupported weight format {} of tensor {}", t.dtype.name(), t.name)));
        }
        let (n_in, n_out) = (t.row_len(), t.n_rows());
        let (Ok(n_in32), Ok(n_out32)) = (u32::try_from(n_in), u32::try_from(n_out)) else {
            return Err(shape(format!("tensor {} of {:?} is too large for 32-bit indexing", t.name, t.dims)));
        };
        let n_chunks = n_in.div_ceil(CHUNK as usize);
        // Every word must be addressable by a u32 index (F32, the widest, has 32 words a chunk).
        if (n_out as u64) * (n_chunks as u64) * CHUNK as u64 > u32::MAX as u64 {
            return Err(shape(format!("tensor {} of {:?} is too large for 32-bit indexing", t.name, t.dims)));
        }
        let block_size = t.dtype.block_size();
        if block_size > 1 && n_in % block_size != 0 {
            return Err(shape(format!(
                "row length {n_in} of tensor {} is not a multiple of the {} block size {block_size}",
                t.name,
                t.dtype.name()
            )));
        }

        // As many rows per part as one binding holds (every part but the last of that height).
        let row_bytes = t.len / n_out.max(1);
        let first_row_data = weights.rows(t, 0, 1).map_err(GpuError::ReadWeights)?;
        let packed_row_bytes = (repack(t.dtype, &first_row_data, n_in, 1).0.len() as u64).max(1);
        let limit = ctx.summary.max_storage_buffer_binding_size.min(ctx.summary.max_buffer_size);
        let rows_per_part = ((limit / packed_row_bytes) as usize).clamp(1, n_out.max(1));
        let mut parts = Vec::new();
        for first_row in (0..n_out.max(1)).step_by(rows_per_part) {
            let rows = rows_per_part.min(n_out - first_row);
            // Each part read on its own: a file read lazily (the page) holds one part at a time.
            let data = weights.rows(t, first_row, rows).map_err(GpuError::ReadWeights)?;
            debug_assert_eq!(data.len(), rows * row_bytes);
            let (packed, aux_offset) = repack(t.dtype, &data, n_in, rows);
            let label = match n_out > rows_per_part {
                true => format!("weight {} rows {first_row}..{}", t.name, first_row + rows),
                false => format!("weight {}", t.name),
            };
            let buffer = ctx.upload(&label, &packed)?;
            parts.push(RowPart { first_row: first_row as u32, rows: rows as u32, buffer, aux_offset });
        }
        Ok(GpuWeight { name: t.name.clone(), format: WeightFormat::Ggml(t.dtype), n_in: n_in32, n_out: n_out32, parts })
    }

    /// Uploads a codebook-quantized matrix (`rows` = output features) under `name`.
    pub fn upload_codebook(ctx: &GpuContext, name: &str, codebook: &Codebook) -> Result<GpuWeight, GpuError> {
        let shape = |message: String| GpuError::Shape { kernel: "matmul", message };
        codebook.validate().map_err(|m| shape(format!("tensor {name}: {m}")))?;
        let (Ok(n_in), Ok(n_out)) = (u32::try_from(codebook.cols), u32::try_from(codebook.rows)) else {
            return Err(shape(format!("tensor {name} of {}×{} is too large", codebook.rows, codebook.cols)));
        };
        let words =
            codebook_words(codebook).ok_or_else(|| shape(format!("tensor {name} is too large for 32-bit indexing")))?;
        let buffer = ctx.upload_u32(&format!("weight {name}"), &words)?;
        let format = WeightFormat::Codebook { code_bits: codebook.code_bits() };
        Ok(GpuWeight::whole(name, format, n_in, n_out, buffer))
    }

    /// A codebook that a kernel has written into `buffer` (see [`CodebookLayout`]).
    pub(crate) fn from_codebook_buffer(
        name: &str,
        n_in: u32,
        n_out: u32,
        code_bits: u32,
        buffer: wgpu::Buffer,
    ) -> GpuWeight {
        GpuWeight::whole(name, WeightFormat::Codebook { code_bits }, n_in, n_out, buffer)
    }

    /// A weight in one buffer, without an aux segment.
    fn whole(name: &str, format: WeightFormat, n_in: u32, n_out: u32, buffer: wgpu::Buffer) -> GpuWeight {
        let parts = vec![RowPart { first_row: 0, rows: n_out, buffer, aux_offset: 0 }];
        GpuWeight { name: name.into(), format, n_in, n_out, parts }
    }

    /// Whether [`GpuWeight::upload`] takes tensors of `dtype`.
    pub fn is_supported(dtype: GgmlType) -> bool {
        format_source(dtype).is_some()
    }

    /// Bytes on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.buffer.size()).sum()
    }

    /// The buffers holding consecutive row ranges of the matrix (one unless it exceeds a binding).
    pub(crate) fn parts(&self) -> &[RowPart] {
        &self.parts
    }

    /// Buffers the matrix is split over: 1 unless it is larger than one storage binding.
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }

    /// Chunks of 32 values per row.
    pub(crate) fn n_chunks(&self) -> u32 {
        self.n_in.div_ceil(CHUNK)
    }

    /// The one buffer of a weight a kernel reads whole; an error naming `kernel` for a matrix
    /// split over several bindings.
    pub(crate) fn buffer(&self, kernel: &'static str) -> Result<&wgpu::Buffer, GpuError> {
        match self.parts.as_slice() {
            [whole] => Ok(&whole.buffer),
            parts => Err(GpuError::Shape {
                kernel,
                message: format!(
                    "{} is split over {} buffers (larger than one storage binding); this kernel reads one",
                    self.name,
                    parts.len()
                ),
            }),
        }
    }

    /// The `Params` of every weight-reading kernel (`shaders/formats/common.wgsl`) for the whole
    /// weight, which must be in one part (see [`GpuWeight::buffer`]).
    pub(crate) fn params(&self, n_tokens: u32) -> WeightParams {
        self.part_params(&self.parts[0], n_tokens)
    }

    /// The `Params` of one part: its rows are the `n_out` the kernel sees.
    pub(crate) fn part_params(&self, part: &RowPart, n_tokens: u32) -> WeightParams {
        WeightParams {
            n_in: self.n_in,
            n_out: part.rows,
            n_tokens,
            n_chunks: self.n_chunks(),
            aux_offset: part.aux_offset,
        }
    }

    /// `kernel` (its own WGSL) with this weight's format decode composed in, in f32, over the
    /// plain layout params (`shaders/formats/params.wgsl`).
    pub(crate) fn shader(&self, kernel: &str, code: &'static str) -> crate::gpu::ShaderSource {
        self.decoder(crate::gpu::ShaderSource::new(kernel, code), false)
            .include("formats/params", include_str!("../../shaders/formats/params.wgsl"))
    }

    /// `source` with this weight's format decode and its helpers composed in, with values of type
    /// f16 where `f16` (the caller checks the device has shader-f16) and f32 otherwise. `source`
    /// declares `params` at binding 0 itself (a struct starting with the fields of
    /// `shaders/formats/params.wgsl`).
    pub(crate) fn decoder(&self, source: crate::gpu::ShaderSource, f16: bool) -> crate::gpu::ShaderSource {
        let (name, snippet) = self.format_snippet();
        let source =
            source.include(name, snippet).include("formats/common", include_str!("../../shaders/formats/common.wgsl"));
        if f16 {
            source.include("formats/value_f16", include_str!("../../shaders/formats/value_f16.wgsl")).enable("f16")
        } else {
            source.include("formats/value_f32", include_str!("../../shaders/formats/value_f32.wgsl"))
        }
    }
}

impl GpuWeight {
    /// This weight's format decode snippet: (name, WGSL).
    fn format_snippet(&self) -> (&'static str, &'static str) {
        match self.format {
            WeightFormat::Ggml(dtype) => format_source(dtype).expect("checked on upload"),
            WeightFormat::Codebook { .. } => ("formats/codebook", include_str!("../../shaders/formats/codebook.wgsl")),
        }
    }

    /// `source` with a renamed copy of this weight's decode (its format snippet and
    /// `formats/common.wgsl`, every name they declare suffixed by `copy.suffix`: `decode_part1`,
    /// `part_quads1`, the buffer `w1` at `copy.binding`, its layout fields read from `copy.params`),
    /// for a kernel that reads several weights (`matmul_stacked.wgsl`). The value type comes from
    /// [`GpuWeight::decoder`] of the kernel's first weight.
    pub(crate) fn decoder_copy(
        &self,
        source: crate::gpu::ShaderSource,
        copy: crate::gpu::SnippetCopy,
    ) -> crate::gpu::ShaderSource {
        let common = ("formats/common", include_str!("../../shaders/formats/common.wgsl"));
        source.include_copy(&[self.format_snippet(), common], copy)
    }
}

/// The GPU layout of `n_out` rows of `n_in` values of `dtype` (see the module docs): the packed
/// bytes (a multiple of 4 where the format is word-aligned) and the aux segment's word offset.
/// `data` must hold exactly the tensor's bytes and `dtype` be one [`format_source`] knows.
fn repack(dtype: GgmlType, data: &[u8], n_in: usize, n_out: usize) -> (Vec<u8>, u32) {
    let n_chunks = n_in.div_ceil(CHUNK as usize);
    let type_size = dtype.type_size();
    let mut aux_offset = 0usize;
    let packed: Vec<u8> = match dtype {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            // Rows zero-padded to whole chunks.
            let row_bytes = n_in * type_size;
            let padded = n_chunks * CHUNK as usize * type_size;
            if row_bytes == padded {
                data.to_vec()
            } else {
                let mut out = vec![0u8; padded * n_out];
                for (src, dst) in data.chunks_exact(row_bytes.max(1)).zip(out.chunks_exact_mut(padded.max(1))) {
                    dst[..row_bytes].copy_from_slice(src);
                }
                out
            }
        }
        dtype => match split_scale_offset(dtype) {
            None => data.to_vec(),
            Some(d_at) => {
                let d_end = d_at + size_of::<F16Le>();
                let n_blocks = data.len() / type_size;
                let main = type_size - size_of::<F16Le>();
                let mut out = Vec::with_capacity(n_blocks * type_size + 2);
                for block in data.chunks_exact(type_size) {
                    out.extend_from_slice(&block[..d_at]);
                    out.extend_from_slice(&block[d_end..]);
                }
                debug_assert_eq!(out.len(), n_blocks * main);
                debug_assert_eq!(out.len() % 4, 0);
                aux_offset = out.len() / 4;
                for block in data.chunks_exact(type_size) {
                    out.extend_from_slice(&block[d_at..d_end]);
                }
                out
            }
        },
    };
    (packed, aux_offset as u32)
}

/// Words of the codebook header (see `shaders/formats/codebook.wgsl`).
const CODEBOOK_HEADER_WORDS: usize = 12;

/// Where the parts of a codebook lie in its GPU buffer (word indices), and the header that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodebookLayout {
    pub code_bits: u32,
    pub codes_at: usize,
    pub levels_at: usize,
    pub scales_at: usize,
    pub offsets_at: usize,
    pub total: usize,
    pub header: [u32; CODEBOOK_HEADER_WORDS],
}

impl CodebookLayout {
    /// None if a word index would not fit in a u32.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rows: usize,
        cols: usize,
        code_bits: u32,
        levels_per_table: usize,
        table_sharing: Sharing,
        scale_sharing: Sharing,
        has_offsets: bool,
    ) -> Option<CodebookLayout> {
        let n_chunks = cols.div_ceil(CHUNK as usize);
        let codes_at = CODEBOOK_HEADER_WORDS;
        let levels_at = codes_at.checked_add(rows.checked_mul(n_chunks)?.checked_mul(code_bits as usize)?)?;
        let scales_at = levels_at.checked_add(table_sharing.count(rows, cols).checked_mul(levels_per_table)?)?;
        let n_scales = scale_sharing.count(rows, cols);
        let offsets_at = scales_at.checked_add(n_scales)?;
        let total = offsets_at.checked_add(if has_offsets { n_scales } else { 0 })?;
        if total > u32::MAX as usize {
            return None;
        }
        // (row factor, divisor) of `row_factor · row + col / divisor`.
        let addressing = |sharing: Sharing| -> (u32, u32) {
            match sharing {
                Sharing::Tensor => (0, u32::MAX),
                Sharing::Row => (1, u32::MAX),
                Sharing::Group(n) => (sharing.groups_per_row(cols) as u32, n as u32),
            }
        };
        let (table_factor, table_divisor) = addressing(table_sharing);
        let (scale_factor, scale_divisor) = addressing(scale_sharing);
        let header = [
            code_bits,
            levels_per_table as u32,
            table_factor,
            table_divisor,
            scale_factor,
            scale_divisor,
            has_offsets as u32,
            codes_at as u32,
            levels_at as u32,
            scales_at as u32,
            offsets_at as u32,
            0,
        ];
        Some(CodebookLayout { code_bits, codes_at, levels_at, scales_at, offsets_at, total, header })
    }
}

/// The GPU layout of a codebook: header, codes (each chunk of 32 in `code_bits` words, rows padded
/// to whole chunks with code 0), level tables, scales, offsets. None if a word index would not fit
/// in a u32.
pub(crate) fn codebook_words(cb: &Codebook) -> Option<Vec<u32>> {
    let layout = CodebookLayout::new(
        cb.rows,
        cb.cols,
        cb.code_bits(),
        cb.levels_per_table,
        cb.table_sharing,
        cb.scale_sharing,
        !cb.offsets.is_empty(),
    )?;
    let bits = layout.code_bits as usize;
    let n_chunks = cb.cols.div_ceil(CHUNK as usize);
    let mut words = vec![0u32; layout.total];
    words[..CODEBOOK_HEADER_WORDS].copy_from_slice(&layout.header);
    for r in 0..cb.rows {
        for (c, &code) in cb.codes[r * cb.cols..(r + 1) * cb.cols].iter().enumerate() {
            let bit = ((r * n_chunks + c / CHUNK as usize) * 32 + c % CHUNK as usize) * bits;
            let (word, shift) = (layout.codes_at + bit / 32, bit % 32);
            words[word] |= (code as u32) << shift;
            if shift + bits > 32 {
                words[word + 1] |= (code as u32) >> (32 - shift);
            }
        }
    }
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    words[layout.levels_at..layout.scales_at].copy_from_slice(&bits_of(&cb.levels));
    words[layout.scales_at..layout.offsets_at].copy_from_slice(&bits_of(&cb.scales));
    words[layout.offsets_at..].copy_from_slice(&bits_of(&cb.offsets));
    Some(words)
}

/// The decode snippet of a format: (name, WGSL), or None where the GPU has none.
pub(crate) fn format_source(dtype: GgmlType) -> Option<(&'static str, &'static str)> {
    Some(match dtype {
        GgmlType::F32 => ("formats/f32", include_str!("../../shaders/formats/f32.wgsl")),
        GgmlType::F16 => ("formats/f16", include_str!("../../shaders/formats/f16.wgsl")),
        GgmlType::BF16 => ("formats/bf16", include_str!("../../shaders/formats/bf16.wgsl")),
        GgmlType::Q8_0 => ("formats/q8_0", include_str!("../../shaders/formats/q8_0.wgsl")),
        GgmlType::Q4_0 => ("formats/q4_0", include_str!("../../shaders/formats/q4_0.wgsl")),
        GgmlType::Q4_1 => ("formats/q4_1", include_str!("../../shaders/formats/q4_1.wgsl")),
        GgmlType::Q5_0 => ("formats/q5_0", include_str!("../../shaders/formats/q5_0.wgsl")),
        GgmlType::Q5_1 => ("formats/q5_1", include_str!("../../shaders/formats/q5_1.wgsl")),
        GgmlType::Q4_K => ("formats/q4_k", include_str!("../../shaders/formats/q4_k.wgsl")),
        GgmlType::Q6_K => ("formats/q6_k", include_str!("../../shaders/formats/q6_k.wgsl")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::blocks::{q4_1, q4_k};

    #[test]
    fn unaligned_blocks_move_their_scale_to_the_aux_segment() {
        // Two Q8_0 blocks: d = [1, 2] / [3, 4], quants 10.. / 50...
        let mut data = vec![1, 2];
        data.extend(10..42);
        data.extend([3, 4]);
        data.extend(50..82);
        let (packed, aux) = repack(GgmlType::Q8_0, &data, 64, 1);
        assert_eq!(aux, 16);
        assert_eq!(&packed[..32], &(10..42).collect::<Vec<u8>>()[..]);
        assert_eq!(&packed[32..64], &(50..82).collect::<Vec<u8>>()[..]);
        assert_eq!(&packed[64..], &[1, 2, 3, 4]);

        // Q6_K's d is its last field already: the bytes stay, the aux segment starts at d.
        let data: Vec<u8> = (0..q6_k::BLOCK_BYTES).map(|i| i as u8).collect();
        let (packed, aux) = repack(GgmlType::Q6_K, &data, 256, 1);
        assert_eq!(offset_of!(q6_k::Block, d), q6_k::BLOCK_BYTES - size_of::<F16Le>());
        assert_eq!((packed, aux as usize), (data, offset_of!(q6_k::Block, d) / 4));
    }

    #[test]
    fn float_rows_are_zero_padded_to_whole_chunks() {
        let data: Vec<u8> = (1..=2 * 5 * 2).collect(); // F16, 2 rows of 5
        let (packed, aux) = repack(GgmlType::F16, &data, 5, 2);
        assert_eq!((packed.len(), aux), (2 * 64, 0));
        assert_eq!(&packed[..10], &data[..10]);
        assert!(packed[10..64].iter().all(|&b| b == 0));
        assert_eq!(&packed[64..74], &data[10..]);
        assert!(packed[74..].iter().all(|&b| b == 0));
    }

    #[test]
    fn aligned_formats_are_uploaded_unchanged() {
        let data: Vec<u8> = (0..q4_k::BLOCK_BYTES).map(|i| i as u8).collect();
        assert_eq!(repack(GgmlType::Q4_K, &data, 256, 1), (data.clone(), 0));
        let two_q4_1 = &data[..2 * q4_1::BLOCK_BYTES];
        assert_eq!(repack(GgmlType::Q4_1, two_q4_1, 64, 1), (two_q4_1.to_vec(), 0));
        assert!(GpuWeight::is_supported(GgmlType::Q6_K) && !GpuWeight::is_supported(GgmlType::Q5_K));
    }
}
