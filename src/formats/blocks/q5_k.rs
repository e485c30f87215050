//! Q5_K (ggml-common.h `block_q5_K`): Q4_K with a 5th bit per code (see [`Block::fifth_bit`]);
//! `x = (d * sc_j) * q - (dmin * m_j)` with 5-bit codes `q`.

use super::{scale_min_k4, sub_block_nibbles, F16Le, K_SCALE_SIZE, QK_K};

/// Weights per super-block.
pub const WEIGHTS: usize = QK_K;
/// Weights per sub-block, which shares one scale and min.
pub const SUB_BLOCK_WEIGHTS: usize = 32;
/// Bytes per super-block.
pub const BLOCK_BYTES: usize = size_of::<Block>();

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
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

impl Block {
    /// The 6-bit (scale, min) codes of sub-block `j` (0..8), as in Q4_K.
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        scale_min_k4(j, &self.scales)
    }

    /// The 32 bytes holding the low 4 bits of sub-block `j`'s codes and the shift of its nibble
    /// in them, as in Q4_K.
    pub fn sub_block_codes(&self, j: usize) -> (&[u8; SUB_BLOCK_WEIGHTS], u32) {
        sub_block_nibbles(&self.qs, j)
    }

    /// The 5th bit (0 or 1) of weight `l` of sub-block `j`.
    pub fn fifth_bit(&self, j: usize, l: usize) -> u8 {
        (self.qh[l] >> j) & 1
    }
}

// ggml: static_assert(sizeof(block_q5_K) == 2 * sizeof(ggml_half) + K_SCALE_SIZE + QK_K / 2 + QK_K / 8).
const _: () = assert!(BLOCK_BYTES == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8 && align_of::<Block>() == 1);
