//! Q4_0 (ggml-common.h `block_q4_0`): blocks of 32 weights, an f16 scale `d` and 4-bit codes
//! (see [`Block::qs`]); `x = d * (q - 8)`.

use super::{F16Le, QK};

ggml_block! {
    weights: QK,
    // ggml: static_assert(sizeof(block_q4_0) == sizeof(ggml_half) + QK4_0 / 2).
    ggml_size: 2 + QK / 2,
    pub struct Block {
        pub d: F16Le,
        /// Byte j holds weight j's code in its low nibble and weight j + 16's in its high nibble
        /// ([`super::pack_legacy_nibbles`]).
        pub qs: [u8; QK / 2],
    }
}
