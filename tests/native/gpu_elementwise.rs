//! Residual add, bias rows, factor rows, SwiGLU and the soft cap on the GPU against their CPU
//! formulas.
use crate::gpu_common;

use gpu_common::*;
use quantscope::gpu::kernels::elementwise;

/// Sizes around the workgroup size (256) and one large enough for several workgroups.
const SIZES: &[usize] = &[1, 7, 255, 256, 257, 1000, 70_001];

#[test]
fn add_in_place_matches_cpu() {
    let mut rng = Rng(11);
    for &n in SIZES {
        let (a, b) = (rng.vec(n, -4.0, 4.0), rng.vec(n, -4.0, 4.0));
        let (acc, delta) = (ctx().upload_f32("a", &a).unwrap(), ctx().upload_f32("b", &b).unwrap());
        let mut enc = ctx().encoder();
        elementwise::add_in_place(ctx(), &mut enc, &acc, &delta, n as u32).unwrap();
        ctx().submit(enc);
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        // One f32 add: the GPU must round exactly as the CPU does.
        assert_close(&format!("add n={n}"), &read(&acc, n), &want, 0.0, 0.0);
    }
}

#[test]
fn swiglu_matches_cpu() {
    let mut rng = Rng(12);
    for &n in SIZES {
        let (g, u) = (rng.vec(n, -8.0, 8.0), rng.vec(n, -4.0, 4.0));
        let (gate, up) = (ctx().upload_f32("g", &g).unwrap(), ctx().upload_f32("u", &u).unwrap());
        let mut enc = ctx().encoder();
        elementwise::swiglu_in_place(ctx(), &mut enc, &gate, &up, n as u32).unwrap();
        ctx().submit(enc);
        let want: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
        // exp on the GPU is not correctly rounded: a few ulp.
        assert_close(&format!("swiglu n={n}"), &read(&gate, n), &want, 1e-6, 1e-5);
    }
}

#[test]
fn short_buffers_are_a_shape_error() {
    let small = ctx().upload_f32("small", &[1.0; 4]).unwrap();
    let mut enc = ctx().encoder();
    let err = elementwise::add_in_place(ctx(), &mut enc, &small, &small, 5).unwrap_err();
    assert!(err.to_string().contains("acc holds 4 values, needs 5"), "{err}");
}

#[test]
fn add_rows_broadcasts_a_bias_row() {
    let mut rng = Rng(13);
    for (rows, row_len) in [(1usize, 7usize), (5, 192), (33, 576)] {
        let n = rows * row_len;
        let (a, b) = (rng.vec(n, -4.0, 4.0), rng.vec(row_len, -1.0, 1.0));
        let (acc, bias) = (ctx().upload_f32("a", &a).unwrap(), ctx().upload_f32("bias", &b).unwrap());
        let mut enc = ctx().encoder();
        elementwise::add_rows_in_place(ctx(), &mut enc, &acc, &bias, n as u32, row_len as u32).unwrap();
        ctx().submit(enc);
        let want: Vec<f32> = a.iter().enumerate().map(|(i, x)| x + b[i % row_len]).collect();
        assert_close(&format!("bias {rows}x{row_len}"), &read(&acc, n), &want, 0.0, 0.0);
    }
}

#[test]
fn mul_rows_scales_every_row_by_a_row_of_factors() {
    let mut rng = Rng(14);
    // A period of 1 is one factor for everything (Gemma's √width on the embeddings).
    for (rows, row_len) in [(1usize, 1usize), (70_001, 1), (5, 192), (33, 640)] {
        let n = rows * row_len;
        let (a, f) = (rng.vec(n, -4.0, 4.0), rng.vec(row_len, -30.0, 30.0));
        let (acc, factors) = (ctx().upload_f32("a", &a).unwrap(), ctx().upload_f32("factors", &f).unwrap());
        let mut enc = ctx().encoder();
        elementwise::mul_rows_in_place(ctx(), &mut enc, &acc, &factors, n as u32, row_len as u32).unwrap();
        ctx().submit(enc);
        let want: Vec<f32> = a.iter().enumerate().map(|(i, x)| x * f[i % row_len]).collect();
        // One f32 multiply: rounded exactly as on the CPU.
        assert_close(&format!("mul {rows}x{row_len}"), &read(&acc, n), &want, 0.0, 0.0);
    }
}

/// Gemma 2's final-logit soft cap against `model::config::soft_cap` (f64 inside): values from
/// well inside the cap, where it is nearly the identity, to 40 caps out, where tanh's argument is
/// clamped and the result is ±cap; NaN-free at the extremes (±3e38).
#[test]
fn soft_cap_bends_every_value_towards_the_cap() {
    use quantscope::model::config::soft_cap;
    let mut rng = Rng(15);
    for (&n, cap) in SIZES.iter().zip([30.0f32, 3.0, 0.5, 30.0, 7.0, 1.0, 30.0]) {
        let mut x = rng.vec(n, -40.0 * cap, 40.0 * cap);
        if n > 2 {
            (x[0], x[1]) = (3e38, -3e38);
        }
        let (acc, cap_buffer) = (ctx().upload_f32("x", &x).unwrap(), ctx().upload_f32("cap", &[cap]).unwrap());
        let mut enc = ctx().encoder();
        elementwise::soft_cap_in_place(ctx(), &mut enc, &acc, &cap_buffer, n as u32).unwrap();
        ctx().submit(enc);
        let want: Vec<f32> = x.iter().map(|&x| soft_cap(x, cap)).collect();
        // tanh on the GPU is not correctly rounded: a few ulp of the cap.
        assert_close(&format!("soft cap {cap} n={n}"), &read(&acc, n), &want, 4e-7 * cap, 1e-5);
    }
}
