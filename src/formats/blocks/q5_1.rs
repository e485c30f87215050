//! Q5_1 (ggml-common.h `block_q5_1`): blocks of 32 weights, an f16 scale `d`, an f16 offset `m`
//! and 5-bit codes laid out as Q5_0's; `x = (d * q) + m`.

use super::{F16Le, QK};

/// Weights per block.
pub const WEIGHTS: usize = QK;
/// Bytes per block.
pub const BLOCK_BYTES: usize = size_of::<Block>();

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Block {
    pub d: F16Le,
    pub m: F16Le,
    /// The codes' 5th bits, as in Q5_0 (see [`Block::fifth_bits`]).
    pub qh: [u8; 4],
    /// The codes' low 4 bits, as in Q5_0.
    pub qs: [u8; QK / 2],
}

impl Block {
    /// Bit j is the 5th bit of weight j's code, as in [`super::q5_0::Block::fifth_bits`].
    pub fn fifth_bits(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }
}

// ggml: static_assert(sizeof(block_q5_1) == 2 * sizeof(ggml_half) + sizeof(uint32_t) + QK5_1 / 2).
const _: () = assert!(BLOCK_BYTES == 2 * 2 + 4 + QK / 2 && align_of::<Block>() == 1);
