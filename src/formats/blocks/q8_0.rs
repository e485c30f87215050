//! Q8_0 (ggml-common.h `block_q8_0`): blocks of 32 weights, an f16 scale `d` and one signed byte
//! per weight; `x = q * d`.

use super::{F16Le, QK};

ggml_block! {
    weights: QK,
    // ggml: static_assert(sizeof(block_q8_0) == sizeof(ggml_half) + QK8_0).
    ggml_size: 2 + QK,
    pub struct Block {
        pub d: F16Le,
        /// Weight j's code.
        pub qs: [i8; QK],
    }
}
