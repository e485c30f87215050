#!/usr/bin/env python3
"""Writes a GGUF with the shapes of a real Llama 3 model and random Q4_0 weights, to measure how
quantscope loads and runs a model of that size without downloading one (never commit the output).

    .venv/bin/python scripts/make-shaped-model.py llama-3.1-8b /tmp/llama8b-q4_0.gguf

The vocabulary is the default model's (SmolLM2's byte-level BPE) padded with reserved control
tokens to the shape's vocabulary size, so prompts tokenize and every token id is embeddable.
Written tensor by tensor: memory stays at one tensor, not the file.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import gguf

# name: (blocks, width, heads, kv heads, feed-forward width, vocabulary, tied embeddings)
SHAPES = {
    "llama-3.2-1b": (16, 2048, 32, 8, 8192, 128256, True),
    "llama-3.2-3b": (28, 3072, 24, 8, 8192, 128256, True),
    "llama-3.1-8b": (32, 4096, 32, 8, 14336, 128256, False),
}

Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# gguf-py takes a quantized tensor's shape in bytes when its data is given as uint8.
Q4_0_BYTES = np.dtype(np.uint8)
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models/SmolLM2-135M-Instruct.Q4_1.gguf"


def llama3_rope_factors(head_dim, base=500000.0, factor=32.0, low=1.0, high=4.0, original=8192):
    """Llama 3.1's frequency factors (its config.json's rope_scaling), as GGUF rope_freqs stores them."""
    freqs = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * np.pi / freqs
    smooth = (original / wavelen - low) / (high - low)
    scaled = np.where(wavelen > original / low, factor, 1.0)
    mid = (wavelen <= original / low) & (wavelen >= original / high)
    scaled = np.where(mid, 1.0 / ((1 - smooth) / factor + smooth), scaled)
    return scaled.astype(np.float32)


def random_q4_0(rng, rows, cols, weight_std):
    """Random Q4_0 blocks whose values have roughly `weight_std` (uniform codes have std ~4.6)."""
    blocks = np.empty(rows * cols // 32, dtype=Q4_0)
    blocks["d"] = np.float16(weight_std / 4.6)
    blocks["qs"] = rng.integers(0, 256, size=(blocks.shape[0], 16), dtype=np.uint8)
    return blocks.view(np.uint8)


def tensors(shape):
    n_layers, d, heads, kv_heads, ff, vocab, tied = shape
    head_dim = d // heads
    yield "token_embd.weight", (vocab, d), "q4_0"
    yield "output_norm.weight", (d,), "ones"
    if not tied:
        yield "output.weight", (vocab, d), "q4_0"
    yield "rope_freqs.weight", (head_dim // 2,), "rope"
    for l in range(n_layers):
        for name, dims in [
            ("attn_norm", (d,)),
            ("attn_q", (heads * head_dim, d)),
            ("attn_k", (kv_heads * head_dim, d)),
            ("attn_v", (kv_heads * head_dim, d)),
            ("attn_output", (d, heads * head_dim)),
            ("ffn_norm", (d,)),
            ("ffn_gate", (ff, d)),
            ("ffn_up", (ff, d)),
            ("ffn_down", (d, ff)),
        ]:
            yield f"blk.{l}.{name}.weight", dims, "ones" if len(dims) == 1 else "q4_0"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    n_layers, d, heads, kv_heads, ff, vocab, tied = shape
    rng = np.random.default_rng(args.seed)

    source = gguf.GGUFReader(DEFAULT_MODEL)
    field = lambda key: source.fields[key]
    tokens = [bytes(field("tokenizer.ggml.tokens").parts[i]).decode() for i in field("tokenizer.ggml.tokens").data]
    types = [int(field("tokenizer.ggml.token_type").parts[i][0]) for i in field("tokenizer.ggml.token_type").data]
    merges = [bytes(field("tokenizer.ggml.merges").parts[i]).decode() for i in field("tokenizer.ggml.merges").data]
    scalar = lambda key: int(field(key).parts[field(key).data[0]][0])
    reserved = vocab - len(tokens)
    tokens += [f"<|reserved_special_token_{i}|>" for i in range(reserved)]
    types += [gguf.TokenType.CONTROL] * reserved

    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name(f"random {args.shape} (shape only)")
    w.add_block_count(n_layers)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_context_length(131072)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(d // heads)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(bytes(field("tokenizer.ggml.pre").parts[-1]).decode())
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(scalar("tokenizer.ggml.bos_token_id"))
    w.add_eos_token_id(scalar("tokenizer.ggml.eos_token_id"))

    plan = list(tensors(shape))
    for name, dims, kind in plan:
        if kind == "q4_0":
            rows, cols = dims
            w.add_tensor_info(name, (rows, cols * 18 // 32), Q4_0_BYTES, rows * cols * 18 // 32,
                              raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        else:
            w.add_tensor_info(name, dims, np.dtype(np.float32), int(np.prod(dims)) * 4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = len(plan)
    for i, (name, dims, kind) in enumerate(plan):
        if kind == "q4_0":
            rows, cols = dims
            data = random_q4_0(rng, rows, cols, weight_std=cols ** -0.5).reshape(rows, cols * 18 // 32)
        elif kind == "rope":
            data = llama3_rope_factors(d // heads)
        else:
            data = np.ones(dims, dtype=np.float32)
        w.write_tensor_data(data)
        print(f"\r{args.out.name}: tensor {i + 1}/{total}", end="", file=sys.stderr, flush=True)
    w.close()
    print(f"\n{args.out}: {args.out.stat().st_size / 1e9:.2f} GB", file=sys.stderr)


if __name__ == "__main__":
    main()
