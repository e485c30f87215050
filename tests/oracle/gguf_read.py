#!/usr/bin/env python3
"""Reads a GGUF with gguf-py's GGUFReader (an independent reader) for tests/cli_quant.rs.

usage: gguf_read.py FILE
Prints "metadata<TAB>N" (key/value pairs, gguf-py's own GGUF.* header fields excluded) and then
one line "NAME<TAB>TYPE<TAB>SHAPE" per tensor, SHAPE as comma-separated ggml dims.
"""
import sys

from gguf import GGUFReader

reader = GGUFReader(sys.argv[1])
keys = [k for k in reader.fields if not k.startswith("GGUF.")]
print(f"metadata\t{len(keys)}")
for t in reader.tensors:
    print(f"{t.name}\t{t.tensor_type.name}\t{','.join(str(int(d)) for d in t.shape)}")
