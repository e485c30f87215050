//! Q4_1 (ggml-common.h `block_q4_1`): blocks of 32 weights, an f16 scale `d`, an f16 offset `m`
//! and 4-bit codes laid out as Q4_0's; `x = (d * q) + m`.

use super::{F16Le, QK};

ggml_block! {
    weights: QK,
    // ggml: static_assert(sizeof(block_q4_1) == 2 * sizeof(ggml_half) + QK4_1 / 2).
    ggml_size: 2 * 2 + QK / 2,
    pub struct Block {
        pub d: F16Le,
        pub m: F16Le,
        /// The codes, two to a byte as in Q4_0.
        pub qs: [u8; QK / 2],
    }
}
