// matmul.wgsl's gemv reduction without optional features: the KT partial sums of each of the
// workgroup's rows, added through workgroup memory in two rounds of 16-term sums (three
// barriers, where a tree over KT = 256 would take nine).

const SEGMENTS: u32 = 16u;  // GEMV_WG = MAX_ROWS · SEGMENTS: one thread per (row, segment)

var<workgroup> partials: array<f32, GEMV_WG * R_MAX>;  // [row][kl]
var<workgroup> segment_sums: array<f32, GEMV_WG>;      // [row][segment]

// row_total[rt·R + j] = Σ over the KT threads kl of row group rt of their acc[j]; ends with a
// barrier, so every thread may read row_total after it.
fn reduce_rows(local: u32, rt: u32, kl: u32, acc: array<f32, R_MAX>) {
    for (var j = 0u; j < ROWS_PER_THREAD; j++) {
        partials[(rt * ROWS_PER_THREAD + j) * KT + kl] = acc[j];
    }
    workgroupBarrier();
    let rows = (GEMV_WG / KT) * ROWS_PER_THREAD;
    let row = local / SEGMENTS;
    let per_segment = KT / SEGMENTS;  // KT ≥ 16
    if (row < rows) {
        let at = row * KT + (local % SEGMENTS) * per_segment;
        var sum = 0.0;
        for (var i = 0u; i < per_segment; i++) {
            sum += partials[at + i];
        }
        segment_sums[local] = sum;
    }
    workgroupBarrier();
    if (local < rows) {
        var sum = 0.0;
        for (var s = 0u; s < SEGMENTS; s++) {
            sum += segment_sums[local * SEGMENTS + s];
        }
        row_total[local] = sum;
    }
    workgroupBarrier();
}
