// matmul.wgsl's gemv reduction with subgroup operations (wgpu's SUBGROUP feature): each
// subgroup adds its threads' partial sums with subgroupAdd and writes one value per row; then
// one thread per row adds the subgroups' values. Two barriers instead of log2(KT) + 1.
//
// Nothing here assumes how invocations map to subgroups (WGSL and Vulkan leave the relation
// between local_invocation_index and subgroup_invocation_id open): a subgroup may hold threads
// of several row groups rt, so it reduces once per row group it holds (masking the others'
// values), which is once when KT is a multiple of the subgroup size and the mapping is the usual
// linear one. Subgroups are numbered by an atomic counter, not by local / subgroup_size.

const MAX_SUBGROUPS: u32 = GEMV_WG / 4u;  // WGSL's smallest subgroup size is 4

var<workgroup> subgroup_count: atomic<u32>;
// [subgroup][row]; zero at the start of the dispatch (WebGPU zero-initializes workgroup memory),
// and a subgroup writes only the rows it holds.
var<workgroup> subgroup_sums: array<f32, MAX_SUBGROUPS * MAX_ROWS>;

// row_total[rt·R + j] = Σ over the KT threads kl of row group rt of their acc[j]; ends with a
// barrier, so every thread may read row_total after it.
fn reduce_rows(local: u32, rt: u32, kl: u32, acc: array<f32, R_MAX>) {
    // The subgroup's first active invocation (naga has no subgroupElect).
    let leader = subgroupBroadcastFirst(local) == local;
    var s = 0u;
    if (leader) {
        s = atomicAdd(&subgroup_count, 1u);
    }
    s = subgroupBroadcastFirst(s);
    let first = subgroupMin(rt);
    let last = subgroupMax(rt);
    for (var g = first; g <= last; g++) {
        for (var j = 0u; j < ROWS_PER_THREAD; j++) {
            let total = subgroupAdd(select(0.0, acc[j], rt == g));
            if (leader) {
                subgroup_sums[s * MAX_ROWS + g * ROWS_PER_THREAD + j] = total;
            }
        }
    }
    workgroupBarrier();
    let rows = (GEMV_WG / KT) * ROWS_PER_THREAD;
    if (local < rows) {
        let n = atomicLoad(&subgroup_count);
        var total = 0.0;
        for (var i = 0u; i < n; i++) {
            total += subgroup_sums[i * MAX_ROWS + local];
        }
        row_total[local] = total;
    }
    workgroupBarrier();
}
