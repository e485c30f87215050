#!/usr/bin/env python3
"""Reference GGUF *quantization* for tests/gguf_quantize_oracle.rs.

usage:
  gguf_quantize.py quantize INPUT.f32 ROWS COLS OUT_DIR TYPE...
      INPUT.f32 holds ROWS*COLS raw little-endian f32 (row-major). For every TYPE (a ggml type
      name such as Q4_0) writes, for each oracle that can quantize it:
        OUT_DIR/TYPE.gguf-py.bin  gguf.quants.quantize(array, GGMLQuantizationType.TYPE)
        OUT_DIR/TYPE.mirror.bin   kquants_ref.quantize (our plain-Python mirror of llama.cpp's
                                  reference K-quants; gguf-py 0.19 cannot quantize those)
      and prints one line "TYPE<TAB>ORACLE" per file written, ORACLE being gguf-py or mirror.
      A TYPE no oracle can quantize is an error.
  gguf_quantize.py dequantize TYPE INPUT.bin N OUT.f32
      gguf.quants.dequantize of N elements of TYPE blocks, written as raw little-endian f32.
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kquants_ref  # noqa: E402


def write_atomically(path: str, data: bytes) -> None:
    # Rename only when complete, so a killed run never leaves a plausible half file behind.
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def cmd_quantize(src: str, rows: str, cols: str, out_dir: str, types: list[str]) -> None:
    rows, cols = int(rows), int(cols)
    values = np.fromfile(src, dtype="<f4")
    if values.size != rows * cols:
        raise SystemExit(f"{src} has {values.size} values, expected {rows}x{cols}")
    values = values.reshape(rows, cols)
    for name in types:
        qtype = GGMLQuantizationType[name]
        written = []
        try:
            with np.errstate(over="ignore"):  # an f16 scale overflowing to inf is expected data
                q = quantize(values, qtype)
            write_atomically(os.path.join(out_dir, f"{name}.gguf-py.bin"), np.ascontiguousarray(q).tobytes())
            written.append("gguf-py")
        except NotImplementedError:
            pass
        if name in kquants_ref.BLOCK_QUANTIZERS:
            write_atomically(os.path.join(out_dir, f"{name}.mirror.bin"), kquants_ref.quantize(values, name))
            written.append("mirror")
        if not written:
            raise SystemExit(f"no oracle can quantize {name}")
        for oracle in written:
            print(f"{name}\t{oracle}")


def cmd_dequantize(name: str, src: str, n: str, out: str) -> None:
    data = np.fromfile(src, dtype=np.uint8)
    values = dequantize(data, GGMLQuantizationType[name]).astype("<f4", copy=False).reshape(-1)
    if values.size != int(n):
        raise SystemExit(f"gguf-py dequantized {values.size} values from {src}, expected {n}")
    write_atomically(out, values.tobytes())


def main() -> int:
    args = sys.argv[1:]
    if len(args) >= 6 and args[0] == "quantize":
        cmd_quantize(args[1], args[2], args[3], args[4], args[5:])
    elif len(args) == 5 and args[0] == "dequantize":
        cmd_dequantize(*args[1:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
