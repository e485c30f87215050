//! Q4_K (ggml-common.h `block_q4_K`): super-blocks of 256 weights in eight sub-blocks of 32. An
//! f16 pair `d`, `dmin` scales each sub-block's 6-bit scale and min codes (read with
//! [`super::scale_min_k4`]); `x = (d * sc_j) * q - (dmin * m_j)` with 4-bit codes `q`.

use super::{F16Le, K_SCALE_SIZE, QK_K};

/// Weights per sub-block, which shares one scale and min.
pub const SUB_BLOCK_WEIGHTS: usize = 32;

ggml_block! {
    weights: QK_K,
    // ggml: static_assert(sizeof(block_q4_K) == 2 * sizeof(ggml_half) + K_SCALE_SIZE + QK_K / 2).
    ggml_size: 2 * 2 + K_SCALE_SIZE + QK_K / 2,
    pub struct Block {
        pub d: F16Le,
        pub dmin: F16Le,
        /// The sub-blocks' 6-bit scale and min codes ([`super::pack_scale_min_k4`]).
        pub scales: [u8; K_SCALE_SIZE],
        /// The codes, two sub-blocks to 32 bytes ([`super::sub_block_nibbles`]).
        pub qs: [u8; QK_K / 2],
    }
}
