// Attention outliers of one layer reduced on the GPU from its probabilities
// P = [n_heads × n_queries × n_keys] (the attention kernel's optional output, written into a scratch
// buffer that is never read back): per head the sink score (mean over queries at positions ≥ 1 of
// the attention to key 0, StreamingLLM §3.3), and per key c_k = Σ_q mean_h P[h, q, k] (Systematic
// Outliers' key attention). Same definitions as analysis::outliers::{sink_scores, key_attention},
// accumulated in f32 here. Written at word `at` of `out`: n_heads sink scores, then n_keys c_k.

override WORKGROUP_SIZE: u32 = 64u;

struct Params {
    n_heads: u32,
    n_queries: u32,
    n_keys: u32,
    // Position of query 0 (the tokens already in the KV cache).
    past: u32,
    at: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn sinks(@builtin(global_invocation_id) id: vec3<u32>) {
    let h = id.x;
    if (h >= params.n_heads) {
        return;
    }
    var sum = 0.0;
    var count = 0u;
    for (var q = 0u; q < params.n_queries; q++) {
        if (params.past + q >= 1u) {
            sum += probs[(h * params.n_queries + q) * params.n_keys];
            count += 1u;
        }
    }
    out[params.at + h] = select(0.0, sum / f32(count), count > 0u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn keys(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
    let k = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + local;
    if (k >= params.n_keys) {
        return;
    }
    var sum = 0.0;
    for (var row = 0u; row < params.n_heads * params.n_queries; row++) {
        sum += probs[row * params.n_keys + k];
    }
    out[params.at + params.n_heads + k] = sum / f32(params.n_heads);
}
