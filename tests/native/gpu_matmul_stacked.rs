//! The stacked GEMV (`matmul_stacked`: q/k/v concatenated, gate/up with SwiGLU, in one dispatch)
//! against (a) separate `matmul_variant` calls with the same options and variant, and (b) the
//! CPU formulas (rows dequantized on the CPU, products summed in f64, kernel_reference's
//! cpu_rms_norm).
//!
//! (a) is bit-for-bit: each output adds the same terms (same x staging, decode and per-part dot
//! products) in the same order (KT and each thread's parts follow from n_in alone, reduce_rows
//! sums a row's KT partials in a fixed order) and the epilogue is the same expression. The one
//! exception is the SwiGLU pair on short rows where the single GEMV takes 16 threads along k
//! (n_in ≤ 160, and 288) and the pair 32 (its slots hold two rows each): there only (b) applies.
//! With subgroups, a row's partials are summed per subgroup, then over subgroups in the order
//! they arrive; lavapipe runs them in one order, so it is bit-for-bit there too.
//!
//! (b) per element, S = Σ_k |w_k · x_k| (x normed where the option is on): f32 variants
//! 1e-5 · S (MATMUL_TERM_REL) plus 4 ulp of the value for the bias add; f16 variant
//! 9 · 2⁻¹¹ · Σ_k |x_k| · B_k + 2⁻²³ per term (tests/native/gpu_matmul.rs explains both). SwiGLU pair:
//! |silu(g)| · bound(up) + 1.1 · |up| · bound(gate) (silu' ≤ 1.1) + (7 + 2|g|) ulp for silu's exp
//! and the product.
use crate::gpu_common;

use gpu_common::matmul_weights::{codebook_weight, cpu_row, ggml_weight, RowProduct, TestWeight};
use gpu_common::*;
use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::kernels::matmul::{
    matmul_stacked, matmul_stacked_variant, matmul_variant, MatmulOptions, MatmulOutput, MatmulVariant, StackedOptions,
    StackedOutput,
};
use quantscope::gpu::weights::GpuWeight;
use quantscope::model::config::GateActivation;

const EPS: f32 = 1e-5;

#[derive(Clone, Copy, Debug)]
enum Fmt {
    Ggml(GgmlType),
    /// tests/native/gpu_matmul.rs's: 3-bit codes, a table per row, scales and offsets per 24 columns.
    Codebook,
}

fn make(rng: &mut Rng, fmt: Fmt, n_in: usize, n_out: usize) -> TestWeight {
    match fmt {
        Fmt::Ggml(dtype) => ggml_weight(rng, dtype, n_in, n_out),
        Fmt::Codebook => codebook_weight(rng, n_in, n_out),
    }
}

/// Runs one stacked call and the separate calls it replaces; checks (a) and (b). Returns whether
/// the two were bit-identical.
fn check(
    what: &str,
    ws: &[&TestWeight],
    output: StackedOutput,
    rms: bool,
    bias: bool,
    variant: MatmulVariant,
    rng: &mut Rng,
) -> bool {
    let n_in = ws[0].n_in;
    let activation = match output {
        StackedOutput::GatedPair(activation) => Some(activation),
        StackedOutput::Concatenate => None,
    };
    let pair = activation.is_some();
    let total: usize = ws.iter().map(|w| w.n_out).sum();
    let n_y = if pair { ws[0].n_out } else { total };
    let x = rng.vec(n_in, if rms { -3.0 } else { -1.0 }, if rms { 3.0 } else { 1.0 });
    let gain = rms.then(|| rng.vec(n_in, 0.5, 1.5));
    let bias_v = bias.then(|| rng.vec(total, -1.0, 1.0));
    let xb = ctx().upload_f32("x", &x).unwrap();
    let gain_b = gain.as_ref().map(|g| ctx().upload_f32("gain", g).unwrap());
    let bias_b = bias_v.as_ref().map(|b| ctx().upload_f32("bias", b).unwrap());
    let tail = 3;
    let yb = poisoned("y", n_y + tail);
    let options = StackedOptions { rms_norm: gain_b.as_ref().map(|g| (g, EPS)), bias: bias_b.as_ref(), output };
    let gpu: Vec<&GpuWeight> = ws.iter().map(|w| &w.gpu).collect();
    let mut enc = ctx().encoder();
    // Counted in this recording: the context's counter also sees the tests running beside it.
    let before = enc.stats().dispatches;
    matmul_stacked_variant(ctx(), &mut enc, &gpu, &xb, &yb, &options, variant).unwrap();
    assert_eq!(enc.stats().dispatches - before, 1, "{what}: one dispatch");

    // The separate calls, each with its slice of the bias.
    let mut offset = 0;
    let mut separate = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        let b = bias_v.as_ref().map(|b| ctx().upload_f32("bias part", &b[offset..offset + w.n_out]).unwrap());
        offset += w.n_out;
        let out = poisoned("separate y", w.n_out);
        let gate = separate.first();
        let output = match (activation, i, gate) {
            (Some(activation), 1, Some(gate)) => MatmulOutput::Gated(gate, activation),
            _ => MatmulOutput::Store,
        };
        let opts = MatmulOptions { rms_norm: gain_b.as_ref().map(|g| (g, EPS)), bias: b.as_ref(), output };
        matmul_variant(ctx(), &mut enc, &w.gpu, &xb, &out, 1, &opts, variant).unwrap();
        separate.push(out);
    }
    ctx().submit(enc);
    let got = read(&yb, n_y + tail);
    assert!(got[n_y..].iter().all(|v| v.is_nan()), "{what}: wrote past the output");
    let want: Vec<f32> = if pair {
        read(&separate[1], n_y)
    } else {
        ws.iter().zip(&separate).flat_map(|(w, b)| read(b, w.n_out)).collect()
    };
    let identical = got[..n_y].iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());

    // (b): the CPU.
    let xn = match &gain {
        Some(g) => cpu_rms_norm(&x, g, EPS),
        None => x.clone(),
    };
    let f16 = variant == MatmulVariant::F16;
    let ulp = f32::EPSILON as f64;
    let biased = |i: usize, w: usize, o: usize| -> (f64, f64) {
        let RowProduct { sum: mut v, budget: b, .. } = cpu_row(ws[w], &xn, o, f16);
        let mut rounding = 0.0;
        if let Some(bias) = &bias_v {
            v += bias[i] as f64;
            rounding = 4.0 * ulp * v.abs().max(bias[i].abs() as f64);
        }
        (v, b + rounding)
    };
    let mut bad = Vec::new();
    for (i, &g) in got[..n_y].iter().enumerate() {
        let (want, budget) = if let Some(activation) = activation {
            let ((gate, bg), (u, bu)) = (biased(i, 0, i), biased(ws[0].n_out + i, 1, i));
            let (act, act_err) = cpu_gate(gate, activation);
            let want = act * u;
            // Both activations' slopes stay below 1.2.
            (want, act.abs() * bu + 1.2 * u.abs() * bg + act_err * u.abs() + 4.0 * ulp * want.abs())
        } else {
            let (mut w, mut o) = (0, i);
            while o >= ws[w].n_out {
                o -= ws[w].n_out;
                w += 1;
            }
            let (v, b) = biased(i, w, o);
            (v, b + 4.0 * ulp * v.abs())
        };
        let err = (g as f64 - want).abs();
        if err.is_nan() || err > budget {
            bad.push(format!("[{i}] gpu {g} cpu {want} (budget {budget:e})"));
        }
    }
    assert!(bad.is_empty(), "{what}: {} mismatches (first 8): {}", bad.len(), bad[..bad.len().min(8)].join(", "));
    identical
}

/// Every variant × {concatenate of `fmts` (n_out 7, 64, 200), SwiGLU and GeGLU pairs of the
/// third and another (n_out 200)} × {plain, RMSNorm and bias}; asserts (a) bit-for-bit unless `pair_exact` is
/// false (short rows, see the module docs) and (b).
fn check_stack(name: &str, fmts: [Fmt; 3], n_in: usize, pair_exact: bool, seed: u64) -> usize {
    let mut rng = Rng(seed);
    let n_outs = [7, 64, 200];
    let ws: Vec<TestWeight> = fmts.iter().zip(n_outs).map(|(&f, n)| make(&mut rng, f, n_in, n)).collect();
    let up = make(&mut rng, fmts[1], n_in, 200);
    let mut cases = 0;
    for variant in MatmulVariant::available(ctx().features()) {
        // Plain and both options: each combination compiles its own pipelines on every format,
        // and the prologue and the epilogue are independent code (gpu_matmul tests each alone).
        for (rms, bias) in [(false, false), (true, true)] {
            for output in [
                StackedOutput::Concatenate,
                StackedOutput::GatedPair(GateActivation::Silu),
                StackedOutput::GatedPair(GateActivation::GeluTanh),
            ] {
                // The activation is the epilogue's alone: GeGLU once per format and variant.
                if output == StackedOutput::GatedPair(GateActivation::GeluTanh) && !(rms && bias) {
                    continue;
                }
                let stack: Vec<&TestWeight> = match output {
                    StackedOutput::Concatenate => ws.iter().collect(),
                    StackedOutput::GatedPair(_) => vec![&ws[2], &up],
                };
                let what = format!("{name} n_in={n_in} {} {output:?} rms={rms} bias={bias}", variant.name());
                let identical = check(&what, &stack, output, rms, bias, variant, &mut rng);
                if output == StackedOutput::Concatenate || pair_exact {
                    assert!(identical, "{what}: differs from the separate matmuls");
                }
                cases += 1;
            }
        }
    }
    println!("{name}: {cases} cases");
    cases
}

const Q4_0: Fmt = Fmt::Ggml(GgmlType::Q4_0);
const Q4_1: Fmt = Fmt::Ggml(GgmlType::Q4_1);
const Q8_0: Fmt = Fmt::Ggml(GgmlType::Q8_0);
const Q4_K: Fmt = Fmt::Ggml(GgmlType::Q4_K);
const Q6_K: Fmt = Fmt::Ggml(GgmlType::Q6_K);
const F32: Fmt = Fmt::Ggml(GgmlType::F32);
const F16: Fmt = Fmt::Ggml(GgmlType::F16);
const CB: Fmt = Fmt::Codebook;

#[test]
fn each_format_alone() {
    check_stack("Q4_0", [Q4_0; 3], 576, true, 1);
    check_stack("Q4_1", [Q4_1; 3], 992, true, 2);
    // 96 values = 3 chunks: the pair takes 32 threads along k where the single GEMV takes 16.
    check_stack("Q8_0", [Q8_0; 3], 96, false, 3);
    check_stack("Q4_K", [Q4_K; 3], 768, true, 4);
    check_stack("Q6_K", [Q6_K; 3], 256, true, 5);
    check_stack("F32", [F32; 3], 1000, true, 6);
    // 100 values = 4 chunks: the pair takes 32 threads along k where the single GEMV takes 16.
    check_stack("F16", [F16; 3], 100, false, 7);
    check_stack("codebook", [CB; 3], 576, true, 8);
}

#[test]
fn mixed_formats_in_one_call() {
    // Q4_0 and Q4_1 put a part's values at quads (p, p + 4), the others at (2p, 2p + 1).
    check_stack("Q4_0+Q6_K+codebook", [Q4_0, Q6_K, CB], 768, true, 11);
    check_stack("Q8_0+Q4_1+Q4_K", [Q8_0, Q4_1, Q4_K], 512, true, 12);
    check_stack("codebook+F16+F32", [CB, F16, F32], 1000, true, 13);
    check_stack("F32+codebook+Q4_0", [F32, CB, Q4_0], 576, true, 14);
}

/// One and two weights concatenated; long rows (several x tiles); the default model's shapes.
#[test]
fn counts_long_rows_and_model_shapes() {
    let mut rng = Rng(21);
    let long = [make(&mut rng, Q4_0, 6176, 70), make(&mut rng, Q8_0, 6176, 33)];
    let qkv = [make(&mut rng, Q4_1, 576, 576), make(&mut rng, Q4_1, 576, 192), make(&mut rng, Q4_1, 576, 192)];
    let gate_up = [make(&mut rng, Q4_1, 576, 1536), make(&mut rng, Q4_1, 576, 1536)];
    for variant in MatmulVariant::available(ctx().features()) {
        let v = variant.name();
        for (what, stack, output) in [
            ("one weight", vec![&long[0]], StackedOutput::Concatenate),
            ("two long", vec![&long[0], &long[1]], StackedOutput::Concatenate),
            ("pair long", vec![&long[1], &long[1]], StackedOutput::GatedPair(GateActivation::Silu)),
            ("q/k/v", qkv.iter().collect(), StackedOutput::Concatenate),
            ("gate/up", gate_up.iter().collect(), StackedOutput::GatedPair(GateActivation::GeluTanh)),
        ] {
            let what = format!("{what} {v}");
            assert!(check(&what, &stack, output, true, false, variant, &mut rng), "{what}: differs from separate");
        }
    }
}

#[test]
fn shapes_are_checked() {
    let mut rng = Rng(31);
    let a = make(&mut rng, Q8_0, 64, 3);
    let b = make(&mut rng, Q8_0, 64, 5);
    let c = make(&mut rng, Q4_0, 96, 3);
    let x = ctx().upload_f32("x", &[0.5; 64]).unwrap();
    let y = ctx().upload_f32("y", &[0.0; 8]).unwrap();
    let short = ctx().upload_f32("short", &[1.0; 2]).unwrap();
    let run = |ws: &[&TestWeight], y: &wgpu::Buffer, options: StackedOptions| {
        let ws: Vec<&GpuWeight> = ws.iter().map(|w| &w.gpu).collect();
        let mut enc = ctx().encoder();
        matmul_stacked(ctx(), &mut enc, &ws, &x, y, &options).unwrap_err().to_string()
    };
    let concat = StackedOptions::default();
    let pair = StackedOptions { output: StackedOutput::GatedPair(GateActivation::Silu), ..Default::default() };
    let err = run(&[], &y, concat);
    assert!(err.contains("takes 1 to 3 weights, got 0"), "{err}");
    let err = run(&[&a, &a, &b, &b], &y, concat);
    assert!(err.contains("takes 1 to 3 weights, got 4"), "{err}");
    let err = run(&[&a, &a, &a], &y, pair);
    assert!(err.contains("a SwiGLU pair takes 2 weights, got 3"), "{err}");
    let err = run(&[&a, &c], &y, concat);
    assert!(err.contains("weights differ in n_in: random.Q8_0.64x3 has 64, random.Q4_0.96x3 has 96"), "{err}");
    let err = run(&[&a, &b], &y, pair);
    assert!(err.contains("a SwiGLU pair needs one n_out: random.Q8_0.64x3 has 3, random.Q8_0.64x5 has 5"), "{err}");
    let err = run(&[&a, &b, &b], &y, concat);
    assert!(err.contains("y holds 8 values, needs the outputs of random.Q8_0.64x3, random.Q8_0.64x5"), "{err}");
    assert!(err.contains("= 13"), "{err}");
    let err = run(&[&c], &y, concat);
    assert!(err.contains("x holds 64 values, needs n_in 96 of random.Q4_0.96x3 = 96"), "{err}");
    let err = run(&[&a, &b], &y, StackedOptions { rms_norm: Some((&short, EPS)), ..concat });
    assert!(err.contains("the RMSNorm gain holds 2 values, needs n_in 64"), "{err}");
    let err = run(&[&a, &a], &y, StackedOptions { bias: Some(&short), ..pair });
    assert!(err.contains("the bias holds 2 values, needs Σ n_out of random.Q8_0.64x3, random.Q8_0.64x3 = 6"), "{err}");
    for variant in MatmulVariant::ALL {
        if !variant.is_available(ctx().features()) {
            let mut enc = ctx().encoder();
            let err = matmul_stacked_variant(ctx(), &mut enc, &[&a.gpu], &x, &y, &concat, variant).unwrap_err();
            assert!(err.to_string().contains(variant.name()), "{err}");
        }
    }
}
