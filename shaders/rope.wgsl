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

override WORKGROUP_SIZE: u32 = 256u;

struct Params {
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    position_offset: u32,
    half_split: u32, // 0: pairs (2i, 2i+1); 1: pairs (i, i + head_dim/2)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
// Per pair i: freq_i / 2π as CHUNKS values turns[i·CHUNKS ..] that sum to it (see the wrapper).
@group(0) @binding(2) var<storage, read> turns_per_position: array<f32>;

const CHUNKS: u32 = 8u; // must match the wrapper's table

@compute @workgroup_size(WORKGROUP_SIZE)
fn rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let half = params.head_dim / 2u;
    let id = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (id >= params.n_tokens * params.n_heads * half) { return; }
    let i = id % half;
    let head = id / half; // token * n_heads + head: heads of all tokens are contiguous rows
    let t = head / params.n_heads;

    let p = f32(params.position_offset + t);
    // Every p·piece is exact, so is its fractional part; reduce mod 1 after every add.
    var turns = 0.0;
    for (var j = 0u; j < CHUNKS; j++) {
        turns = fract(turns + fract(p * turns_per_position[i * CHUNKS + j]));
    }
    let sin_cos = sin_cos_turns(turns - round(turns));
    let s = sin_cos.x;
    let c = sin_cos.y;

    var a = head * params.head_dim + 2u * i;
    var b = a + 1u;
    if (params.half_split != 0u) {
        a = head * params.head_dim + i;
        b = a + half;
    }
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
