"""Independent oracle for the CPU reference forward: a llama / qwen2 / qwen3 / phi3 / gemma2 / gemma3
forward in float64 numpy over weights dequantized by gguf-py (the GGUF project's own Python
package).

Written from the formulas, not from the Rust code: whole-matrix numpy ops, RoPE applied to GGUF's
permuted Q/K as llama.cpp does (adjacent pairs) for llama and to halves (NEOX) for qwen2/qwen3,
q/k/v biases where the file has them, qwen3's RMSNorm of each query and key head before RoPE,
phi3's fused projections (one q|k|v matrix, one gate|up matrix: their products split by columns),
Llama 3.1's RoPE frequency factors (rope_freqs.weight) where the file has them, gemma3 as
llama.cpp runs it (embeddings times sqrt(width), tanh-GELU gate, RMSNorm of the attention and MLP
outputs before the residual adds, every 6th block global and the others at RoPE base 10000; the
file's norm gains already hold Gemma's 1 + w), gemma2 as llama.cpp runs it (the same but no q/k
norms, every block at one RoPE base, the attention scores and the final logits soft-capped,
cap * tanh(x / cap), with the file's caps or llama.cpp's defaults 50 and 30), the 27B models'
query scale 1/sqrt(width / heads) (llama.cpp picks them by layer count: gemma2 46, gemma3 62),
GQA by repeating K/V heads; gpt2 as GPT-2 computes it (gpt2_last_logits): learned absolute
positions added to the token embeddings and no RoPE, LayerNorm (mean-centred, biased variance,
then gain and bias), one fused q|k|v product plus its bias, a bias on every linear layer, a plain
MLP with tanh-GELU, tied unembedding unless the file has output.weight; and GPT-2 from a
Hugging Face model.safetensors with its config.json beside it (gpt2_hf_last_logits), whose block
matrices are Conv1D [in, out] and multiply as x @ W.

usage: forward.py MODEL.gguf|model.safetensors TOKEN_ID [TOKEN_ID ...] [, TOKEN_ID ...]... [--layers N] [--top K]
prints JSON {"logits": [...]} for the last position; with several sequences (separated by a ","
argument) {"runs": [[...], ...]}, one per sequence; with --top K {"top": [[[id, logit], ...], ...]},
each sequence's K largest logits.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    args = sys.argv[1:]
    layers = None
    if "--layers" in args:
        i = args.index("--layers")
        layers = int(args[i + 1])
        del args[i : i + 2]
    top = None
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    path = args[0]
    sequences = [[int(t) for t in seq.split()] for seq in " ".join(args[1:]).split(",")]
    if path.endswith(".safetensors"):  # a Hugging Face GPT-2 (config.json beside it)
        return report([gpt2_hf_last_logits(path, seq, layers) for seq in sequences], top)

    reader = GGUFReader(path)
    field = lambda key: reader.fields[key].contents()
    arch = field("general.architecture")
    if arch == "gpt2":
        runs = [gpt2_last_logits(reader, seq, layers) for seq in sequences]
        return report(runs, top)
    n_layers = field(f"{arch}.block_count") if layers is None else layers
    n_heads = field(f"{arch}.attention.head_count")
    n_kv = field(f"{arch}.attention.head_count_kv")
    eps = field(f"{arch}.attention.layer_norm_rms_epsilon")
    base = field(f"{arch}.rope.freq_base")
    if arch not in ("llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"):
        sys.exit(f"forward.py: architecture {arch!r} is not one this oracle computes")
    neox = arch in ("qwen2", "qwen3", "phi3", "gemma2", "gemma3")
    gemma = arch in ("gemma2", "gemma3")
    optional = lambda key, default: field(key) if key in reader.fields else default
    caps = (50.0, 30.0) if arch == "gemma2" else (None, None)
    attn_cap = optional(f"{arch}.attn_logit_softcapping", caps[0])
    final_cap = optional(f"{arch}.final_logit_softcapping", caps[1])
    n_blocks = field(f"{arch}.block_count")

    wanted = {"token_embd.weight", "output_norm.weight", "output.weight"} | {
        f"blk.{l}.{s}" for l in range(n_layers) for s in
        ["attn_norm.weight", "attn_qkv.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
         "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
         "attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_q_norm.weight", "attn_k_norm.weight",
         "post_attention_norm.weight", "post_ffw_norm.weight"]}
    W = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors if t.name in wanted}
    out_w = W.get("output.weight", W["token_embd.weight"])

    d = W["token_embd.weight"].shape[1]
    key_length = f"{arch}.attention.key_length"
    hd = field(key_length) if key_length in reader.fields else d // n_heads
    is_27b = (arch, n_blocks) in (("gemma2", 46), ("gemma3", 62))
    query_scale = 1 / np.sqrt(d // n_heads if is_27b else hd)

    def soft_cap(x, cap):
        return x if cap is None else cap * np.tanh(x / cap)

    def last_logits(tokens):
        T = len(tokens)

        def rms_norm(x, g):
            return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g.reshape(-1)

        pos = np.arange(T, dtype=np.float64)[:, None]

        def turns(base):  # cos, sin of every position and pair: (T, hd/2) each
            inv_freq = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
            for t in reader.tensors:  # Llama 3.1's scaling: llama.cpp divides each pair's frequency by its factor
                if t.name == "rope_freqs.weight":
                    inv_freq = inv_freq / np.asarray(t.data, dtype=np.float64).reshape(-1)
            return np.cos(pos * inv_freq), np.sin(pos * inv_freq)

        global_turns = turns(base)
        local_turns = turns(optional(f"{arch}.rope.freq_base_swa", 10000.0))  # gemma3's sliding-window blocks

        def rope(x, heads, cos_sin):  # x: (T, heads*hd)
            cos, sin = cos_sin
            c, s = cos[:, None, :], sin[:, None, :]
            if neox:  # pairs (i, i + hd/2)
                x = x.reshape(T, heads, 2, hd // 2)
                a, b = x[:, :, 0], x[:, :, 1]
                return np.stack([a * c - b * s, a * s + b * c], axis=2).reshape(T, heads * hd)
            # GGUF llama rows are permuted for adjacent pairs (2i, 2i+1)
            x = x.reshape(T, heads, hd // 2, 2)
            a, b = x[..., 0], x[..., 1]
            return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(T, heads * hd)

        def project(h, l, name, heads):
            fused = W.get(f"blk.{l}.attn_qkv.weight")
            if fused is not None:  # phi3: columns q | k | v of one product
                qkv = h @ fused.T
                q_end, k_end = n_heads * hd, (n_heads + n_kv) * hd
                return {"q": qkv[:, :q_end], "k": qkv[:, q_end:k_end], "v": qkv[:, k_end:]}[name]
            y = h @ W[f"blk.{l}.attn_{name}.weight"].T + W.get(f"blk.{l}.attn_{name}.bias", 0.0)
            norm = W.get(f"blk.{l}.attn_{name}_norm.weight")
            if norm is not None:  # qwen3: each head's hd values are one RMSNorm row
                y = rms_norm(y.reshape(T, heads, hd), norm).reshape(T, heads * hd)
            return y

        x = W["token_embd.weight"][tokens]
        if gemma:
            x = x * np.sqrt(d)

        def post_norm(y, l, name):  # gemma: the block's output normalized before the residual add
            g = W.get(f"blk.{l}.{name}.weight")
            return y if g is None else rms_norm(y, g)

        def gelu_tanh(g):
            return 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g**3)))

        mask = np.triu(np.full((T, T), -np.inf), k=1)
        for l in range(n_layers):
            p = lambda s: W[f"blk.{l}.{s}"]
            h = rms_norm(x, p("attn_norm.weight"))
            cos_sin = local_turns if arch == "gemma3" and (l + 1) % 6 != 0 else global_turns
            q = rope(project(h, l, "q", n_heads), n_heads, cos_sin).reshape(T, n_heads, hd).transpose(1, 0, 2)
            k = rope(project(h, l, "k", n_kv), n_kv, cos_sin).reshape(T, n_kv, hd).transpose(1, 0, 2)
            v = project(h, l, "v", n_kv).reshape(T, n_kv, hd).transpose(1, 0, 2)
            k = np.repeat(k, n_heads // n_kv, axis=0)
            v = np.repeat(v, n_heads // n_kv, axis=0)
            scores = soft_cap(q @ k.transpose(0, 2, 1) * query_scale, attn_cap) + mask
            probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            attn = (probs @ v).transpose(1, 0, 2).reshape(T, n_heads * hd)
            x = x + post_norm(attn @ p("attn_output.weight").T, l, "post_attention_norm")
            h = rms_norm(x, p("ffn_norm.weight"))
            if arch == "phi3":  # one product, the gate's columns first
                gate, up = np.split(h @ p("ffn_up.weight").T, 2, axis=-1)
            else:
                gate, up = h @ p("ffn_gate.weight").T, h @ p("ffn_up.weight").T
            act = gelu_tanh(gate) if gemma else gate / (1 + np.exp(-gate))
            x = x + post_norm((act * up) @ p("ffn_down.weight").T, l, "post_ffw_norm")
        logits = rms_norm(x[-1:], W["output_norm.weight"]) @ out_w.T
        return soft_cap(logits[0], final_cap)

    runs = [last_logits(seq) for seq in sequences]
    report(runs, top)


def report(runs, top):
    if top is None:
        json.dump({"logits": runs[0].tolist()} if len(runs) == 1 else {"runs": [r.tolist() for r in runs]}, sys.stdout)
    else:  # the top ids and logits of each sequence, highest first, ties to the lower id
        order = [sorted(range(len(r)), key=lambda i: (-r[i], i))[:top] for r in runs]
        json.dump({"top": [[[i, float(r[i])] for i in o] for r, o in zip(runs, order)]}, sys.stdout)


def gpt2_last_logits(reader, tokens, layers):
    """GPT-2's forward of `tokens` from a GGUF file, the last position's logits. GGUF stores every
    matrix as nn.Linear's [out, in] (llama.cpp's converter transposed HF's Conv1D [in, out])."""
    field = lambda key: reader.fields[key].contents()
    W = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors}
    gguf = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
            "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down", "ln_f": "output_norm"}

    def param(module, kind):  # module: GPT-2's name ("h.3.mlp.c_fc", "ln_f")
        if module.startswith("h."):
            _, l, rest = module.split(".", 2)
            return W[f"blk.{l}.{gguf[rest]}.{kind}"]
        return W[f"{gguf[module]}.{kind}"]

    n_layers = field("gpt2.block_count") if layers is None else layers
    return gpt2_forward(tokens, n_layers, field("gpt2.attention.head_count"),
                        field("gpt2.attention.layer_norm_epsilon"), W["token_embd.weight"],
                        W["position_embd.weight"], W.get("output.weight"), param, transposed=True)


def gpt2_hf_last_logits(path, tokens, layers):
    """GPT-2's forward from a Hugging Face model.safetensors and the config.json beside it: every
    block's linear weight is a Conv1D [in, out], used as x @ W (no transpose)."""
    import os
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16}
    W = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        values = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).astype(np.float64)
        W[name.removeprefix("transformer.")] = values.reshape(info["shape"])
    with open(os.path.join(os.path.dirname(path), "config.json")) as f:
        config = json.load(f)
    assert config.get("activation_function", "gelu_new") == "gelu_new"
    n_layers = config["n_layer"] if layers is None else layers
    return gpt2_forward(tokens, n_layers, config["n_head"], config["layer_norm_epsilon"], W["wte.weight"],
                        W["wpe.weight"], W.get("lm_head.weight"), lambda module, kind: W[f"{module}.{kind}"],
                        transposed=False)


def gpt2_forward(tokens, n_layers, n_heads, eps, wte, wpe, out_w, param, transposed):
    """GPT-2 in float64: learned positions added to the token embeddings, pre-LayerNorm blocks,
    one q|k|v product plus bias, causal softmax attention, a tanh-GELU MLP, the final LayerNorm,
    the unembedding tied to wte unless out_w is given. `param(module, "weight" | "bias")` reads a
    weight under GPT-2's module names; `transposed`: matrices are [out, in] (nn.Linear, GGUF),
    else Conv1D's [in, out] (Hugging Face)."""
    T = len(tokens)
    d = wte.shape[1]
    hd = d // n_heads
    assert T <= wpe.shape[0], "longer than the position table"

    def layer_norm(x, module):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * param(module, "weight").reshape(-1) + param(module, "bias").reshape(-1)

    def linear(x, module):
        w = param(module, "weight")
        return x @ (w.T if transposed else w) + param(module, "bias").reshape(-1)

    def gelu_tanh(g):
        return 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g**3)))

    x = wte[tokens] + wpe[np.arange(T)]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(n_layers):
        qkv = linear(layer_norm(x, f"h.{l}.ln_1"), f"h.{l}.attn.c_attn")
        q, k, v = (m.reshape(T, n_heads, hd).transpose(1, 0, 2) for m in np.split(qkv, 3, axis=-1))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = (probs @ v).transpose(1, 0, 2).reshape(T, d)
        x = x + linear(attn, f"h.{l}.attn.c_proj")
        h = gelu_tanh(linear(layer_norm(x, f"h.{l}.ln_2"), f"h.{l}.mlp.c_fc"))
        x = x + linear(h, f"h.{l}.mlp.c_proj")
    return (layer_norm(x[-1:], "ln_f") @ (wte if out_w is None else out_w).T)[0]

if __name__ == "__main__":
    main()
