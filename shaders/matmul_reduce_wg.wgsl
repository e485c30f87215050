// matmul.wgsl's gemv reduction without optional features: the KT partial sums of each of the
// workgroup's rows, added in a tree in workgroup memory (log2(KT) barriers).

var<workgroup> partials: array<f32, GEMV_WG * R_MAX>;

// row_total[rt·R + j] = Σ over the KT threads kl of row group rt of their acc[j]; ends with a
// barrier, so every thread may read row_total after it.
fn reduce_rows(local: u32, rt: u32, kl: u32, acc: array<f32, R_MAX>) {
    for (var j = 0u; j < ROWS_PER_THREAD; j++) {
        partials[(rt * ROWS_PER_THREAD + j) * KT + kl] = acc[j];
    }
    workgroupBarrier();
    for (var stride = KT / 2u; stride > 0u; stride /= 2u) {
        if (kl < stride) {
            for (var j = 0u; j < ROWS_PER_THREAD; j++) {
                let i = (rt * ROWS_PER_THREAD + j) * KT + kl;
                partials[i] += partials[i + stride];
            }
        }
        workgroupBarrier();
    }
    if (kl == 0u) {
        for (var j = 0u; j < ROWS_PER_THREAD; j++) {
            row_total[rt * ROWS_PER_THREAD + j] = partials[(rt * ROWS_PER_THREAD + j) * KT];
        }
    }
    workgroupBarrier();
}
