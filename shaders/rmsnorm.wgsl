// RMS norm over rows: out[t] = x[first_row + t] / sqrt(mean(x[first_row + t]²) + eps) * gain.
// (first_row lets the output head normalize the last token's row where the residual stream
// holds it, without a copy that would end the step's compute pass.)
// One workgroup per row: every invocation sums the squares of a strided slice of the row, the
// partial sums are added in a tree in workgroup memory, then every invocation scales its slice.
// The grid may be 2-D for many rows (see GpuContext::grid); workgroups past the last row return.

override WORKGROUP_SIZE: u32 = 256u; // a power of two, ≤ 256 (SwiftShader's limit)

struct Params {
    n_rows: u32,
    d: u32,
    eps: f32,
    first_row: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) local: u32) {
    let row = wg.x + wg.y * groups.x;
    // Uniform per workgroup, so returning here keeps the barriers below in uniform control flow.
    if (row >= params.n_rows) { return; }
    let d = params.d;
    let base = (params.first_row + row) * d;
    let out_base = row * d;

    var sum = 0.0;
    for (var i = local; i < d; i += WORKGROUP_SIZE) {
        let v = x[base + i];
        sum += v * v;
    }
    partial[local] = sum;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
        if (local < stride) {
            partial[local] += partial[local + stride];
        }
        workgroupBarrier();
    }

    let mean_square = partial[0] / f32(d);
    let scale = 1.0 / sqrt(mean_square + params.eps);
    for (var i = local; i < d; i += WORKGROUP_SIZE) {
        out[out_base + i] = x[base + i] * scale * gain[i];
    }
}
