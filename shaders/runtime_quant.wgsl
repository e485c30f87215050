// Runtime fake quantization (quantize, then dequantize, in f32, in place) of activations
// `x: [rows × cols]` and of new keys/values, as the CPU references compute it:
// src/quant/activation.rs (+ int.rs, float.rs, minifloat.rs) and src/quant/kv.rs.
//
// Every scheme is "a scale per group of elements, then each element on a grid": the entries only
// differ in who shares a scale, so one set of formulas ([`make_quantizer`], [`apply`]) serves them
// all, selected by `params.rule` (uniform, so every invocation takes the same branch):
//
//   groups:        one workgroup per scale group of `group` consecutive elements along a row (the
//                  last group of a row may be shorter): per token (group = cols), KV groups
//                  (head_dim or gN), MX blocks (32) and NVFP4 blocks (16). Max |x| is reduced in
//                  workgroup memory, then each invocation quantizes its strided elements.
//   small_groups:  the same for groups of ≤ 32 (MX and NVFP4 blocks, small KV groups): one invocation
//                  per group, which reads it twice, instead of a mostly idle workgroup.
//   tensor_amax:   per tensor, pass 1: max |x| of a chunk per workgroup, atomicMax into stats[0]
//                  (the bits of a non-negative f32 order as u32s, so an integer max is the float
//                  max). stats must start at 0 (a fresh buffer does). NVFP4's tensor scale too.
//   channel_amax:  per channel, pass 1: one invocation per column, max over the rows into stats[c].
//   elementwise:   per tensor / per channel, pass 2: one invocation per element, its amax read from
//                  stats[0] or stats[column].
//
// And the calibrated rewrites of src/quant/runtime.rs, one invocation per element, with `stats`
// holding a per-channel f32 vector instead of maxima:
//   static_channel: OutlierTune's static per-channel scales: RNE(x/s)·s (no clamp), 0 where s ≤ 0.
//   key_scale:      FireQ: keys × σ[channel]; queries ÷ σ of their KV head's channel.
//
// And percentile clipping of a per-tensor scheme (`-clipP`, src/quant/activation.rs):
//   clip_tensor:    x clamped to ±limit, limit = a + (b − a)·fraction with a, b the |x| of ranks
//                   ⌊p/100·(n−1)⌋ and ⌈…⌉ from shaders/select.wgsl (stats[0] and, copied there,
//                   stats[3]) and the fraction in `scale_floor` (numpy's linear interpolation, in
//                   f32 where the CPU uses f64: the limit may differ by an ulp).
//
//   clip_groups:    the same per token or per channel (and per token for the block formats): one
//                   workgroup per group, which finds its two ranks by its own radix select in
//                   workgroup memory (four 8-bit passes each, as select.wgsl), then clamps. The
//                   ranks and the fraction come from the CPU (every group has the same length).
//                   `per_channel` picks columns (stride cols) over rows; rank lo in `qmax`, hi in
//                   `man_bits`.
//
// And the online Hadamard rotation of `+hadamard` activation schemes (src/quant/hadamard.rs):
//   hadamard:       one workgroup per block of `group` (a power of two ≤ MAX_HADAMARD) along a row:
//                   the Sylvester FWHT in workgroup memory, then × 1/√block (`max_finite` carries
//                   it). In f32 where the CPU sums in f64: a rotated value may differ by a few ulps.
//
// Rounding is bit-exact with the CPU where WGSL division is correctly rounded (lavapipe's is):
// scales are the same f32 expressions in the same order, grids use round() (WGSL: ties to even)
// on the integer significand, which is exact. A zero result is +0, as the CPU's level tables have.

override WORKGROUP_SIZE: u32 = 64u; // a power of two, ≤ 256
const AMAX_CHUNK: u32 = 8u;         // elements per invocation in tensor_amax

const RULE_INT: u32 = 0u; // s = amax / qmax (optionally an E4M3 scale ≥ scale_floor); clamp(RNE(x/s), −qmax−1, qmax)·s
const RULE_FP: u32 = 1u;  // s = amax / max_finite; RNE(x/s) on the element grid, saturating, ·s
const RULE_MX: u32 = 2u;  // s = 2^clamp(floor(log2 amax) − emax_elem, −127, 127) (E8M0)
const RULE_NV: u32 = 3u;  // g = 6·448 / tensor amax; s_b = UE4M3(amax_b / 6 · g); E2M1(x·g / s_b)·(s_b / g)

const F32_MAX: f32 = 0x1.fffffep+127f;

struct Params {
    rows: u32,
    cols: u32,
    group: u32,           // groups: elements per scale group along a row
    groups_per_row: u32,
    rule: u32,
    qmax: u32,            // RULE_INT: 2^(b−1) − 1
    man_bits: u32,        // element grid (RULE_FP, RULE_MX, RULE_NV): mantissa bits,
    min_normal_exp: i32,  // exponent of the smallest normal (1 − bias),
    max_finite: f32,      // largest finite value
    emax_elem: i32,       // RULE_MX: floor(log2 max_finite)
    fp8_scale: u32,       // RULE_INT: store the group scale as E4M3 (RNE), floored at scale_floor
    scale_floor: f32,
    per_channel: u32,     // elementwise: the amax is stats[column] (else stats[0]);
                          // key_scale: 0 keys (× σ), 1 queries (÷ σ; `group` = head_dim,
                          // `groups_per_row` = query heads per KV head)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<atomic<u32>>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

const MAX_HADAMARD: u32 = 2048u; // the wrapper refuses larger blocks
var<workgroup> block_values: array<f32, MAX_HADAMARD>;

// floor(log2 a) of a positive f32 from its exponent bits; subnormals give −127 (every caller
// clamps at or above that, as the CPU's exact f64 exponent is clamped too).
fn exponent_of(a: f32) -> i32 {
    return i32(extractBits(bitcast<u32>(a), 23u, 8u)) - 127;
}

// RNE of |y| onto a float grid with `man` mantissa bits and smallest normal 2^emin, saturating
// at max_finite (minifloat::Codec::round). Scaling by powers of two is exact, so the rounding of
// the integer significand is the only rounding, as in Codec::encode_magnitude.
fn round_grid(y: f32, man: u32, emin: i32, max_finite: f32) -> f32 {
    let a = abs(y);
    var r: f32;
    if (a < ldexp(1.0, emin)) {
        let shift = i32(man) - emin;
        r = ldexp(round(ldexp(a, shift)), -shift);
    } else {
        let shift = i32(man) - exponent_of(a);
        r = ldexp(round(ldexp(a, shift)), -shift);
    }
    r = min(r, max_finite);
    return positive_zero(select(r, -r, y < 0.0)); // the CPU's tables hold one zero, +0
}

// −0 → +0 through the bits: a float compare or `+ 0.0` may be folded away by a compiler that
// assumes zeros have no sign, an integer mask is not.
fn positive_zero(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    return bitcast<f32>(select(bits, 0u, (bits & 0x7fffffffu) == 0u));
}

fn round_e4m3(y: f32) -> f32 {
    return round_grid(y, 3u, -6, 448.0);
}

// What a group's elements need: x̂ = grid(x·mul / div)·out, or 0 for the whole group.
struct Quantizer {
    mul: f32,
    div: f32,
    out: f32,
    zero: bool,
}

fn make_quantizer(amax: f32, tensor_amax: f32) -> Quantizer {
    var q = Quantizer(1.0, 1.0, 1.0, false);
    switch params.rule {
        case RULE_INT: {
            var s = amax / f32(params.qmax);
            if (params.fp8_scale != 0u) {
                s = max(round_e4m3(s), params.scale_floor);
            }
            q.div = s;
            q.out = s;
            q.zero = amax == 0.0;
        }
        case RULE_FP: {
            var s = amax / params.max_finite;
            if (!(s > 0.0)) {
                // amax below max · 2^−150: the smallest f32 keeps x / s finite (a subnormal, which
                // a GPU that flushes subnormals reads as 0; no real activation is that small).
                s = bitcast<f32>(1u);
            }
            q.div = s;
            q.out = s;
            q.zero = amax == 0.0;
        }
        case RULE_MX: {
            let s = ldexp(1.0, clamp(exponent_of(amax) - params.emax_elem, -127, 127));
            q.div = s;
            q.out = s;
            q.zero = amax == 0.0;
        }
        default: { // RULE_NV
            var g = 1.0;
            if (tensor_amax > 0.0) {
                g = min(params.max_finite * 448.0 / tensor_amax, F32_MAX);
            }
            let sb = round_e4m3(amax / params.max_finite * g);
            q.mul = g;
            q.div = sb;
            q.out = sb / g;
            q.zero = !(sb > 0.0);
        }
    }
    return q;
}

fn apply(q: Quantizer, v: f32) -> f32 {
    if (q.zero) {
        // An all-zero group: the quantizers' codebooks give +0, except FireQ's E4M3-scale path,
        // which leaves the group as it is (a −0 stays −0).
        return select(0.0, v, params.rule == RULE_INT && params.fp8_scale != 0u);
    }
    let y = v * q.mul / q.div;
    if (params.rule == RULE_INT) {
        let level = clamp(round(y), -f32(params.qmax) - 1.0, f32(params.qmax));
        return positive_zero(level * q.out); // the CPU's level is an i32: its zero is +0
    }
    return positive_zero(round_grid(y, params.man_bits, params.min_normal_exp, params.max_finite) * q.out);
}

fn tensor_amax_value() -> f32 {
    return bitcast<f32>(atomicLoad(&stats[0]));
}

// Max of partial[0..WORKGROUP_SIZE] into partial[0]; every invocation must call it.
fn reduce_max(local: u32) {
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
        if (local < stride) {
            partial[local] = max(partial[local], partial[local + stride]);
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
          @builtin(local_invocation_index) local: u32) {
    let item = wg.x + wg.y * n_groups.x;
    // Uniform per workgroup: the barriers below stay in uniform control flow.
    if (item >= params.rows * params.groups_per_row) { return; }
    let row = item / params.groups_per_row;
    let start = (item % params.groups_per_row) * params.group;
    let end = min(start + params.group, params.cols);
    let base = row * params.cols;
    var a = 0.0;
    for (var c = start + local; c < end; c += WORKGROUP_SIZE) {
        a = max(a, abs(x[base + c]));
    }
    partial[local] = a;
    reduce_max(local);
    var tensor_amax = 0.0;
    if (params.rule == RULE_NV) {
        tensor_amax = tensor_amax_value();
    }
    let q = make_quantizer(partial[0], tensor_amax);
    for (var c = start + local; c < end; c += WORKGROUP_SIZE) {
        x[base + c] = apply(q, x[base + c]);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn small_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let item = (wg.x + wg.y * n_groups.x) * WORKGROUP_SIZE + local;
    if (item >= params.rows * params.groups_per_row) { return; }
    let row = item / params.groups_per_row;
    let start = row * params.cols + (item % params.groups_per_row) * params.group;
    let end = row * params.cols + min((item % params.groups_per_row + 1u) * params.group, params.cols);
    var amax = 0.0;
    for (var i = start; i < end; i++) {
        amax = max(amax, abs(x[i]));
    }
    var tensor_amax = 0.0;
    if (params.rule == RULE_NV) {
        tensor_amax = tensor_amax_value();
    }
    let q = make_quantizer(amax, tensor_amax);
    for (var i = start; i < end; i++) {
        x[i] = apply(q, x[i]);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn tensor_amax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
               @builtin(local_invocation_index) local: u32) {
    let first = (wg.x + wg.y * n_groups.x) * WORKGROUP_SIZE * AMAX_CHUNK;
    let n = params.rows * params.cols;
    var a = 0.0;
    for (var j = 0u; j < AMAX_CHUNK; j++) {
        let i = first + j * WORKGROUP_SIZE + local;
        if (i < n) {
            a = max(a, abs(x[i]));
        }
    }
    partial[local] = a;
    reduce_max(local);
    if (local == 0u && partial[0] > 0.0) {
        atomicMax(&stats[0], bitcast<u32>(partial[0]));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn channel_amax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let c = (wg.x + wg.y * n_groups.x) * WORKGROUP_SIZE + local;
    if (c >= params.cols) { return; }
    var a = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        a = max(a, abs(x[r * params.cols + c]));
    }
    atomicStore(&stats[c], bitcast<u32>(a));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
               @builtin(local_invocation_index) local: u32) {
    let i = (wg.x + wg.y * n_groups.x) * WORKGROUP_SIZE + local;
    if (i >= params.rows * params.cols) { return; }
    var at = 0u;
    if (params.per_channel != 0u) {
        at = i % params.cols;
    }
    let amax = bitcast<f32>(atomicLoad(&stats[at]));
    x[i] = apply(make_quantizer(amax, 0.0), x[i]);
}

fn channel_value(c: u32) -> f32 {
    return bitcast<f32>(atomicLoad(&stats[c]));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn static_channel(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
                  @builtin(local_invocation_index) local: u32) {
    let i = (wg.x + wg.y * n_groups.x) * WORKGROUP_SIZE + local;
    if (i >= params.rows * params.cols) { return; }
    let s = channel_value(i % params.cols);
    var v = 0.0;
    if (s > 0.0) {
        v = round(x[i] / s) * s;
    }
    x[i] = v;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn key_scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
             @builtin(local_invocation_index) local: u32) {
    let i = (wg.x + wg.y * n_groups.x) * WORKGROUP_SIZE + local;
    if (i >= params.rows * params.cols) { return; }
    let c = i % params.cols;
    if (params.per_channel == 0u) {
        x[i] = x[i] * channel_value(c);
    } else {
        let hd = params.group;
        let kv_channel = (c / hd / params.groups_per_row) * hd + c % hd;
        x[i] = x[i] / channel_value(kv_channel);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn hadamard(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
            @builtin(local_invocation_index) local: u32) {
    let item = wg.x + wg.y * n_groups.x;
    // Uniform per workgroup, as are the stage bounds below: the barriers stay in uniform flow.
    if (item >= params.rows * params.groups_per_row) { return; }
    let size = params.group;
    let base = (item / params.groups_per_row) * params.cols + (item % params.groups_per_row) * size;
    for (var i = local; i < size; i += WORKGROUP_SIZE) {
        block_values[i] = x[base + i];
    }
    workgroupBarrier();
    // Stage `half`: pairs (lo, lo + half) in blocks of 2·half become (a + b, a − b), as fwht.
    for (var half = 1u; half < size; half *= 2u) {
        for (var j = local; j < size / 2u; j += WORKGROUP_SIZE) {
            let lo = (j / half) * 2u * half + j % half;
            let a = block_values[lo];
            let b = block_values[lo + half];
            block_values[lo] = a + b;
            block_values[lo + half] = a - b;
        }
        workgroupBarrier();
    }
    for (var i = local; i < size; i += WORKGROUP_SIZE) {
        x[base + i] = block_values[i] * params.max_finite;
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn clip_tensor(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
               @builtin(local_invocation_index) local: u32) {
    let i = (wg.x + wg.y * n_groups.x) * WORKGROUP_SIZE + local;
    if (i >= params.rows * params.cols) { return; }
    let a = bitcast<f32>(atomicLoad(&stats[0]));
    let b = bitcast<f32>(atomicLoad(&stats[3]));
    let limit = a + (b - a) * params.scale_floor;
    x[i] = clamp(x[i], -limit, limit);
}

var<workgroup> digit_counts: array<atomic<u32>, 256>;
var<workgroup> select_found: u32;
var<workgroup> select_mask: u32;
var<workgroup> select_rank: u32;

// The |x| of rank `rank` among the `m` elements start + j·stride, by the whole workgroup.
fn select_in_group(start: u32, stride: u32, m: u32, rank: u32, local: u32) -> f32 {
    workgroupBarrier(); // every lane has read the previous select's answer before it is reset
    if (local == 0u) {
        select_found = 0u;
        select_mask = 0u;
        select_rank = rank;
    }
    for (var shift = 24i; shift >= 0; shift -= 8) {
        for (var d = local; d < 256u; d += WORKGROUP_SIZE) {
            atomicStore(&digit_counts[d], 0u);
        }
        workgroupBarrier();
        let found = select_found;
        let mask = select_mask;
        for (var j = local; j < m; j += WORKGROUP_SIZE) {
            let bits = bitcast<u32>(abs(x[start + j * stride]));
            if ((bits & mask) == found) {
                atomicAdd(&digit_counts[(bits >> u32(shift)) & 255u], 1u);
            }
        }
        workgroupBarrier();
        if (local == 0u) {
            var below = 0u;
            for (var d = 0u; d < 256u; d++) {
                let count = atomicLoad(&digit_counts[d]);
                if (below + count > select_rank) {
                    select_found = found | (d << u32(shift));
                    select_mask = mask | (255u << u32(shift));
                    select_rank -= below;
                    break;
                }
                below += count;
            }
        }
        workgroupBarrier();
    }
    return bitcast<f32>(workgroupUniformLoad(&select_found));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn clip_groups(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) n_groups: vec3<u32>,
               @builtin(local_invocation_index) local: u32) {
    let item = wg.x + wg.y * n_groups.x;
    var groups = params.rows;
    var start = item * params.cols;
    var stride = 1u;
    var m = params.cols;
    if (params.per_channel != 0u) {
        groups = params.cols;
        start = item;
        stride = params.cols;
        m = params.rows;
    }
    // Uniform per workgroup: the barriers below stay in uniform control flow.
    if (item >= groups) { return; }
    let a = select_in_group(start, stride, m, params.qmax, local);
    let b = select_in_group(start, stride, m, params.man_bits, local);
    let limit = a + (b - a) * params.scale_floor;
    for (var j = local; j < m; j += WORKGROUP_SIZE) {
        x[start + j * stride] = clamp(x[start + j * stride], -limit, limit);
    }
}
