// Causal grouped-query attention over a KV cache, split over the keys (flash-decoding). The
// decode-time companion of attention.wgsl: that kernel runs one workgroup per (head, query token),
// 9 workgroups for a decode step of the default model, which leaves a GPU nearly idle; here every
// (head, token) also splits its keys over `splits` workgroups, and a second pass merges them.
//
// q:       [n_tokens × n_heads·head_dim]      queries of the new tokens, at positions past + t
// k, v:    [capacity × n_kv_heads·head_dim]   cache rows 0 .. past + n_tokens are valid
// out:     [n_tokens × n_heads·head_dim]
// scratch: [n_heads × n_tokens × splits] records of 1 + ⌈head_dim/4⌉ vec4s: (m, l, 0, 0), acc
//
// Query t (position past + t) sees keys 0 ..= past + t, less key 0 when drop_key0 and the
// position is ≥ 1 (attention.wgsl's drop_key0). Split s takes the keys [s·split_keys,
// (s+1)·split_keys) of that window; the splits past an early query's window are empty.
//
// partial: one workgroup per (head, token, split), over its keys in tiles of
// TILE_KEYS = WORKGROUP_SIZE / KEY_LANES:
//   1. KEY_LANES invocations share a key: each dots q with every KEY_LANES-th vec4 of the key's
//      row; invocation j < TILE_KEYS adds key j's lanes: s = q·k · scale, soft-capped where
//      softcap > 0 (attention.wgsl's score), or MASKED;
//   2. every invocation reads the tile's scores, raises the running max m and rescales its own
//      l and acc by exp(m_old − m) (online softmax, as in attention.wgsl);
//   3. invocation (group g, quad c), with groups = WORKGROUP_SIZE / ⌈head_dim/4⌉, adds
//      p_j = exp(s_j − m) to its l and p_j·v_j[4c .. 4c+4] to its acc for the tile's keys
//      j ≡ g (mod groups).
//   The groups' l and acc are then summed in workgroup memory and (m, l, acc) is written: the
//   split's softmax numerator and denominator relative to its own max. A split with no visible
//   key writes m = MASKED, l = 0, acc = 0.
// merge: one workgroup per (head, token): M = max_s m_s, w_s = exp(m_s − M),
//   out = Σ_s w_s·acc_s / Σ_s w_s·l_s — the softmax over the whole window, exactly, in another
//   order of summation. An empty split weighs exp(MASKED − M) = 0.
//
// K and V are read a vec4 at a time through k_quad / v_quad, from a snippet that the wrapper
// (src/gpu/kernels/attention_split.rs) prepends: shaders/kv_loads/vec4.wgsl when head_dim is a
// multiple of 4 (every head row starts on a vec4: 16-byte loads), shaders/kv_loads/scalar.wgsl
// otherwise. Both declare k_cache (binding 2) and v_cache (binding 3) and read dims ≥ head_dim
// as 0, which q_row's padding matches.
//
// Both entry points use a linear workgroup index wg.x + wg.y·num_workgroups.x (GpuContext::grid)
// and ignore workgroups past the work.

override WORKGROUP_SIZE: u32 = 128u;      // partial; a power of two, 32 ..= 256
override KEY_LANES: u32 = 4u;             // partial; a power of two dividing WORKGROUP_SIZE
override MERGE_WORKGROUP_SIZE: u32 = 64u; // merge; 32 ..= 256 (a group per ≤ 32 quads)
const MAX_QUADS: u32 = 64u;               // MAX_HEAD_DIM / 4; the wrapper refuses larger heads
const MASKED: f32 = -3.0e38;              // a finite "−∞": exp(MASKED − m) underflows to 0

// All fields 4-byte scalars: the wrapper fills it as u32 words (f32 by its bits).
struct Params {
    n_tokens: u32,
    past: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    scale: f32,
    softcap: f32, // 0: off; else scores become softcap·tanh(s/softcap) (soft_cap.wgsl)
    // StreamingLLM's cliff (the drop-sink intervention): queries at positions ≥ 1 do not see key 0.
    drop_key0: u32,
    splits: u32,
    split_keys: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// partial's bindings (k_cache at 2 and v_cache at 3 come from the kv_loads snippet).
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<vec4<f32>>;
// merge's bindings: an entry point's layout holds only what it uses, and GpuContext::dispatch
// binds buffers to 0, 1, 2, … in order, so merge reuses binding numbers that partial also uses
// (WGSL forbids two variables on one binding only within one entry point's interface).
@group(0) @binding(1) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> q_row: array<vec4<f32>, MAX_QUADS>;
var<workgroup> lane_dots: array<f32, WORKGROUP_SIZE>;
var<workgroup> scores: array<f32, WORKGROUP_SIZE>; // the first TILE_KEYS
var<workgroup> group_acc: array<vec4<f32>, WORKGROUP_SIZE>;
var<workgroup> group_l: array<f32, WORKGROUP_SIZE>;
var<workgroup> merge_max: array<f32, MERGE_WORKGROUP_SIZE>;
var<workgroup> merge_acc: array<vec4<f32>, MERGE_WORKGROUP_SIZE>;
var<workgroup> merge_l: array<f32, MERGE_WORKGROUP_SIZE>;

// Whether the query at `position` attends to `key`; `end` bounds the split and the causal window.
fn visible(key: u32, end: u32, position: u32) -> bool {
    return key < end && !(params.drop_key0 != 0u && key == 0u && position >= 1u);
}

fn quads() -> u32 {
    return (params.head_dim + 3u) / 4u;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
           @builtin(local_invocation_index) local: u32) {
    let item = wg.x + wg.y * groups.x;
    // Uniform per workgroup: the barriers below stay in uniform control flow.
    if (item >= params.n_heads * params.n_tokens * params.splits) { return; }
    let split = item % params.splits;
    let row = item / params.splits; // head·n_tokens + t, as merge counts
    let head = row / params.n_tokens;
    let t = row % params.n_tokens;
    let hd = params.head_dim;
    let n_quads = quads();
    let kv_head = head / (params.n_heads / params.n_kv_heads);
    let kv_stride = params.n_kv_heads * hd;
    let position = params.past + t;
    let first = split * params.split_keys;
    let end = min(first + params.split_keys, position + 1u);

    let q_base = t * params.n_heads * hd + head * hd;
    for (var c = local; c < n_quads; c += WORKGROUP_SIZE) {
        var x = vec4<f32>(0.0);
        for (var i = 0u; i < 4u; i++) {
            if (4u * c + i < hd) {
                x[i] = q[q_base + 4u * c + i];
            }
        }
        q_row[c] = x;
    }
    workgroupBarrier();

    let tile_keys = WORKGROUP_SIZE / KEY_LANES;
    let key_slot = local / KEY_LANES;
    let lane = local % KEY_LANES;
    let n_groups = WORKGROUP_SIZE / n_quads;
    let group = local / n_quads;
    let quad = local % n_quads;

    var m = MASKED;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var tile = first; tile < end; tile += tile_keys) {
        let key = tile + key_slot;
        var lane_dot = 0.0;
        if (key < end) {
            let k_row = key * kv_stride + kv_head * hd;
            for (var c = lane; c < n_quads; c += KEY_LANES) {
                lane_dot += dot(q_row[c], k_quad(k_row, c));
            }
        }
        lane_dots[local] = lane_dot;
        workgroupBarrier();
        if (local < tile_keys) {
            var s = MASKED;
            if (visible(tile + local, end, position)) {
                var sum = 0.0;
                for (var i = 0u; i < KEY_LANES; i++) {
                    sum += lane_dots[local * KEY_LANES + i];
                }
                s = sum * params.scale;
                if (params.softcap > 0.0) {
                    s = soft_cap(s, params.softcap);
                }
            }
            scores[local] = s;
        }
        workgroupBarrier();

        let tile_len = min(tile_keys, end - tile);
        var m_new = m;
        for (var j = 0u; j < tile_len; j++) {
            m_new = max(m_new, scores[j]);
        }
        let correction = exp(m - m_new);
        m = m_new;
        l *= correction;
        acc *= correction;
        if (group < n_groups) {
            for (var j = group; j < tile_len; j += n_groups) {
                let s = scores[j];
                // While every key so far is masked m is MASKED too, and exp(s − m) would be 1.
                if (s != MASKED) {
                    let p = exp(s - m);
                    l += p;
                    acc += p * v_quad((tile + j) * kv_stride + kv_head * hd, quad);
                }
            }
        }
        // No third barrier: lane_dots is last read before the second one, and the next tile
        // writes scores only after its first.
    }

    group_acc[local] = acc; // zero for invocations outside the groups
    group_l[local] = l;
    workgroupBarrier();
    if (local < n_quads) {
        var total = vec4<f32>(0.0);
        var total_l = 0.0;
        for (var g = 0u; g < n_groups; g++) {
            total += group_acc[g * n_quads + local];
            total_l += group_l[g * n_quads + local]; // the same l for every quad of group g
        }
        let record = item * (1u + n_quads);
        scratch[record + 1u + local] = total;
        if (local == 0u) {
            scratch[record] = vec4<f32>(m, total_l, 0.0, 0.0);
        }
    }
}

@compute @workgroup_size(MERGE_WORKGROUP_SIZE)
fn merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_index) local: u32) {
    let row = wg.x + wg.y * groups.x;
    if (row >= params.n_heads * params.n_tokens) { return; }
    let head = row / params.n_tokens;
    let t = row % params.n_tokens;
    let hd = params.head_dim;
    let n_quads = quads();
    let record_len = 1u + n_quads;
    let first_record = row * params.splits * record_len;

    var m = MASKED;
    for (var s = local; s < params.splits; s += MERGE_WORKGROUP_SIZE) {
        m = max(m, partials[first_record + s * record_len].x);
    }
    merge_max[local] = m;
    workgroupBarrier();
    var m_all = MASKED;
    for (var i = 0u; i < MERGE_WORKGROUP_SIZE; i++) {
        m_all = max(m_all, merge_max[i]);
    }

    let n_groups = MERGE_WORKGROUP_SIZE / n_quads;
    let group = local / n_quads;
    let quad = local % n_quads;
    var acc = vec4<f32>(0.0);
    var l = 0.0;
    if (group < n_groups) {
        for (var s = group; s < params.splits; s += n_groups) {
            let record = first_record + s * record_len;
            let header = partials[record];
            let w = exp(header.x - m_all);
            l += w * header.y;
            acc += w * partials[record + 1u + quad];
        }
    }
    merge_acc[local] = acc;
    merge_l[local] = l;
    workgroupBarrier();
    if (local < n_quads) {
        var total = vec4<f32>(0.0);
        var total_l = 0.0;
        for (var g = 0u; g < n_groups; g++) {
            total += merge_acc[g * n_quads + local];
            total_l += merge_l[g * n_quads + local];
        }
        let o = total / total_l;
        let out_base = t * params.n_heads * hd + head * hd;
        for (var i = 0u; i < 4u; i++) {
            if (4u * local + i < hd) {
                out[out_base + 4u * local + i] = o[i];
            }
        }
    }
}
