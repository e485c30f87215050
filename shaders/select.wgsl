// The exact value of rank `rank` (0 = smallest) among |x|, by radix select on the bits of |x|:
// for non-negative floats the u32 order is the float order, so four passes over 8-bit digits
// (most significant first) pin it down. Each pass counts the next digit of the values that share
// the digits found so far (`count`), then one invocation picks the digit that holds the rank
// (`pick`). `init` resets the state, so several selects can run in one command encoder.
//
// state: [0] the bits found so far (the answer after the last pass), [1] their mask, [2] the rank
// still to find among the values sharing them, [3] unused, [4 .. 4 + 256) the digit histogram.

struct Params {
    n: u32,
    shift: u32,
    rank: u32,
}

// x is the last binding: `init` and `pick` do not read it, and their layouts end before it.
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> state: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

const DIGITS: u32 = 256u;
const RUN: u32 = 32u;

@compute @workgroup_size(DIGITS)
fn init(@builtin(local_invocation_index) local: u32) {
    atomicStore(&state[4u + local], 0u);
    if (local == 0u) {
        atomicStore(&state[0], 0u);
        atomicStore(&state[1], 0u);
        atomicStore(&state[2], params.rank);
    }
}

var<workgroup> local_hist: array<atomic<u32>, DIGITS>;

@compute @workgroup_size(DIGITS)
fn count(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_index) local: u32) {
    atomicStore(&local_hist[local], 0u);
    workgroupBarrier();
    let prefix = atomicLoad(&state[0]);
    let mask = atomicLoad(&state[1]);
    let first = ((wg.x + wg.y * groups.x) * DIGITS + local) * RUN;
    for (var i = first; i < min(first + RUN, params.n); i++) {
        let bits = bitcast<u32>(abs(x[i]));
        if ((bits & mask) == prefix) {
            atomicAdd(&local_hist[(bits >> params.shift) & 255u], 1u);
        }
    }
    workgroupBarrier();
    let c = atomicLoad(&local_hist[local]);
    if (c > 0u) {
        atomicAdd(&state[4u + local], c);
    }
}

@compute @workgroup_size(1)
fn pick() {
    var rank = atomicLoad(&state[2]);
    var digit = DIGITS - 1u;
    for (var d = 0u; d < DIGITS; d++) {
        let c = atomicLoad(&state[4u + d]);
        if (rank < c) {
            digit = d;
            break;
        }
        rank -= c;
    }
    atomicStore(&state[0], atomicLoad(&state[0]) | (digit << params.shift));
    atomicStore(&state[1], atomicLoad(&state[1]) | (255u << params.shift));
    atomicStore(&state[2], rank);
    for (var d = 0u; d < DIGITS; d++) {
        atomicStore(&state[4u + d], 0u);
    }
}
