"""Writes the default GGUF model as a Hugging Face llama checkpoint (model.safetensors + config.json
+ tokenizer.json), truncated to a few layers, to test the safetensors path and half-split RoPE.

GGUF permutes Q/K rows so adjacent pairs rotate together (llama.cpp); Hugging Face keeps the
original order and rotates halves. Undoing the permutation here and getting the same logits from
the half-split forward is the check that both layouts are right.

usage: export_hf.py MODEL.gguf OUT_DIR N_LAYERS
"""
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(__file__))
from tokenizer import from_gguf  # noqa: E402

HF_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def unpermute(w, heads):
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def main():
    path, out_dir, n_layers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out_dir, exist_ok=True)
    reader = GGUFReader(path)
    field = lambda key: reader.fields[key].contents()
    heads, kv_heads = field("llama.attention.head_count"), field("llama.attention.head_count_kv")
    tensors = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        if t.name == "token_embd.weight":
            tensors["model.embed_tokens.weight"] = w
        elif t.name == "output_norm.weight":
            tensors["model.norm.weight"] = w.reshape(-1)
        elif t.name.startswith("blk."):
            _, layer, suffix = t.name.split(".", 2)
            if int(layer) >= n_layers:
                continue
            if suffix == "attn_q.weight":
                w = unpermute(w, heads)
            elif suffix == "attn_k.weight":
                w = unpermute(w, kv_heads)
            tensors[f"model.layers.{layer}.{HF_NAMES[suffix]}"] = w.reshape(-1) if w.shape[0] == 1 or w.ndim == 1 else w
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(out_dir, "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": field("llama.embedding_length"),
        "intermediate_size": field("llama.feed_forward_length"),
        "num_hidden_layers": n_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": field("llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": field("llama.rope.freq_base"),
        "max_position_embeddings": field("llama.context_length"),
        "vocab_size": len(field("tokenizer.ggml.tokens")),
        "tie_word_embeddings": True,
        "rope_scaling": None,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    from_gguf(path, field("tokenizer.ggml.pre")).save(os.path.join(out_dir, "tokenizer.json"))


if __name__ == "__main__":
    main()
