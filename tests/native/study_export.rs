//! The page's GGUF export (`Study::export_gguf`): the recipe the study applied, written as
//! `quantscope export` writes it, loads back and predicts what the study predicted; what a GGUF
//! cannot hold is refused by name.
use crate::common;

use common::load_default_model;
use pollster::block_on;
use quantscope::formats::ggml::GgmlType;
use quantscope::model::{Model, Progress};
use quantscope::quant::Recipe;
use quantscope::study::{RuntimeConfig, Study};
use quantscope::StudyError;

const PROMPT: &str = "The capital of France is";

fn gpu_study() -> Study {
    let study = block_on(Study::new(load_default_model(), 0.0, true, None, &mut |_| {}));
    assert!(study.gpu.is_some(), "no GPU: {:?} (scripts/setup installs lavapipe)", study.gpu_reason);
    study
}

fn cpu_study(model: Model) -> Study {
    block_on(Study::new(model, 0.0, false, None, &mut |_| {}))
}

fn dtype(model: &Model, name: &str) -> GgmlType {
    model.tensor(name).unwrap().dtype
}

#[test]
fn the_applied_recipe_exports_as_a_gguf_that_loads_back_and_predicts_what_the_study_did() {
    let mut study = gpu_study();
    let layer0 =
        Recipe::from_json(r#"{"default": "keep", "rules": [{"tensors": "blk.0.*", "scheme": "q8_0"}]}"#, "test")
            .unwrap();
    block_on(study.apply_recipe(&layer0, &mut |_| {})).unwrap();
    let studied = block_on(study.predict(PROMPT, 1)).unwrap().top[0].token.clone();

    let mut last: Option<Progress> = None;
    let bytes = study.export_gguf(&mut |p| last = Some(p)).unwrap();
    let tensors = study.model.weights.tensors().len() as u64;
    let last = last.expect("progress was reported");
    assert_eq!((last.stage, last.done, last.total), ("quantize", tensors, tensors), "every tensor counted");

    let exported = Model::from_gguf(bytes, "exported.gguf", &mut |_| {}).unwrap();
    assert_eq!(exported.weights.tensors().len() as u64, tensors);
    assert_eq!(dtype(&exported, "blk.0.ffn_down.weight"), GgmlType::Q8_0, "the recipe's scheme");
    assert_eq!(dtype(&exported, "blk.1.ffn_down.weight"), GgmlType::Q4_1, "as loaded outside the recipe");
    assert_eq!(dtype(&exported, "token_embd.weight"), GgmlType::Q8_0, "as loaded");
    let predicted = block_on(cpu_study(exported).predict(PROMPT, 1)).unwrap().top[0].token.clone();
    assert_eq!(predicted, studied, "the file predicts what the study predicted");
    assert_eq!(predicted, " Paris");
}

#[test]
fn a_scheme_without_a_gguf_type_is_refused_naming_the_tensor() {
    let mut study = gpu_study();
    let recipe = Recipe::from_json(
        r#"{"default": "keep", "rules": [{"tensors": "blk.1.ffn_down.weight", "scheme": "int3"}]}"#,
        "t",
    )
    .unwrap();
    block_on(study.apply_recipe(&recipe, &mut |_| {})).unwrap();
    let err = study.export_gguf(&mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("\"blk.1.ffn_down.weight\"") && err.contains("int3-ch-sym"), "{err}");
    assert!(err.contains("no GGUF type"), "{err}");
}

#[test]
fn with_nothing_applied_the_export_is_the_weights_as_loaded() {
    let study = cpu_study(load_default_model());
    let exported = Model::from_gguf(study.export_gguf(&mut |_| {}).unwrap(), "exported.gguf", &mut |_| {}).unwrap();
    for t in study.model.weights.tensors() {
        let e = exported.tensor(&t.name).unwrap();
        assert_eq!((e.dtype, &e.dims), (t.dtype, &t.dims), "{}", t.name);
        assert!(exported.weights.data(e) == study.model.weights.data(t), "{}: other bytes", t.name);
    }
}

#[test]
fn weights_a_method_rewrote_are_refused_not_dropped() {
    let mut study = cpu_study(load_default_model());
    let config = RuntimeConfig { method: Some("smoothquant:0.5".into()), calib_tokens: Some(8), ..Default::default() };
    block_on(study.set_runtime_quant(&config, &mut |_| {})).unwrap();
    let err = study.export_gguf(&mut |_| {}).unwrap_err();
    assert!(matches!(err, StudyError::Invalid { what: "GGUF export", .. }), "{err}");
    assert!(err.to_string().contains("smoothquant"), "{err}");
}
