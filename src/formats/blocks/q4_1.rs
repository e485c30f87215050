//! Q4_1 (ggml-common.h `block_q4_1`): blocks of 32 weights, an f16 scale `d`, an f16 offset `m`
//! and 4-bit codes laid out as Q4_0's; `x = (d * q) + m`.

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
    /// Byte j holds weight j's code in its low nibble and weight j + 16's in its high nibble
    /// ([`super::pack_legacy_nibbles`]).
    pub qs: [u8; QK / 2],
}

// ggml: static_assert(sizeof(block_q4_1) == 2 * sizeof(ggml_half) + QK4_1 / 2).
const _: () = assert!(BLOCK_BYTES == 2 * 2 + QK / 2 && align_of::<Block>() == 1);
