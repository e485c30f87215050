//! Q5_1 (ggml-common.h `block_q5_1`): blocks of 32 weights, an f16 scale `d`, an f16 offset `m`
//! and 5-bit codes laid out as Q5_0's; `x = (d * q) + m`.

use super::{F16Le, U32Le, QK};

ggml_block! {
    weights: QK,
    // ggml: static_assert(sizeof(block_q5_1) == 2 * sizeof(ggml_half) + sizeof(uint32_t) + QK5_1 / 2).
    ggml_size: 2 * 2 + 4 + QK / 2,
    pub struct Block {
        pub d: F16Le,
        pub m: F16Le,
        /// The codes' 5th bits, as in Q5_0.
        pub qh: U32Le,
        /// The codes' low 4 bits, as in Q5_0.
        pub qs: [u8; QK / 2],
    }
}
