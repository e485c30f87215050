//! The calibrated methods on the default model: every calibrated transform keeps the float output before
//! quantization, and every method, KV-cache and attention quantizer runs end to end with finite
//! metrics that move the way they must.
use crate::common;

use std::collections::HashMap;

use quantscope::analysis::eval::{evaluate_with, EvalResult};
use quantscope::model::reference::{forward, ForwardOptions, LinearInput};
use quantscope::model::window::{eval_tokens, CpuWindows, EvalOptions, EVAL_TEXT};
use quantscope::model::Model;
use quantscope::quant::calibrate::calibrate;
use quantscope::quant::experiment::{Experiment, Method};
use quantscope::quant::runtime::{InputCalibration, RuntimeQuant, RuntimeWindows};
use quantscope::quant::{fireq, outliertune, smoothquant};

const PROMPT: &str = "Summer is warm. Winter is cold.\n";

/// Logits of every position of `tokens` with `runtime` on `model`.
fn logits(model: &Model, runtime: &RuntimeQuant, tokens: &[u32]) -> Vec<f32> {
    let mut run = RuntimeWindows { model, quant: runtime, intervener: None };
    run.forward(tokens, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits
}

#[test]
fn calibrated_transforms_keep_the_float_output() {
    let model = common::default_model();
    let tokens = model.tokenizer.encode(PROMPT).unwrap();
    let calibration = calibrate(&model, &tokens, 512, &mut |_| {}).unwrap();
    let plain = forward(&model, &tokens, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits;
    let none = RuntimeQuant::default();

    // OutlierTune's γ fold.
    let folded = outliertune::fold_norm_gains(&model).unwrap();
    let rel = common::relative_l2_f32(&plain, &logits(&folded, &none, &tokens));
    assert!(rel <= 1e-5, "γ fold: relative L2 {rel:e}");

    // SQ-b: smoothed weights plus the shift taken out and put back, nothing quantized.
    let (smoothed, inputs) = smoothquant::smooth_with_bias(&model, &calibration, 0.5).unwrap();
    assert_eq!(inputs.len(), 2 * model.config.n_layers);
    let shifted = RuntimeQuant { inputs, ..Default::default() };
    let rel = common::relative_l2_f32(&plain, &logits(&smoothed, &shifted, &tokens));
    assert!(rel <= 1e-5, "SQ-b: relative L2 {rel:e}");

    // FireQ: keys × σ, queries ÷ σ, nothing quantized.
    let scales = fireq::key_scales(&model.config, &calibration);
    assert!(scales.iter().flatten().all(|s| s.is_finite() && *s > 0.0));
    assert!(scales.iter().flatten().any(|&s| (s - 1.0).abs() > 0.1), "FireQ changed no channel");
    let scaled = RuntimeQuant { key_scales: Some(scales), ..Default::default() };
    let rel = common::relative_l2_f32(&plain, &logits(&model, &scaled, &tokens));
    assert!(rel <= 1e-5, "FireQ: relative L2 {rel:e}");

    // A shift alone (no quantizer) is exactly undone.
    let mut inputs = HashMap::new();
    let shift: Vec<f32> = (0..model.config.d_ff).map(|i| (i % 7) as f32 * 0.25 - 0.75).collect();
    inputs.insert((3, LinearInput::MlpDown), InputCalibration { shift: Some(shift), ..Default::default() });
    let rel = common::relative_l2_f32(&plain, &logits(&model, &RuntimeQuant { inputs, ..Default::default() }, &tokens));
    assert!(rel <= 1e-6, "shift: relative L2 {rel:e}");
}

fn run(model: &Model, experiment: &Experiment) -> EvalResult {
    let options = EvalOptions { max_tokens: Some(48), window: 48, skip: 0 };
    let ids = eval_tokens(model, EVAL_TEXT, &options).unwrap();
    let calib = eval_tokens(model, EVAL_TEXT, &EvalOptions { max_tokens: Some(96), window: 512, skip: 0 }).unwrap();
    let prepared = experiment.prepare(model, &calib, 512, &mut |_| {}).unwrap();
    let mut quantized = RuntimeWindows { model: prepared.model(model), quant: &prepared.runtime, intervener: None };
    evaluate_with(model, &mut CpuWindows(model), &mut quantized, &ids, &options, &mut |_| {}).unwrap()
}

fn experiment(kv: Option<&str>, attn: Option<&str>, method: Option<&str>) -> Experiment {
    Experiment {
        kv: kv.map(|k| k.parse().unwrap()),
        probs: attn.map(|a| a.parse().unwrap()),
        method: method.map(|m| m.parse::<Method>().unwrap()),
        ..Default::default()
    }
}

#[test]
fn every_method_and_runtime_quantizer_runs_with_finite_metrics_in_the_expected_order() {
    let model = common::default_model();
    let kl = |e: Experiment| {
        let r = run(&model, &e);
        let m = r.logits;
        assert!(m.kl.is_finite() && m.perplexity.is_finite() && m.qid.is_finite(), "{m:?}");
        m.kl
    };
    // KV cache: more bits, less error; FireQ's key scaling helps INT4.
    let (kv8, kv4, fireq4) =
        (kl(experiment(Some("int8"), None, None)), kl(experiment(Some("int4-e4m3"), None, None)), kl(experiment(Some("int4-e4m3"), None, Some("fireq"))));
    assert!(kv8 < kv4, "int8 KV {kv8} vs int4 {kv4}");
    assert!(fireq4 < kv4, "FireQ {fireq4} vs plain int4-e4m3 {kv4}");
    // Attention: AdaLog's searched base beats the fixed log2 base at 4 bits; SAB breaks the model.
    let (log2, searched, sab) = (
        kl(experiment(None, Some("adalog4-q37"), None)),
        kl(experiment(None, Some("adalog4-search"), None)),
        kl(experiment(None, Some("sab"), None)),
    );
    assert!(searched <= log2, "searched {searched} vs log2 {log2}");
    assert!(sab > 10.0 * log2, "SAB {sab}");
    // The weight methods run and quantize.
    for method in ["outliertune:8", "ptq161", "sqb:0.5", "llmfp4"] {
        assert!(kl(experiment(None, None, Some(method))) > 0.0, "{method}");
    }
}
