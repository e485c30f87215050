#!/usr/bin/env python3
"""Reference dequantization for tests/gguf_dequant_oracle.rs, using gguf-py (PyPI `gguf`).

usage: gguf_dequant.py INPUT.gguf OUT_PREFIX

Reads INPUT.gguf with gguf-py's own GGUFReader, dequantizes every tensor with
`gguf.quants.dequantize`, and writes
  OUT_PREFIX.f32    the values of all tensors, one after the other, raw little-endian f32
                    (bit patterns exactly as numpy produced them, NaN payloads included)
  OUT_PREFIX.index  one line per tensor, tab-separated: name, type name, dims (ggml order,
                    comma-separated), element count
Tensors are streamed one at a time, so memory stays at one tensor's worth. Tensor types that
gguf-py cannot dequantize are an error (the test should know about them).
"""
import sys

import numpy as np
import gguf
from gguf.quants import dequantize


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, prefix = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(src)
    with open(prefix + ".f32.tmp", "wb") as values, open(prefix + ".index.tmp", "w") as index:
        for t in reader.tensors:
            out = dequantize(t.data, t.tensor_type)
            out = np.ascontiguousarray(out)
            if out.dtype != np.float32:
                raise SystemExit(f"{t.name}: gguf-py returned {out.dtype}, expected float32")
            if out.size != t.n_elements:
                raise SystemExit(f"{t.name}: gguf-py returned {out.size} values, expected {t.n_elements}")
            values.write(out.astype("<f4", copy=False).tobytes())
            dims = ",".join(str(int(d)) for d in t.shape)
            index.write(f"{t.name}\t{t.tensor_type.name}\t{dims}\t{t.n_elements}\n")
    # Rename only when complete, so a killed run never leaves a plausible half file behind.
    import os
    os.replace(prefix + ".f32.tmp", prefix + ".f32")
    os.replace(prefix + ".index.tmp", prefix + ".index")
    return 0


if __name__ == "__main__":
    sys.exit(main())
