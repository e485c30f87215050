// y[t][o] = Σ_k x[t][k] · W[o][k] for t < n_tokens, with W kept in its stored (quantized)
// format. x: [n_tokens × n_in] f32, y: [n_tokens × n_out] f32, accumulation in f32.
//
// How weight formats plug in (a new format is a new decode function, not a new kernel):
// src/gpu/kernels/matmul.rs prepends, with ShaderSource::include, shaders/formats/common.wgsl
// and one shaders/formats/<fmt>.wgsl, which defines
//
//     fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32>
//
// = elements [32·chunk, 32·chunk + 32) of weight row `row`, dequantized with the CPU's formula
// (src/formats/ggml.rs). It reads the packed words `w` and the layout fields of `params`
// (n_chunks, aux_offset) declared below, in the layout src/gpu/weights.rs uploads. Every format
// decodes in chunks of 32: Q4_0/Q4_1/Q8_0 blocks, K-quant sub-blocks, and F32/F16 rows padded
// with zeros to a multiple of 32 on upload (x is read as zero past n_in).
//
// Entry points:
// - gemv (one token, decode: bandwidth-bound): THREADS_PER_ROW threads share a row, each takes
//   every THREADS_PER_ROW-th chunk, then a tree reduction in workgroup memory; a workgroup does
//   WORKGROUP_SIZE / THREADS_PER_ROW rows.
// - gemm (prefill): a workgroup owns GEMM_ROWS rows × TILE_TOKENS tokens, one row per thread;
//   per chunk it stages the tile's 32 x values per token in workgroup memory, and each thread
//   decodes its row's chunk once and uses it for all TILE_TOKENS tokens.
// Both use a linear workgroup index wg.x + wg.y·num_workgroups.x (GpuContext::grid) and ignore
// workgroups past the work.

override WORKGROUP_SIZE: u32 = 256u;  // gemv; ≤ 256 (SwiftShader's limit)
override THREADS_PER_ROW: u32 = 32u;  // gemv; a power of two dividing WORKGROUP_SIZE
override GEMM_ROWS: u32 = 64u;        // gemm workgroup size = rows per workgroup; ≤ 256
const TILE_TOKENS: u32 = 8u;          // gemm tokens per workgroup (sizes a private array)
// CHUNK, Params, params (binding 0) and w (binding 1): shaders/formats/common.wgsl.
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, 256>;
var<workgroup> x_tile: array<array<f32, CHUNK>, TILE_TOKENS>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let rows_per_group = WORKGROUP_SIZE / THREADS_PER_ROW;
    let row = (wg.x + wg.y * groups.x) * rows_per_group + local / THREADS_PER_ROW;
    let lane = local % THREADS_PER_ROW;
    var acc = 0.0;
    if (row < params.n_out) {
        for (var c = lane; c < params.n_chunks; c += THREADS_PER_ROW) {
            var wv = decode_chunk(row, c);
            let base = c * CHUNK;
            if (base + CHUNK <= params.n_in) {
                for (var i = 0u; i < CHUNK; i++) {
                    acc += wv[i] * x[base + i];
                }
            } else {
                for (var i = 0u; base + i < params.n_in; i++) {
                    acc += wv[i] * x[base + i];
                }
            }
        }
    }
    partial[local] = acc;
    workgroupBarrier();
    for (var stride = THREADS_PER_ROW / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            partial[local] += partial[local + stride];
        }
        workgroupBarrier();
    }
    if (lane == 0u && row < params.n_out) {
        y[row] = partial[local];
    }
}

@compute @workgroup_size(GEMM_ROWS)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let row_tiles = (params.n_out + GEMM_ROWS - 1u) / GEMM_ROWS;
    let group = wg.x + wg.y * groups.x;
    let t0 = (group / row_tiles) * TILE_TOKENS;
    // Uniform per workgroup, so returning before the barriers is allowed.
    if (t0 >= params.n_tokens) {
        return;
    }
    let row = (group % row_tiles) * GEMM_ROWS + local;
    var acc: array<f32, TILE_TOKENS>;
    for (var c = 0u; c < params.n_chunks; c++) {
        for (var i = local; i < TILE_TOKENS * CHUNK; i += GEMM_ROWS) {
            let t = t0 + i / CHUNK;
            let k = c * CHUNK + i % CHUNK;
            var v = 0.0;
            if (t < params.n_tokens && k < params.n_in) {
                v = x[t * params.n_in + k];
            }
            x_tile[i / CHUNK][i % CHUNK] = v;
        }
        workgroupBarrier();
        if (row < params.n_out) {
            var wv = decode_chunk(row, c);
            for (var t = 0u; t < TILE_TOKENS; t++) {
                var s = acc[t];
                for (var i = 0u; i < CHUNK; i++) {
                    s += wv[i] * x_tile[t][i];
                }
                acc[t] = s;
            }
        }
        workgroupBarrier();
    }
    if (row < params.n_out) {
        for (var t = 0u; t < TILE_TOKENS; t++) {
            if (t0 + t < params.n_tokens) {
                y[(t0 + t) * params.n_out + row] = acc[t];
            }
        }
    }
}
