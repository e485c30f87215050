//! Causal GQA attention on the GPU against a CPU formula that mirrors
//! `model::reference::causal_attention`, extended to queries after a KV-cache prefix.
use crate::gpu_common;

use gpu_common::*;
use quantscope::gpu::kernels::attention::{attention, attention_quantized, AttentionIo, AttentionShape, Scores};
use quantscope::gpu::kernels::attention_split::{attention_split, split_plan, MIN_SPLIT_KEYS};
use quantscope::gpu::Recorder;

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

/// Runs the kernel once with the standard scores; returns (out, probs) read back.
fn gpu_attention(s: AttentionShape, c: &Case, n: usize, past: usize, with_probs: bool) -> (Vec<f32>, Vec<f32>) {
    gpu_attention_scored(s, Scores::standard(s.head_dim), c, n, past, with_probs)
}

/// [`gpu_attention`] with `scores`.
fn gpu_attention_scored(
    s: AttentionShape,
    scores: Scores,
    c: &Case,
    n: usize,
    past: usize,
    with_probs: bool,
) -> (Vec<f32>, Vec<f32>) {
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
    attention_quantized(
        ctx(),
        &mut enc,
        s,
        scores,
        AttentionIo { q: &q, k_cache: &k, v_cache: &v, out: &out, n_tokens: n as u32, past: past as u32 },
        with_probs.then_some(&probs),
        false,
        None,
    )
    .unwrap();
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
            attention(
                ctx(),
                &mut enc,
                s,
                AttentionIo { q: &q, k_cache: &k, v_cache: &v, out: &out, n_tokens: 1, past: t as u32 },
                Some(&probs),
            )
            .unwrap();
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
        attention(
            ctx(),
            &mut enc,
            s,
            AttentionIo { q: &buf, k_cache: &buf, v_cache: &buf, out: &buf, n_tokens: n, past: past },
            None,
        )
        .unwrap_err()
        .to_string()
    };
    let e = run(AttentionShape { n_heads: 4, n_kv_heads: 3, head_dim: 8 }, 1, 0);
    assert!(e.contains("multiple of n_kv_heads"), "{e}");
    let e = run(AttentionShape { n_heads: 1, n_kv_heads: 1, head_dim: 264 }, 1, 0);
    assert!(e.contains("head_dim 264 must be in 1..=256"), "{e}");
    let e = run(AttentionShape { n_heads: 1, n_kv_heads: 1, head_dim: 8 }, 2, 7);
    assert!(e.contains("k_cache holds 64 values, needs 72"), "{e}");
    let s = AttentionShape { n_heads: 2, n_kv_heads: 1, head_dim: 8 };
    let small = ctx().upload_f32("small", &[1.0; 4]).unwrap();
    let e = attention(
        ctx(),
        &mut ctx().encoder(),
        s,
        AttentionIo { q: &buf, k_cache: &buf, v_cache: &buf, out: &buf, n_tokens: 2, past: 2 },
        Some(&small),
    )
    .unwrap_err();
    assert!(e.to_string().contains("probs holds 4 values, needs 16"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// attention_split: the same attention split over the keys (flash-decoding) and merged.

/// GQA ratios 3, 1, 4, 3 and 4: the default model's heads, a head of 24 dims, one of 128, a head
/// of 10 dims, not a multiple of 4 (the scalar K/V loads, with a ragged last quad), and the
/// largest, Gemma 3's 256.
const SPLIT_SHAPES: &[AttentionShape] = &[
    AttentionShape { n_heads: 9, n_kv_heads: 3, head_dim: 64 },
    AttentionShape { n_heads: 4, n_kv_heads: 4, head_dim: 24 },
    AttentionShape { n_heads: 8, n_kv_heads: 2, head_dim: 128 },
    AttentionShape { n_heads: 3, n_kv_heads: 1, head_dim: 10 },
    // Gemma 3's heads: 64 quads, as many as a merge workgroup has invocations.
    AttentionShape { n_heads: 4, n_kv_heads: 1, head_dim: 256 },
];

/// Decode contexts: none, one key, around the 16- and 32-key edges of a split, several splits,
/// and a 4k context cut into dozens of splits.
const DECODE_PASTS: &[usize] = &[0, 1, 15, 16, 17, 31, 32, 33, 300, 4100];

/// The worst disagreement seen, printed at the end of a test (`--nocapture`), to keep the
/// measured margin under ATTN_ABS / ATTN_L2 visible.
#[derive(Default)]
struct Worst {
    abs: f32,
    l2: f64,
}

impl Worst {
    /// Checks `got` against `want` with the attention bounds, and records the error.
    fn check(&mut self, what: &str, got: &[f32], want: &[f32]) {
        self.check_scaled(what, got, want, 1.0);
    }

    /// [`Worst::check`] with the bounds multiplied by `factor`.
    fn check_scaled(&mut self, what: &str, got: &[f32], want: &[f32], factor: f32) {
        assert_close(what, got, want, factor * ATTN_ABS, factor * ATTN_REL);
        let l2 = relative_l2(got, want);
        assert!(l2 < factor as f64 * ATTN_L2, "{what}: l2 {l2}");
        let abs = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f32::max);
        self.abs = self.abs.max(abs);
        self.l2 = self.l2.max(l2);
    }

    fn report(&self, what: &str) -> String {
        format!("{what}: max abs {:.1e}, max relative l2 {:.1e}", self.abs, self.l2)
    }
}

/// The split kernel's worst errors against each reference.
#[derive(Default)]
struct SplitErrors {
    exact: Worst,
    cpu: Worst,
    one_pass: Worst,
}

impl SplitErrors {
    fn report(&self, test: &str) {
        let parts = [
            self.exact.report("vs f64 formula"),
            self.cpu.report("vs f32 formula"),
            self.one_pass.report("vs attention.wgsl"),
        ];
        eprintln!("{test}: {}", parts.join("; "));
    }
}

/// The bounds above were measured on windows of ≤ 73 keys; the f32 references' own rounding
/// grows with the window. The CPU formula adds every key's exp and p·v in sequence in f32: at
/// 4101 keys it is up to 1.7e-5 (relative l2 8.4e-6) from the exact result when one key
/// dominates. attention.wgsl sums 64-key chunks in sequence: up to 1.6e-6 (l2 1.3e-6). So windows
/// longer than this are checked against the formula in f64 with the bounds above, and against
/// attention.wgsl with twice them (each kernel within the bounds of the exact result); shorter
/// windows against all three with the bounds above. (The split kernel itself stays within
/// 7.2e-7, l2 5.1e-7, of the exact result on every case.)
const SHORT_WINDOW_KEYS: usize = 301;

/// `cpu_attention_masked`'s formula in f64 (scores, softmax and P·V), rounded to f32 at the end:
/// the reference for windows where the f32 formula's rounding is not negligible.
fn cpu_attention_exact(s: AttentionShape, n: usize, past: usize, c: &Case, drop_key0: bool) -> Vec<f32> {
    let (nh, hd) = (s.n_heads as usize, s.head_dim as usize);
    let group = nh / s.n_kv_heads as usize;
    let (q_dim, kv_dim) = (nh * hd, s.n_kv_heads as usize * hd);
    let mut out = vec![0.0f32; n * q_dim];
    for h in 0..nh {
        let kv_h = h / group;
        for i in 0..n {
            let last = past + i;
            let keys = usize::from(drop_key0 && last >= 1)..=last;
            let q_i = &c.q[i * q_dim + h * hd..][..hd];
            let scores: Vec<f64> = keys
                .clone()
                .map(|j| {
                    let k_j = &c.k[j * kv_dim + kv_h * hd..][..hd];
                    q_i.iter().zip(k_j).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / (hd as f64).sqrt()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = scores.iter().map(|&x| (x - max).exp()).sum();
            let mut o = vec![0.0f64; hd];
            for (j, &score) in keys.zip(&scores) {
                let p = (score - max).exp() / sum;
                for (o_d, &v) in o.iter_mut().zip(&c.v[j * kv_dim + kv_h * hd..][..hd]) {
                    *o_d += p * v as f64;
                }
            }
            for (dst, x) in out[i * q_dim + h * hd..][..hd].iter_mut().zip(o) {
                *dst = x as f32;
            }
        }
    }
    out
}

/// Keys aligned with the first query head's q, so that one split's max dwarfs the others' and
/// the merge's exp(m_s − M) spans many orders of magnitude.
fn plant_spikes(c: &mut Case, s: AttentionShape, keys: &[usize]) {
    let (hd, kv_dim) = (s.head_dim as usize, (s.n_kv_heads * s.head_dim) as usize);
    for &key in keys {
        for d in 0..kv_dim {
            c.k[key * kv_dim + d] = 3.0 * c.q[d % hd].signum();
        }
    }
}

/// Runs attention_split once with a fresh NaN-filled scratch of exactly the plan's size.
fn gpu_attention_split(s: AttentionShape, c: &Case, n: usize, past: usize, drop_key0: bool) -> Vec<f32> {
    let scratch = poisoned("scratch", split_plan(s, n as u32, past as u32).scratch_words as usize);
    gpu_attention_split_with(s, Scores::standard(s.head_dim), c, n, past, drop_key0, &scratch)
}

fn gpu_attention_split_with(
    s: AttentionShape,
    scores: Scores,
    c: &Case,
    n: usize,
    past: usize,
    drop_key0: bool,
    scratch: &wgpu::Buffer,
) -> Vec<f32> {
    run_case(s, c, n, &|enc, [q, k, v, out]| {
        attention_split(
            ctx(),
            enc,
            s,
            scores,
            AttentionIo { q: q, k_cache: k, v_cache: v, out: out, n_tokens: n as u32, past: past as u32 },
            drop_key0,
            scratch,
        )
        .unwrap()
    })
}

/// The one-pass kernel (attention.wgsl) on the same case, without probabilities.
fn gpu_attention_one_pass(s: AttentionShape, c: &Case, n: usize, past: usize, drop_key0: bool) -> Vec<f32> {
    run_case(s, c, n, &|enc, [q, k, v, out]| {
        attention_quantized(
            ctx(),
            enc,
            s,
            Scores::standard(s.head_dim),
            AttentionIo { q: q, k_cache: k, v_cache: v, out: out, n_tokens: n as u32, past: past as u32 },
            None,
            drop_key0,
            None,
        )
        .unwrap()
    })
}

/// Uploads the case's q, k and v, records `attend(q, k, v, out)` and reads back the output.
fn run_case(s: AttentionShape, c: &Case, n: usize, attend: &dyn Fn(&mut Recorder, [&wgpu::Buffer; 4])) -> Vec<f32> {
    let q_len = n * (s.n_heads * s.head_dim) as usize;
    let (q, k, v) = (
        ctx().upload_f32("q", &c.q).unwrap(),
        ctx().upload_f32("k", &c.k).unwrap(),
        ctx().upload_f32("v", &c.v).unwrap(),
    );
    let out = poisoned("out", q_len);
    let mut enc = ctx().encoder();
    attend(&mut enc, [&q, &k, &v, &out]);
    ctx().submit(enc);
    read(&out, q_len)
}

/// Checks one case against the CPU formula (in f64; in f32 too where its rounding allows) and
/// against attention.wgsl.
fn check_split(
    errors: &mut SplitErrors,
    s: AttentionShape,
    c: &Case,
    n: usize,
    past: usize,
    drop_key0: bool,
    what: &str,
) {
    let out = gpu_attention_split(s, c, n, past, drop_key0);
    errors.exact.check(&format!("split vs f64 formula {what}"), &out, &cpu_attention_exact(s, n, past, c, drop_key0));
    let short = past + n <= SHORT_WINDOW_KEYS;
    if short {
        let (want, _) = cpu_attention_masked(s, n, past, &c.q, &c.k, &c.v, drop_key0);
        errors.cpu.check(&format!("split vs f32 formula {what}"), &out, &want);
    }
    let one_pass = gpu_attention_one_pass(s, c, n, past, drop_key0);
    let factor = if short { 1.0 } else { 2.0 };
    errors.one_pass.check_scaled(&format!("split vs one-pass {what}"), &out, &one_pass, factor);
}

#[test]
fn split_decode_matches_cpu_and_one_pass_kernel() {
    let mut rng = Rng(41);
    let mut errors = SplitErrors::default();
    for &s in SPLIT_SHAPES {
        for &past in DECODE_PASTS {
            for drop_key0 in [false, true] {
                let plan = split_plan(s, 1, past as u32);
                let what = format!("{s:?} n=1 past={past} drop_key0={drop_key0} {plan:?}");
                let mut c = case(&mut rng, s, 1, past);
                check_split(&mut errors, s, &c, 1, past, drop_key0, &what);
                if past >= 300 {
                    plant_spikes(&mut c, s, &[past * 5 / 6]);
                    check_split(&mut errors, s, &c, 1, past, drop_key0, &format!("{what} spiked"));
                }
            }
        }
    }
    errors.report("split decode");
}

#[test]
fn split_prefill_and_cached_queries_match_cpu_and_one_pass_kernel() {
    let mut rng = Rng(42);
    let mut errors = SplitErrors::default();
    for &s in SPLIT_SHAPES {
        for &n in &[5usize, 33] {
            for &past in &[0usize, 40] {
                for drop_key0 in [false, true] {
                    let plan = split_plan(s, n as u32, past as u32);
                    let what = format!("{s:?} n={n} past={past} drop_key0={drop_key0} {plan:?}");
                    let c = case(&mut rng, s, n, past);
                    check_split(&mut errors, s, &c, n, past, drop_key0, &what);
                }
            }
        }
    }
    errors.report("split prefill");
}

#[test]
fn split_decode_reuses_one_larger_scratch_across_steps() {
    // One scratch for the whole context, larger than any step needs and never cleared: each
    // step's merge must read only the records its own partial pass wrote, though earlier steps
    // (other split counts, so other record offsets) left theirs behind.
    let mut rng = Rng(43);
    let mut worst = Worst::default();
    let s = SPLIT_SHAPES[0];
    let n = 150; // 1 to 5 splits of 32 keys as the context grows
    let mut c = case(&mut rng, s, n, 0);
    plant_spikes(&mut c, s, &[70]);
    let (prefill, _) = cpu_attention_masked(s, n, 0, &c.q, &c.k, &c.v, false);

    let (q_dim, kv_dim) = ((s.n_heads * s.head_dim) as usize, (s.n_kv_heads * s.head_dim) as usize);
    let capacity = n + SPARE_ROWS;
    let k = poisoned("k cache", capacity * kv_dim);
    let v = poisoned("v cache", capacity * kv_dim);
    let q = ctx().storage("q", (q_dim * 4) as u64).unwrap();
    let out = poisoned("out", q_dim);
    let scratch = poisoned("scratch", split_plan(s, 1, n as u32).scratch_words as usize + 1000);
    let mut splits_seen = Vec::new();
    for t in 0..n {
        let row = |x: &[f32]| bytemuck::cast_slice::<f32, u8>(&x[t * kv_dim..(t + 1) * kv_dim]).to_vec();
        ctx().queue.write_buffer(&k, (t * kv_dim * 4) as u64, &row(&c.k));
        ctx().queue.write_buffer(&v, (t * kv_dim * 4) as u64, &row(&c.v));
        ctx().queue.write_buffer(&q, 0, bytemuck::cast_slice(&c.q[t * q_dim..(t + 1) * q_dim]));
        let mut enc = ctx().encoder();
        attention_split(
            ctx(),
            &mut enc,
            s,
            Scores::standard(s.head_dim),
            AttentionIo { q: &q, k_cache: &k, v_cache: &v, out: &out, n_tokens: 1, past: t as u32 },
            false,
            &scratch,
        )
        .unwrap();
        ctx().submit(enc);
        worst.check(&format!("{s:?} step {t}"), &read(&out, q_dim), &prefill[t * q_dim..(t + 1) * q_dim]);
        splits_seen.push(split_plan(s, 1, t as u32).splits);
    }
    assert_eq!((splits_seen[0], *splits_seen.last().unwrap()), (1, 5), "the steps span 1 to 5 splits");
    // And back to one split over the 5-split records.
    ctx().queue.write_buffer(&q, 0, bytemuck::cast_slice(&c.q[..q_dim]));
    let mut enc = ctx().encoder();
    attention_split(
        ctx(),
        &mut enc,
        s,
        Scores::standard(s.head_dim),
        AttentionIo { q: &q, k_cache: &k, v_cache: &v, out: &out, n_tokens: 1, past: 0 },
        false,
        &scratch,
    )
    .unwrap();
    ctx().submit(enc);
    worst.check(&format!("{s:?} step 0 again"), &read(&out, q_dim), &prefill[..q_dim]);
    eprintln!("{}", worst.report("split decode steps vs f32 formula"));
}

#[test]
fn split_plans_cover_the_window_and_fill_a_large_gpu() {
    let default_model = SPLIT_SHAPES[0];
    for s in [default_model, SPLIT_SHAPES[3]] {
        for n in [1u32, 2, 5, 33, 64, 1000] {
            let at_zero = split_plan(s, n, 0);
            for past in [0u32, 1, 15, 16, 17, 31, 32, 33, 300, 1823, 1824, 1825, 4100, 100_000] {
                let plan = split_plan(s, n, past);
                let what = format!("{s:?} n={n} past={past}: {plan:?}");
                let (keys, splits, split_keys) = ((past + n) as u64, plan.splits as u64, plan.split_keys as u64);
                // Every key in exactly one split, and no split empty for the last query.
                assert!(splits * split_keys >= keys && (splits - 1) * split_keys < keys, "{what}");
                assert!(split_keys >= MIN_SPLIT_KEYS as u64 && split_keys % MIN_SPLIT_KEYS as u64 == 0, "{what}");
                let record_words = 4 * (1 + s.head_dim.div_ceil(4) as u64);
                assert!(plan.scratch_words >= s.n_heads as u64 * n as u64 * splits * record_words, "{what}");
                assert_eq!(plan.scratch_words, at_zero.scratch_words, "{what}: the scratch depends on past");
            }
        }
    }
    let workgroups = |past: u32| default_model.n_heads * split_plan(default_model, 1, past).splits;
    assert_eq!(split_plan(default_model, 1, 15).splits, 1, "a 16-key context is one split");
    for past in [1823, 1824, 4099, 100_000] {
        assert!(workgroups(past) >= 256, "decode after {past} keys: {} workgroups", workgroups(past));
    }
    assert_eq!(split_plan(default_model, 512, 0).splits, 1, "a long prefill has its workgroups already");
}

#[test]
fn split_shapes_are_checked() {
    let buf = ctx().upload_f32("buf", &[1.0; 64]).unwrap();
    let big = ctx().upload_f32("big", &vec![1.0; 1 << 16]).unwrap();
    let run = |s: AttentionShape, n: u32, past: u32, k: &wgpu::Buffer, scratch: &wgpu::Buffer| {
        let mut enc = ctx().encoder();
        attention_split(
            ctx(),
            &mut enc,
            s,
            Scores::standard(s.head_dim),
            AttentionIo { q: &buf, k_cache: k, v_cache: k, out: &buf, n_tokens: n, past: past },
            false,
            scratch,
        )
        .unwrap_err()
        .to_string()
    };
    let e = run(AttentionShape { n_heads: 4, n_kv_heads: 3, head_dim: 8 }, 1, 0, &buf, &big);
    assert!(e.contains("attention_split") && e.contains("multiple of n_kv_heads"), "{e}");
    let e = run(AttentionShape { n_heads: 1, n_kv_heads: 1, head_dim: 264 }, 1, 0, &buf, &big);
    assert!(e.contains("head_dim 264 must be in 1..=256"), "{e}");
    let e = run(AttentionShape { n_heads: 1, n_kv_heads: 1, head_dim: 8 }, 2, 7, &buf, &big);
    assert!(e.contains("k_cache holds 64 values, needs 72"), "{e}");
    let s = AttentionShape { n_heads: 2, n_kv_heads: 1, head_dim: 8 };
    let needed = split_plan(s, 1, 3).scratch_words;
    let small = ctx().storage("small scratch", (needed - 4) * 4).unwrap();
    let e = run(s, 1, 3, &buf, &small);
    assert!(e.contains(&format!("scratch holds {} values, needs {needed}", needed - 4)), "{e}");
}

/// Gemma's scores on every path of both kernels: a query scale that is not 1/√head_dim (Gemma
/// 27B's 1/√(width/heads)) and Gemma 2's soft cap, here low enough (1.5 on scores of a few
/// units) that it moves every output far beyond the bounds. The one-pass kernel with and without
/// captured probabilities and the split kernel, against the CPU formula, on awkward head sizes
/// (10: ragged quads; 24) after caches of 0, 40 and 300 keys.
#[test]
fn soft_capped_scaled_scores_match_cpu_on_both_kernels() {
    let mut rng = Rng(43);
    let shapes = [
        AttentionShape { n_heads: 3, n_kv_heads: 1, head_dim: 10 },
        AttentionShape { n_heads: 4, n_kv_heads: 2, head_dim: 24 },
    ];
    for s in shapes {
        let scores = Scores { scale: 1.0 / 7f32.sqrt(), softcap: Some(1.5) };
        for (n, past) in [(3usize, 0usize), (5, 40), (1, 300)] {
            let c = case(&mut rng, s, n, past);
            let what = format!("{s:?} n={n} past={past}");
            let (want_out, want_probs) = cpu_attention_scored(s, scores, n, past, (&c.q, &c.k, &c.v), false);
            let (uncapped, _) =
                cpu_attention_scored(s, Scores { softcap: None, ..scores }, n, past, (&c.q, &c.k, &c.v), false);
            let effect = relative_l2(&uncapped, &want_out);
            assert!(effect > 100.0 * ATTN_L2, "{what}: the cap changes the output by only {effect:.1e}");

            let (out, probs) = gpu_attention_scored(s, scores, &c, n, past, true);
            assert_close(&format!("one-pass out {what}"), &out, &want_out, ATTN_ABS, ATTN_REL);
            assert_close(&format!("one-pass probs {what}"), &probs, &want_probs, ATTN_ABS, ATTN_REL);
            let (out_only, _) = gpu_attention_scored(s, scores, &c, n, past, false);
            assert_eq!(out_only, out, "one-pass out without probs {what}");

            let scratch = poisoned("scratch", split_plan(s, n as u32, past as u32).scratch_words as usize);
            let split = gpu_attention_split_with(s, scores, &c, n, past, false, &scratch);
            assert_close(&format!("split out {what}"), &split, &want_out, ATTN_ABS, ATTN_REL);
        }
    }
    // A cap that is not a positive number is refused by name, not run.
    let s = AttentionShape { n_heads: 1, n_kv_heads: 1, head_dim: 8 };
    let buf = ctx().upload_f32("buf", &[0.0; 64]).unwrap();
    for softcap in [0.0, -1.0, f32::NAN] {
        let mut enc = ctx().encoder();
        let io = AttentionIo { q: &buf, k_cache: &buf, v_cache: &buf, out: &buf, n_tokens: 1, past: 0 };
        let scores = Scores { scale: 0.5, softcap: Some(softcap) };
        let e = attention_quantized(ctx(), &mut enc, s, scores, io, None, false, None).unwrap_err().to_string();
        assert!(e.contains("attention") && e.contains("out of range"), "{e}");
        let e = attention_split(ctx(), &mut enc, s, scores, io, false, &buf).unwrap_err().to_string();
        assert!(e.contains("attention_split") && e.contains("out of range"), "{e}");
    }
}
