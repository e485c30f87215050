//! Top-k of logits on the GPU against a CPU sort, with planted ties.
use crate::gpu_common;

use gpu_common::*;
use quantscope::gpu::kernels::topk::{top_k, top_k_into, TopKScratch};

fn gpu_top_k(x: &[f32], k: usize) -> (Vec<u32>, Vec<f32>) {
    let logits = ctx().upload_f32("logits", x).unwrap();
    let ids = ctx().upload_u32("ids", &vec![0xDEAD_BEEF; k]).unwrap();
    let values = poisoned("values", k);
    let mut enc = ctx().encoder();
    top_k(ctx(), &mut enc, &logits, x.len() as u32, k as u32, &ids, &values).unwrap();
    ctx().submit(enc);
    (pollster::block_on(ctx().read_u32(&ids, k, "ids")).unwrap(), read(&values, k))
}

fn check(what: &str, x: &[f32], k: usize) {
    let want = cpu_top_k(x, k);
    let (ids, values) = gpu_top_k(x, k);
    assert_eq!(ids, want, "{what}: ids");
    let want_values: Vec<f32> = want.iter().map(|&i| x[i as usize]).collect();
    // Values are copied, not computed: exact.
    assert_eq!(values, want_values, "{what}: values");
}

#[test]
fn top_k_matches_a_cpu_sort() {
    let mut rng = Rng(41);
    // 65 and 1000: one workgroup; 4097 and 49152: two stages; 151_936: Qwen2's vocabulary,
    // segments grown past the default so stage 2 stays at ≤ 64 groups.
    for &n in &[65usize, 1000, 4096, 4097, 49_152, 151_936] {
        let x = logits_with_ties(&mut rng, n);
        for &k in &[1usize, 10, 64] {
            check(&format!("n={n} k={k}"), &x, k);
        }
    }
}

#[test]
fn coarse_values_tie_everywhere() {
    // Values in 16 steps: thousands of copies of the top value, so the order is all tie-breaks.
    let mut rng = Rng(42);
    for &n in &[1000usize, 49_152] {
        let x: Vec<f32> = rng.vec(n, 0.0, 16.0).iter().map(|v| v.floor()).collect();
        for &k in &[1usize, 10, 64] {
            check(&format!("coarse n={n} k={k}"), &x, k);
        }
    }
}

#[test]
fn k_equal_to_n_and_negative_values() {
    let mut rng = Rng(43);
    let mut x = rng.vec(64, -1e6, -1.0);
    x[3] = -3.0e38;
    x[10] = x[20];
    check("k=n=64", &x, 64);
    check("n=64 k=1", &x, 1);
}

#[test]
fn shapes_are_checked() {
    let buf = ctx().upload_f32("buf", &[1.0; 100]).unwrap();
    let small = ctx().upload_f32("small", &[1.0; 4]).unwrap();
    let mut enc = ctx().encoder();
    let e = top_k(ctx(), &mut enc, &buf, 100, 0, &buf, &buf).unwrap_err().to_string();
    assert!(e.contains("k must be in 1..=64, got 0"), "{e}");
    let e = top_k(ctx(), &mut enc, &buf, 100, 65, &buf, &buf).unwrap_err().to_string();
    assert!(e.contains("k must be in 1..=64, got 65"), "{e}");
    let e = top_k(ctx(), &mut enc, &buf, 5, 10, &buf, &buf).unwrap_err().to_string();
    assert!(e.contains("k = 10 is more than the 5 values"), "{e}");
    let e = top_k(ctx(), &mut enc, &buf, 101, 10, &buf, &buf).unwrap_err().to_string();
    assert!(e.contains("logits holds 100 values, needs 101"), "{e}");
    let e = top_k(ctx(), &mut enc, &buf, 100, 10, &small, &buf).unwrap_err().to_string();
    assert!(e.contains("ids holds 4 values, needs 10"), "{e}");
}

#[test]
fn greedy_sampling_of_the_top_k_is_the_argmax() {
    use quantscope::model::sampling::{Sampler, SamplingParams};
    let mut rng = Rng(44);
    let x = logits_with_ties(&mut rng, 49_152);
    let (ids, values) = gpu_top_k(&x, 64);
    let mut greedy = Sampler::new(SamplingParams { temperature: 0.0, top_p: 1.0, seed: 1 });
    // The first index holding the maximum.
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let argmax = x.iter().position(|&v| v == max).unwrap() as u32;
    assert_eq!(greedy.pick(&ids, &values), argmax);
    // Sampling at a temperature stays among the candidates and is reproducible.
    let params = SamplingParams { temperature: 0.8, top_p: 0.95, seed: 7 };
    let (mut a, mut b) = (Sampler::new(params), Sampler::new(params));
    for _ in 0..50 {
        let pick = a.pick(&ids, &values);
        assert!(ids.contains(&pick));
        assert_eq!(pick, b.pick(&ids, &values));
    }
}

/// One scratch serves call after call (the forward's greedy decode) for its own n and k only.
#[test]
fn a_kept_scratch_is_reused_and_checked() {
    let n = 49_152; // the default model's vocabulary: two stages
    let scratch = TopKScratch::new(ctx(), n as u32, 4).unwrap();
    for seed in 0..3u32 {
        let x: Vec<f32> = (0..n as u32).map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 100_003) as f32).collect();
        let logits = ctx().upload_f32("logits", &x).unwrap();
        let ids = ctx().upload_u32("ids", &[0xDEAD_BEEF; 4]).unwrap();
        let values = poisoned("values", 4);
        let mut enc = ctx().encoder();
        top_k_into(ctx(), &mut enc, &logits, n as u32, 4, &ids, &values, &scratch).unwrap();
        ctx().submit(enc);
        assert_eq!(pollster::block_on(ctx().read_u32(&ids, 4, "ids")).unwrap(), cpu_top_k(&x, 4), "seed {seed}");
    }
    let buf = ctx().upload_f32("buf", &[1.0; 100]).unwrap();
    let mut enc = ctx().encoder();
    let e = top_k_into(ctx(), &mut enc, &buf, 100, 4, &buf, &buf, &scratch).unwrap_err().to_string();
    assert!(e.contains("scratch made for 49152 values and k = 4, used for 100 and 4"), "{e}");
}
