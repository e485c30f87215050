// Embedding lookup: out[t][:] = dequantized row ids[t] of W, for t < n_tokens; rows past the
// table (ids[t] >= n_out) come out as zeros without reading W (the CPU validates ids before).
//
// Weight formats plug in exactly as in matmul.wgsl: src/gpu/kernels/embedding.rs prepends
// shaders/formats/common.wgsl and shaders/formats/<fmt>.wgsl, whose
// `fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32>` reads `w` and `params` below.
// One invocation per (token, chunk of 32 values); linear index over a 2-D grid
// (GpuContext::grid), invocations past the work return.

// A table larger than one storage binding is gathered part by part: each dispatch reads the
// rows first_row .. first_row + n_out (its part, in w) and writes only the tokens whose ids fall
// there; the first part also writes the zeros of ids past the whole table (total_rows).

override WORKGROUP_SIZE: u32 = 256u;  // ≤ 256 (SwiftShader's limit)

// The weight's layout fields (as shaders/formats/params.wgsl), then the part's place.
struct Params {
    n_in: u32,
    n_out: u32,
    n_tokens: u32,
    n_chunks: u32,
    aux_offset: u32,
    first_row: u32,
    total_rows: u32,
}

// CHUNK and w (binding 1): shaders/formats/common.wgsl.
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn embedding(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) local: u32) {
    let i = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (i >= params.n_tokens * params.n_chunks) {
        return;
    }
    let t = i / params.n_chunks;
    let c = i % params.n_chunks;
    let id = ids[t];
    let base = t * params.n_in + c * CHUNK;
    let n = min(CHUNK, params.n_in - c * CHUNK);
    if (id >= params.first_row && id - params.first_row < params.n_out) {
        var wv = decode_chunk(id - params.first_row, c);
        for (var k = 0u; k < n; k++) {
            out[base + k] = wv[k];
        }
    } else if (id >= params.total_rows && params.first_row == 0u) {
        for (var k = 0u; k < n; k++) {
            out[base + k] = 0.0;
        }
    }
}
