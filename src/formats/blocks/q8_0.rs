//! Q8_0 (ggml-common.h `block_q8_0`): blocks of 32 weights, an f16 scale `d` and one signed byte
//! per weight; `x = q * d`.

use super::{F16Le, QK};

/// Weights per block.
pub const WEIGHTS: usize = QK;
/// Bytes per block.
pub const BLOCK_BYTES: usize = size_of::<Block>();

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Block {
    pub d: F16Le,
    /// Weight j's code.
    pub qs: [i8; QK],
}

// ggml: static_assert(sizeof(block_q8_0) == sizeof(ggml_half) + QK8_0).
const _: () = assert!(BLOCK_BYTES == 2 + QK && align_of::<Block>() == 1);
