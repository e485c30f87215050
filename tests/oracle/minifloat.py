#!/usr/bin/env python3
"""Reference small-float codecs for tests/float_formats_oracle.rs, from ml_dtypes.

stdin: one line per format, `DTYPE HEX HEX ...`: an ml_dtypes type name (float8_e4m3fn, ...)
and f32 inputs as 8-digit hex bit patterns.
stdout: two lines per input line, in order:
  `decode HEX ...`  every code 0 .. 2^bits - 1 cast to float32, as hex bit patterns
  `encode N ...`    each input cast with `np.array(x, np.float32).astype(dtype)`, as the code
                    (the stored byte, whose low `bits` bits are the format's code)
Inputs are first clipped to the format's finite range [-max, max] ([smallest, max] for the
unsigned float8_e8m0fnu), because ml_dtypes' casts do not saturate: beyond max they give NaN
(float8_e4m3fn, float8_e8m0fnu) or inf (float8_e5m2), and float8_e8m0fnu maps 0 and negatives
to NaN. NaN passes through np.clip unchanged.
"""
import sys

import ml_dtypes
import numpy as np


def main() -> int:
    # All of stdin before any output: the caller writes everything before it reads, and a full
    # stdout pipe would otherwise block both sides.
    for line in sys.stdin.read().splitlines():
        words = line.split()
        if not words:
            continue
        dtype = getattr(ml_dtypes, words[0])
        info = ml_dtypes.finfo(dtype)
        bits = info.bits
        codes = np.arange(1 << bits, dtype=np.uint8).view(dtype).astype(np.float32)
        print("decode", " ".join(f"{b:08x}" for b in codes.view(np.uint32)))

        x = np.array([int(w, 16) for w in words[1:]], dtype=np.uint32).view(np.float32)
        hi = np.float32(info.max)
        lo = np.float32(info.smallest_normal) if words[0] == "float8_e8m0fnu" else -hi
        with np.errstate(invalid="ignore"):
            clipped = np.clip(x, lo, hi)
        encoded = clipped.astype(dtype).view(np.uint8)
        print("encode", " ".join(str(int(c)) for c in encoded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
