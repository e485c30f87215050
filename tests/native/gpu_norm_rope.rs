//! RMS norm, LayerNorm and RoPE on the GPU against CPU formulas that mirror `model::reference`.
use crate::gpu_common;

use gpu_common::*;
use quantscope::gpu::kernels::{norm, rope};
use quantscope::model::RopeLayout;

#[test]
fn rms_norm_matches_cpu() {
    let mut rng = Rng(21);
    for &d in &[576usize, 100, 7, 2048] {
        for &n in &[1usize, 5, 33] {
            let x = rng.vec(n * d, -3.0, 3.0);
            let gain = rng.vec(d, 0.2, 2.0);
            let eps = 1e-5;
            let (xb, gb) = (ctx().upload_f32("x", &x).unwrap(), ctx().upload_f32("gain", &gain).unwrap());
            let out = poisoned("out", n * d);
            let mut enc = ctx().encoder();
            norm::rms_norm(ctx(), &mut enc, &xb, &gb, &out, n as u32, d as u32, eps).unwrap();
            ctx().submit(enc);
            // The sum of squares is reduced in another order, and GPU sqrt/division are within a
            // few ulp, not correctly rounded: a few 1e-7 relative, so 2e-6 leaves margin.
            assert_close(
                &format!("rms_norm d={d} n={n}"),
                &read(&out, n * d),
                &cpu_rms_norm(&x, &gain, eps),
                1e-6,
                2e-6,
            );
        }
    }
}

#[test]
fn rms_norm_checks_shapes() {
    let small = ctx().upload_f32("small", &[1.0; 8]).unwrap();
    let mut enc = ctx().encoder();
    let err = norm::rms_norm(ctx(), &mut enc, &small, &small, &small, 3, 4, 1e-5).unwrap_err();
    assert!(err.to_string().contains("x holds 8 values, needs 12"), "{err}");
    let err = norm::rms_norm(ctx(), &mut enc, &small, &small, &small, 1, 0, 1e-5).unwrap_err();
    assert!(err.to_string().contains("d is 0"), "{err}");
}

/// Rows of awkward lengths (one below the workgroup, several workgroups and a tail), offset from
/// zero so that centring matters, normalized from a first row past 0 (the output head's case).
#[test]
fn layer_norm_matches_cpu() {
    let mut rng = Rng(23);
    for &d in &[48usize, 100, 7, 2048, 769] {
        for &(n, first_row) in &[(1usize, 0usize), (5, 2), (33, 0)] {
            let rows = first_row + n;
            // Each row around its own offset of up to ±20, spread ±3.
            let x: Vec<f32> = (0..rows)
                .flat_map(|_| {
                    let offset = rng.uniform(-20.0, 20.0);
                    rng.vec(d, offset - 3.0, offset + 3.0)
                })
                .collect();
            let gain = rng.vec(d, 0.2, 2.0);
            let bias = rng.vec(d, -1.0, 1.0);
            let eps = 1e-5;
            let upload = |name, v: &[f32]| ctx().upload_f32(name, v).unwrap();
            let (xb, gb, bb) = (upload("x", &x), upload("gain", &gain), upload("bias", &bias));
            let out = poisoned("out", n * d);
            let mut enc = ctx().encoder();
            norm::layer_norm_rows(ctx(), &mut enc, &xb, first_row as u32, &gb, &bb, &out, n as u32, d as u32, eps)
                .unwrap();
            ctx().submit(enc);
            // f32 sums of up to 2048 values around 20 in another order than f64: the mean is off
            // by ~1e-6 relative to the offset, i.e. ~2e-5 absolute, divided by a spread of ~1.7:
            // ~1e-5 of the normalized value; 3e-5 absolute leaves margin, and dropping the
            // centring or the bias is off by whole units.
            assert_close(
                &format!("layer_norm d={d} n={n} first_row={first_row}"),
                &read(&out, n * d),
                &cpu_layer_norm(&x[first_row * d..], &gain, &bias, eps),
                3e-5,
                2e-6,
            );
        }
    }
}

#[test]
fn layer_norm_checks_shapes() {
    let small = ctx().upload_f32("small", &[1.0; 8]).unwrap();
    let mut enc = ctx().encoder();
    let short = ctx().upload_f32("short", &[1.0; 3]).unwrap();
    let err = norm::layer_norm_rows(ctx(), &mut enc, &small, 0, &small, &short, &small, 1, 4, 1e-5).unwrap_err();
    assert!(err.to_string().contains("bias holds 3 values, needs 4"), "{err}");
    let err = norm::layer_norm_rows(ctx(), &mut enc, &small, 1, &small, &small, &small, 2, 4, 1e-5).unwrap_err();
    assert!(err.to_string().contains("x holds 8 values, needs 12"), "{err}");
}

/// Rotation errors come from the angle: the kernel reduces it exactly mod one turn (error
/// ~2e-7 turns ≈ 1e-6 rad), then GPU sin/cos add a few ulp. With |x| ≤ 4 a rotated value is off
/// by ≲ 8·1.5e-6; 2e-5 absolute leaves margin yet is ~50× below what a plain f32 angle gives
/// at position 30 000 (~1e-3).
const ROPE_ABS: f32 = 2e-5;

#[test]
fn rope_matches_cpu() {
    let mut rng = Rng(22);
    let base = 10_000.0;
    for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
        for &(n_heads, hd) in &[(9usize, 64usize), (4, 8), (3, 128)] {
            for &n in &[1usize, 5, 33] {
                for &offset in &[0usize, 40, 30_000, 1_000_000] {
                    let x = rng.vec(n * n_heads * hd, -4.0, 4.0);
                    let buf = ctx().upload_f32("x", &x).unwrap();
                    let mut enc = ctx().encoder();
                    rope::rope(ctx(), &mut enc, &buf, n as u32, n_heads as u32, hd as u32, offset as u32, base, layout)
                        .unwrap();
                    ctx().submit(enc);
                    let mut want = x.clone();
                    cpu_rope(&mut want, n_heads, hd, offset, base, layout);
                    let what = format!("rope {layout:?} heads={n_heads} hd={hd} n={n} offset={offset}");
                    assert_close(&what, &read(&buf, x.len()), &want, ROPE_ABS, 0.0);
                }
            }
        }
    }
}

#[test]
fn rope_with_a_large_base_matches_cpu() {
    // Qwen2's base 1e6: frequencies down to 1e-6 rad per position.
    let mut rng = Rng(23);
    let (n, n_heads, hd, offset) = (17usize, 2usize, 64usize, 12_345usize);
    let x = rng.vec(n * n_heads * hd, -4.0, 4.0);
    let buf = ctx().upload_f32("x", &x).unwrap();
    let mut enc = ctx().encoder();
    rope::rope(ctx(), &mut enc, &buf, n as u32, n_heads as u32, hd as u32, offset as u32, 1e6, RopeLayout::HalfSplit)
        .unwrap();
    ctx().submit(enc);
    let mut want = x.clone();
    cpu_rope(&mut want, n_heads, hd, offset, 1e6, RopeLayout::HalfSplit);
    assert_close("rope base 1e6", &read(&buf, x.len()), &want, ROPE_ABS, 0.0);
}

#[test]
fn rope_checks_shapes() {
    let small = ctx().upload_f32("small", &[1.0; 8]).unwrap();
    let mut enc = ctx().encoder();
    let err = rope::rope(ctx(), &mut enc, &small, 1, 1, 7, 0, 1e4, RopeLayout::Interleaved).unwrap_err();
    assert!(err.to_string().contains("head_dim must be even"), "{err}");
    let err = rope::rope(ctx(), &mut enc, &small, 2, 1, 8, 0, 1e4, RopeLayout::Interleaved).unwrap_err();
    assert!(err.to_string().contains("x holds 8 values, needs 16"), "{err}");
    let err = rope::rope(ctx(), &mut enc, &small, 1, 1, 8, 1 << 20, 1e4, RopeLayout::Interleaved).unwrap_err();
    assert!(err.to_string().contains("supported maximum"), "{err}");
}

/// The fused RoPE + cache append against the CPU rotation: queries rotated in place, keys
/// rotated into cache rows past.., values copied there, the cache's other rows untouched; the
/// new keys and values in buffers of their own or after the queries (the stacked projection).
#[test]
fn rope_and_append_matches_cpu_and_leaves_other_cache_rows() {
    use rope::{rope_and_append, NewKeysValues, RopeTable};
    let mut rng = Rng(24);
    let base = 10_000.0;
    for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
        for &(n_heads, n_kv_heads, hd) in &[(9usize, 3usize, 64usize), (4, 4, 8), (6, 2, 34)] {
            for &(n, past) in &[(1usize, 0usize), (1, 37), (5, 11)] {
                for stacked in [false, true] {
                    let (q_dim, kv_dim, capacity) = (n_heads * hd, n_kv_heads * hd, 64usize);
                    let (q, k, v) = (rng.vec(n * q_dim, -4.0, 4.0), rng.vec(n * kv_dim, -4.0, 4.0), rng.vec(n * kv_dim, -4.0, 4.0));
                    let cache_before = rng.vec(capacity * kv_dim, -1.0, 1.0);
                    let (k_cache, v_cache) =
                        (ctx().upload_f32("k cache", &cache_before).unwrap(), ctx().upload_f32("v cache", &cache_before).unwrap());
                    let table = RopeTable::new(ctx(), hd as u32, base, None, capacity as u32).unwrap();
                    let (qb, kb, vb);
                    let new = if stacked {
                        qb = ctx().upload_f32("q|k|v", &[q.clone(), k.clone(), v.clone()].concat()).unwrap();
                        NewKeysValues::AfterQueries
                    } else {
                        qb = ctx().upload_f32("q", &q).unwrap();
                        (kb, vb) = (ctx().upload_f32("k", &k).unwrap(), ctx().upload_f32("v", &v).unwrap());
                        NewKeysValues::Buffers(&kb, &vb)
                    };
                    let mut enc = ctx().encoder();
                    let heads = (n_heads as u32, n_kv_heads as u32);
                    rope_and_append(ctx(), &mut enc, &qb, new, (&k_cache, &v_cache), n as u32, heads, past as u32, &table, layout)
                        .unwrap();
                    ctx().submit(enc);
                    let what = format!("{layout:?} heads={n_heads}/{n_kv_heads} hd={hd} n={n} past={past} stacked={stacked}");
                    let (mut want_q, mut want_k) = (q.clone(), k.clone());
                    cpu_rope(&mut want_q, n_heads, hd, past, base, layout);
                    cpu_rope(&mut want_k, n_kv_heads, hd, past, base, layout);
                    assert_close(&format!("{what}: q"), &read(&qb, q.len()), &want_q, ROPE_ABS, 0.0);
                    let mut want_k_cache = cache_before.clone();
                    want_k_cache[past * kv_dim..(past + n) * kv_dim].copy_from_slice(&want_k);
                    assert_close(&format!("{what}: k cache"), &read(&k_cache, cache_before.len()), &want_k_cache, ROPE_ABS, 0.0);
                    let mut want_v_cache = cache_before.clone();
                    want_v_cache[past * kv_dim..(past + n) * kv_dim].copy_from_slice(&v);
                    assert_eq!(read(&v_cache, cache_before.len()), want_v_cache, "{what}: v cache, copied exactly");
                }
            }
        }
    }
}
