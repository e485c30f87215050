// The k largest values of a vector, sorted descending, ties by lower index; k ≤ 64.
//
// Order: a comes before b if a.value > b.value, or the values are equal and a.index < b.index.
// This is a strict total order over distinct indices, so "the next one after the last pick" is
// well defined and selection needs no sorting network.
//
// One workgroup selects the top k of its segment of the input in k rounds. Every invocation keeps
// the best element of its strided share that comes after the previous pick; a tree reduction in
// workgroup memory finds the best of those, which is the next pick; only the invocation that
// owned it rescans its share. Cost: k·(log2(WORKGROUP_SIZE) barriers + segment/WORKGROUP_SIZE loads).
//
// Two stages for long vectors (the wrapper): stage 1 (from_candidates = 0) reads raw values,
// index = position, one segment per workgroup, and writes k candidates per workgroup; stage 2
// (from_candidates = 1) runs one workgroup over all candidates with their stored indices.
// Slots with no element (a segment shorter than k) hold index NONE and are never picked.

override WORKGROUP_SIZE: u32 = 256u; // a power of two, ≤ 256

const NONE: u32 = 0xffffffffu;

struct Params {
    n: u32,               // input elements
    k: u32,
    segment: u32,         // input elements per workgroup
    from_candidates: u32, // 0: in_values is raw input; 1: (in_values, in_ids) are candidates
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> in_values: array<f32>;
@group(0) @binding(2) var<storage, read> in_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out_values: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_ids: array<u32>;

var<workgroup> red_value: array<f32, WORKGROUP_SIZE>;
var<workgroup> red_id: array<u32, WORKGROUP_SIZE>;

struct Cand {
    value: f32,
    id: u32,
}

// a comes strictly before b; an empty slot comes after everything.
fn before(a: Cand, b: Cand) -> bool {
    if (a.id == NONE) { return false; }
    if (b.id == NONE) { return true; }
    return a.value > b.value || (a.value == b.value && a.id < b.id);
}

fn load(e: u32) -> Cand {
    if (params.from_candidates != 0u) {
        return Cand(in_values[e], in_ids[e]);
    }
    return Cand(in_values[e], e);
}

// The best element of this invocation's share [start, end) strided by WORKGROUP_SIZE that comes
// after `last` (every element does if last is empty, i.e. in round 0).
fn best_after(start: u32, end: u32, last: Cand) -> Cand {
    var best = Cand(0.0, NONE);
    for (var e = start; e < end; e += WORKGROUP_SIZE) {
        let c = load(e);
        if ((last.id == NONE || before(last, c)) && before(c, best)) {
            best = c;
        }
    }
    return best;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn top_k(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_index) local: u32) {
    let group = wg.x + wg.y * groups.x;
    let seg_start = group * params.segment;
    // Uniform per workgroup: the barriers below stay in uniform control flow.
    if (seg_start >= params.n) { return; }
    let seg_end = min(seg_start + params.segment, params.n);
    let start = seg_start + local;

    var mine = best_after(start, seg_end, Cand(0.0, NONE));
    for (var r = 0u; r < params.k; r++) {
        red_value[local] = mine.value;
        red_id[local] = mine.id;
        workgroupBarrier();
        for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
            if (local < stride) {
                let other = Cand(red_value[local + stride], red_id[local + stride]);
                if (before(other, Cand(red_value[local], red_id[local]))) {
                    red_value[local] = other.value;
                    red_id[local] = other.id;
                }
            }
            workgroupBarrier();
        }
        let pick = Cand(red_value[0], red_id[0]);
        workgroupBarrier(); // everyone has read the pick before the next round overwrites it

        if (local == 0u) {
            out_values[group * params.k + r] = select(pick.value, 0.0, pick.id == NONE);
            out_ids[group * params.k + r] = pick.id;
        }
        if (pick.id != NONE && mine.id == pick.id) {
            mine = best_after(start, seg_end, pick);
        }
    }
}
