#!/usr/bin/env python3
"""An independent, plain-Python mirror of llama.cpp's reference K-quant quantizers
(`quantize_row_q4_K_ref` and `quantize_row_q6_K_ref` in ggml/src/ggml-quants.c, the path taken
without an importance matrix), for tests/gguf_quantize_oracle.rs: gguf-py 0.19 cannot quantize
K-quants (it raises NotImplementedError), so this is the oracle for Q4_K and Q6_K.

It is written from the algorithm (docs/quantizers.md §2.1 and ggml-quants.c), not from our Rust, and
deliberately in the most literal style: one element at a time, every value a numpy.float32
*scalar*, so each + - * / is one IEEE single-precision operation rounded exactly like C `float`
(numpy >= 2 keeps float32 for float32 (op) Python-number, NEP 50; constants are wrapped in F()
anyway). Sums are accumulated left to right as the C loops do (never np.sum, which is pairwise).
No operation is fused into an FMA, as in C compiled without contraction.

usage as a module: quantize(values: np.ndarray[float32], "Q4_K" | "Q6_K") -> bytes
"""
import numpy as np

F = np.float32
QK_K = 256
GROUP_MAX_EPS = F(1e-15)


def nearest_int(v) -> int:
    """ggml's nearest_int: v + 1.5*2^23 rounds v to an integer (ties to even) in the low mantissa
    bits; read them back from the float's bit pattern. Garbage (but deterministic) beyond 2^22."""
    s = np.array([F(v) + F(12582912.0)], dtype=np.float32)
    bits = int(s.view(np.int32)[0])
    return (bits & 0x007FFFFF) - 0x00400000


def to_f16(v) -> np.float16:
    """GGML_FP32_TO_FP16: round to nearest even (numpy's float32 -> float16 cast does that)."""
    return np.array([F(v)], dtype=np.float32).astype(np.float16)[0]


def f16_bytes(h: np.float16) -> bytes:
    return np.array([h], dtype=np.float16).astype("<f2").tobytes()


def clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def make_qkx2_quants(nmax, x, weights, rmin, rdelta, nstep):
    """x ~ scale*L + min with L in [0, nmax], min <= 0, weighted squared error (use_mad = false).
    Returns (L, scale, -min)."""
    n = len(x)
    lo = x[0]
    hi = x[0]
    sum_w = weights[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        if x[i] < lo:
            lo = x[i]
        if x[i] > hi:
            hi = x[i]
        w = weights[i]
        sum_w = sum_w + w
        sum_x = sum_x + w * x[i]
    if lo > 0:
        lo = F(0)
    if hi == lo:
        return [0] * n, F(0), -lo
    iscale = F(nmax) / (hi - lo)
    scale = F(1) / iscale
    L = []
    best_error = F(0)
    for i in range(n):
        l = clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax)
        L.append(l)
        diff = scale * F(l) + lo - x[i]
        diff = diff * diff
        best_error = best_error + weights[i] * diff
    for step in range(0, nstep + 1):
        # `lo` is the winning min so far (it changes when a candidate wins), as in ggml.
        iscale = (rmin + rdelta * F(step) + F(nmax)) / (hi - lo)
        sum_l = F(0)
        sum_l2 = F(0)
        sum_xl = F(0)
        Laux = []
        for i in range(n):
            l = clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax)
            Laux.append(l)
            w = weights[i]
            sum_l = sum_l + w * F(l)
            sum_l2 = sum_l2 + w * F(l) * F(l)
            sum_xl = sum_xl + w * F(l) * x[i]
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > 0:
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > 0:
                this_min = F(0)
                this_scale = sum_xl / sum_l2
            cur_error = F(0)
            for i in range(n):
                diff = this_scale * F(Laux[i]) + this_min - x[i]
                diff = diff * diff
                cur_error = cur_error + weights[i] * diff
            if cur_error < best_error:
                L = Laux
                best_error = cur_error
                scale = this_scale
                lo = this_min
    return L, scale, -lo


def make_qx_quants_rmse1(nmax, x):
    """Symmetric x ~ scale*l, l in [-nmax, nmax-1], weights x^2, scan of 18 extra grid densities.
    Returns (L shifted by +nmax, scale); an all-zero block gives L = 0 (not nmax) and scale 0."""
    n = len(x)
    amax = F(0)
    signed_max = F(0)
    for i in range(n):
        ax = abs(x[i])
        if ax > amax:
            amax = ax
            signed_max = x[i]
    if amax < GROUP_MAX_EPS:
        return [0] * n, F(0)

    def levels_at(iscale):
        return [clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1) for i in range(n)]

    def sums(levels):
        sumlx = F(0)
        suml2 = F(0)
        for i in range(n):
            w = x[i] * x[i]
            sumlx = sumlx + w * x[i] * F(levels[i])
            suml2 = suml2 + w * F(levels[i]) * F(levels[i])
        return sumlx, suml2

    iscale = F(-nmax) / signed_max
    levels = levels_at(iscale)
    L = [l + nmax for l in levels]
    sumlx, suml2 = sums(levels)
    scale = sumlx / suml2 if suml2 != 0 else F(0)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = -(F(nmax) + F(0.1) * F(step)) / signed_max
        levels = levels_at(iscale)
        sumlx, suml2 = sums(levels)
        if suml2 > 0 and sumlx * sumlx > best * suml2:
            L = [l + nmax for l in levels]
            scale = sumlx / suml2
            best = scale * sumlx
    return L, scale


def quantize_q4_k_block(x) -> bytes:
    L = [0] * QK_K
    scales = []
    mins = []
    max_scale = F(0)
    max_min = F(0)
    for j in range(8):
        sub = x[32 * j:32 * j + 32]
        sum_x2 = F(0)
        for v in sub:
            sum_x2 = sum_x2 + v * v
        av_x = np.sqrt(sum_x2 / F(32))
        weights = [av_x + abs(v) for v in sub]
        levels, scale, neg_min = make_qkx2_quants(15, sub, weights, F(-1.0), F(0.1), 20)
        L[32 * j:32 * j + 32] = levels
        scales.append(scale)
        mins.append(neg_min)
        if scale > max_scale:
            max_scale = scale
        if neg_min > max_min:
            max_min = neg_min
    inv_scale = F(63) / max_scale if max_scale > 0 else F(0)
    inv_min = F(63) / max_min if max_min > 0 else F(0)
    # C stores nearest_int into a uint8_t (wrapping) before MIN(63, .).
    ls = [min(63, nearest_int(inv_scale * s) & 0xFF) for s in scales]
    lm = [min(63, nearest_int(inv_min * m) & 0xFF) for m in mins]
    packed = [0] * 12
    for j in range(8):
        if j < 4:
            packed[j] = ls[j]
            packed[j + 4] = lm[j]
        else:
            packed[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
            packed[j - 4] |= (ls[j] >> 4) << 6
            packed[j] |= (lm[j] >> 4) << 6
    d = to_f16(max_scale / F(63))
    dmin = to_f16(max_min / F(63))
    for j in range(8):
        # Read the 6-bit codes back from the packed bytes, as ggml's get_scale_min_k4 does.
        if j < 4:
            sc, m = packed[j] & 63, packed[j + 4] & 63
        else:
            sc = (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4)
            m = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4)
        sub_d = F(d) * F(sc)
        if sub_d == 0:
            continue
        sub_m = F(dmin) * F(m)
        for i in range(32 * j, 32 * j + 32):
            L[i] = clamp(nearest_int((x[i] + sub_m) / sub_d), 0, 15)
    qs = []
    for base in range(0, QK_K, 64):
        qs += [L[base + l] | (L[base + l + 32] << 4) for l in range(32)]
    return f16_bytes(d) + f16_bytes(dmin) + bytes(packed) + bytes(qs)


def quantize_q6_k_block(x) -> bytes:
    L = [0] * QK_K
    scales = []
    max_scale = F(0)
    max_abs_scale = F(0)
    for j in range(16):
        levels, scale = make_qx_quants_rmse1(32, x[16 * j:16 * j + 16])
        L[16 * j:16 * j + 16] = levels
        scales.append(scale)
        if abs(scale) > max_abs_scale:
            max_abs_scale = abs(scale)
            max_scale = scale
    if max_abs_scale < GROUP_MAX_EPS:
        return bytes(210)
    iscale = F(-128.0) / max_scale
    d = to_f16(F(1) / iscale)
    # C assigns to int8_t: wrap to a signed byte.
    sc = [((min(127, nearest_int(iscale * s)) + 128) & 0xFF) - 128 for s in scales]
    for j in range(16):
        sub_d = F(d) * F(sc[j])
        if sub_d == 0:
            continue
        for i in range(16 * j, 16 * j + 16):
            L[i] = clamp(nearest_int(x[i] / sub_d), -32, 31) + 32
    ql = [0] * 128
    qh = [0] * 64
    for half in range(2):
        c = 128 * half
        for l in range(32):
            q1, q2, q3, q4 = L[c + l], L[c + l + 32], L[c + l + 64], L[c + l + 96]
            ql[64 * half + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
            ql[64 * half + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
            qh[32 * half + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    return bytes(ql) + bytes(qh) + bytes(s & 0xFF for s in sc) + f16_bytes(d)


BLOCK_QUANTIZERS = {"Q4_K": quantize_q4_k_block, "Q6_K": quantize_q6_k_block}


def quantize(values: np.ndarray, type_name: str) -> bytes:
    """GGUF bytes of `values` (float32, a whole number of 256-element super-blocks)."""
    block = BLOCK_QUANTIZERS[type_name]
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if flat.size % QK_K:
        raise ValueError(f"{flat.size} values are not a whole number of {QK_K}-element super-blocks")
    out = bytearray()
    with np.errstate(all="ignore"):  # f16 overflow to inf and inf*0 are part of the reference
        for start in range(0, flat.size, QK_K):
            out += block(list(flat[start:start + QK_K]))  # list of np.float32 scalars
    return bytes(out)
