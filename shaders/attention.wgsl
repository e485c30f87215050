// Causal grouped-query attention over a KV cache, with online (flash-style) softmax.
//
// q:   [n_tokens × n_heads·head_dim]      queries of the new tokens, at positions past + t
// k,v: [capacity × n_kv_heads·head_dim]   cache rows 0 .. past + n_tokens are valid
// out: [n_tokens × n_heads·head_dim]
// probs (if write_probs): [n_heads × n_tokens × (past + n_tokens)], zero for masked keys.
//
// One workgroup per (head, query token). Keys are visited in chunks of WORKGROUP_SIZE:
//   1. invocation j scores key (chunk + j): s = q·k · scale (1/sqrt(head_dim) but for Gemma's
//      27B models), soft-capped where softcap > 0 (Gemma 2), masked keys excluded;
//   2. every invocation finds the chunk's max, updates the running max m, and invocation j
//      turns its score into p_j = exp(s_j − m);
//   3. invocation d owns output dims d, d + WORKGROUP_SIZE, …: acc = acc·exp(m_old − m) + Σ p_j v_j,
//      and the running sum l = l·exp(m_old − m) + Σ p_j (computed redundantly by every invocation).
// out = acc / l. With probs, a second pass over the keys writes exp(s − m) / l with the final m, l.
// Key 0 is in every query's window, so the first chunk makes m finite; with drop_key0 a query at
// position ≥ 1 still sees key 1 in the first chunk.
//
// Probability quantization (prob_mode ≠ 0; src/quant/attention_probs.rs): P·V must use the
// quantized probabilities p̂ = Q(exp(s − m)/l), which need the final m and l, so the chunk loop
// only finds m and l, and a second pass over the keys accumulates Σ p̂·v with no renormalization
// (out = acc, not acc / l). Off, the flag is a uniform branch and the kernel is the one above.

override WORKGROUP_SIZE: u32 = 64u; // keys per chunk; a power of two, ≤ 256
const MAX_HEAD_DIM: u32 = 256u;     // the wrapper refuses larger heads (Gemma 3: 256)
const MASKED: f32 = -3.0e38;        // a finite "−∞": exp(MASKED − m) underflows to 0

struct Params {
    n_tokens: u32,
    past: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    scale: f32,
    softcap: f32,        // 0: off; else scores become softcap·tanh(s/softcap) (soft_cap.wgsl)
    write_probs: u32,
    // StreamingLLM's cliff (the drop-sink intervention): queries at positions ≥ 1 do not see key 0.
    drop_key0: u32,
    prob_mode: u32,      // PROB_OFF, PROB_UNIFORM, PROB_ADALOG, PROB_SAB
    prob_levels: f32,    // uniform: 2^b − 1
    prob_ratio: f32,     // AdaLog: r / q of this layer
    prob_codes: u32,     // AdaLog: 2^b (codes ≥ this are 0)
    prob_table_at: u32,  // AdaLog: this layer's first entry in prob_table
}

const PROB_OFF: u32 = 0u;
const PROB_UNIFORM: u32 = 1u;  // RNE(p·(2^b − 1)) / (2^b − 1)
const PROB_ADALOG: u32 = 2u;   // k = RNE(−log2(clamp(p, 1e-15, 1))·r/q); k < 2^b ? table[k] : 0
const PROB_SAB: u32 = 3u;      // BiViT: 1 if p ≥ 0.25·max p of the row, else 0

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;
// AdaLog's dequantization tables, [layers × 2^b], built on the CPU (so both sides share them).
@group(0) @binding(6) var<storage, read> prob_table: array<f32>;

var<workgroup> q_row: array<f32, MAX_HEAD_DIM>;
var<workgroup> acc: array<f32, MAX_HEAD_DIM>;
var<workgroup> p: array<f32, WORKGROUP_SIZE>;

// q·k_key · scale for cache row `key` of kv head `kv_head`, soft-capped where softcap > 0. Every
// path (the chunk loop, the quantized second pass, the captured probabilities) scores here.
fn score(key: u32, kv_head: u32) -> f32 {
    let hd = params.head_dim;
    let k_base = key * params.n_kv_heads * hd + kv_head * hd;
    var s = 0.0;
    for (var d = 0u; d < hd; d++) {
        s += q_row[d] * k_cache[k_base + d];
    }
    s *= params.scale;
    if (params.softcap > 0.0) {
        s = soft_cap(s, params.softcap);
    }
    return s;
}

// Whether the query at `position` attends to `key` (causality is `key < n_keys`).
fn visible(key: u32, n_keys: u32, position: u32) -> bool {
    return key < n_keys && !(params.drop_key0 != 0u && key == 0u && position >= 1u);
}

// The quantized probability of a visible key; `row_max` = 1/l, the row's largest probability
// (its key scores m, so exp(m − m)/l).
fn quantize_prob(p: f32, row_max: f32) -> f32 {
    switch params.prob_mode {
        case PROB_UNIFORM: {
            return clamp(round(p * params.prob_levels), 0.0, params.prob_levels) / params.prob_levels;
        }
        case PROB_ADALOG: {
            let u = clamp(p, 1e-15, 1.0);
            let k = round(-log2(u) * params.prob_ratio);
            if (k >= f32(params.prob_codes)) {
                return 0.0;
            }
            return prob_table[params.prob_table_at + u32(k)];
        }
        case PROB_SAB: {
            return select(0.0, 1.0, p >= 0.25 * row_max);
        }
        default: {
            return p;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_index) local: u32) {
    let item = wg.x + wg.y * groups.x;
    // Uniform per workgroup: the barriers below stay in uniform control flow.
    if (item >= params.n_heads * params.n_tokens) { return; }
    let head = item / params.n_tokens;
    let t = item % params.n_tokens;
    let hd = params.head_dim;
    let kv_head = head / (params.n_heads / params.n_kv_heads);
    let kv_stride = params.n_kv_heads * hd;
    let position = params.past + t;
    let n_keys = position + 1u; // keys 0 ..= position
    let q_base = t * params.n_heads * hd + head * hd;

    for (var d = local; d < hd; d += WORKGROUP_SIZE) {
        q_row[d] = q[q_base + d];
        acc[d] = 0.0;
    }
    workgroupBarrier();

    var m = MASKED;
    var l = 0.0;
    for (var chunk = 0u; chunk < n_keys; chunk += WORKGROUP_SIZE) {
        let key = chunk + local;
        var s = MASKED;
        if (visible(key, n_keys, position)) {
            s = score(key, kv_head);
        }
        p[local] = s;
        workgroupBarrier();

        var m_new = m;
        for (var j = 0u; j < WORKGROUP_SIZE; j++) {
            m_new = max(m_new, p[j]);
        }
        let correction = exp(m - m_new);
        m = m_new;
        workgroupBarrier(); // everyone has read the scores before they become weights
        var w = 0.0;
        if (visible(key, n_keys, position)) {
            w = exp(s - m);
        }
        p[local] = w;
        workgroupBarrier();

        let chunk_len = min(WORKGROUP_SIZE, n_keys - chunk);
        var chunk_sum = 0.0;
        for (var j = 0u; j < chunk_len; j++) {
            chunk_sum += p[j];
        }
        l = l * correction + chunk_sum;
        for (var d = local; d < hd && params.prob_mode == PROB_OFF; d += WORKGROUP_SIZE) {
            var a = acc[d] * correction;
            for (var j = 0u; j < chunk_len; j++) {
                a += p[j] * v_cache[(chunk + j) * kv_stride + kv_head * hd + d];
            }
            acc[d] = a;
        }
        workgroupBarrier(); // weights are read before the next chunk overwrites them
    }

    var inv_l = 1.0 / l;
    if (params.prob_mode != PROB_OFF) {
        // Second pass: P̂·V with the final m and l. The quantized rows are not renormalized.
        for (var chunk = 0u; chunk < n_keys; chunk += WORKGROUP_SIZE) {
            let key = chunk + local;
            var w = 0.0;
            if (visible(key, n_keys, position)) {
                w = quantize_prob(exp(score(key, kv_head) - m) / l, inv_l);
            }
            p[local] = w;
            workgroupBarrier();
            let chunk_len = min(WORKGROUP_SIZE, n_keys - chunk);
            for (var d = local; d < hd; d += WORKGROUP_SIZE) {
                var a = acc[d];
                for (var j = 0u; j < chunk_len; j++) {
                    a += p[j] * v_cache[(chunk + j) * kv_stride + kv_head * hd + d];
                }
                acc[d] = a;
            }
            workgroupBarrier();
        }
        inv_l = 1.0;
    }
    for (var d = local; d < hd; d += WORKGROUP_SIZE) {
        out[q_base + d] = acc[d] * inv_l;
    }

    if (params.write_probs != 0u) {
        let row_len = params.past + params.n_tokens;
        let row = (head * params.n_tokens + t) * row_len;
        for (var key = local; key < row_len; key += WORKGROUP_SIZE) {
            var prob = 0.0;
            if (visible(key, n_keys, position)) {
                prob = exp(score(key, kv_head) - m) / l;
                if (params.prob_mode != PROB_OFF) {
                    prob = quantize_prob(prob, 1.0 / l); // what P·V used
                }
            }
            probs[row + key] = prob;
        }
    }
}
