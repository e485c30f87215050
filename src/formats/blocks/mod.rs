//! The byte layouts of the ggml block types, one module per type, each the single owner of its
//! type's layout: a `#[repr(C)]` struct `Block` of byte-aligned fields that mirrors the
//! `block_<type>` struct of ggml's `ggml-common.h`, with its size asserted against ggml's
//! `static_assert`s, its weights per block, and accessors that decode the fields. The
//! dequantizers ([`super::ggml`]), the quantizers (`quant::gguf_blocks`), the GPU upload
//! (`gpu::weights`), the weight-histogram grid (`web::views`) and the WGSL decoders
//! (`shaders/formats/<type>.wgsl`, which cite their module) all read the layout from here.
//!
//! Every field has alignment 1 (bytes, byte arrays, [`F16Le`]), so a `&[u8]` of exactly one block
//! views as `&Block` through [`view`] wherever it lies in a tensor, and multi-byte fields are
//! little-endian as GGUF stores them. F32, F16 and BF16 have no block structure.

/// Declares a block module's layout: `WEIGHTS`, the `#[repr(C)]` struct `Block` (viewable from
/// bytes with [`view`], writable with `bytemuck::bytes_of`), `BLOCK_BYTES`, and the assertion that
/// its size is the one ggml's `static_assert` gives and its alignment 1.
macro_rules! ggml_block {
    (
        weights: $weights:expr,
        ggml_size: $size:expr,
        $(#[$struct_meta:meta])*
        pub struct Block { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }
    ) => {
        /// Weights per block (super-block, for a K-quant).
        pub const WEIGHTS: usize = $weights;
        /// Bytes per block.
        pub const BLOCK_BYTES: usize = size_of::<Block>();

        $(#[$struct_meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Block { $($(#[$field_meta])* pub $field: $ty,)* }

        const _: () = assert!(BLOCK_BYTES == $size && align_of::<Block>() == 1);
    };
}

pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;

use half::f16;

/// Weights per block of the legacy types (ggml's `QK4_0`, `QK4_1`, `QK5_0`, `QK5_1`, `QK8_0`).
pub const QK: usize = 32;
/// Weights per K-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;
/// Bytes of the packed 6-bit scales and mins of Q4_K and Q5_K (ggml's `K_SCALE_SIZE`).
pub const K_SCALE_SIZE: usize = 12;

/// An f16 as GGUF stores it: two little-endian bytes, alignment 1 (unlike [`f16`]), so that it
/// can sit at any offset of a block struct.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct F16Le(pub [u8; 2]);

impl F16Le {
    pub fn new(value: f16) -> F16Le {
        F16Le(value.to_le_bytes())
    }

    /// `value` rounded to f16 to nearest even, like ggml's `GGML_FP32_TO_FP16` and numpy's
    /// `astype(float16)`.
    pub fn from_f32(value: f32) -> F16Le {
        F16Le::new(f16::from_f32(value))
    }

    /// Widened to f32 exactly as numpy's `astype(np.float32)` does it. Finite values and
    /// infinities go through `half`; NaNs keep their payload *unquieted* (numpy's software
    /// conversion does that, while `half` and the F16C instruction set the quiet bit), so even a
    /// signalling NaN comes out with gguf-py's bits.
    pub fn to_f32(self) -> f32 {
        let bits = u16::from_le_bytes(self.0);
        if bits & 0x7C00 == 0x7C00 && bits & 0x03FF != 0 {
            let sign = ((bits & 0x8000) as u32) << 16;
            let mantissa = ((bits & 0x03FF) as u32) << 13;
            return f32::from_bits(sign | 0x7F80_0000 | mantissa);
        }
        f16::from_bits(bits).to_f32()
    }
}

/// A u32 as GGUF stores it: four little-endian bytes, alignment 1.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct U32Le(pub [u8; 4]);

impl U32Le {
    pub fn get(self) -> u32 {
        u32::from_le_bytes(self.0)
    }
}

/// `bytes`, exactly one block of `B`, viewed as that block. Panics on any other length (callers
/// slice whole blocks, e.g. with `chunks_exact(size_of::<B>())`).
pub fn view<B: bytemuck::Pod>(bytes: &[u8]) -> &B {
    // Alignment 1 is asserted in every block module, so this only checks the length.
    bytemuck::from_bytes(bytes)
}

/// The 6-bit scale and min codes of sub-block `j` (0..8) from the packed scales of Q4_K / Q5_K
/// (ggml's `get_scale_min_k4`; gguf-py `Q4_K.get_scale_min`). Inverse of [`pack_scale_min_k4`].
pub fn scale_min_k4(j: usize, scales: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 0x3F, scales[j + 4] & 0x3F)
    } else {
        let sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
        let m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
        (sc, m)
    }
}

/// Packs eight 6-bit scales and eight 6-bit mins into the 12 bytes of Q4_K / Q5_K: sub-blocks
/// 0..4 take the low 6 bits of bytes `j` (scale) and `j + 4` (min); sub-blocks 4..8 put their low
/// 4 bits in byte `j + 4` (scale low nibble, min high nibble) and their top 2 bits in the spare top
/// bits of bytes `j - 4` (scale) and `j` (min). Inverse of [`scale_min_k4`].
pub fn pack_scale_min_k4(scale_codes: &[u8], min_codes: &[u8]) -> [u8; K_SCALE_SIZE] {
    let mut packed = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        let (ls, lm) = (scale_codes[j], min_codes[j]);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | (lm & 0x0F) << 4;
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    packed
}

/// Where Q4_K and Q5_K keep the (low) 4 bits of sub-block `j`'s 32 codes in their `qs`: the 32
/// bytes it shares with its neighbour, `qs[32·(j/2) ..][..32]`, and the shift of its nibble in them
/// (the even sub-block takes the low nibbles).
pub fn sub_block_nibbles(qs: &[u8; QK_K / 2], j: usize) -> (&[u8; 32], u32) {
    let bytes = qs[32 * (j / 2)..][..32].try_into().expect("a 32-byte slice");
    (bytes, 4 * (j % 2) as u32)
}

/// The `qs` of Q4_K (and the low 4 bits of Q5_K's) from the super-block's 256 codes, laid out as
/// [`sub_block_nibbles`] reads them. Inverse of that.
pub fn pack_sub_block_nibbles(codes: &[u8; QK_K]) -> [u8; QK_K / 2] {
    // Sub-blocks 2i and 2i + 1 (64 codes) make bytes 32·i ..: code l low, code l + 32 high.
    std::array::from_fn(|i| {
        let (pair, l) = (i / 32, i % 32);
        (codes[64 * pair + l] & 0x0F) | (codes[64 * pair + 32 + l] & 0x0F) << 4
    })
}

/// The 16 code bytes of a legacy block from its 32 codes: byte j holds the low 4 bits of element
/// j in its low nibble and those of element j + 16 in its high nibble.
pub fn pack_legacy_nibbles(codes: &[u8; QK]) -> [u8; QK / 2] {
    std::array::from_fn(|j| (codes[j] & 0x0F) | (codes[j + QK / 2] & 0x0F) << 4)
}

/// The `qh` word of Q5_0 / Q5_1 from the 32 codes: bit j is the 5th bit of element j.
pub fn pack_legacy_fifth_bits(codes: &[u8; QK]) -> U32Le {
    let high_bits = codes.iter().enumerate().fold(0u32, |qh, (j, &q)| qh | (((q >> 4) & 1) as u32) << j);
    U32Le(high_bits.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A code pattern that differs in every bit position the packers split.
    fn codes<const N: usize>(bits: u32) -> [u8; N] {
        std::array::from_fn(|i| ((i * 37 + 11) % (1 << bits)) as u8)
    }

    #[test]
    fn k_scales_unpack_what_they_pack() {
        let (scales, mins): ([u8; 8], [u8; 8]) = (codes(6), std::array::from_fn(|j| 63 - j as u8 * 5));
        let packed = pack_scale_min_k4(&scales, &mins);
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &packed), (scales[j], mins[j]), "sub-block {j}");
        }
    }

    #[test]
    fn k_nibbles_unpack_what_they_pack() {
        let codes: [u8; QK_K] = codes(4);
        let qs = pack_sub_block_nibbles(&codes);
        for j in 0..8 {
            let (bytes, shift) = sub_block_nibbles(&qs, j);
            let unpacked: Vec<u8> = bytes.iter().map(|b| (b >> shift) & 0x0F).collect();
            assert_eq!(unpacked, codes[32 * j..32 * (j + 1)], "sub-block {j}");
        }
    }

    #[test]
    fn q6_k_codes_unpack_what_they_pack() {
        let codes: [u8; QK_K] = codes(6);
        let (ql, qh) = q6_k::pack_codes(&codes);
        let block = q6_k::Block { ql, qh, scales: [0; 16], d: F16Le([0; 2]) };
        assert!((0..QK_K).all(|e| block.code(e) == codes[e]));
    }

    #[test]
    fn legacy_codes_pack_as_ggml_does() {
        let codes: [u8; QK] = codes(5);
        let qs = pack_legacy_nibbles(&codes);
        let qh = pack_legacy_fifth_bits(&codes).get();
        for j in 0..QK {
            let low = if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 };
            assert_eq!(low | (((qh >> j) & 1) as u8) << 4, codes[j], "element {j}");
        }
    }
}
