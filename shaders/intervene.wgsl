// Interventions on the residual stream after a block (src/gpu/kernels/intervene.rs; the CPU
// reference is analysis::intervene): with the exact lower median m of |x| (a select, in `lo`),
// entries with |x| > max(floor, factor · m) become 0 (zero-massive) or their channel's calibrated
// mean (mean-massive); or x is clipped to ±(the percentile of |x| interpolated between the ranks
// selected into `lo` and `hi`).

const MODE_ZERO_MASSIVE: u32 = 0u;
const MODE_MEAN_MASSIVE: u32 = 1u;
const MODE_CLIP: u32 = 2u;

struct Params {
    n: u32,
    channels: u32,
    mode: u32,
    layer: u32,
    // Clip: the weight of `hi` in the interpolation.
    fraction: f32,
    // The massive rule: |x| > max(floor, factor · median |x|).
    floor: f32,
    factor: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> lo: array<u32>;
@group(0) @binding(3) var<storage, read> hi: array<u32>;
@group(0) @binding(4) var<storage, read> means: array<f32>;

@compute @workgroup_size(256)
fn intervene(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) local: u32) {
    let i = (wg.x + wg.y * groups.x) * 256u + local;
    if (i >= params.n) {
        return;
    }
    let v = x[i];
    if (params.mode == MODE_CLIP) {
        let a = bitcast<f32>(lo[0]);
        let b = bitcast<f32>(hi[0]);
        let limit = a + (b - a) * params.fraction;
        x[i] = clamp(v, -limit, limit);
        return;
    }
    let threshold = max(params.floor, params.factor * bitcast<f32>(lo[0]));
    if (abs(v) > threshold) {
        if (params.mode == MODE_ZERO_MASSIVE) {
            x[i] = 0.0;
        } else {
            x[i] = means[params.layer * params.channels + i % params.channels];
        }
    }
}
