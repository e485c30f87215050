//! ggml tensor types: the block layout table and dequantization to f32.
//!
//! The type ids, block sizes and byte sizes are those of `ggml.h` / gguf-py's `GGML_QUANT_SIZES`;
//! the block layouts are in [`crate::formats::blocks`].
//! Dequantization is written one plain function per block type and is bit-exact with gguf-py
//! (`gguf.quants.dequantize`, v0.19): every float operation is done in f32, in the same order as
//! numpy does it there (e.g. Q4_1 is `(d * q) + m`, Q4_K is `(d * sc) * q - (dmin * m)`), and Rust
//! never contracts `a * b + c` into an FMA, so the roundings match. `tests/native/gguf_dequant_oracle.rs`
//! checks that claim bit for bit against gguf-py on the default model and on random blocks.

use crate::formats::blocks::{
    self, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0, scale_min_k4, sub_block_nibbles, F16Le, QK_K,
};
use crate::FormatError;

/// A ggml tensor element type, with the numeric ids of `ggml.h` (they are what GGUF stores).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// One row of the type table: (type, ggml id, name, elements per block, bytes per block).
/// Source: `ggml.h` (`enum ggml_type`) and gguf-py `GGML_QUANT_SIZES`; the types we read or write
/// take their sizes from their layout in [`crate::formats::blocks`].
#[rustfmt::skip]
const TABLE: [(GgmlType, u32, &str, usize, usize); 32] = {
    use GgmlType::*;
    [
        (F32, 0, "F32", 1, 4),
        (F16, 1, "F16", 1, 2),
        (Q4_0, 2, "Q4_0", q4_0::WEIGHTS, q4_0::BLOCK_BYTES),
        (Q4_1, 3, "Q4_1", q4_1::WEIGHTS, q4_1::BLOCK_BYTES),
        // ids 4 and 5 (Q4_2, Q4_3) were removed from ggml long ago.
        (Q5_0, 6, "Q5_0", q5_0::WEIGHTS, q5_0::BLOCK_BYTES),
        (Q5_1, 7, "Q5_1", q5_1::WEIGHTS, q5_1::BLOCK_BYTES),
        (Q8_0, 8, "Q8_0", q8_0::WEIGHTS, q8_0::BLOCK_BYTES),
        (Q8_1, 9, "Q8_1", 32, 4 + 4 + 32),
        (Q2_K, 10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
        (Q3_K, 11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
        (Q4_K, 12, "Q4_K", q4_k::WEIGHTS, q4_k::BLOCK_BYTES),
        (Q5_K, 13, "Q5_K", q5_k::WEIGHTS, q5_k::BLOCK_BYTES),
        (Q6_K, 14, "Q6_K", q6_k::WEIGHTS, q6_k::BLOCK_BYTES),
        (Q8_K, 15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8),
        (IQ2_XXS, 16, "IQ2_XXS", QK_K, 2 + QK_K / 4),
        (IQ2_XS, 17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32),
        (IQ3_XXS, 18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8),
        (IQ1_S, 19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
        (IQ4_NL, 20, "IQ4_NL", 32, 2 + 16),
        (IQ3_S, 21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
        (IQ2_S, 22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16),
        (IQ4_XS, 23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
        (I8, 24, "I8", 1, 1),
        (I16, 25, "I16", 1, 2),
        (I32, 26, "I32", 1, 4),
        (I64, 27, "I64", 1, 8),
        (F64, 28, "F64", 1, 8),
        (IQ1_M, 29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
        (BF16, 30, "BF16", 1, 2),
        // ids 31..=33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) were removed from ggml.
        (TQ1_0, 34, "TQ1_0", QK_K, 2 + 4 * 13),
        (TQ2_0, 35, "TQ2_0", QK_K, 2 + 64),
        // ids 36..=38 (IQ4_NL_4_4, ...) were removed from ggml.
        (MXFP4, 39, "MXFP4", 32, 1 + 16),
    ]
};

impl GgmlType {
    /// Every type, in id order.
    pub const ALL: [GgmlType; 32] = {
        let mut all = [GgmlType::F32; 32];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static (GgmlType, u32, &'static str, usize, usize) {
        // The table is indexed by declaration order, which is id order; `as usize` is the
        // discriminant, and the unit test `table_is_in_declaration_order` guards that.
        &TABLE[self as usize]
    }

    /// The type with ggml id `id`, or None for ids that ggml never had or has removed.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|row| row.1 == id).map(|row| row.0)
    }

    /// The ggml id (what GGUF stores in a tensor info).
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// The name as gguf-py and llama.cpp print it: "Q4_1", "F32", "IQ2_XXS", ...
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block (1 for the plain scalar types).
    pub fn block_size(self) -> usize {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.row().4
    }

    /// Storage cost in bits per weight, scales included: `8 * type_size / block_size`.
    pub fn bits_per_weight(self) -> f64 {
        8.0 * self.type_size() as f64 / self.block_size() as f64
    }

    /// Whether [`dequantize_into`] supports this type.
    pub fn can_dequantize(self) -> bool {
        block_fn(self).is_some()
    }

    /// Bytes needed for `n_elements` elements; None if `n_elements` is not a multiple of the block
    /// size or the byte count overflows u64.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let block = self.block_size() as u64;
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(self.type_size() as u64)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Dequantize `dst.len()` elements from `src`, which must hold exactly `bytes_for(dst.len())`
/// bytes. Errors (never panics) on an unsupported type or a length mismatch; `file` and `tensor`
/// only label the error.
pub fn dequantize_into(ty: GgmlType, src: &[u8], dst: &mut [f32], file: &str, tensor: &str) -> Result<(), FormatError> {
    if !ty.can_dequantize() {
        return Err(FormatError::UnsupportedTensorType {
            file: file.to_string(),
            tensor: tensor.to_string(),
            ty: ty.name().to_string(),
        });
    }
    let block_size = ty.block_size();
    let type_size = ty.type_size();
    if !dst.len().is_multiple_of(block_size) {
        return Err(FormatError::BadTensor {
            file: file.to_string(),
            tensor: tensor.to_string(),
            message: format!("{} elements is not a multiple of the {} block size {}", dst.len(), ty.name(), block_size),
        });
    }
    let expected = (dst.len() / block_size).checked_mul(type_size);
    if expected != Some(src.len()) {
        return Err(FormatError::BadTensor {
            file: file.to_string(),
            tensor: tensor.to_string(),
            message: format!(
                "{} {} elements need {} bytes, got {}",
                dst.len(),
                ty.name(),
                expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string()),
                src.len()
            ),
        });
    }

    let Some(block_fn) = block_fn(ty) else {
        return Err(FormatError::UnsupportedTensorType {
            file: file.to_string(),
            tensor: tensor.to_string(),
            ty: ty.name().to_string(),
        });
    };
    // Scalar types go through the same loop with blocks of one element; the slices handed to
    // each block function have exactly type_size / block_size entries.
    for (block, out) in src.chunks_exact(type_size).zip(dst.chunks_exact_mut(block_size)) {
        block_fn(block, out);
    }
    Ok(())
}

/// Dequantizes one block: exactly `type_size` bytes in, `block_size` values out.
type BlockFn = fn(&[u8], &mut [f32]);

/// The block function of `ty`, or None where we have none (this decides
/// [`GgmlType::can_dequantize`]).
fn block_fn(ty: GgmlType) -> Option<BlockFn> {
    Some(match ty {
        GgmlType::F32 => dequant_f32,
        GgmlType::F16 => dequant_f16,
        GgmlType::BF16 => dequant_bf16,
        GgmlType::Q8_0 => dequant_q8_0,
        GgmlType::Q4_0 => dequant_q4_0,
        GgmlType::Q4_1 => dequant_q4_1,
        GgmlType::Q5_0 => dequant_q5_0,
        GgmlType::Q5_1 => dequant_q5_1,
        GgmlType::Q4_K => dequant_q4_k,
        GgmlType::Q5_K => dequant_q5_k,
        GgmlType::Q6_K => dequant_q6_k,
        _ => return None,
    })
}

/// Dequantize `n_elements` elements of `src` into a new vector (see [`dequantize_into`]).
/// The length is checked against `src` before anything is allocated.
pub fn dequantize(
    ty: GgmlType,
    src: &[u8],
    n_elements: usize,
    file: &str,
    tensor: &str,
) -> Result<Vec<f32>, FormatError> {
    // Validate first (on an empty destination the length check would be meaningless), so a
    // lying n_elements can't make us allocate.
    if !ty.can_dequantize() {
        return Err(FormatError::UnsupportedTensorType {
            file: file.to_string(),
            tensor: tensor.to_string(),
            ty: ty.name().to_string(),
        });
    }
    let expected = ty.bytes_for(n_elements as u64);
    if expected != Some(src.len() as u64) {
        return Err(FormatError::BadTensor {
            file: file.to_string(),
            tensor: tensor.to_string(),
            message: match expected {
                Some(n) => format!("{n_elements} {} elements need {n} bytes, got {}", ty.name(), src.len()),
                None => format!(
                    "{n_elements} elements is not a multiple of the {} block size {}",
                    ty.name(),
                    ty.block_size()
                ),
            },
        });
    }
    let mut out = vec![0.0f32; n_elements];
    dequantize_into(ty, src, &mut out, file, tensor)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Per-block functions. Each gets exactly one block (`type_size` bytes) and its `block_size`
// outputs. The layouts are those of `super::blocks`; comments give the gguf-py expression each
// function mirrors.
// ---------------------------------------------------------------------------------------------

/// F32: 4 little-endian bytes, copied bit for bit (NaN payloads included, like numpy's view).
fn dequant_f32(b: &[u8], out: &mut [f32]) {
    out[0] = f32::from_bits(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
}

/// F16: IEEE binary16, widened exactly (NaN payloads as numpy, see [`F16Le::to_f32`]).
fn dequant_f16(b: &[u8], out: &mut [f32]) {
    out[0] = F16Le([b[0], b[1]]).to_f32();
}

/// BF16: the top half of an f32. gguf-py: `(int16 -> int32) << 16` viewed as f32, i.e. a pure
/// bit shift (half's `bf16::to_f32` would quiet signalling NaNs; this does not).
fn dequant_bf16(b: &[u8], out: &mut [f32]) {
    out[0] = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
}

/// Q8_0: `x = q * d`.
fn dequant_q8_0(b: &[u8], out: &mut [f32]) {
    let block: &q8_0::Block = blocks::view(b);
    let d = block.d.to_f32();
    for (o, &q) in out.iter_mut().zip(&block.qs) {
        *o = q as f32 * d;
    }
}

/// Q4_0: `x = d * (q - 8)`.
fn dequant_q4_0(b: &[u8], out: &mut [f32]) {
    let block: &q4_0::Block = blocks::view(b);
    let d = block.d.to_f32();
    for (j, &byte) in block.qs.iter().enumerate() {
        let lo = (byte & 0x0F) as i32 - 8;
        let hi = (byte >> 4) as i32 - 8;
        out[j] = d * lo as f32;
        out[j + 16] = d * hi as f32;
    }
}

/// Q4_1: `x = (d * q) + m`.
fn dequant_q4_1(b: &[u8], out: &mut [f32]) {
    let block: &q4_1::Block = blocks::view(b);
    let (d, m) = (block.d.to_f32(), block.m.to_f32());
    for (j, &byte) in block.qs.iter().enumerate() {
        out[j] = d * (byte & 0x0F) as f32 + m;
        out[j + 16] = d * (byte >> 4) as f32 + m;
    }
}

/// The 5-bit codes of elements j and j + 16 of a Q5_0 / Q5_1 block from their `qs` byte and the
/// block's 5th bits.
fn legacy_5_bit_pair(j: usize, byte: u8, fifth_bits: u32) -> (u32, u32) {
    let lo = (byte & 0x0F) as u32 | ((fifth_bits >> j) & 1) << 4;
    let hi = (byte >> 4) as u32 | ((fifth_bits >> (j + 16)) & 1) << 4;
    (lo, hi)
}

/// Q5_0: `x = d * (q - 16)`.
fn dequant_q5_0(b: &[u8], out: &mut [f32]) {
    let block: &q5_0::Block = blocks::view(b);
    let d = block.d.to_f32();
    for (j, &byte) in block.qs.iter().enumerate() {
        let (lo, hi) = legacy_5_bit_pair(j, byte, block.qh.get());
        out[j] = d * (lo as i32 - 16) as f32;
        out[j + 16] = d * (hi as i32 - 16) as f32;
    }
}

/// Q5_1: `x = (d * q) + m`.
fn dequant_q5_1(b: &[u8], out: &mut [f32]) {
    let block: &q5_1::Block = blocks::view(b);
    let (d, m) = (block.d.to_f32(), block.m.to_f32());
    for (j, &byte) in block.qs.iter().enumerate() {
        let (lo, hi) = legacy_5_bit_pair(j, byte, block.qh.get());
        out[j] = d * lo as f32 + m;
        out[j + 16] = d * hi as f32 + m;
    }
}

/// Q4_K: `x = (d * sc_j) * q - (dmin * m_j)` in sub-block j.
fn dequant_q4_k(b: &[u8], out: &mut [f32]) {
    let block: &q4_k::Block = blocks::view(b);
    let (d, dmin) = (block.d.to_f32(), block.dmin.to_f32());
    for (j, sub) in out.chunks_exact_mut(q4_k::SUB_BLOCK_WEIGHTS).enumerate() {
        let (sc, m) = scale_min_k4(j, &block.scales);
        let dl = d * sc as f32;
        let ml = dmin * m as f32;
        let (bytes, shift) = sub_block_nibbles(&block.qs, j);
        for (o, &q) in sub.iter_mut().zip(bytes) {
            *o = dl * ((q >> shift) & 0x0F) as f32 - ml;
        }
    }
}

/// Q5_K: as Q4_K, with 5-bit codes.
fn dequant_q5_k(b: &[u8], out: &mut [f32]) {
    let block: &q5_k::Block = blocks::view(b);
    let (d, dmin) = (block.d.to_f32(), block.dmin.to_f32());
    for (j, sub) in out.chunks_exact_mut(q5_k::SUB_BLOCK_WEIGHTS).enumerate() {
        let (sc, m) = scale_min_k4(j, &block.scales);
        let dl = d * sc as f32;
        let ml = dmin * m as f32;
        let (bytes, shift) = sub_block_nibbles(&block.qs, j);
        for (l, o) in sub.iter_mut().enumerate() {
            let q = ((bytes[l] >> shift) & 0x0F) | (block.fifth_bit(j, l) << 4);
            *o = dl * q as f32 - ml;
        }
    }
}

/// Q6_K: `x = (d * sc[e/16]) * (q - 32)` for element e.
fn dequant_q6_k(b: &[u8], out: &mut [f32]) {
    let block: &q6_k::Block = blocks::view(b);
    let d = block.d.to_f32();
    for (e, o) in out.iter_mut().enumerate() {
        let q = block.code(e) as i32 - 32;
        let dl = d * block.scales[e / q6_k::SUB_BLOCK_WEIGHTS] as f32;
        *o = dl * q as f32;
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    #[test]
    fn table_is_in_declaration_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0 as usize, i, "{}", row.2);
            assert_eq!(GgmlType::from_id(row.1), Some(row.0));
            assert_eq!(row.0.id(), row.1);
            assert_eq!(GgmlType::ALL[i], row.0);
        }
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, u32::MAX] {
            assert_eq!(GgmlType::from_id(id), None, "id {id}");
        }
    }

    #[test]
    fn sizes_match_ggml() {
        assert_eq!(GgmlType::Q4_1.type_size(), 20);
        assert_eq!(GgmlType::Q6_K.type_size(), 210);
        assert_eq!(GgmlType::Q4_K.type_size(), 144);
        assert_eq!(GgmlType::Q5_K.type_size(), 176);
        assert_eq!(GgmlType::Q8_0.bits_per_weight(), 8.5);
        assert_eq!(GgmlType::Q6_K.bits_per_weight(), 6.5625);
        assert_eq!(GgmlType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(GgmlType::Q4_0.bytes_for(33), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
        assert_eq!(GgmlType::Q8_0.name(), "Q8_0");
        assert_eq!(GgmlType::IQ2_XXS.to_string(), "IQ2_XXS");
    }

    #[test]
    fn q4_1_known_block() {
        // d = 0.5, m = -1.0, nibbles: element j = j % 16.
        let mut block = vec![0u8; 20];
        block[0..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block[2..4].copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        for j in 0..16 {
            block[4 + j] = (j as u8) | ((15 - j as u8) << 4);
        }
        let out = dequantize(GgmlType::Q4_1, &block, 32, "f", "t").unwrap();
        for j in 0..16 {
            assert_eq!(out[j], 0.5 * j as f32 - 1.0);
            assert_eq!(out[j + 16], 0.5 * (15 - j) as f32 - 1.0);
        }
    }

    #[test]
    fn q8_0_known_block() {
        let mut block = vec![0u8; 34];
        block[0..2].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
        for j in 0..32 {
            block[2 + j] = (j as i8 - 16) as u8;
        }
        let out = dequantize(GgmlType::Q8_0, &block, 32, "f", "t").unwrap();
        for (j, v) in out.iter().enumerate() {
            assert_eq!(*v, 2.0 * (j as f32 - 16.0));
        }
    }

    #[test]
    fn q6_k_layout() {
        // d = 1, all scales 1, ql/qh chosen so that element e decodes to (e % 64) - 32.
        let mut block = vec![0u8; 210];
        for e in 0..256usize {
            let q = (e % 64) as u8;
            let h = e / 128;
            let s = (e % 128) / 32;
            let l = e % 32;
            block[64 * h + 32 * (s % 2) + l] |= (q & 0x0F) << (4 * (s / 2));
            block[128 + 32 * h + l] |= (q >> 4) << (2 * s);
        }
        for i in 0..16 {
            block[192 + i] = 1;
        }
        block[208..210].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
        let out = dequantize(GgmlType::Q6_K, &block, 256, "f", "t").unwrap();
        for (e, v) in out.iter().enumerate() {
            assert_eq!(*v, (e % 64) as f32 - 32.0, "element {e}");
        }
    }

    #[test]
    fn dequantizable_types() {
        use GgmlType::*;
        let mut expected = vec![F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K];
        expected.sort_by_key(|t| t.id());
        let yes: Vec<GgmlType> = GgmlType::ALL.iter().copied().filter(|t| t.can_dequantize()).collect();
        assert_eq!(yes, expected);
    }

    #[test]
    fn f16_nan_payloads_are_kept_like_numpy() {
        // numpy: 0x7c01 (signalling NaN) -> 0x7f802000, not quieted.
        let out = dequantize(GgmlType::F16, &[0x01, 0x7C, 0x01, 0xFE], 2, "f", "t").unwrap();
        assert_eq!(out[0].to_bits(), 0x7F80_2000);
        assert_eq!(out[1].to_bits(), 0xFFC0_2000);
        let out = dequantize(GgmlType::BF16, &[0x81, 0x7F], 1, "f", "t").unwrap();
        assert_eq!(out[0].to_bits(), 0x7F81_0000);
    }

    #[test]
    fn errors_are_typed() {
        let e = dequantize(GgmlType::Q2_K, &[0u8; 84], 256, "m.gguf", "w").unwrap_err();
        assert!(matches!(e, FormatError::UnsupportedTensorType { ref ty, .. } if ty == "Q2_K"));
        assert!(e.to_string().contains("unsupported tensor type Q2_K in tensor \"w\""));
        let e = dequantize(GgmlType::Q4_0, &[0u8; 17], 32, "m.gguf", "w").unwrap_err();
        assert!(matches!(e, FormatError::BadTensor { .. }), "{e}");
        let e = dequantize(GgmlType::Q4_0, &[0u8; 18], 31, "m.gguf", "w").unwrap_err();
        assert!(matches!(e, FormatError::BadTensor { .. }), "{e}");
        let e = dequantize(GgmlType::Q4_0, &[], usize::MAX, "m.gguf", "w").unwrap_err();
        assert!(matches!(e, FormatError::BadTensor { .. }), "{e}");
        let mut dst = [0f32; 32];
        let e = dequantize_into(GgmlType::Q4_0, &[0u8; 20], &mut dst, "m.gguf", "w").unwrap_err();
        assert!(matches!(e, FormatError::BadTensor { .. }), "{e}");
    }
}
