// Summaries of one activation tensor x = [n_tokens × n_channels], reduced on the GPU so that a
// whole model's outlier statistics come back without reading the tensors themselves
// (src/gpu/kernels/probe.rs; the exact CPU definitions are in src/analysis/outliers.rs).
//
// Written at word `at` of `out` (every field an f32's bits or a u32):
//   rows:      per token: max|x|, its first channel, Σ|x| (3·n_tokens words), then the row's 8
//              largest |x| as (signed value, channel) pairs, largest first, ties to the lower
//              channel (16·n_tokens words);
//   channels:  per channel: max|x| over tokens and its first token (2·n_channels words);
//   histogram: 256 counts of |x| by `bin_of` (8 bins per octave from 2^−16 to 2^16), for
//              medians and percentiles within one bin.
// A global top-k (k ≤ 8) is the top of the union of the rows' top-8s, merged on the CPU.

override WORKGROUP_SIZE: u32 = 64u;
const TOP: u32 = 8u;
const BINS: u32 = 256u;

struct Params {
    n_tokens: u32,
    n_channels: u32,
    at: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;

fn put(i: u32, v: u32) {
    atomicStore(&out[params.at + i], v);
}

// Exact on every device (no log2): the exponent and the top three mantissa bits of |x|.
fn bin_of(a: f32) -> u32 {
    let bits = bitcast<u32>(a);
    let octave = i32(bits >> 23u) - 127 + 16;
    return u32(clamp(octave * 8 + i32((bits >> 20u) & 7u), 0, i32(BINS) - 1));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let t = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (t >= params.n_tokens) {
        return;
    }
    let c_n = params.n_channels;
    var best = 0.0;
    var best_channel = 0u;
    var sum = 0.0;
    var top_abs: array<f32, TOP>;
    var top_value: array<f32, TOP>;
    var top_channel: array<u32, TOP>;
    for (var i = 0u; i < TOP; i++) {
        top_abs[i] = -1.0;
    }
    for (var c = 0u; c < c_n; c++) {
        let v = x[t * c_n + c];
        let a = abs(v);
        sum += a;
        if (a > best) {
            best = a;
            best_channel = c;
        }
        if (a > top_abs[TOP - 1u]) {
            // Insertion into the descending list; strict `>` keeps the lower channel first on ties.
            var j = TOP - 1u;
            while (j > 0u && a > top_abs[j - 1u]) {
                top_abs[j] = top_abs[j - 1u];
                top_value[j] = top_value[j - 1u];
                top_channel[j] = top_channel[j - 1u];
                j -= 1u;
            }
            top_abs[j] = a;
            top_value[j] = v;
            top_channel[j] = c;
        }
    }
    let n = params.n_tokens;
    put(t, bitcast<u32>(best));
    put(n + t, best_channel);
    put(2u * n + t, bitcast<u32>(sum));
    for (var i = 0u; i < TOP; i++) {
        let valid = top_abs[i] >= 0.0;
        put(3u * n + (t * TOP + i) * 2u, select(0x7fc00000u, bitcast<u32>(top_value[i]), valid));
        put(3u * n + (t * TOP + i) * 2u + 1u, select(0xffffffffu, top_channel[i], valid));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn channels(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) local: u32) {
    let c = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (c >= params.n_channels) {
        return;
    }
    var best = 0.0;
    var best_token = 0u;
    for (var t = 0u; t < params.n_tokens; t++) {
        let a = abs(x[t * params.n_channels + c]);
        if (a > best) {
            best = a;
            best_token = t;
        }
    }
    let base = 19u * params.n_tokens;
    put(base + c, bitcast<u32>(best));
    put(base + params.n_channels + c, best_token);
}

var<workgroup> local_hist: array<atomic<u32>, BINS>;

// Each invocation bins a run of CHUNK values into the workgroup's histogram, which is then added
// to the global one bin by bin (BINS global atomics per workgroup instead of one per value).
const RUN: u32 = 32u;

@compute @workgroup_size(256)
fn histogram(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) local: u32) {
    atomicStore(&local_hist[local], 0u);
    workgroupBarrier();
    let total = params.n_tokens * params.n_channels;
    let first = ((wg.x + wg.y * groups.x) * 256u + local) * RUN;
    for (var i = first; i < min(first + RUN, total); i++) {
        atomicAdd(&local_hist[bin_of(abs(x[i]))], 1u);
    }
    workgroupBarrier();
    let count = atomicLoad(&local_hist[local]);
    if (count > 0u) {
        atomicAdd(&out[params.at + 19u * params.n_tokens + 2u * params.n_channels + local], count);
    }
}
