//! Q4_K (ggml-common.h `block_q4_K`): super-blocks of 256 weights in eight sub-blocks of 32. An
//! f16 pair `d`, `dmin` scales each sub-block's 6-bit scale and min codes (see
//! [`Block::scale_min`]); `x = (d * sc_j) * q - (dmin * m_j)` with 4-bit codes `q`.

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
    /// The sub-blocks' 6-bit scale and min codes ([`super::pack_scale_min_k4`]).
    pub scales: [u8; K_SCALE_SIZE],
    /// The 4-bit codes, two sub-blocks to 32 bytes (see [`Block::sub_block_codes`]).
    pub qs: [u8; QK_K / 2],
}

impl Block {
    /// The 6-bit (scale, min) codes of sub-block `j` (0..8).
    pub fn scale_min(&self, j: usize) -> (u8, u8) {
        scale_min_k4(j, &self.scales)
    }

    /// The 32 bytes holding sub-block `j`'s codes and the shift of its nibble in them
    /// ([`sub_block_nibbles`]).
    pub fn sub_block_codes(&self, j: usize) -> (&[u8; SUB_BLOCK_WEIGHTS], u32) {
        sub_block_nibbles(&self.qs, j)
    }
}

// ggml: static_assert(sizeof(block_q4_K) == 2 * sizeof(ggml_half) + K_SCALE_SIZE + QK_K / 2).
const _: () = assert!(BLOCK_BYTES == 2 * 2 + K_SCALE_SIZE + QK_K / 2 && align_of::<Block>() == 1);
