// y[t][o] = Σ_k x[t][k] · W[o][k] for t < n_tokens, with W kept in its stored (quantized)
// format. x: [n_tokens × n_in] f32, y: [n_tokens × n_out] f32, accumulation in f32. Optionally
// fused (override constants, so each combination is its own pipeline):
// - RMS_NORM: x holds un-normed rows; each is used as x[t] · inv_rms[t] · gain (the formula of
//   norm.wgsl's rms_norm, inv_rms[t] = 1 / sqrt(mean(x[t]²) + eps)), computed while x is staged;
// - BIAS: + bias[o];
// - OUTPUT: 0 stores, 1 adds to what y holds (a residual), 2 stores act(gate[t][o]) · result
//   (SwiGLU or GeGLU by GATE_GELU, with the up projection; gate is not y), 3 stores act(result)
//   (a plain MLP's up projection, GPT-2).
//
// How weight formats plug in (a new format is a new decode function, not a new kernel):
// src/gpu/kernels/matmul.rs composes in (GpuWeight::decoder) shaders/formats/common.wgsl, one
// shaders/formats/<fmt>.wgsl and the value type H (formats/value_f32.wgsl, or value_f16.wgsl for
// the f16 variant). The format's decode_part(row, chunk, p) gives 8 values of a 32-value chunk
// as two vec4<H> at the chunk's quads part_quads(p) (see common.wgsl): one packed word of 4-bit
// quants, two of 8-bit ones. F32/F16 rows are zero-padded to whole chunks on upload, codebook
// columns past n_in decode to 0, and x is staged as 0 past n_in, so no inner loop checks n_in.
//
// Entry points (both take a linear workgroup index wg.x + wg.y·num_workgroups.x, see
// GpuContext::grid, and ignore workgroups past the work):
//
// gemv (one token, decode: bandwidth-bound; its sizes, x staging and gated formula are in
// matmul_shared.wgsl, shared with matmul_stacked.wgsl's gemv over several weights). A workgroup of GEMV_WG threads owns
// (GEMV_WG / KT) · ROWS_PER_THREAD consecutive rows. Thread (rt, kl) = (local / KT, local % KT)
// walks parts kl, kl + KT, ... of the staged x, and for each part loads the two x quads once
// and uses them for its ROWS_PER_THREAD rows rt·R .. rt·R + R (x is read from workgroup memory
// R times less often than once per weight word). KT (a power of two) is chosen on the host so
// that short rows (576 values = 72 parts) keep most threads busy: fewer threads along k, more
// row groups. x is staged X_TILE values at a time (the whole row for n_in ≤ X_TILE), as vec4<H>,
// normalized there when RMS_NORM. The KT partial sums of each row are then added by
// reduce_rows, from one of two snippets composed in by the host:
//   - matmul_reduce_wg.wgsl: two rounds of 16-term sums in workgroup memory (no features);
//   - matmul_reduce_subgroup.wgsl: subgroupAdd, then one value per subgroup in workgroup memory.
//
// gemm (prefill). A workgroup of GEMM_WG threads owns a TM-row × TN-token tile of y; each thread
// a 4-row × 4-token block of it (rows tr + 16·i, tokens tt + 8·j) in registers. Per chunk of 32
// values along k, the workgroup decodes the tile's weights (TM rows × 4 parts: 2 parts a thread,
// consecutive threads on consecutive words) into ws and stages x (TN tokens × 8 quads: 2 quads a
// thread, consecutive threads on consecutive addresses) into xt, both as vec4<H> with rows
// padded to 9 quads so threads reading different rows at the same k hit different banks; then
// every thread does 4 × 4 vec4 dot products per quad of k from workgroup memory. Each weight
// word is read once per TN tokens. Tiles: ws 64 × 9 × 16 B + xt 32 × 9 × 16 B = 13.5 KiB (f32),
// 14.6 KiB with the RMSNorm scratch, within WebGPU's default 16 KiB of workgroup memory (gemv:
// 8 KiB of x tile + at most 6 KiB for the reductions); 128 threads, within its 256.
//
// The f16 variant (H = f16) stages x and decodes W in f16, and each vec4 dot product is done in
// f16; the sums over quads, rows' parts and chunks stay f32.

struct Params {
    // The weight's layout fields (GpuWeight::params), read by the format snippets.
    n_in: u32,
    n_out: u32,
    n_tokens: u32,
    n_chunks: u32,
    aux_offset: u32,
    eps: f32,  // RMSNorm's epsilon, when RMS_NORM
    // Where this weight's rows go in y (and the bias and gate): a weight larger than one binding
    // is multiplied part by part, each part's rows (n_out of them) at y_offset of rows y_stride wide.
    y_stride: u32,
    y_offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// w (binding 1): shaders/formats/common.wgsl.
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// Bound to x when the option is off (every binding is always present).
@group(0) @binding(4) var<storage, read> gain: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> gate: array<f32>;

override RMS_NORM: bool = false;
override BIAS: bool = false;
override OUTPUT: u32 = 0u;  // 0 store, 1 accumulate, 2 gated (SwiGLU or GeGLU), 3 activated

override KT: u32 = 256u;             // gemv: threads along k per row group; a power of two ≤ GEMV_WG
override ROWS_PER_THREAD: u32 = 2u;  // gemv: ≤ R_MAX, and (GEMV_WG / KT) · ROWS_PER_THREAD ≤ MAX_ROWS

// GEMV_WG, R_MAX, MAX_ROWS, X_TILE, QUADS and the gemv's workgroup memory: matmul_shared.wgsl.

const TM: u32 = 64u;         // gemm rows per workgroup
const TN: u32 = 32u;         // gemm tokens per workgroup
const GEMM_WG: u32 = 128u;   // (TM / 4) · (TN / 4): one 4 × 4 block per thread
const PAD: u32 = QUADS + 1u; // quads per row of ws and xt

var<workgroup> ws: array<vec4<H>, TM * PAD>;
var<workgroup> xt: array<vec4<H>, TN * PAD>;
var<workgroup> token_scale: array<f32, TN>;

// Writes one output through the epilogue.
fn store(t: u32, o: u32, acc: f32) {
    var v = acc;
    if (BIAS) {
        v += bias[params.y_offset + o];
    }
    let i = t * params.y_stride + params.y_offset + o;
    switch OUTPUT {
        case 1u: {
            y[i] = y[i] + v;
        }
        case 2u: {
            y[i] = gated(gate[i], v);
        }
        case 3u: {
            y[i] = gated(v, 1.0);
        }
        default: {
            y[i] = v;
        }
    }
}

@compute @workgroup_size(GEMV_WG)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let rows = (GEMV_WG / KT) * ROWS_PER_THREAD;
    let row0 = (wg.x + wg.y * groups.x) * rows;
    // Uniform per workgroup, so returning before the barriers is allowed.
    if (row0 >= params.n_out) {
        return;
    }
    let rt = local / KT;
    let kl = local % KT;
    let x_scale = gemv_x_scale(local);
    var acc: array<f32, R_MAX>;
    let padded = params.n_chunks * CHUNK;
    for (var k0 = 0u; k0 < padded; k0 += X_TILE) {
        let n = gemv_stage_x(local, k0, padded, x_scale);
        for (var q = kl; q < n / 8u; q += KT) {
            let part = staged_part(k0, q);
            let at = part.quad0 + part_quads(part.p);
            let xa = xs[at.x];
            let xb = xs[at.y];
            for (var j = 0u; j < ROWS_PER_THREAD; j++) {
                let row = row0 + rt * ROWS_PER_THREAD + j;
                if (row < params.n_out) {
                    acc[j] += part_dot(decode_part(row, part.chunk, part.p), xa, xb);
                }
            }
        }
        // Before the next tile overwrites xs.
        workgroupBarrier();
    }
    reduce_rows(local, rt, kl, acc);
    if (local < rows && row0 + local < params.n_out) {
        store(0u, row0 + local, row_total[local]);
    }
}

@compute @workgroup_size(GEMM_WG)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let row_tiles = (params.n_out + TM - 1u) / TM;
    let group = wg.x + wg.y * groups.x;
    let t0 = (group / row_tiles) * TN;
    // Uniform per workgroup, so returning before the barriers is allowed.
    if (t0 >= params.n_tokens) {
        return;
    }
    let r0 = (group % row_tiles) * TM;
    if (RMS_NORM) {
        // Four threads per token of the tile, each over every fourth value (together contiguous).
        let t = local / 4u;
        var sum = 0.0;
        if (t0 + t < params.n_tokens) {
            let base = (t0 + t) * params.n_in;
            for (var k = local % 4u; k < params.n_in; k += 4u) {
                let v = x[base + k];
                sum += v * v;
            }
        }
        scratch[local] = sum;
        workgroupBarrier();
        if (local < TN) {
            let s = (scratch[4u * local] + scratch[4u * local + 1u]) + (scratch[4u * local + 2u] + scratch[4u * local + 3u]);
            token_scale[local] = 1.0 / sqrt(s / f32(params.n_in) + params.eps);
        }
        workgroupBarrier();
    }
    let tr = local % (TM / 4u);
    let tt = local / (TM / 4u);
    // acc[i][j]: row r0 + tr + 16·i, token t0 + tt + 8·j.
    var acc: array<vec4<f32>, 4>;
    for (var c = 0u; c < params.n_chunks; c++) {
        for (var i = local; i < TM * PARTS; i += GEMM_WG) {
            let r = i / PARTS;
            let p = i % PARTS;
            var v = array(vec4<H>(), vec4<H>());
            if (r0 + r < params.n_out) {
                v = decode_part(r0 + r, c, p);
            }
            let at = r * PAD + part_quads(p);
            ws[at.x] = v[0];
            ws[at.y] = v[1];
        }
        for (var i = local; i < TN * QUADS; i += GEMM_WG) {
            let t = i / QUADS;
            var v = vec4<H>();
            if (t0 + t < params.n_tokens) {
                var inv_rms = 1.0;
                if (RMS_NORM) {
                    inv_rms = token_scale[t];
                }
                v = x_quad((t0 + t) * params.n_in, c * CHUNK + 4u * (i % QUADS), inv_rms);
            }
            xt[t * PAD + i % QUADS] = v;
        }
        workgroupBarrier();
        for (var q = 0u; q < QUADS; q++) {
            let xq = array(xt[tt * PAD + q], xt[(tt + 8u) * PAD + q], xt[(tt + 16u) * PAD + q],
                           xt[(tt + 24u) * PAD + q]);
            for (var i = 0u; i < 4u; i++) {
                let wq = ws[(tr + 16u * i) * PAD + q];
                acc[i] += vec4<f32>(f32(dot(wq, xq[0])), f32(dot(wq, xq[1])), f32(dot(wq, xq[2])),
                                    f32(dot(wq, xq[3])));
            }
        }
        // Before the next chunk overwrites the tiles.
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + tr + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let t = t0 + tt + 8u * j;
            if (row < params.n_out && t < params.n_tokens) {
                store(t, row, acc[i][j]);
            }
        }
    }
}
