// One token's y = W·x over up to 3 weights with the same n_in, in one dispatch (the decode step's
// q/k/v projections, or its gate/up projections with SwiGLU):
// - OUTPUT 0 (concatenate): y = [W0·x | W1·x | W2·x] (+ bias, the weights' biases concatenated);
// - OUTPUT 1 (gated pair): y[o] = act(W0·x + b0)[o] · (W1·x + b1)[o], W0 and W1 of one n_out
//   (bias: b0 then b1), act SiLU or tanh-GELU by GATE_GELU, with matmul.wgsl's formula (gated),
//   so it equals matmul gate then matmul up with the gated output.
// RMS_NORM normalizes x while it is staged, as in matmul.wgsl. Each weight has its own format:
// weight 0's decode is composed in as for matmul.wgsl (formats/common.wgsl's `w` at binding 1,
// its layout fields first in Params); weights 1 and 2 are renamed copies of their format
// snippets (ShaderSource::include_copy: decode_part1 reading w1 at binding 6 and params.w1, …).
// An absent weight's copy is weight 0's format over weight 0's buffer, never called.
//
// The GEMV is matmul.wgsl's (matmul_shared.wgsl: same x staging, per-part dot products and
// reduce_rows, KT and the per-thread part order from the same n_chunks, so each output adds the
// same terms in the same order as a separate matmul), with its accumulator slots mapped to
// (weight, row): a thread of row group rt has ROWS_PER_THREAD slots, PER = ROWS_PER_THREAD rows
// of one weight (concatenate) or PER = ROWS_PER_THREAD / 2 rows of both (SwiGLU pair: slot j <
// PER is gate row j, slot PER + j up row j, sharing the x quads when the formats' quads agree).
// Concatenate: a workgroup's rows never straddle two weights (each weight has its own run of
// workgroups, from first_group), so the weight is uniform in a workgroup.

struct WeightParams {
    n_in: u32,
    n_out: u32,
    n_tokens: u32,
    n_chunks: u32,
    aux_offset: u32,
}

struct Params {
    // Weight 0's layout fields (GpuWeight::params), read by its decode.
    n_in: u32,
    n_out: u32,
    n_tokens: u32,
    n_chunks: u32,
    aux_offset: u32,
    eps: f32,               // RMSNorm's epsilon, when RMS_NORM
    n_weights: u32,
    out_offset: vec4<u32>,  // first index of each weight's outputs in y and bias
    first_group: vec4<u32>, // first workgroup of each weight's rows (concatenate)
    // Weights 1 and 2's layout fields, read by their decode copies (params → params.w1, …). In
    // a uniform a struct member starts at a multiple of 16 bytes and spans one: 32 bytes each.
    @size(32) w1: WeightParams,
    w2: WeightParams,
}

@group(0) @binding(0) var<uniform> params: Params;
// w (binding 1): weight 0, formats/common.wgsl; w1 (binding 6), w2 (binding 7): its copies.
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// Bound to x when the option is off (every binding is always present).
@group(0) @binding(4) var<storage, read> gain: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;

override RMS_NORM: bool = false;
override BIAS: bool = false;
override OUTPUT: u32 = 0u;           // 0 concatenate, 1 gated pair
override KT: u32 = 256u;             // threads along k per row group, as matmul.wgsl's
override ROWS_PER_THREAD: u32 = 2u;  // accumulator slots per thread (even for the SwiGLU pair)

// Rows of weight `m`.
fn weight_rows(m: u32) -> u32 {
    switch m {
        case 0u: { return params.n_out; }
        case 1u: { return params.w1.n_out; }
        default: { return params.w2.n_out; }
    }
}

fn stacked_quads(m: u32, p: u32) -> vec2<u32> {
    switch m {
        case 0u: { return part_quads(p); }
        case 1u: { return part_quads1(p); }
        default: { return part_quads2(p); }
    }
}

fn stacked_decode(m: u32, row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    switch m {
        case 0u: { return decode_part(row, chunk, p); }
        case 1u: { return decode_part1(row, chunk, p); }
        default: { return decode_part2(row, chunk, p); }
    }
}

// Output `o` of weight `m` (+ its bias), as matmul.wgsl's store adds it.
fn with_bias(m: u32, o: u32, acc: f32) -> f32 {
    var v = acc;
    if (BIAS) {
        v += bias[params.out_offset[m] + o];
    }
    return v;
}

@compute @workgroup_size(GEMV_WG)
fn gemv_stacked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_index) local: u32) {
    let pair = OUTPUT == 1u;
    let per = select(ROWS_PER_THREAD, ROWS_PER_THREAD / 2u, pair);
    let out_rows = (GEMV_WG / KT) * per;
    let group = wg.x + wg.y * groups.x;
    var m = 0u;
    if (!pair) {
        for (var i = 1u; i < params.n_weights; i++) {
            if (group >= params.first_group[i]) {
                m = i;
            }
        }
    }
    let n_rows = weight_rows(m);
    let row0 = (group - params.first_group[m]) * out_rows;
    // Uniform per workgroup, so returning before the barriers is allowed.
    if (row0 >= n_rows) {
        return;
    }
    // The weights of slots j < per and of the others (the same but for the pair).
    let ma = m;
    let mb = select(m, 1u, pair);
    let rt = local / KT;
    let kl = local % KT;
    let x_scale = gemv_x_scale(local);
    var acc: array<f32, R_MAX>;
    let padded = params.n_chunks * CHUNK;
    for (var k0 = 0u; k0 < padded; k0 += X_TILE) {
        let n = gemv_stage_x(local, k0, padded, x_scale);
        for (var q = kl; q < n / 8u; q += KT) {
            let part = staged_part(k0, q);
            let qa = part.quad0 + stacked_quads(ma, part.p);
            let qb = part.quad0 + stacked_quads(mb, part.p);
            let xa = array(xs[qa.x], xs[qa.y]);
            let xb = array(xs[qb.x], xs[qb.y]);
            for (var j = 0u; j < ROWS_PER_THREAD; j++) {
                let row = row0 + rt * per + j % per;
                if (row < n_rows) {
                    if (j < per) {
                        acc[j] += part_dot(stacked_decode(ma, row, part.chunk, part.p), xa[0], xa[1]);
                    } else {
                        acc[j] += part_dot(stacked_decode(mb, row, part.chunk, part.p), xb[0], xb[1]);
                    }
                }
            }
        }
        // Before the next tile overwrites xs.
        workgroupBarrier();
    }
    reduce_rows(local, rt, kl, acc);
    // row_total[rt · ROWS_PER_THREAD + j] is slot j of row group rt.
    if (local < out_rows && row0 + local < n_rows) {
        let o = row0 + local;
        if (pair) {
            let s = (local / per) * ROWS_PER_THREAD + local % per;
            y[o] = gated(with_bias(0u, o, row_total[s]), with_bias(1u, o, row_total[s + per]));
        } else {
            y[params.out_offset[m] + o] = with_bias(m, o, row_total[local]);
        }
    }
}
