//! The study core natively (lavapipe): the incremental re-quantization that used to be reachable
//! only from the page, the comparison of the model under study with the reference, and pulled
//! generation. The page's facade is a thin adapter over the same calls (tests/web.rs, e2e).
use crate::common;

use common::{default_model, load_default_model};
use pollster::block_on;
use quantscope::model::generate::{generate, CpuBackend};
use quantscope::model::intervene::Intervention;
use quantscope::model::sampling::{Sampler, SamplingParams};
use quantscope::model::window::EvalOptions;
use quantscope::quant::experiment::Experiment;
use quantscope::quant::Recipe;
use quantscope::study::{ForwardPolicy, ReferenceWindows, StopReason, Study};
use quantscope::StudyError;

const PROMPT: &str = "The capital of France is";

fn study() -> Study {
    let study = block_on(Study::new(load_default_model(), 0.0, true, None, &mut |_| {}));
    assert!(study.gpu.is_some(), "no GPU: {:?} (scripts/setup installs lavapipe)", study.gpu_reason);
    study
}

fn recipe(json: &str) -> Recipe {
    Recipe::from_json(json, "test recipe").unwrap()
}

fn logits_of(study: &Study) -> Vec<f32> {
    let top = block_on(study.predict(PROMPT, 5)).unwrap().top;
    top.iter().map(|t| t.logit).collect()
}

#[test]
fn recipes_apply_incrementally_and_keep_restores_the_model_bit_for_bit() {
    let mut study = study();
    let as_loaded = logits_of(&study);
    let matrices = study.gpu.as_ref().unwrap().model.matrix_names().len();

    let layer0 = recipe(r#"{"default": "keep", "rules": [{"tensors": "blk.0.*", "scheme": "int3-g128-asym"}]}"#);
    let first = block_on(study.apply_recipe(&layer0, &mut |_| {})).unwrap();
    let changed = first.requantized_on_gpu + first.requantized_on_cpu;
    assert_eq!(changed, 7, "layer 0's seven linear matrices: {first:?}");
    assert_eq!(first.unchanged, matrices - 7);
    assert!(!study.studies_as_loaded());
    let quantized = logits_of(&study);
    assert_ne!(quantized, as_loaded, "re-quantizing layer 0 changed nothing");

    // The same recipe again re-quantizes nothing; a second layer touches only its matrices.
    let again = block_on(study.apply_recipe(&layer0, &mut |_| {})).unwrap();
    assert_eq!((again.requantized_on_gpu + again.requantized_on_cpu, again.unchanged), (0, matrices));
    assert_eq!(logits_of(&study), quantized, "an unchanged recipe changed the model");
    let both =
        recipe(r#"{"default": "keep", "rules": [{"tensors": "blk.*", "layers": "0-1", "scheme": "int3-g128-asym"}]}"#);
    let second = block_on(study.apply_recipe(&both, &mut |_| {})).unwrap();
    assert_eq!(second.requantized_on_gpu + second.requantized_on_cpu, 7);
    assert!(second.bits_per_weight < first.bits_per_weight);

    // Keep everywhere restores from the masters: the model as loaded again, to the bit.
    let keep = block_on(study.apply_recipe(&recipe(r#"{"default": "keep"}"#), &mut |_| {})).unwrap();
    assert_eq!(keep.restored, 14);
    assert!(study.studies_as_loaded());
    assert_eq!(logits_of(&study), as_loaded);
}

#[test]
fn a_scheme_that_cannot_hold_a_tensor_changes_nothing() {
    let mut study = study();
    // Every matrix quantizable but the last layer's attn_q: a Hadamard block of 512 does not
    // divide its rows of 576. The matrices planned before it must not have been replaced.
    let bad = recipe(
        r#"{"default": "int4-g32-asym",
            "rules": [{"tensors": "blk.29.attn_q.weight", "scheme": "int4-ch+hadamard512"}]}"#,
    );
    let err = block_on(study.apply_recipe(&bad, &mut |_| {})).unwrap_err();
    assert!(matches!(err, StudyError::Model(_)), "{err}");
    assert!(err.to_string().contains("blk.29.attn_q.weight") && err.to_string().contains("512"), "{err}");
    assert!(study.studies_as_loaded(), "a refused recipe left part of itself applied");
}

#[test]
fn the_model_as_loaded_compares_with_itself_exactly_and_a_quantized_one_does_not() {
    let mut study = study();
    let options = EvalOptions { max_tokens: Some(24), window: 12, skip: 0 };
    let same = block_on(study.evaluate(None, &options, &mut |_| {}, &|| false)).unwrap();
    assert_eq!(same.result.logits.kl, 0.0, "one run answers both sides");
    assert_eq!((same.result.tokens, same.window), (24, 12));
    let both = block_on(study.predict_both(PROMPT, 3)).unwrap();
    let ids = |t: &[quantscope::model::TopToken]| t.iter().map(|t| t.id).collect::<Vec<_>>();
    assert!(both.same_run && ids(&both.reference) == ids(&both.quantized));

    // Block 0 at 2 bits: re-quantizing seven matrices, not the whole model, is enough to move it.
    let block0 = recipe(r#"{"default": "keep", "rules": [{"tensors": "blk.0.*", "scheme": "int2-g32-asym"}]}"#);
    block_on(study.apply_recipe(&block0, &mut |_| {})).unwrap();
    let mut seen = Vec::new();
    let moved = block_on(study.evaluate(None, &options, &mut |p| seen.push((p.done, p.total)), &|| false)).unwrap();
    assert!(moved.result.logits.kl > 1e-3, "2-bit block 0 moved KL by only {}", moved.result.logits.kl);
    assert_eq!(seen.last(), Some(&(2, 2)), "progress counts the two windows");
    let both = block_on(study.predict_both(PROMPT, 3)).unwrap();
    assert!(!both.same_run);
    assert_eq!(both.reference[0].token, " Paris");
}

#[test]
fn generation_is_pulled_token_by_token_and_stops_when_the_caller_stops() {
    let study = study();
    let greedy = SamplingParams { temperature: 0.0, top_p: 1.0, seed: 0 };
    let mut generation = block_on(study.generation(PROMPT, 8, greedy, true)).unwrap();
    assert_eq!(generation.backend(), "webgpu");
    let mut pulled = Vec::new();
    while let Some(t) = block_on(generation.next()).unwrap() {
        assert_eq!(t.count, pulled.len() + 1);
        pulled.push(t.token);
    }
    let done = generation.finish().unwrap();
    assert_eq!(done.tokens, pulled);
    assert!(matches!(done.stop, StopReason::MaxTokens | StopReason::Eos));
    // The CPU reference's greedy continuation of the same prompt.
    let model = default_model();
    let cpu = generate(model, &mut CpuBackend::new(model), PROMPT, 8, &mut Sampler::new(greedy), &mut |_| {}).unwrap();
    assert_eq!(done.tokens, cpu.tokens, "GPU {:?} vs CPU {:?}", done.text, cpu.text);

    let mut generation = block_on(study.generation(PROMPT, 8, greedy, true)).unwrap();
    block_on(generation.next()).unwrap().unwrap();
    block_on(generation.next()).unwrap().unwrap();
    let stopped = generation.finish().unwrap();
    assert_eq!((stopped.stop, stopped.tokens.len()), (StopReason::Stopped, 2));
    assert_eq!(stopped.tokens[..], cpu.tokens[..2]);
}

#[test]
fn without_a_gpu_the_gpu_operations_say_why_and_the_rest_runs_on_the_cpu() {
    let mut study = block_on(Study::new(load_default_model(), 0.0, false, None, &mut |_| {}));
    assert_eq!(study.backend(), "cpu");
    let err = block_on(study.apply_recipe(&Recipe::uniform("q8_0".parse().unwrap()), &mut |_| {})).unwrap_err();
    assert!(err.to_string().contains("needs WebGPU") && err.to_string().contains("turned off"), "{err}");
    let choice = block_on(study.choose_forward(ForwardPolicy::Auto, &mut |_| {}));
    assert_eq!(choice.backend, "cpu");
    let p = block_on(study.predict(PROMPT, 1)).unwrap();
    assert_eq!((p.backend, p.top[0].token.as_str()), ("cpu", " Paris"));
    assert!("sideways".parse::<ForwardPolicy>().unwrap_err().to_string().contains("auto, measure or webgpu"));
}

#[test]
fn an_evaluation_asked_to_stop_stops_before_its_next_window() {
    let study = study();
    let options = EvalOptions { max_tokens: Some(36), window: 12, skip: 0 };
    let windows_started = std::cell::Cell::new(0);
    let err = block_on(study.evaluate(
        None,
        &options,
        &mut |p| windows_started.set(p.done + 1),
        // Stop once the second window is about to run.
        &|| windows_started.get() >= 2,
    ))
    .unwrap_err();
    assert_eq!(err, StudyError::Cancelled { what: "the evaluation" });
    assert_eq!(err.to_string(), "the evaluation was cancelled");
    assert_eq!(windows_started.get(), 2, "the first window ran, the second did not");
}

#[test]
fn an_experiment_runs_alike_on_the_cpu_and_the_gpu_and_a_kept_reference_changes_nothing() {
    let experiment = Experiment { weights: Some(Recipe::uniform("q4_0".parse().unwrap())), ..Default::default() };
    let options = EvalOptions { max_tokens: Some(48), window: 24, skip: 0 };
    let mut on_gpu = study();
    let set = block_on(on_gpu.set_experiment(&experiment, Some(Intervention::MeanMassive), &[], 512, true, &mut |_| {}))
        .unwrap();
    assert_eq!(set.backend, "webgpu");
    assert_eq!(set.intervention_calibration.map(|c| c.model), Some("as loaded"));
    let mut on_cpu = block_on(Study::new(load_default_model(), 0.0, false, None, &mut |_| {}));
    let set = block_on(on_cpu.set_experiment(&experiment, Some(Intervention::MeanMassive), &[], 512, true, &mut |_| {}))
        .unwrap();
    assert_eq!(set.backend, "cpu", "no GPU: the experiment runs on the CPU reference");

    let gpu = block_on(on_gpu.evaluate(None, &options, &mut |_| {}, &|| false)).unwrap().result;
    let cpu = block_on(on_cpu.evaluate(None, &options, &mut |_| {}, &|| false)).unwrap().result;
    eprintln!("q4_0 + mean-massive, 48 tokens: KL GPU {:.9} CPU {:.9}", gpu.logits.kl, cpu.logits.kl);
    assert!(cpu.logits.kl > 0.01, "q4_0 moves the predictions: KL {}", cpu.logits.kl);
    let relative = (gpu.logits.kl - cpu.logits.kl).abs() / cpu.logits.kl;
    assert!(relative < 0.05, "GPU KL {} vs CPU KL {}", gpu.logits.kl, cpu.logits.kl);
    let top = |s: &Study| block_on(s.predict(PROMPT, 1)).unwrap().top[0].token.clone();
    assert_eq!(top(&on_gpu), top(&on_cpu));

    // A report keeps the reference's windows across configurations: the numbers are the same.
    let ids = on_cpu.model.tokenizer.encode(quantscope::model::window::EVAL_TEXT).unwrap()[..48].to_vec();
    let mut kept = ReferenceWindows::default();
    for round in 0..2 {
        let (again, _) =
            block_on(on_cpu.evaluate_tokens(&ids, &options, Some(&mut kept), &mut |_| {}, &|| false)).unwrap();
        assert_eq!(again.logits.kl, cpu.logits.kl, "round {round}");
        assert_eq!(again.layers.last().unwrap().relative_error, cpu.layers.last().unwrap().relative_error);
    }
}

#[test]
fn the_views_attention_maps_and_weight_statistics_come_from_the_study_on_either_backend() {
    let on_gpu = study();
    let on_cpu = block_on(Study::new(load_default_model(), 0.0, false, None, &mut |_| {}));
    let gpu = block_on(on_gpu.attention_maps(PROMPT, 3, true)).unwrap();
    let cpu = block_on(on_cpu.attention_maps(PROMPT, 3, true)).unwrap();
    assert_eq!((gpu.backend, cpu.backend), ("webgpu", "cpu"));
    assert_eq!(gpu.probs.len(), gpu.heads * gpu.n * gpu.n);
    let err = common::relative_l2_f32(&gpu.probs, &cpu.probs);
    assert!(err < 1e-4, "attention probabilities GPU vs CPU: relative L2 {err:.2e}");
    assert_eq!(gpu.outlier_keys, cpu.outlier_keys);
    let layers = on_cpu.model.config.n_layers;
    let missing = block_on(on_cpu.attention_maps(PROMPT, layers, true)).err().unwrap().to_string();
    assert!(missing.contains(&format!("layer {layers} does not exist")), "{missing}");

    let stats = on_cpu.weight_stats("blk.0.attn_q.weight", "q4_0").unwrap();
    assert_eq!(stats.scheme, "q4_0");
    let counted: u64 = stats.histogram.quantized.as_ref().unwrap().iter().map(|&c| c as u64).sum();
    assert_eq!(counted, (stats.rows * stats.cols) as u64, "every weight lands in a bin");
    let levels = stats.levels.expect("q4_0 has a grid");
    assert_eq!(levels.values.len(), 16, "4 bits: 16 levels in the largest weight's block");
    assert!(stats.error.unwrap().mse > 0.0);
    let kept = on_cpu.weight_stats("blk.0.attn_q.weight", "keep").unwrap();
    assert!(kept.levels.is_none() && kept.error.is_none() && kept.histogram.quantized.is_none());
}

#[test]
fn the_token_view_adds_up_to_the_metrics_and_a_position_detail_agrees_with_it() {
    let mut study = block_on(Study::new(load_default_model(), 0.0, false, None, &mut |_| {}));
    let experiment = Experiment { weights: Some(Recipe::uniform("q4_0".parse().unwrap())), ..Default::default() };
    block_on(study.set_experiment(&experiment, None, &[], 512, false, &mut |_| {})).unwrap();
    let options = EvalOptions { max_tokens: Some(40), window: 20, skip: 0 };
    let tokens = quantscope::model::window::eval_tokens(&study.model, quantscope::model::window::EVAL_TEXT, &options)
        .unwrap();
    let view = block_on(study.token_view(&tokens, &options, &mut |_| {}, &|| false)).unwrap();
    let n = view.positions.len();
    assert_eq!(n as u64, view.result.logits.positions);
    assert_eq!(n, 38, "two windows of 20 predict 19 tokens each");
    let mean_kl = view.positions.iter().map(|p| p.metrics.kl).sum::<f64>() / n as f64;
    assert!((mean_kl - view.result.logits.kl).abs() < 1e-12, "{mean_kl} vs {}", view.result.logits.kl);
    let flips = view.positions.iter().filter(|p| p.flipped).count();
    assert!(((1.0 - view.result.logits.top1_agreement) * n as f64 - flips as f64).abs() < 1e-9);
    assert!(view.positions.iter().all(|p| p.index % 20 != 0), "a window's first token is never predicted");
    assert!(view.worst.windows(2).all(|w| view.positions[w[0]].metrics.kl >= view.positions[w[1]].metrics.kl));

    let worst = &view.positions[view.worst[0]];
    let detail = block_on(study.position_detail(&tokens, worst.index, &options)).unwrap();
    assert_eq!(detail.reference[0].id, worst.metrics.reference_top1);
    assert_eq!(detail.quantized[0].id, worst.metrics.quantized_top1);
    assert_eq!(detail.layer_errors.len(), study.model.config.n_layers + 1);
    assert!(detail.layer_errors.iter().all(|e| e.is_finite()) && detail.layer_errors.last() > Some(&0.0));
    // Token 0 carries the massive activations; the token it predicts shows it.
    let first = block_on(study.position_detail(&tokens, 1, &options)).unwrap();
    assert!(!first.massive_after.is_empty(), "the first token is a massive-activation carrier");
    let refused = block_on(study.position_detail(&tokens, 20, &options)).unwrap_err().to_string();
    assert!(refused.contains("token 20 is not predicted"), "{refused}");
}
