//! Q5_0 (ggml-common.h `block_q5_0`): blocks of 32 weights, an f16 scale `d` and 5-bit codes,
//! their low 4 bits laid out as Q4_0's and their 5th bits in `qh`; `x = d * (q - 16)`.

use super::{F16Le, U32Le, QK};

ggml_block! {
    weights: QK,
    // ggml: static_assert(sizeof(block_q5_0) == sizeof(ggml_half) + sizeof(uint32_t) + QK5_0 / 2).
    ggml_size: 2 + 4 + QK / 2,
    pub struct Block {
        pub d: F16Le,
        /// Bit j is the 5th bit of weight j's code ([`super::pack_legacy_fifth_bits`]).
        pub qh: U32Le,
        /// Byte j holds the low 4 bits of weight j's code in its low nibble and those of weight
        /// j + 16's in its high nibble ([`super::pack_legacy_nibbles`]).
        pub qs: [u8; QK / 2],
    }
}
