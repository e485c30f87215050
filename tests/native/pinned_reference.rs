//! Any configuration as the reference (`Study::pin_reference`): the metrics then compare the
//! model under study with the pinned configuration, exactly as an evaluation of the two
//! quantized models against each other does; on the GPU the pinned reference runs as a model of
//! its own, beside the study's live re-quantized one.
use crate::common;

use common::{default_model, load_default_model};
use pollster::block_on;
use quantscope::analysis::eval::{evaluate_with, EvalResult};
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::window::{eval_tokens, CpuWindows, EvalOptions, EVAL_TEXT};
use quantscope::quant::apply::quantize_model;
use quantscope::quant::experiment::Experiment;
use quantscope::quant::runtime::{RuntimeQuant, RuntimeWindows};
use quantscope::quant::Recipe;
use quantscope::study::sensitivity::SensitivityConfig;
use quantscope::study::Study;

/// Blocks 0–1 only: quick to quantize, and enough to move the predictions.
fn recipe(scheme: &str) -> Recipe {
    let json =
        format!(r#"{{"default": "keep", "rules": [{{"tensors": "blk.*", "layers": "0-1", "scheme": "{scheme}"}}]}}"#);
    Recipe::from_json(&json, scheme).unwrap()
}

fn weights(scheme: &str) -> Experiment {
    Experiment { weights: Some(recipe(scheme)), ..Default::default() }
}

fn assert_same_metrics(got: &EvalResult, want: &EvalResult, what: &str) {
    let (g, w) = (&got.logits, &want.logits);
    for (name, a, b) in [
        ("kl", g.kl, w.kl),
        ("pd_kl", g.pd_kl, w.pd_kl),
        ("top1", g.top1_agreement, w.top1_agreement),
        ("perplexity", g.perplexity, w.perplexity),
        ("reference perplexity", g.reference_perplexity, w.reference_perplexity),
    ] {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-12), "{what}: {name} {a} vs {b}");
    }
}

#[test]
fn a_pinned_recipe_is_the_reference_of_the_metrics_and_unpinning_restores_the_model_as_loaded() {
    let model = default_model();
    let options = EvalOptions { max_tokens: Some(16), window: 16, skip: 0 };
    let ids = eval_tokens(model, EVAL_TEXT, &options).unwrap();
    let (a, b) = ("int4-g128-asym", "int3-g128-asym");
    let qa = quantize_model(model, &recipe(a), &mut |_| {}).unwrap();
    let qb = quantize_model(model, &recipe(b), &mut |_| {}).unwrap();
    let b_against_a =
        evaluate_with(model, &mut CpuWindows(&qa.model), &mut CpuWindows(&qb.model), &ids, &options, &mut |_| {})
            .unwrap();
    let b_against_loaded =
        evaluate_with(model, &mut CpuWindows(model), &mut CpuWindows(&qb.model), &ids, &options, &mut |_| {}).unwrap();
    assert!(b_against_a.logits.kl > 0.0 && b_against_a.logits.kl != b_against_loaded.logits.kl);

    let mut study = block_on(Study::new(load_default_model(), 0.0, false, None, &mut |_| {}));
    block_on(study.set_experiment(&weights(b), None, &[], 512, false, &mut |_| {})).unwrap();
    let evaluate =
        |study: &Study| block_on(study.evaluate_tokens(&ids, &options, None, &mut |_| {}, &|| false)).unwrap().0;

    let pinned = block_on(study.pin_reference(&weights(a), None, &[], 512, "recipe A", &mut |_| {})).unwrap();
    assert_eq!((pinned.label.as_str(), pinned.backend), ("recipe A", "cpu"));
    assert!(pinned.bits_per_weight.is_some());
    assert_same_metrics(&evaluate(&study), &b_against_a, "B against pinned A");

    // The configuration under study pinned: nothing differs, though two runs answer.
    block_on(study.pin_reference(&weights(b), None, &[], 512, "recipe B", &mut |_| {})).unwrap();
    assert!(!study.compares_with_itself());
    let itself = evaluate(&study);
    assert_eq!((itself.logits.kl, itself.logits.top1_agreement), (0.0, 1.0));

    // The sensitivity map measures against the model as loaded only, and says so.
    let config = SensitivityConfig { scheme: a.parse().unwrap(), activations: None, kv: None, tensors: None };
    let refused =
        block_on(study.sensitivity(&config, &ids, &options, &mut |_| {}, &mut |_| {}, &|| false)).unwrap_err();
    assert!(refused.to_string().contains("\"recipe B\" is pinned"), "{refused}");

    study.unpin_reference();
    assert!(study.pinned_reference().is_none());
    assert_same_metrics(&evaluate(&study), &b_against_loaded, "B against the model as loaded");
}

/// The top-1 token of `logits` and its logit.
fn top1(logits: &[f32]) -> (usize, f32) {
    logits.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |m, (i, v)| if v > m.1 { (i, v) } else { m })
}

#[test]
fn on_the_gpu_a_pinned_configuration_runs_beside_the_live_recipe_and_matches_the_cpu() {
    let model = default_model();
    let mut study = block_on(Study::new(load_default_model(), 0.0, true, None, &mut |_| {}));
    assert!(study.gpu.is_some(), "no GPU: {:?} (scripts/setup installs lavapipe)", study.gpu_reason);
    let prompt = "The capital of France is";
    let tokens = model.prompt_tokens(prompt).unwrap();
    let last = |logits: Vec<f32>| logits[logits.len() - model.config.vocab_size..].to_vec();
    let cpu_logits =
        |m: &quantscope::model::Model| last(forward(m, &tokens, ForwardOptions::default()).unwrap().logits);
    let close = |gpu: &[quantscope::model::TopToken], cpu: &[f32], what: &str| {
        let (id, logit) = top1(cpu);
        assert_eq!(gpu[0].id as usize, id, "{what}: top-1");
        assert!((gpu[0].logit - logit).abs() <= 1e-3 * logit.abs().max(1.0), "{what}: {} vs {logit}", gpu[0].logit);
    };

    // Weights: recipe A pinned (its own GPU model), recipe B live on the study's.
    let (a, b) = ("int4-g128-asym", "int3-g128-asym");
    let pinned = block_on(study.pin_reference(&weights(a), None, &[], 512, "A", &mut |_| {})).unwrap();
    assert_eq!(pinned.backend, "webgpu");
    block_on(study.apply_recipe(&recipe(b), &mut |_| {})).unwrap();
    let both = block_on(study.predict_both(prompt, 5)).unwrap();
    assert!(!both.same_run);
    let (qa, qb) = (
        quantize_model(model, &recipe(a), &mut |_| {}).unwrap(),
        quantize_model(model, &recipe(b), &mut |_| {}).unwrap(),
    );
    close(&both.reference, &cpu_logits(&qa.model), "pinned A");
    close(&both.quantized, &cpu_logits(&qb.model), "live B");

    // Run-time quantizers alone: the pinned reference runs them on the study's weights as
    // loaded (the masters), not on the live recipe.
    let kv = Experiment { kv: Some("int4".parse().unwrap()), ..Default::default() };
    block_on(study.pin_reference(&kv, None, &[], 512, "KV int4", &mut |_| {})).unwrap();
    let both = block_on(study.predict_both(prompt, 5)).unwrap();
    let runtime = RuntimeQuant { kv: kv.kv, ..Default::default() };
    let mut hooked = RuntimeWindows { model, quant: &runtime, intervener: None };
    let kv_logits = last(hooked.forward(&tokens, ForwardOptions::default()).unwrap().logits);
    assert_ne!(top1(&kv_logits).1, top1(&cpu_logits(model)).1, "int4 KV changed nothing");
    close(&both.reference, &kv_logits, "pinned KV int4");
}
