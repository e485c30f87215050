#!/usr/bin/env python3
"""Write a GGUF of random tensors for tests/gguf_dequant_oracle.rs, with gguf-py's GGUFWriter.

usage: make_random_blocks.py OUTPUT.gguf

For each quantized type the test covers, one tensor of random bytes (an awkward number of
blocks per row, several rows) whose f16 scale fields (d, and m / dmin where the type has them)
are overwritten by random *finite* f16 bit patterns (subnormals, zeros and negatives included),
so no NaN or infinity comes out of the arithmetic. Plus F32 / F16 / BF16 tensors of random finite
values, and `special.*` tensors with infinities, quiet and signalling NaNs with payloads, signed
zeros and subnormals, to check that raw values keep their exact bit patterns. Also one metadata
entry of every GGUF value type, whose values tests/gguf_dequant_oracle.rs expects literally.
Deterministic: fixed seed.
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.constants import GGML_QUANT_SIZES

# byte offsets of the f16 scale fields inside one block (ggml-common.h)
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
BLOCKS_PER_ROW = 37
ROWS = 3


def finite_f16_bits(rng, n):
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    # exponent all ones = inf / NaN: clear one exponent bit to make it finite
    special = (bits & 0x7C00) == 0x7C00
    bits[special] &= np.uint16(0xFBFF)
    return bits


def random_blocks(rng, qtype, shape_rows):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = int(np.prod(shape_rows)) * BLOCKS_PER_ROW
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint16).astype(np.uint8)
    for off in F16_FIELDS[qtype]:
        blocks[:, off:off + 2] = finite_f16_bits(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(*shape_rows, BLOCKS_PER_ROW * type_size)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    rng = np.random.default_rng(20240607)
    w = gguf.GGUFWriter(sys.argv[1], "quantscope-test")

    # one value of every type (the Rust test checks these exact values)
    w.add_uint8("test.u8", 250)
    w.add_int8("test.i8", -7)
    w.add_uint16("test.u16", 65000)
    w.add_int16("test.i16", -32000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.25)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "qüantscope")
    w.add_uint64("test.u64", 2**64 - 2)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", -1.0e300)
    w.add_key_value("test.array.i16", [1, -2, 3], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.array.string", ["a", "", "bc"], V.ARRAY, sub_type=V.STRING)

    for qtype in F16_FIELDS:
        w.add_tensor(f"q.{qtype.name}", random_blocks(rng, qtype, (ROWS,)), raw_dtype=qtype)
    # a 3-d one and a 1-d one (one row)
    w.add_tensor("q3d.Q8_0", random_blocks(rng, T.Q8_0, (2, 3)), raw_dtype=T.Q8_0)
    w.add_tensor("q1d.Q4_K", random_blocks(rng, T.Q4_K, ()), raw_dtype=T.Q4_K)

    n = ROWS * BLOCKS_PER_ROW
    f32_bits = rng.integers(0, 1 << 32, size=(ROWS, BLOCKS_PER_ROW), dtype=np.uint64).astype(np.uint32)
    f32_bits[(f32_bits & 0x7F800000) == 0x7F800000] &= np.uint32(0xBFFFFFFF)  # make finite
    w.add_tensor("raw.F32", f32_bits.view(np.float32))
    w.add_tensor("raw.F16", finite_f16_bits(rng, n).reshape(ROWS, BLOCKS_PER_ROW).view(np.float16))
    bf16 = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    bf16[(bf16 & 0x7F80) == 0x7F80] &= np.uint16(0xBFFF)
    w.add_tensor("raw.BF16", bf16.reshape(ROWS, BLOCKS_PER_ROW).view(np.uint8).reshape(ROWS, -1), raw_dtype=T.BF16)

    # bit patterns that must survive exactly: +-inf, quiet / signalling NaNs with payloads, -0,
    # smallest subnormal, largest finite
    w.add_tensor("special.F32", np.array(
        [0x7F800000, 0xFF800000, 0x7FC00001, 0x7F800001, 0xFFA00005, 0x80000000, 0x00000001, 0x7F7FFFFF],
        dtype=np.uint32).view(np.float32))
    w.add_tensor("special.F16", np.array(
        [0x7C00, 0xFC00, 0x7E01, 0x7C01, 0xFD05, 0x8000, 0x0001, 0x7BFF],
        dtype=np.uint16).view(np.float16))
    w.add_tensor("special.BF16", np.array(
        [0x7F80, 0xFF80, 0x7FC1, 0x7F81, 0xFFA5, 0x8000, 0x0001, 0x7F7F],
        dtype=np.uint16).view(np.uint8), raw_dtype=T.BF16)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
