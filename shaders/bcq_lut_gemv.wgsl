// y[n] = Σ_k Ŵ[n][k] · x[k] for one token, Ŵ in ShiftAddLLM's binary-coding quantization
// (docs/quantizers.md §4.1): Ŵ[n][k] = Σ_{i<BITS} α_i(n, group of k) · b_i(n, k), b ∈ {−1, +1}.
//
// LUT GEMV: for each chunk of 8 inputs x_0..x_7, the 256-entry table
// T[c] = Σ_t (bit t of c ? +x_t : −x_t) holds the chunk's dot with every possible byte of ±1
// digits, so one byte of a bit plane becomes one look-up. A row then costs, per bit plane and
// 8 inputs, one table read and one add; the only multiplications are one α per
// (row, group, plane) on the sum of that group's look-ups (ShiftAddLLM makes those shifts with
// power-of-two scales; on a GPU an f32 multiply costs what an add does, so it stays one).
//
// Layout (src/gpu/kernels/bcq.rs uploads it from BcqPacked, transposed so that neighbouring
// invocations, which own neighbouring rows, read neighbouring words: ShiftAddLLM's
// binaryWeight [K/32][q][N]):
//   planes[(word · BITS + plane) · rows + row]: 32 digits of inputs 32·word.., LSB first, 1 ↔ +1;
//   alphas[(group · BITS + plane) · rows + row].
//
// Work split: a workgroup owns ROWS rows, TILE_WORDS invocations (lanes) per row. It walks K
// in tiles of TILE_WORDS words (TILE_CHUNKS chunks): all WORKGROUP_SIZE invocations build the
// tile's tables in workgroup memory, then lane l of each row looks up word l of the tile for
// every plane. A lane's look-ups are summed per plane while they stay in one group (groups are
// whole chunks, BcqPacked's rule), and scaled by α when the group changes; the lanes' results
// are added at the end. Inputs past cols read as 0, so a last partial chunk's tables, and any
// digits there, contribute nothing; chunks past the row are skipped.

override BITS: u32 = 3u;               // bit planes, 1..=4
const MAX_BITS: u32 = 4u;              // sizes the per-plane private arrays
const WORKGROUP_SIZE: u32 = 256u;      // ≤ 256 (SwiftShader's limit)
const TILE_WORDS: u32 = 2u;            // = lanes per row
const ROWS: u32 = 128u;                // WORKGROUP_SIZE / TILE_WORDS
const TILE_CHUNKS: u32 = 8u;           // TILE_WORDS · 4 bytes per word
const TABLE_ENTRIES: u32 = 2048u;      // TILE_CHUNKS · 256: 8 KiB of f32
const BUILDERS_PER_CHUNK: u32 = 32u;   // WORKGROUP_SIZE / TILE_CHUNKS, 8 entries each

struct Params {
    rows: u32,
    cols: u32,
    words_per_row: u32,
    n_chunks: u32,          // ceil(cols / 8)
    chunks_per_group: u32,  // group / 8
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> planes: array<u32>;
@group(0) @binding(2) var<storage, read> alphas: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> tables: array<f32, TABLE_ENTRIES>;
var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn input(k: u32) -> f32 {
    if (k < params.cols) {
        return x[k];
    }
    return 0.0;
}

/// Σ_plane α(row, group, plane) · sums[plane]: the group's only multiplications.
fn scaled(sums: array<f32, MAX_BITS>, group: u32, row: u32) -> f32 {
    var s = sums;
    var total = 0.0;
    for (var plane = 0u; plane < BITS; plane++) {
        total += alphas[(group * BITS + plane) * params.rows + row] * s[plane];
    }
    return total;
}

/// Entries 8·high .. 8·high + 7 of chunk `chunk`'s table (tile-relative), each but the first
/// one add away from an entry before it: T[c + 2^s] = T[c] + 2·x_s. The first is
/// T[0] = −Σx plus 2·x_s for each of its bits s ≥ 3, so 32 invocations build a table at once.
fn build_entries(chunk: u32, high: u32, k0: u32) {
    var two_x: array<f32, 8>;
    var negative_sum = 0.0;
    for (var t = 0u; t < 8u; t++) {
        let v = input(k0 + t);
        negative_sum -= v;
        two_x[t] = v + v;
    }
    var first = negative_sum;
    for (var s = 3u; s < 8u; s++) {
        if (((high >> (s - 3u)) & 1u) == 1u) {
            first += two_x[s];
        }
    }
    let t1 = first + two_x[0];
    let t2 = first + two_x[1];
    let t3 = t1 + two_x[1];
    let at = chunk * 256u + high * 8u;
    tables[at] = first;
    tables[at + 1u] = t1;
    tables[at + 2u] = t2;
    tables[at + 3u] = t3;
    tables[at + 4u] = first + two_x[2];
    tables[at + 5u] = t1 + two_x[2];
    tables[at + 6u] = t2 + two_x[2];
    tables[at + 7u] = t3 + two_x[2];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn bcq_gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_index) local: u32) {
    // Linear workgroup index (GpuContext::grid); workgroups past the rows only build tables.
    let row = (wg.x + wg.y * groups.x) * ROWS + local % ROWS;
    let lane = local / ROWS;
    let live = row < params.rows;
    let build_chunk = local / BUILDERS_PER_CHUNK;
    let build_high = local % BUILDERS_PER_CHUNK;

    var acc = 0.0;
    // Per plane, the sum of the look-ups of `group` not yet scaled; group_end is its first
    // chunk past it (0 at the start, so the first chunk opens its group).
    var sums: array<f32, MAX_BITS>;
    var group = 0u;
    var group_end = 0u;
    let n_tiles = (params.words_per_row + TILE_WORDS - 1u) / TILE_WORDS;
    for (var tile = 0u; tile < n_tiles; tile++) {
        build_entries(build_chunk, build_high, (tile * TILE_CHUNKS + build_chunk) * 8u);
        workgroupBarrier();
        let word = tile * TILE_WORDS + lane;
        if (live && word < params.words_per_row) {
            var digits: array<u32, MAX_BITS>;
            for (var plane = 0u; plane < BITS; plane++) {
                digits[plane] = planes[(word * BITS + plane) * params.rows + row];
            }
            for (var b = 0u; b < 4u; b++) {
                let chunk = word * 4u + b;
                if (chunk >= params.n_chunks) {
                    break;
                }
                if (chunk >= group_end) {
                    acc += scaled(sums, group, row);
                    sums = array<f32, MAX_BITS>();
                    group = chunk / params.chunks_per_group;
                    group_end = (group + 1u) * params.chunks_per_group;
                }
                let table = (lane * 4u + b) * 256u;
                let shift = b * 8u;
                for (var plane = 0u; plane < BITS; plane++) {
                    sums[plane] += tables[table + ((digits[plane] >> shift) & 0xFFu)];
                }
            }
        }
        // The next tile overwrites the tables.
        workgroupBarrier();
    }
    if (live) {
        acc += scaled(sums, group, row);
    }
    partial[local] = acc;
    workgroupBarrier();
    if (lane == 0u && live) {
        y[row] = partial[local] + partial[local + ROWS];
    }
}
