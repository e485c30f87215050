//! Q5_K (ggml-common.h `block_q5_K`): Q4_K with a 5th bit per code (see [`Block::fifth_bit`]);
//! `x = (d * sc_j) * q - (dmin * m_j)` with 5-bit codes `q`.

use super::{F16Le, K_SCALE_SIZE, QK_K};

/// Weights per sub-block, which shares one scale and min (as in Q4_K).
pub const SUB_BLOCK_WEIGHTS: usize = 32;

ggml_block! {
    weights: QK_K,
    // ggml: static_assert(sizeof(block_q5_K) == 2 * sizeof(ggml_half) + K_SCALE_SIZE + QK_K / 2 + QK_K / 8).
    ggml_size: 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8,
    pub struct Block {
        pub d: F16Le,
        pub dmin: F16Le,
        /// The sub-blocks' 6-bit scale and min codes, packed as Q4_K's.
        pub scales: [u8; K_SCALE_SIZE],
        /// Bit j of byte l is the 5th bit of weight l of sub-block j.
        pub qh: [u8; QK_K / 8],
        /// The codes' low 4 bits, laid out as Q4_K's codes.
        pub qs: [u8; QK_K / 2],
    }
}

impl Block {
    /// The 5th bit (0 or 1) of weight `l` of sub-block `j`.
    pub fn fifth_bit(&self, j: usize, l: usize) -> u8 {
        (self.qh[l] >> j) & 1
    }
}
