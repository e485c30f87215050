// The norms of token rows, one workgroup per row (first_row lets the output head normalize the
// last token's row where the residual stream holds it, without a copy that would end the step's
// compute pass):
// - rms_norm: out[t] = x[r] / sqrt(mean(x[r]²) + eps) * gain;
// - layer_norm (GPT-2): out[t] = (x[r] − mean(x[r])) / sqrt(var(x[r]) + eps) * gain + bias, var
//   the biased variance (PyTorch's LayerNorm), in two passes (the mean, then the mean of the
//   squared deviations from it), so a row far from zero-mean keeps its digits as the CPU
//   reference's f64 sums do;
// with r = first_row + t. Every invocation sums a strided slice of the row, the partial sums are
// added in a tree in workgroup memory, then every invocation writes its slice. Each entry point
// binds only what it reads (rms_norm has no bias). The grid may be 2-D for many rows (see
// GpuContext::grid); workgroups past the last row return.

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
@group(0) @binding(4) var<storage, read> bias: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// The sum of every invocation's `value` over the workgroup; every invocation gets it.
fn workgroup_sum(local: u32, value: f32) -> f32 {
    partial[local] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
        if (local < stride) {
            partial[local] += partial[local + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Nobody overwrites partial (a next sum) before everyone has read the total.
    workgroupBarrier();
    return total;
}

// Which row a workgroup normalizes (n_rows or more: none).
fn row_of(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.x + wg.y * groups.x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) local: u32) {
    let row = row_of(wg, groups);
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
    let mean_square = workgroup_sum(local, sum) / f32(d);
    let scale = 1.0 / sqrt(mean_square + params.eps);
    for (var i = local; i < d; i += WORKGROUP_SIZE) {
        out[out_base + i] = x[base + i] * scale * gain[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
              @builtin(local_invocation_index) local: u32) {
    let row = row_of(wg, groups);
    if (row >= params.n_rows) { return; }
    let d = params.d;
    let base = (params.first_row + row) * d;
    let out_base = row * d;

    var sum = 0.0;
    for (var i = local; i < d; i += WORKGROUP_SIZE) {
        sum += x[base + i];
    }
    let mean = workgroup_sum(local, sum) / f32(d);
    var squares = 0.0;
    for (var i = local; i < d; i += WORKGROUP_SIZE) {
        let centred = x[base + i] - mean;
        squares += centred * centred;
    }
    let variance = workgroup_sum(local, squares) / f32(d);
    let scale = 1.0 / sqrt(variance + params.eps);
    for (var i = local; i < d; i += WORKGROUP_SIZE) {
        out[out_base + i] = (x[base + i] - mean) * scale * gain[i] + bias[i];
    }
}
