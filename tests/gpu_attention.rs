//! Causal GQA attention on the GPU against a CPU formula that mirrors
//! `model::reference::causal_attention`, extended to queries after a KV-cache prefix.
// Native only (files, processes, blocking GPU calls); the browser suite is tests/web.rs.
#![cfg(not(target_arch = "wasm32"))]

mod gpu_common;

use gpu_common::*;
use quantscope::gpu::kernels::attention::{attention, AttentionShape};

/// Head layouts: GQA 9/3 at head_dim 64, plain multi-head 4/4 at 8, and the largest head (128)
/// shared by 2 query heads.
const SHAPES: &[AttentionShape] = &[
    AttentionShape { n_heads: 9, n_kv_heads: 3, head_dim: 64 },
    AttentionShape { n_heads: 4, n_kv_heads: 4, head_dim: 8 },
    AttentionShape { n_heads: 2, n_kv_heads: 1, head_dim: 128 },
];

/// Extra cache rows past the valid ones, filled with NaN: a kernel that reads past the causal
/// window poisons its output.
const SPARE_ROWS: usize = 7;

/// Online softmax rescales partial sums and the GPU sums in another order with its own exp:
/// results agree to a few ulp of the largest terms, not of each (possibly cancelling) output, so
/// the bound is absolute. Lavapipe shows ≤ 1.1e-6 on outputs of |v| ≤ 2 (≤ 2.4e-7 on
/// probabilities): 5e-6 leaves ~5× margin, while a wrong mask or a lost chunk is off by ~1e-2.
const ATTN_ABS: f32 = 5e-6;
const ATTN_REL: f32 = 1e-5;
/// The same agreement over whole tensors: lavapipe shows ≤ 3.5e-7.
const ATTN_L2: f64 = 2e-6;

struct Case {
    q: Vec<f32>,
    /// Cache contents: rows 0..past+n random, then SPARE_ROWS of NaN.
    k: Vec<f32>,
    v: Vec<f32>,
}

fn case(rng: &mut Rng, s: AttentionShape, n: usize, past: usize) -> Case {
    let (q_dim, kv_dim) = ((s.n_heads * s.head_dim) as usize, (s.n_kv_heads * s.head_dim) as usize);
    let rows = past + n;
    // Scores q·k/√hd of a few units: a peaked but not one-hot softmax.
    let mut k = rng.vec(rows * kv_dim, -1.0, 1.0);
    let mut v = rng.vec(rows * kv_dim, -2.0, 2.0);
    k.resize((rows + SPARE_ROWS) * kv_dim, f32::NAN);
    v.resize((rows + SPARE_ROWS) * kv_dim, f32::NAN);
    Case { q: rng.vec(n * q_dim, -1.5, 1.5), k, v }
}

/// Runs the kernel once; returns (out, probs) read back.
fn gpu_attention(s: AttentionShape, c: &Case, n: usize, past: usize, with_probs: bool) -> (Vec<f32>, Vec<f32>) {
    let q_len = n * (s.n_heads * s.head_dim) as usize;
    let probs_len = s.n_heads as usize * n * (past + n);
    let (q, k, v) = (
        ctx().upload_f32("q", &c.q).unwrap(),
        ctx().upload_f32("k", &c.k).unwrap(),
        ctx().upload_f32("v", &c.v).unwrap(),
    );
    let out = poisoned("out", q_len);
    let probs = poisoned("probs", probs_len);
    let mut enc = ctx().encoder();
    attention(ctx(), &mut enc, s, &q, &k, &v, &out, n as u32, past as u32, with_probs.then_some(&probs)).unwrap();
    ctx().submit(enc);
    (read(&out, q_len), if with_probs { read(&probs, probs_len) } else { Vec::new() })
}

#[test]
fn prefill_and_cached_queries_match_cpu() {
    let mut rng = Rng(31);
    for &s in SHAPES {
        for &n in &[1usize, 5, 33] {
            for &past in &[0usize, 40] {
                let c = case(&mut rng, s, n, past);
                let (want_out, want_probs) = cpu_attention(s, n, past, &c.q, &c.k, &c.v);
                let (out, probs) = gpu_attention(s, &c, n, past, true);
                let what = format!("{s:?} n={n} past={past}");
                assert_close(&format!("out {what}"), &out, &want_out, ATTN_ABS, ATTN_REL);
                assert!(relative_l2(&out, &want_out) < ATTN_L2, "out {what}: l2 {}", relative_l2(&out, &want_out));
                assert_close(&format!("probs {what}"), &probs, &want_probs, ATTN_ABS, ATTN_REL);
                // Without probs the output is the same computation.
                let (out_only, _) = gpu_attention(s, &c, n, past, false);
                assert_eq!(out_only, out, "out without probs {what}");
            }
        }
    }
}

#[test]
fn long_context_spans_many_chunks() {
    // 300 cached keys + 3 queries: several 64-key chunks, the running max moves between them.
    let mut rng = Rng(32);
    let s = AttentionShape { n_heads: 4, n_kv_heads: 2, head_dim: 64 };
    let (n, past) = (3, 300);
    let mut c = case(&mut rng, s, n, past);
    // A spike late in the window makes later chunks raise the running max.
    let kv_dim = (s.n_kv_heads * s.head_dim) as usize;
    for d in 0..kv_dim {
        c.k[250 * kv_dim + d] = 3.0 * c.q[d % (s.head_dim as usize)].signum();
    }
    let (want_out, want_probs) = cpu_attention(s, n, past, &c.q, &c.k, &c.v);
    let (out, probs) = gpu_attention(s, &c, n, past, true);
    assert_close("long out", &out, &want_out, ATTN_ABS, ATTN_REL);
    assert!(relative_l2(&out, &want_out) < ATTN_L2, "long out: l2 {}", relative_l2(&out, &want_out));
    assert_close("long probs", &probs, &want_probs, ATTN_ABS, ATTN_REL);
}

#[test]
fn probs_rows_sum_to_one_and_are_causal() {
    let mut rng = Rng(33);
    let s = SHAPES[0];
    for &(n, past) in &[(33usize, 0usize), (5, 40)] {
        let c = case(&mut rng, s, n, past);
        let (_, probs) = gpu_attention(s, &c, n, past, true);
        let keys = past + n;
        for (r, row) in probs.chunks_exact(keys).enumerate() {
            let i = r % n;
            assert!(row[past + i + 1..].iter().all(|&p| p == 0.0), "row {r}: nonzero above the diagonal");
            assert!(row[..=past + i].iter().all(|&p| p > 0.0), "row {r}: a visible key has probability 0");
            let sum: f64 = row.iter().map(|&p| p as f64).sum();
            // Each of ≤ 73 terms carries a relative error of a few ulp.
            assert!((sum - 1.0).abs() < 1e-5, "row {r} (n={n} past={past}) sums to {sum}");
        }
    }
}

#[test]
fn decode_step_by_step_equals_prefill() {
    let mut rng = Rng(34);
    for &s in &SHAPES[..2] {
        let n = 33;
        let c = case(&mut rng, s, n, 0);
        let (prefill, _) = gpu_attention(s, &c, n, 0, false);

        let (q_dim, kv_dim) = ((s.n_heads * s.head_dim) as usize, (s.n_kv_heads * s.head_dim) as usize);
        // The cache starts all NaN; each step writes its own K/V row first, as the forward will.
        let capacity = n + SPARE_ROWS;
        let k = poisoned("k cache", capacity * kv_dim);
        let v = poisoned("v cache", capacity * kv_dim);
        let q = ctx().storage("q", (q_dim * 4) as u64).unwrap();
        let out = poisoned("out", q_dim);
        let probs = poisoned("probs", s.n_heads as usize * (n + 1));
        for t in 0..n {
            let row = |x: &[f32]| bytemuck::cast_slice::<f32, u8>(&x[t * kv_dim..(t + 1) * kv_dim]).to_vec();
            ctx().queue.write_buffer(&k, (t * kv_dim * 4) as u64, &row(&c.k));
            ctx().queue.write_buffer(&v, (t * kv_dim * 4) as u64, &row(&c.v));
            ctx().queue.write_buffer(&q, 0, bytemuck::cast_slice(&c.q[t * q_dim..(t + 1) * q_dim]));
            let mut enc = ctx().encoder();
            attention(ctx(), &mut enc, s, &q, &k, &v, &out, 1, t as u32, Some(&probs)).unwrap();
            ctx().submit(enc);
            // Same workgroup, same keys, same order of operations: bit-identical to the prefill row.
            assert_eq!(read(&out, q_dim), prefill[t * q_dim..(t + 1) * q_dim], "{s:?} step {t}");
            let p = read(&probs, s.n_heads as usize * (t + 1));
            for row in p.chunks_exact(t + 1) {
                let sum: f64 = row.iter().map(|&x| x as f64).sum();
                assert!((sum - 1.0).abs() < 1e-5, "{s:?} step {t}: probs sum to {sum}");
            }
        }
    }
}

#[test]
fn shapes_are_checked() {
    let buf = ctx().upload_f32("buf", &[1.0; 64]).unwrap();
    let mut enc = ctx().encoder();
    let mut run = |s: AttentionShape, n: u32, past: u32| {
        attention(ctx(), &mut enc, s, &buf, &buf, &buf, &buf, n, past, None).unwrap_err().to_string()
    };
    let e = run(AttentionShape { n_heads: 4, n_kv_heads: 3, head_dim: 8 }, 1, 0);
    assert!(e.contains("multiple of n_kv_heads"), "{e}");
    let e = run(AttentionShape { n_heads: 1, n_kv_heads: 1, head_dim: 256 }, 1, 0);
    assert!(e.contains("head_dim 256 must be in 1..=128"), "{e}");
    let e = run(AttentionShape { n_heads: 1, n_kv_heads: 1, head_dim: 8 }, 2, 7);
    assert!(e.contains("k_cache holds 64 values, needs 72"), "{e}");
    let s = AttentionShape { n_heads: 2, n_kv_heads: 1, head_dim: 8 };
    let small = ctx().upload_f32("small", &[1.0; 4]).unwrap();
    let e = attention(ctx(), &mut ctx().encoder(), s, &buf, &buf, &buf, &buf, 2, 2, Some(&small)).unwrap_err();
    assert!(e.to_string().contains("probs holds 4 values, needs 16"), "{e}");
}
