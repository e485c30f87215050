// The bandwidth ceiling the benchmark compares kernels against: every invocation reads vec4s
// in a grid-stride loop and writes one sum, so the only real work is reading the buffer once.

override WORKGROUP_SIZE: u32 = 256u;

struct Params {
    n_vec4: u32,
    n_threads: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn read_all(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) local: u32) {
    let thread = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (thread >= params.n_threads) { return; }
    var acc = vec4<f32>(0.0);
    for (var i = thread; i < params.n_vec4; i += params.n_threads) {
        acc += data[i];
    }
    sums[thread] = acc.x + acc.y + acc.z + acc.w;
}
