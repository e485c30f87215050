// Elementwise kernels over f32 vectors: residual add, bias add, a row of factors, SwiGLU's gate,
// soft-capping (soft_cap.wgsl, included before this file).
// One invocation per element; the workgroup grid may be 2-D for long vectors (see
// GpuContext::grid), so the linear index folds y in and threads past the end return.

override WORKGROUP_SIZE: u32 = 256u;

struct Params {
    n: u32,
    period: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read> operand: array<f32>;

fn linear_index(wg: vec3<u32>, groups: vec3<u32>, local: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
}

// acc[i] += operand[i]
@compute @workgroup_size(WORKGROUP_SIZE)
fn add_in_place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let i = linear_index(wg, groups, local);
    if (i >= params.n) { return; }
    acc[i] = acc[i] + operand[i];
}

// acc[i] = silu(acc[i]) * operand[i], with acc holding the gate and operand the up projection.
@compute @workgroup_size(WORKGROUP_SIZE)
fn swiglu_in_place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                   @builtin(local_invocation_index) local: u32) {
    let i = linear_index(wg, groups, local);
    if (i >= params.n) { return; }
    let g = acc[i];
    acc[i] = g / (1.0 + exp(-g)) * operand[i];
}

// acc[i] += operand[i % params.period]: a bias row added to every token row.
@compute @workgroup_size(WORKGROUP_SIZE)
fn add_rows_in_place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) local: u32) {
    let i = linear_index(wg, groups, local);
    if (i >= params.n) { return; }
    acc[i] = acc[i] + operand[i % params.period];
}

// acc[i] *= operand[i % params.period]: a row of factors applied to every token row (a period
// of 1: one factor for all, Gemma's √width on the embeddings).
@compute @workgroup_size(WORKGROUP_SIZE)
fn mul_rows_in_place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) local: u32) {
    let i = linear_index(wg, groups, local);
    if (i >= params.n) { return; }
    acc[i] = acc[i] * operand[i % params.period];
}

// acc[i] = cap·tanh(acc[i]/cap) with cap = operand[0]: Gemma 2's soft cap of the logits.
@compute @workgroup_size(WORKGROUP_SIZE)
fn soft_cap_in_place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_index) local: u32) {
    let i = linear_index(wg, groups, local);
    if (i >= params.n) { return; }
    acc[i] = soft_cap(acc[i], operand[0]);
}
