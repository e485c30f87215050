// What matmul.wgsl's gemv and matmul_stacked.wgsl's gemv_stacked share (composed into both by
// src/gpu/kernels/matmul.rs): the GEMV's sizes and workgroup memory, x staged (and normalized)
// into xs, the per-part dot product, and the gated activation's formula. The kernel that includes it
// declares `params` (with n_in and eps), x, gain and the override constants RMS_NORM, KT and
// ROWS_PER_THREAD; reduce_rows comes from matmul_reduce_wg.wgsl or matmul_reduce_subgroup.wgsl.

const GEMV_WG: u32 = 256u;  // ≤ 256 (SwiftShader's limit)
const R_MAX: u32 = 4u;      // sizes the private accumulators
const MAX_ROWS: u32 = 16u;  // rows per gemv workgroup (sizes row_total and the subgroup sums)
const X_TILE: u32 = 2048u;  // gemv: x values staged at a time (8 KiB as f32)
const QUADS: u32 = 8u;      // quads per chunk

var<workgroup> xs: array<vec4<H>, X_TILE / 4u>;
var<workgroup> scratch: array<f32, 256>;
var<workgroup> row_total: array<f32, MAX_ROWS>;

// The gate's activation: SiLU (SwiGLU) unless tanh-GELU (GeGLU, Gemma).
override GATE_GELU: bool = false;

// The gated product act(g) · v: silu(g) = g / (1 + exp(−g)), or GELU's tanh approximation
// 0.5 g (1 + tanh(√(2/π) (g + 0.044715 g³))), the tanh's argument clamped to ±10, where tanh is
// ±1 in f32 (an exp-based tanh would overflow beyond).
fn gated(g: f32, v: f32) -> f32 {
    if (GATE_GELU) {
        let inner = clamp(0.7978845608028654 * (g + 0.044715 * g * g * g), -10.0, 10.0);
        return 0.5 * g * (1.0 + tanh(inner)) * v;
    }
    return g / (1.0 + exp(-g)) * v;
}

// x[base + k .. base + k + 4] as the kernel uses it: 0 past n_in, normalized by `inv_rms` and
// gain when RMS_NORM (x · inv_rms · gain, in that order, as norm.wgsl and the CPU do).
fn x_quad(base: u32, k: u32, inv_rms: f32) -> vec4<H> {
    var v = vec4<f32>(0.0);
    var g = vec4<f32>(0.0);
    if (k + 4u <= params.n_in) {
        v = vec4<f32>(x[base + k], x[base + k + 1u], x[base + k + 2u], x[base + k + 3u]);
        if (RMS_NORM) {
            g = vec4<f32>(gain[k], gain[k + 1u], gain[k + 2u], gain[k + 3u]);
        }
    } else {
        for (var e = 0u; k + e < params.n_in && e < 4u; e++) {
            v[e] = x[base + k + e];
            if (RMS_NORM) {
                g[e] = gain[k + e];
            }
        }
    }
    if (RMS_NORM) {
        v = v * inv_rms * g;
    }
    return vec4<H>(v);
}

// What the GEMV's x row is multiplied by as it is staged: with RMS_NORM 1 / sqrt(mean(x²) + eps),
// computed by all GEMV_WG threads of the workgroup (RMS_NORM is uniform, so are its barriers);
// else 1.
fn gemv_x_scale(local: u32) -> f32 {
    if (!RMS_NORM) {
        return 1.0;
    }
    var sum = 0.0;
    for (var k = local; k < params.n_in; k += GEMV_WG) {
        let v = x[k];
        sum += v * v;
    }
    scratch[local] = sum;
    workgroupBarrier();
    for (var stride = GEMV_WG / 2u; stride > 0u; stride /= 2u) {
        if (local < stride) {
            scratch[local] += scratch[local + stride];
        }
        workgroupBarrier();
    }
    return 1.0 / sqrt(scratch[0] / f32(params.n_in) + params.eps);
}

fn part_dot(wv: array<vec4<H>, 2>, xa: vec4<H>, xb: vec4<H>) -> f32 {
    return f32(dot(wv[0], xa)) + f32(dot(wv[1], xb));
}

// Part q of the staged x tile starting at k0: its chunk, its part within the chunk, and the index
// in xs of the chunk's first quad.
struct StagedPart {
    chunk: u32,
    p: u32,
    quad0: u32,
}

fn staged_part(k0: u32, q: u32) -> StagedPart {
    return StagedPart(k0 / CHUNK + q / PARTS, q % PARTS, (q / PARTS) * QUADS);
}

// Stages the x tile of values k0 .. k0 + n (n = min(X_TILE, padded − k0)) into xs and returns n;
// ends with a barrier, so every thread may read xs after it.
fn gemv_stage_x(local: u32, k0: u32, padded: u32, inv_rms: f32) -> u32 {
    let n = min(X_TILE, padded - k0);
    for (var i = local; i < n / 4u; i += GEMV_WG) {
        xs[i] = x_quad(0u, k0 + 4u * i, inv_rms);
    }
    workgroupBarrier();
    return n;
}
