// Re-quantization on the GPU: reads a master weight in its stored format (through the format's
// decode_chunk, composed in as for matmul.wgsl) and writes the codebook layout of
// shaders/formats/codebook.wgsl into `out`, whose header and fixed level table the CPU has written
// (src/gpu/requant.rs). Two dispatches, because every code needs its group's scale:
//
//   scales: one invocation per scale group (row, group along the row): min, max and Σ|x|, then
//           the scale by the scheme's rule (and, for asymmetric int, the group's table of levels
//           q − z). Groups are at most a row (≤ a few thousand values), so one invocation each is
//           plenty, and small groups do not leave a workgroup idle;
//   codes:  one invocation per 32-value chunk: each value's code, packed into code_bits words.
//
// The formulas are those of the CPU quantizers in src/quant/ (int.rs, nf4.rs, levels.rs,
// float.rs); only f32 division may differ from the CPU's by an ulp or two (WGSL does not require
// correctly rounded division), which can flip a value lying on a rounding boundary to the
// neighbouring level.

const WORKGROUP_SIZE: u32 = 64u;
// CHUNK and w (binding 1): shaders/formats/common.wgsl; Params, params (binding 0):
// shaders/formats/params.wgsl.

const RULE_INT_SYM: u32 = 0u;       // s = amax / qmax; q = clamp(RNE(x/s), −qmax−1, qmax)
const RULE_INT_ASYM: u32 = 1u;      // s = (max − min)/qmax; z = RNE(−min/s); q = clamp(RNE(x/s) + z, 0, qmax)
const RULE_NEAREST_AMAX: u32 = 2u;  // s = amax / divisor; code = nearest level of x/s
const RULE_NEAREST_MX: u32 = 3u;    // s = 2^(floor(log2 amax) − emax); code = nearest level of x/s
const RULE_STATSQ: u32 = 4u;        // s = 2·mean|x|; k = clamp(floor(x/s · qmax), −qmax, qmax − 1)

struct Quant {
    rule: u32,
    group: u32,            // elements per scale group along a row (n_in for one per row)
    groups_per_row: u32,
    n_levels: u32,         // length of the fixed level table (nearest rules)
    zero_code: u32,        // the code of 0, used where a group's scale is 0
    qmax: u32,             // int sym: 2^(b−1) − 1; int asym: 2^b − 1; StatsQ: n = 2^(b−1)
    divisor: f32,          // RULE_NEAREST_AMAX
    emax: i32,             // RULE_NEAREST_MX
    code_bits: u32,
    codes_at: u32,
    levels_at: u32,
    scales_at: u32,
    tie_parity: u32,       // nearest rules: a tie goes to the index of this parity
}

@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> q: Quant;

const BIG: f32 = 3.0e38;

@compute @workgroup_size(WORKGROUP_SIZE)
fn scales(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_index) local: u32) {
    let g = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (g >= params.n_out * q.groups_per_row) {
        return;
    }
    let row = g / q.groups_per_row;
    let start = (g % q.groups_per_row) * q.group;
    let end = min(start + q.group, params.n_in);
    var mn = BIG;
    var mx = -BIG;
    // Σ|x| chunk by chunk (partial sums of 32 values, then their sum), which keeps StatsQ's mean
    // within ~1e-6 of the CPU's f64 sum on rows of thousands of values.
    var sum_abs = 0.0;
    for (var c = start / CHUNK; c * CHUNK < end; c++) {
        var chunk_abs = 0.0;
        let v = decode_chunk(row, c);
        for (var k = 0u; k < CHUNK; k++) {
            let col = c * CHUNK + k;
            if (col >= start && col < end) {
                mn = min(mn, v[k]);
                mx = max(mx, v[k]);
                chunk_abs += abs(v[k]);
            }
        }
        sum_abs += chunk_abs;
    }
    let amax = max(abs(mn), abs(mx));
    var scale = 0.0;
    switch q.rule {
        case RULE_INT_SYM: {
            scale = amax / f32(q.qmax);
        }
        case RULE_INT_ASYM: {
            // A constant group takes s = |c| (level ±1 reproduces it); all zeros keep s = 0.
            scale = select(abs(mn), (mx - mn) / f32(q.qmax), mx > mn);
            var zero = 0;
            if (scale != 0.0) {
                zero = i32(round(-mn / scale));
            }
            for (var i = 0u; i <= q.qmax; i++) {
                out[q.levels_at + g * (q.qmax + 1u) + i] = bitcast<u32>(f32(i32(i) - zero));
            }
        }
        case RULE_NEAREST_AMAX: {
            scale = amax / q.divisor;
        }
        case RULE_NEAREST_MX: {
            // floor(log2 amax) from the exponent bits (log2 may be off by an ulp at powers of two);
            // an all-zero block takes the smallest E8M0 scale, 2^−127, as on the CPU.
            var shared_exp = -127;
            if (amax > 0.0) {
                shared_exp = clamp(i32(extractBits(bitcast<u32>(amax), 23u, 8u)) - 127 - q.emax, -127, 127);
            }
            scale = ldexp(1.0, shared_exp);
        }
        case RULE_STATSQ: {
            scale = 2.0 * sum_abs / f32(end - start);
        }
        default: {}
    }
    out[q.scales_at + g] = bitcast<u32>(scale);
}

fn level(i: u32) -> f32 {
    return bitcast<f32>(out[q.levels_at + i]);
}

// The index of the table entry nearest to u; a tie goes to the index of parity q.tie_parity: even
// for codebook::nearest_sorted's tables, the parity of zero's index for a float grid (there the
// code's last bit is the mantissa's, so that is round-half-to-even, as minifloat::Codec::round).
fn nearest_level(u: f32) -> u32 {
    var lo = 0u;
    var hi = q.n_levels;  // first index with level >= u, by binary search
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (level(mid) < u) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    if (lo == 0u) {
        return 0u;
    }
    if (lo == q.n_levels) {
        return q.n_levels - 1u;
    }
    let below = u - level(lo - 1u);
    let above = level(lo) - u;
    if (below < above) {
        return lo - 1u;
    }
    if (above < below) {
        return lo;
    }
    return select(lo, lo - 1u, ((lo - 1u) & 1u) == q.tie_parity);
}

fn code_of(x: f32, row: u32, col: u32) -> u32 {
    let g = row * q.groups_per_row + col / q.group;
    let s = bitcast<f32>(out[q.scales_at + g]);
    switch q.rule {
        case RULE_INT_SYM: {
            if (s == 0.0) {
                return q.qmax + 1u;
            }
            let v = clamp(round(x / s), -f32(q.qmax) - 1.0, f32(q.qmax));
            return u32(i32(v) + i32(q.qmax) + 1);
        }
        case RULE_INT_ASYM: {
            if (s == 0.0) {
                return 0u;
            }
            let zero = -i32(level(g * (q.qmax + 1u)));
            return u32(clamp(i32(round(x / s)) + zero, 0, i32(q.qmax)));
        }
        case RULE_STATSQ: {
            let n = f32(q.qmax);
            if (s == 0.0) {
                return q.qmax;
            }
            return u32(i32(clamp(floor(x / s * n), -n, n - 1.0)) + i32(q.qmax));
        }
        default: {
            if (s == 0.0) {
                return q.zero_code;
            }
            return nearest_level(x / s);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn codes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_index) local: u32) {
    let i = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (i >= params.n_out * params.n_chunks) {
        return;
    }
    let row = i / params.n_chunks;
    let c = i % params.n_chunks;
    let v = decode_chunk(row, c);
    let bits = q.code_bits;
    var words: array<u32, 12>;
    for (var k = 0u; k < CHUNK; k++) {
        let col = c * CHUNK + k;
        var code = 0u;
        if (col < params.n_in) {
            code = code_of(v[k], row, col);
        }
        let bit = k * bits;
        let shift = bit % 32u;
        words[bit / 32u] |= code << shift;
        if (shift + bits > 32u) {
            words[bit / 32u + 1u] |= code >> (32u - shift);
        }
    }
    let base = q.codes_at + i * bits;
    for (var j = 0u; j < bits; j++) {
        out[base + j] = words[j];
    }
}
