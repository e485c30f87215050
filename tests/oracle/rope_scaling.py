"""Independent oracle for Llama 3.1's RoPE scaling: each pair's frequency divisor from a Hugging
Face config's rope_theta, head size and rope_scaling, following the formula of transformers'
`_compute_llama3_parameters` (inverse frequencies scaled by wavelength band), in float64 numpy.

usage: rope_scaling.py < config.json
prints JSON {"factors": [...]}: the original inverse frequency over the scaled one, per pair.
"""
import json
import math
import sys

import numpy as np


def main():
    config = json.load(sys.stdin)
    scaling = config["rope_scaling"]
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    base = config.get("rope_theta", 10000.0)
    inv_freq = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)

    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context = scaling["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    scaled = np.where(medium, smoothed, scaled)
    json.dump({"factors": (inv_freq / scaled).tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
