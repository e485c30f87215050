//! Q6_K (ggml-common.h `block_q6_K`): super-blocks of 256 weights in sixteen sub-blocks of 16,
//! each with a signed 8-bit scale under one f16 `d`, stored *last*; 6-bit codes split into low 4
//! and high 2 bits (see [`Block::code`]); `x = (d * sc[e / 16]) * (q - 32)` for weight e.

use super::{F16Le, QK_K};

/// Weights per sub-block, which shares one scale.
pub const SUB_BLOCK_WEIGHTS: usize = 16;

ggml_block! {
    weights: QK_K,
    // ggml: static_assert(sizeof(block_q6_K) == sizeof(ggml_half) + QK_K / 16 + 3 * QK_K / 4).
    ggml_size: 2 + QK_K / 16 + 3 * QK_K / 4,
    pub struct Block {
        /// The codes' low 4 bits, two to a byte.
        pub ql: [u8; QK_K / 2],
        /// The codes' high 2 bits, four to a byte.
        pub qh: [u8; QK_K / 4],
        /// Sub-block j's scale.
        pub scales: [i8; QK_K / SUB_BLOCK_WEIGHTS],
        pub d: F16Le,
    }
}

impl Block {
    /// The 6-bit code (0..64) of weight `e`. The super-block is two halves of 128 weights; in half
    /// h, weight `h·128 + 32·s + l` (s in 0..4, l in 0..32) has low 4 bits
    /// `ql[64·h + 32·(s % 2) + l] >> 4·(s / 2)` and high 2 bits `qh[32·h + l] >> 2·s`.
    pub fn code(&self, e: usize) -> u8 {
        let h = e / 128;
        let s = (e % 128) / 32;
        let l = e % 32;
        let low = (self.ql[64 * h + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0x0F;
        let high = (self.qh[32 * h + l] >> (2 * s)) & 0x03;
        low | (high << 4)
    }
}

/// `ql` and `qh` from the super-block's 256 codes (0..64), laid out as [`Block::code`] reads them.
pub fn pack_codes(codes: &[u8; QK_K]) -> ([u8; QK_K / 2], [u8; QK_K / 4]) {
    let (mut ql, mut qh) = ([0u8; QK_K / 2], [0u8; QK_K / 4]);
    for (h, half) in codes.chunks_exact(128).enumerate() {
        for l in 0..32 {
            ql[64 * h + l] = (half[l] & 0x0F) | (half[l + 64] & 0x0F) << 4;
            ql[64 * h + 32 + l] = (half[l + 32] & 0x0F) | (half[l + 96] & 0x0F) << 4;
            qh[32 * h + l] =
                (half[l] >> 4) | (half[l + 32] >> 4) << 2 | (half[l + 64] >> 4) << 4 | (half[l + 96] >> 4) << 6;
        }
    }
    (ql, qh)
}
