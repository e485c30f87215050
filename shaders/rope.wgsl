// Rotary position embedding, in place on x: [n_tokens × n_heads·head_dim].
// Token t sits at position p = position_offset + t; pair i of every head turns by
// angle = p · base^(-2i/head_dim).
//
// Precision: angles reach thousands of radians, where an f32 product p·freq is off by ~1e-4 and
// GPU sin/cos are only specified on [-π, π]. So the angle is reduced exactly, in turns: the
// wrapper splits freq/2π (computed in f64) into CHUNKS − 1 pieces short enough that p·piece is
// exact in f32, plus a tiny remainder. The fractional parts of the exact products are summed
// mod 1, leaving a turn fraction in [-0.5, 0.5] with ~1e-7 absolute error, whose sin and cos
// come from sin_cos_turns (shaders/sincos.wgsl, prepended by the wrapper), not the built-ins.
//
// One invocation per (token, head, pair); pairs are (2i, 2i+1) for the interleaved layout and
// (i, i + head_dim/2) for the half-split one.

// rope_append (the plain forward's fused step): rotates the queries in place as `rope` does,
// rotates the new keys into their cache rows (past + t) and copies the new values into theirs,
// in one dispatch instead of two rotations and two copies. Invocations: the query pairs, then
// the key pairs, then the value elements. The new keys and values are k_new and v_new, or, with
// kv_in_x, x itself past the queries (k at n_tokens·n_heads·head_dim, then v): the stacked q|k|v
// projection's output for one token.

override WORKGROUP_SIZE: u32 = 256u;

struct Params {
    n_tokens: u32,
    n_heads: u32,      // rope: heads of x; rope_append: query heads
    head_dim: u32,
    position_offset: u32,
    half_split: u32,   // 0: pairs (2i, 2i+1); 1: pairs (i, i + head_dim/2)
    n_kv_heads: u32,   // rope_append only
    kv_in_x: u32,      // rope_append only: 1 reads the new keys and values from x (see above)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
// Per pair i: freq_i / 2π as CHUNKS values turns[i·CHUNKS ..] that sum to it (see the wrapper).
@group(0) @binding(2) var<storage, read> turns_per_position: array<f32>;
// rope_append only: the new keys and values, and the cache rows they go to.
@group(0) @binding(3) var<storage, read> k_new: array<f32>;
@group(0) @binding(4) var<storage, read> v_new: array<f32>;
@group(0) @binding(5) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(6) var<storage, read_write> v_cache: array<f32>;

const CHUNKS: u32 = 8u; // must match the wrapper's table

// (sin, cos) of pair i's angle at position p.
fn pair_sin_cos(i: u32, position: u32) -> vec2<f32> {
    let p = f32(position);
    // Every p·piece is exact, so is its fractional part; reduce mod 1 after every add.
    var turns = 0.0;
    for (var j = 0u; j < CHUNKS; j++) {
        turns = fract(turns + fract(p * turns_per_position[i * CHUNKS + j]));
    }
    return sin_cos_turns(turns - round(turns));
}

// The element indices (a, b) of pair i of head row `head` (rows of head_dim values).
fn pair_at(head: u32, i: u32) -> vec2<u32> {
    if (params.half_split != 0u) {
        let a = head * params.head_dim + i;
        return vec2<u32>(a, a + params.head_dim / 2u);
    }
    let a = head * params.head_dim + 2u * i;
    return vec2<u32>(a, a + 1u);
}

fn rotated(x0: f32, x1: f32, sc: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(x0 * sc.y - x1 * sc.x, x0 * sc.x + x1 * sc.y);
}

fn linear_index(wg: vec3<u32>, groups: vec3<u32>, local: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
}

// Rotates pair `pair` (counted over all tokens' heads, head_dim/2 pairs each) of x in place.
fn rotate_x_pair(pair: u32) {
    let half = params.head_dim / 2u;
    let i = pair % half;
    let head = pair / half; // token * n_heads + head: heads of all tokens are contiguous rows
    let t = head / params.n_heads;
    let ab = pair_at(head, i);
    let r = rotated(x[ab.x], x[ab.y], pair_sin_cos(i, params.position_offset + t));
    x[ab.x] = r.x;
    x[ab.y] = r.y;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let id = linear_index(wg, groups, local);
    if (id >= params.n_tokens * params.n_heads * (params.head_dim / 2u)) { return; }
    rotate_x_pair(id);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn rope_append(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) local: u32) {
    let half = params.head_dim / 2u;
    let kv_dim = params.n_kv_heads * params.head_dim;
    let query_pairs = params.n_tokens * params.n_heads * half;
    let key_pairs = params.n_tokens * params.n_kv_heads * half;
    var id = linear_index(wg, groups, local);
    if (id < query_pairs) {
        rotate_x_pair(id);
        return;
    }
    id -= query_pairs;
    let k_at = query_pairs * 2u;                           // where the keys start in x
    let v_at = k_at + params.n_tokens * kv_dim;            // and the values
    // Cache row past + t starts at element (past + t)·kv_dim = position_offset·kv_dim + t·kv_dim.
    let cache_base = params.position_offset * kv_dim;
    if (id < key_pairs) {
        let i = id % half;
        let head = id / half;
        let ab = pair_at(head, i);
        let t = head / params.n_kv_heads;
        var ka = 0.0;
        var kb = 0.0;
        if (params.kv_in_x != 0u) {
            ka = x[k_at + ab.x];
            kb = x[k_at + ab.y];
        } else {
            ka = k_new[ab.x];
            kb = k_new[ab.y];
        }
        let r = rotated(ka, kb, pair_sin_cos(i, params.position_offset + t));
        k_cache[cache_base + ab.x] = r.x;
        k_cache[cache_base + ab.y] = r.y;
        return;
    }
    id -= key_pairs;
    if (id < params.n_tokens * kv_dim) {
        if (params.kv_in_x != 0u) {
            v_cache[cache_base + id] = x[v_at + id];
        } else {
            v_cache[cache_base + id] = v_new[id];
        }
    }
}
