//! Matmul (GEMV for one token, GEMM for several) over weights in their stored formats, against
//! the CPU: rows dequantized by `quantscope::formats::ggml`, dot products accumulated in f64.
//!
//! Tolerances (f32 accumulation on the GPU, in a different order than the reference):
//! - per element, |gpu − cpu| ≤ 1e-5 · Σ_k |w_k · x_k| (the scale of the dot product's terms, so
//!   a dot product whose terms cancel is not held to an impossible relative bound);
//! - per token, the relative L2 error of the output vector ≤ 1e-5 where it has ≥ 64 elements
//!   (on a handful of outputs one cancelling dot product dominates the norm, so the relative L2
//!   says nothing more than the elementwise bound there).
use crate::gpu_common;

use gpu_common::*;
use quantscope::formats::ggml::GgmlType;
use quantscope::gpu::kernels::matmul::matmul;
use quantscope::gpu::weights::{GpuWeight, WeightFormat};
use quantscope::model::weights::{WeightTensor, Weights};

// The bounds are kernel_reference's MATMUL_TERM_REL, MATMUL_REL_L2 and REL_L2_MIN_LEN, checked by
// its check_matmul_output (shared with the browser suite).
const TOKENS: &[u32] = &[1, 2, 5, 17];

/// Runs the GPU matmul (output poisoned with NaN, plus a poisoned tail that must stay untouched)
/// and checks it against the CPU; returns the worst relative L2 over tokens.
fn check(what: &str, weights: &Weights, t: &WeightTensor, gpu_w: &GpuWeight, x: &[f32], n_tokens: usize) -> f64 {
    let (n_in, n_out) = (t.row_len(), t.n_rows());
    assert_eq!(x.len(), n_tokens * n_in);
    let xb = ctx().upload_f32("x", x).unwrap();
    let tail = 3;
    let yb = poisoned("y", n_tokens * n_out + tail);
    let mut enc = ctx().encoder();
    matmul(ctx(), &mut enc, gpu_w, &xb, &yb, n_tokens as u32).unwrap();
    ctx().submit(enc);
    let got = read(&yb, n_tokens * n_out + tail);
    check_matmul_output(what, weights, t, x, n_tokens, &got)
}

/// Random weights of `dtype` in awkward shapes × every token count.
fn check_format(dtype: GgmlType, n_ins: [usize; 2], seed: u64) {
    let mut rng = Rng(seed);
    let mut worst = 0.0f64;
    for (i, &n_out) in [1usize, 7, 67, 300].iter().enumerate() {
        let n_in = n_ins[i % 2];
        let (weights, t) = random_weights(&mut rng, dtype, n_in, n_out);
        let gpu_w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
        assert_eq!((gpu_w.n_in, gpu_w.n_out, gpu_w.format), (n_in as u32, n_out as u32, WeightFormat::Ggml(dtype)));
        for &n_tokens in TOKENS {
            let x = rng.vec(n_tokens as usize * n_in, -1.0, 1.0);
            let what = format!("{} n_in={n_in} n_out={n_out} n_tokens={n_tokens}", dtype.name());
            worst = worst.max(check(&what, &weights, &t, &gpu_w, &x, n_tokens as usize));
        }
    }
    println!("{}: worst relative L2 {worst:.2e}", dtype.name());
}

#[test]
fn f32_matches_cpu() {
    // 40 and 5 are not multiples of 32: rows are zero-padded on upload.
    check_format(GgmlType::F32, [160, 40], 1);
    check_format(GgmlType::F32, [5, 576], 2);
}

#[test]
fn f16_matches_cpu() {
    check_format(GgmlType::F16, [160, 40], 3);
    check_format(GgmlType::F16, [5, 576], 4);
}

#[test]
fn bf16_matches_cpu() {
    check_format(GgmlType::BF16, [160, 40], 19);
    check_format(GgmlType::BF16, [5, 576], 20);
}

#[test]
fn q8_0_matches_cpu() {
    check_format(GgmlType::Q8_0, [160, 576], 5);
}

#[test]
fn q4_0_matches_cpu() {
    check_format(GgmlType::Q4_0, [160, 32], 6);
}

#[test]
fn q4_1_matches_cpu() {
    check_format(GgmlType::Q4_1, [160, 576], 7);
}

#[test]
fn q4_k_matches_cpu() {
    check_format(GgmlType::Q4_K, [512, 256], 8);
}

#[test]
fn q6_k_matches_cpu() {
    check_format(GgmlType::Q6_K, [512, 256], 9);
}

#[test]
fn unsupported_format_is_a_shape_error() {
    // Q5_K (176 bytes per 256 values) has no GPU decoder.
    let t = WeightTensor { name: "w.q5_k".into(), dtype: GgmlType::Q5_K, dims: vec![256, 2], start: 0, len: 352 };
    let weights = Weights::new(vec![0; 352], "test", vec![t.clone()]).unwrap();
    let err = GpuWeight::upload(ctx(), &weights, &t).expect_err("Q5_K is not supported");
    assert_eq!(err.to_string(), "kernel matmul: unsupported weight format Q5_K of tensor w.q5_k");
}

#[test]
fn short_buffers_are_a_shape_error() {
    let mut rng = Rng(10);
    let (weights, t) = random_weights(&mut rng, GgmlType::Q8_0, 64, 3);
    let w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
    let x = ctx().upload_f32("x", &[0.0; 127]).unwrap();
    let y = ctx().upload_f32("y", &[0.0; 6]).unwrap();
    let mut enc = ctx().encoder();
    let err = matmul(ctx(), &mut enc, &w, &x, &y, 2).unwrap_err();
    assert!(err.to_string().contains("x holds 127 values, needs n_tokens 2 × n_in 64 = 128"), "{err}");
    let x = ctx().upload_f32("x", &[0.0; 192]).unwrap();
    let err = matmul(ctx(), &mut enc, &w, &x, &y, 3).unwrap_err();
    assert!(err.to_string().contains("y holds 6 values, needs n_tokens 3 × n_out 3 = 9"), "{err}");
}

#[test]
fn gpu_bytes_count_the_repacked_blocks() {
    let mut rng = Rng(11);
    // Q8_0 keeps its 34 bytes per block (32 quants + 2 of scale), Q6_K its 210.
    for (dtype, n_in, bytes) in [(GgmlType::Q8_0, 160, 34 * 5 * 3), (GgmlType::Q6_K, 512, 210 * 2 * 3)] {
        let (weights, t) = random_weights(&mut rng, dtype, n_in, 3);
        let w = GpuWeight::upload(ctx(), &weights, &t).unwrap();
        assert_eq!(w.gpu_bytes(), (bytes as u64).next_multiple_of(4), "{}", dtype.name());
    }
}

fn check_model_tensor(name: &str, dtype: GgmlType, tokens: &[usize], seed: u64) {
    let model = default_model();
    let t = model.weights.get(name).unwrap_or_else(|| panic!("{name} is missing"));
    assert_eq!(t.dtype, dtype, "{name}");
    let w = GpuWeight::upload(ctx(), &model.weights, t).unwrap();
    let mut rng = Rng(seed);
    for &n_tokens in tokens {
        let x = rng.vec(n_tokens * t.row_len(), -1.0, 1.0);
        let what = format!("{name} ({dtype}, {}x{}) n_tokens={n_tokens}", t.row_len(), t.n_rows());
        let rel = check(&what, &model.weights, t, &w, &x, n_tokens);
        println!("{what}: worst relative L2 {rel:.2e}");
    }
}

#[test]
fn default_model_ffn_down_matches_cpu() {
    check_model_tensor("blk.0.ffn_down.weight", GgmlType::Q4_1, &[1, 2, 17], 12);
}

#[test]
fn default_model_logits_match_cpu() {
    // token_embd (tied output): GEMV over it is the logits.
    check_model_tensor("token_embd.weight", GgmlType::Q8_0, &[1, 5], 13);

    // Sanity timing only (lavapipe is a CPU): one GEMV over 49152 × 576 Q8_0, submit to readback.
    let t = default_model().weights.get("token_embd.weight").unwrap();
    let w = GpuWeight::upload(ctx(), &default_model().weights, t).unwrap();
    let x = ctx().upload_f32("x", &Rng(14).vec(576, -1.0, 1.0)).unwrap();
    let y = poisoned("y", 49152);
    for run in 0..3 {
        let start = std::time::Instant::now();
        let mut enc = ctx().encoder();
        matmul(ctx(), &mut enc, &w, &x, &y, 1).unwrap();
        ctx().submit(enc);
        let _ = read(&y, 1);
        let s = start.elapsed().as_secs_f64();
        println!(
            "logits GEMV run {run}: {:.2} ms, {:.2} GB/s of weights ({})",
            s * 1e3,
            w.gpu_bytes() as f64 / s / 1e9,
            ctx().summary.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Every variant the adapter has × every fused option, against CPU formulas.
//
// Reference: the rows dequantized on the CPU (f32, as the CPU forward uses them), x normalized
// with kernel_reference's cpu_rms_norm (norm.wgsl's formula) when the option is on, products
// summed in f64, then the epilogue in f64: + bias, + the y that was there (Accumulate),
// × act(gate) (kernel_reference's cpu_gate: SiLU for SwiGlu, tanh-GELU for GeGlu), or act() of the
// biased product itself (GeluBias: GPT-2's plain MLP).
//
// Tolerances, per element, with S = Σ_k |w_k · x_k| (x normed where the option is on):
// - f32 variants (portable, subgroup): 1e-5 · S (kernel_reference's MATMUL_TERM_REL: f32
//   accumulation in another order than the f64 reference), times |act(gate)| for the gated
//   outputs, times GELU's slope bound 1.2 for the activated one; plus the epilogue's own f32
//   roundings, 4 ulp of the values it adds or multiplies, and the activation's own error
//   (cpu_gate's bound) times the product (or, activated, itself).
// - f16 variant: each product rounds x and w to f16, then the product and a 4-term dot product
//   in f16, ≤ 6 roundings of 2⁻¹¹ per term; a weight that is scale · q + offset (Q4_1, Q4_K,
//   codebook offsets) rounds its two terms, each at most twice the chunk's largest |w|. So
//   |err| ≤ 9 · 2⁻¹¹ · Σ_k |x_k| · B_k, B_k = the largest |w| of k's 32-value chunk in its row,
//   plus 2⁻²³ per term for f16's subnormal spacing (random scales include subnormal ones).
//   The per-test maximum of |err| / S is printed for both kinds.

use gpu_common::matmul_weights::{codebook_weight, cpu_row, ggml_weight, RowProduct, TestWeight};
use quantscope::gpu::kernels::matmul::{matmul_variant, MatmulOptions, MatmulOutput, MatmulVariant};
use quantscope::model::config::GateActivation;

/// The options of one case, with the CPU's copies of their buffers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fused {
    None,
    RmsNorm,
    Bias,
    Accumulate,
    SwiGlu,
    GeGlu,
    /// Bias, then tanh-GELU of the result (MatmulOutput::Activated).
    GeluBias,
    /// RMSNorm, bias and Accumulate together.
    All,
}

const FUSED: [Fused; 8] = [
    Fused::None,
    Fused::RmsNorm,
    Fused::Bias,
    Fused::Accumulate,
    Fused::SwiGlu,
    Fused::GeGlu,
    Fused::GeluBias,
    Fused::All,
];

struct CaseData {
    x: Vec<f32>,
    gain: Option<Vec<f32>>,
    bias: Option<Vec<f32>>,
    /// What y holds before (Accumulate).
    y0: Option<Vec<f32>>,
    gate: Option<(Vec<f32>, GateActivation)>,
    /// The activation of the result itself (no gate).
    activated: Option<GateActivation>,
}

const EPS: f32 = 1e-5;

fn case_data(rng: &mut Rng, fused: Fused, n_in: usize, n_out: usize, n_tokens: usize) -> CaseData {
    let rms = matches!(fused, Fused::RmsNorm | Fused::All);
    // Un-normed rows at a scale RMSNorm visibly changes.
    let x = rng.vec(n_tokens * n_in, if rms { -3.0 } else { -1.0 }, if rms { 3.0 } else { 1.0 });
    CaseData {
        x,
        gain: rms.then(|| rng.vec(n_in, 0.5, 1.5)),
        bias: matches!(fused, Fused::Bias | Fused::GeluBias | Fused::All).then(|| rng.vec(n_out, -1.0, 1.0)),
        y0: matches!(fused, Fused::Accumulate | Fused::All).then(|| rng.vec(n_tokens * n_out, -2.0, 2.0)),
        gate: match fused {
            Fused::SwiGlu => Some((rng.vec(n_tokens * n_out, -4.0, 4.0), GateActivation::Silu)),
            // Wide enough to reach where 1 + tanh cancels.
            Fused::GeGlu => Some((rng.vec(n_tokens * n_out, -8.0, 8.0), GateActivation::GeluTanh)),
            _ => None,
        },
        activated: (fused == Fused::GeluBias).then_some(GateActivation::GeluTanh),
    }
}

/// Runs one case on the GPU and checks it; returns the largest |err| / Σ|w·x| and the largest
/// fraction of the budget used, over its outputs.
fn check_case(what: &str, tw: &TestWeight, variant: MatmulVariant, data: &CaseData, n_tokens: usize) -> (f64, f64) {
    let (n_in, n_out) = (tw.n_in, tw.n_out);
    let tail = 3;
    let xb = ctx().upload_f32("x", &data.x).unwrap();
    let mut y_init = vec![f32::NAN; n_tokens * n_out + tail];
    if let Some(y0) = &data.y0 {
        y_init[..y0.len()].copy_from_slice(y0);
    }
    let yb = ctx().upload_f32("y", &y_init).unwrap();
    let gain = data.gain.as_ref().map(|g| ctx().upload_f32("gain", g).unwrap());
    let bias = data.bias.as_ref().map(|b| ctx().upload_f32("bias", b).unwrap());
    let gate = data.gate.as_ref().map(|(g, activation)| (ctx().upload_f32("gate", g).unwrap(), *activation));
    let output = match (&data.y0, &gate, data.activated) {
        (Some(_), ..) => MatmulOutput::Accumulate,
        (None, Some((gate, activation)), _) => MatmulOutput::Gated(gate, *activation),
        (None, None, Some(activation)) => MatmulOutput::Activated(activation),
        (None, None, None) => MatmulOutput::Store,
    };
    let options = MatmulOptions { rms_norm: gain.as_ref().map(|g| (g, EPS)), bias: bias.as_ref(), output };
    let mut enc = ctx().encoder();
    matmul_variant(ctx(), &mut enc, &tw.gpu, &xb, &yb, n_tokens as u32, &options, variant).unwrap();
    ctx().submit(enc);
    let got = read(&yb, n_tokens * n_out + tail);
    assert!(got[n_tokens * n_out..].iter().all(|v| v.is_nan()), "{what}: wrote past the output");

    let x = match &data.gain {
        Some(gain) => cpu_rms_norm(&data.x, gain, EPS),
        None => data.x.clone(),
    };
    let f16 = variant == MatmulVariant::F16;
    let ulp = f32::EPSILON as f64;
    let (mut worst, mut used) = (0.0f64, 0.0f64);
    let mut bad = Vec::new();
    for t in 0..n_tokens {
        let xt = &x[t * n_in..][..n_in];
        for o in 0..n_out {
            let RowProduct { sum, abs_sum: scale, budget: mut product_budget } = cpu_row(tw, xt, o, f16);
            let mut want = sum;
            let mut rounding = 0.0;
            if let Some(bias) = &data.bias {
                want += bias[o] as f64;
                rounding += 2.0 * ulp * (want.abs() + (bias[o] as f64).abs());
            }
            let i = t * n_out + o;
            if let Some(y0) = &data.y0 {
                want += y0[i] as f64;
                rounding += 2.0 * ulp * (want.abs() + (y0[i] as f64).abs());
            }
            if let Some((gate, activation)) = &data.gate {
                let (act, act_err) = cpu_gate(gate[i] as f64, *activation);
                let product = want;
                want *= act;
                product_budget *= act.abs();
                rounding += 4.0 * ulp * want.abs() + act_err * product.abs();
            }
            if let Some(activation) = data.activated {
                // |GELU'| ≤ 1.13: the product's error passes through scaled by at most that.
                let (act, act_err) = cpu_gate(want, activation);
                want = act;
                product_budget *= 1.2;
                rounding = rounding * 1.2 + act_err;
            }
            let err = (got[i] as f64 - want).abs();
            let budget = product_budget + rounding + 4.0 * ulp * want.abs();
            if err.is_nan() || err > budget {
                bad.push(format!("[{t}][{o}] gpu {} cpu {want} (Σ|wx| {scale:e}, budget {budget:e})", got[i]));
            }
            // The epilogue's roundings are not the product's error: |err| / S only without it.
            if scale > 0.0
                && data.bias.is_none()
                && data.y0.is_none()
                && data.gate.is_none()
                && data.activated.is_none()
            {
                worst = worst.max(err / scale);
            }
            if budget > 0.0 {
                used = used.max(err / budget);
            }
        }
    }
    assert!(bad.is_empty(), "{what}: {} mismatches (first 8): {}", bad.len(), bad[..bad.len().min(8)].join(", "));
    (worst, used)
}

/// Every variant the adapter has × every fused option × n_tokens 1 (GEMV), 7 (a part of one GEMM
/// tile), 33 (one whole tile and one token of the next), on
/// rotating awkward shapes: `n_ins` × n_out 1, 3, 577, 1536. Prints, per variant, the largest
/// |err| / Σ|w·x| (cases without bias or output epilogue) and the largest fraction of the budget
/// used.
fn check_variants(name: &str, n_ins: [usize; 3], make: &dyn Fn(&mut Rng, usize, usize) -> TestWeight, seed: u64) {
    let mut rng = Rng(seed);
    let n_outs = [1usize, 3, 577, 1536];
    let shapes: Vec<(usize, usize)> = n_ins.iter().flat_map(|&i| n_outs.iter().map(move |&o| (i, o))).collect();
    let weights: Vec<TestWeight> = shapes.iter().map(|&(i, o)| make(&mut rng, i, o)).collect();
    let variants = MatmulVariant::available(ctx().features());
    println!("{name}: adapter {} has {:?}; testing {variants:?}", ctx().summary.name, ctx().features());
    let mut case = 0;
    for variant in variants {
        let (mut worst, mut used) = (0.0f64, 0.0f64);
        for n_tokens in [1usize, 7, 33] {
            for fused in FUSED {
                // Coprime strides, so each (n_tokens, option) pair meets several shapes across variants.
                let tw = &weights[(case * 5 + n_tokens) % weights.len()];
                case += 1;
                let data = case_data(&mut rng, fused, tw.n_in, tw.n_out, n_tokens);
                let what = format!(
                    "{name} {} n_in={} n_out={} n_tokens={n_tokens} {fused:?}",
                    variant.name(),
                    tw.n_in,
                    tw.n_out
                );
                let (w, u) = check_case(&what, tw, variant, &data, n_tokens);
                (worst, used) = (worst.max(w), used.max(u));
            }
        }
        println!("{name} {}: max |err| / Σ|w·x| = {worst:.2e}, max |err| / budget = {used:.2}", variant.name());
    }
}

fn ggml(dtype: GgmlType) -> impl Fn(&mut Rng, usize, usize) -> TestWeight {
    move |rng, n_in, n_out| ggml_weight(rng, dtype, n_in, n_out)
}

#[test]
fn variants_and_options_q4_0() {
    check_variants("Q4_0", [576, 96, 992], &ggml(GgmlType::Q4_0), 101);
}

#[test]
fn variants_and_options_q4_1() {
    check_variants("Q4_1", [576, 96, 992], &ggml(GgmlType::Q4_1), 102);
}

#[test]
fn variants_and_options_q5_0() {
    check_variants("Q5_0", [640, 96, 2048], &ggml(GgmlType::Q5_0), 109);
}

#[test]
fn variants_and_options_q5_1() {
    check_variants("Q5_1", [640, 96, 992], &ggml(GgmlType::Q5_1), 110);
}

#[test]
fn variants_and_options_q8_0() {
    check_variants("Q8_0", [576, 96, 992], &ggml(GgmlType::Q8_0), 103);
}

#[test]
fn variants_and_options_q4_k() {
    check_variants("Q4_K", [768, 256, 1280], &ggml(GgmlType::Q4_K), 104);
}

#[test]
fn variants_and_options_q6_k() {
    check_variants("Q6_K", [768, 256, 1280], &ggml(GgmlType::Q6_K), 105);
}

#[test]
fn variants_and_options_f32() {
    check_variants("F32", [576, 100, 1000], &ggml(GgmlType::F32), 106);
}

#[test]
fn variants_and_options_f16() {
    check_variants("F16", [576, 100, 1000], &ggml(GgmlType::F16), 107);
}

#[test]
fn variants_and_options_codebook() {
    check_variants("codebook", [576, 100, 1000], &codebook_weight, 108);
}

/// Long rows take several x tiles in the GEMV (2048 values each) and many chunks in the GEMM.
#[test]
fn long_rows_take_several_x_tiles() {
    let mut rng = Rng(109);
    let tw = ggml_weight(&mut rng, GgmlType::Q4_0, 4096 + 2048 + 32, 70);
    for variant in MatmulVariant::available(ctx().features()) {
        for (n_tokens, fused) in [(1, Fused::All), (1, Fused::SwiGlu), (1, Fused::GeGlu), (3, Fused::RmsNorm)] {
            let data = case_data(&mut rng, fused, tw.n_in, tw.n_out, n_tokens);
            let what = format!("Q4_0 6176 × 70 {} n_tokens={n_tokens} {fused:?}", variant.name());
            check_case(&what, &tw, variant, &data, n_tokens);
        }
    }
}

#[test]
fn option_buffers_are_checked() {
    let mut rng = Rng(110);
    let tw = ggml_weight(&mut rng, GgmlType::Q8_0, 64, 3);
    let x = ctx().upload_f32("x", &[0.5; 128]).unwrap();
    let y = ctx().upload_f32("y", &[0.0; 6]).unwrap();
    let short = ctx().upload_f32("short", &[1.0; 2]).unwrap();
    let mut enc = ctx().encoder();
    let run = |options: MatmulOptions| {
        let mut enc = ctx().encoder();
        matmul_variant(ctx(), &mut enc, &tw.gpu, &x, &y, 2, &options, MatmulVariant::Portable).unwrap_err().to_string()
    };
    let err = run(MatmulOptions { rms_norm: Some((&short, 1e-5)), ..Default::default() });
    assert!(err.contains("the RMSNorm gain holds 2 values, needs n_tokens 1 × n_in 64"), "{err}");
    let err = run(MatmulOptions { bias: Some(&short), ..Default::default() });
    assert!(err.contains("the bias holds 2 values, needs n_tokens 1 × n_out 3"), "{err}");
    let err = run(MatmulOptions { output: MatmulOutput::Gated(&short, GateActivation::Silu), ..Default::default() });
    assert!(err.contains("the gate holds 2 values, needs n_tokens 2 × n_out 3 = 6"), "{err}");
    // A variant the adapter lacks is refused by name, never silently replaced.
    for variant in MatmulVariant::ALL {
        if !variant.is_available(ctx().features()) {
            let err = matmul_variant(ctx(), &mut enc, &tw.gpu, &x, &y, 2, &MatmulOptions::default(), variant)
                .unwrap_err()
                .to_string();
            assert!(err.contains(variant.name()), "{err}");
        }
    }
}
