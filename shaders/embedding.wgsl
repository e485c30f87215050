// Embedding lookup: out[t][:] = dequantized row ids[t] of W, for t < n_tokens; rows past the
// table (ids[t] >= n_out) come out as zeros without reading W (the CPU validates ids before).
//
// Weight formats plug in exactly as in matmul.wgsl: src/gpu/kernels/embedding.rs prepends
// shaders/formats/common.wgsl and shaders/formats/<fmt>.wgsl, whose
// `fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32>` reads `w` and `params` below.
// One invocation per (token, chunk of 32 values); linear index over a 2-D grid
// (GpuContext::grid), invocations past the work return.

override WORKGROUP_SIZE: u32 = 256u;  // ≤ 256 (SwiftShader's limit)
// CHUNK and w (binding 1): shaders/formats/common.wgsl; Params, params (binding 0):
// shaders/formats/params.wgsl.
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
    if (id < params.n_out) {
        var wv = decode_chunk(id, c);
        for (var k = 0u; k < n; k++) {
            out[base + k] = wv[k];
        }
    } else {
        for (var k = 0u; k < n; k++) {
            out[base + k] = 0.0;
        }
    }
}
