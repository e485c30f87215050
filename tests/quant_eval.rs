//! Whole-model quantization and evaluation on the default model: every scheme of the catalog
//! gives finite metrics, the same numbers twice, and the orderings any quantizer must show (KL
//! grows as bits shrink; q8_0 nearly never changes the top-1 token).
// Native only (files, processes, blocking GPU calls); the browser suite is tests/web.rs.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::load_default_model;
use quantscope::analysis::eval::{eval_tokens, evaluate, EvalOptions, EvalResult, EVAL_TEXT};
use quantscope::model::Model;
use quantscope::quant::apply::quantize_model;
use quantscope::quant::{Recipe, Scheme, SchemeKind};

fn eval(model: &Model, scheme: &str, tokens: usize) -> (EvalResult, f64) {
    let scheme: Scheme = scheme.parse().unwrap();
    let started = std::time::Instant::now();
    let quantized = quantize_model(model, &Recipe::uniform(scheme), &mut |_| {}).unwrap();
    let quantize_seconds = started.elapsed().as_secs_f64();
    let options = EvalOptions { max_tokens: Some(tokens), window: tokens };
    let ids = eval_tokens(model, EVAL_TEXT, &options).unwrap();
    let result = evaluate(model, &quantized.model, &ids, &options, &mut |_| {}).unwrap();
    eprintln!(
        "{scheme:<28} {:.3} bpw  quantize {quantize_seconds:>6.2} s  KL {:.5}  top-1 {:.3}  ppl {:.2}",
        quantized.bits_per_weight, result.logits.kl, result.logits.top1_agreement, result.logits.perplexity
    );
    (result, quantized.bits_per_weight)
}

#[test]
fn kl_grows_as_int_bits_shrink() {
    let model = load_default_model();
    let kls: Vec<f64> = ["int8-ch-sym", "int4-ch-sym", "int3-ch-sym", "int2-ch-sym"]
        .iter()
        .map(|s| eval(&model, s, 128).0.logits.kl)
        .collect();
    assert!(kls.windows(2).all(|w| w[0] < w[1]), "KL int8, int4, int3, int2: {kls:?}");
    assert!(kls[0] > 0.0 && kls[0] < 0.01, "int8 per channel barely changes the model: {kls:?}");
}

#[test]
fn q8_0_keeps_the_top1_token_on_the_evaluation_text() {
    let model = load_default_model();
    let (result, bpw) = eval(&model, "q8_0", 512);
    assert_eq!(result.tokens, 512);
    assert!(result.logits.top1_agreement >= 0.99, "top-1 agreement {}", result.logits.top1_agreement);
    assert!((result.logits.perplexity / result.logits.reference_perplexity - 1.0).abs() < 0.01);
    // 8.5 bits in the matrices, f32 norms: a little over 8.5 for the model.
    assert!((8.5..8.6).contains(&bpw), "{bpw}");
}

#[test]
fn every_scheme_of_the_catalog_gives_finite_metrics() {
    let model = load_default_model();
    // LLM-FP4's bias search tries 101 biases per row: minutes for the whole model on two cores, so
    // it is exercised on single tensors by its unit tests instead.
    let catalog = Scheme::catalog();
    for scheme in catalog.iter().filter(|s| !matches!(s.kind, SchemeKind::LlmFp { search: true, .. })) {
        let (r, bpw) = eval(&model, &scheme.to_string(), 16);
        let m = &r.logits;
        for (what, v) in [("kl", m.kl), ("pd_kl", m.pd_kl), ("ppl", m.perplexity), ("qid", m.qid), ("bpw", bpw)] {
            assert!(v.is_finite(), "{scheme}: {what} = {v}");
        }
        assert!(m.kl >= 0.0 && m.pd_kl >= 0.0 && (0.0..=1.0).contains(&m.top1_agreement), "{scheme}: {m:?}");
        assert!(r.layers.len() == model.config.n_layers + 1 && r.layers.iter().all(|l| l.relative_error.is_finite()));
    }
}
