//! A quantized model on the GPU against the CPU reference forward of the same quantized model:
//! codebook schemes run through the GPU's codebook decoder, GGUF schemes through their block
//! decoders, and after `replace_matrix` the next step uses the new weights.
//!
//! Tolerance: relative L2 of the logits ≤ 1e-4, as for the unquantized forward (f32 on both sides,
//! different summation orders).
use crate::common;
use crate::gpu_common;

use common::default_model;
use gpu_common::ctx;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::gpu::weights::{GpuWeight, WeightFormat};
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::quant::apply::{quantize_model, quantize_tensor};
use quantscope::quant::{Encoding, Recipe, Scheme};

const LOGITS_TOLERANCE: f64 = 1e-4;

fn gpu_logits(model: &GpuModel, tokens: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache(ctx(), tokens.len() as u32).unwrap();
    pollster::block_on(model.step(ctx(), &mut cache, tokens, &Capture::default())).unwrap().logits
}

#[test]
fn quantized_models_run_on_the_gpu_like_on_the_cpu() {
    let model = default_model();
    let tokens = model.tokenizer.encode("The capital of France is").unwrap();
    let recipe = Recipe::from_json(
        r#"{"default": "int4-g64-asym", "rules": [
            {"tensors": "blk.*.ffn_down.weight", "scheme": "q8_0"},
            {"tensors": "blk.*.attn_v.weight", "scheme": "int3-ch-sym"},
            {"tensors": "token_embd.weight", "scheme": "keep"}]}"#,
        "test recipe",
    )
    .unwrap();
    let quantized = quantize_model(model, &recipe, &mut |_| {}).unwrap();
    assert!(quantized.codebooks.contains_key("blk.0.attn_q.weight"));
    assert!(!quantized.codebooks.contains_key("blk.0.ffn_down.weight"));
    let gpu = GpuModel::upload_quantized(ctx(), &quantized, &mut |_| {}).unwrap();
    let cpu = forward(&quantized.model, &tokens, ForwardOptions::default()).unwrap().logits;
    let unquantized = forward(model, &tokens, ForwardOptions::default()).unwrap().logits;
    let err = gpu_common::relative_l2(&gpu_logits(&gpu, &tokens), &cpu);
    assert!(err <= LOGITS_TOLERANCE, "relative L2 {err:.2e}");
    // The quantization must actually have changed the model (else this test proves nothing).
    assert!(gpu_common::relative_l2(&unquantized, &cpu) > 100.0 * LOGITS_TOLERANCE);
}

#[test]
fn replacing_one_matrix_changes_the_next_step_and_only_as_the_cpu_says() {
    let model = default_model();
    let tokens = model.tokenizer.encode("Once upon a time").unwrap();
    let mut gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let name = "blk.3.ffn_up.weight";
    let scheme: Scheme = "int2-g32-asym".parse().unwrap();
    let (_, q, _) = quantize_tensor(model, name, &scheme).unwrap();
    let Encoding::Codebook(cb) = &q.encoding else { panic!("int schemes are codebooks") };
    gpu.replace_matrix(GpuWeight::upload_codebook(ctx(), name, cb).unwrap()).unwrap();
    let recipe =
        Recipe::from_json(&format!(r#"{{"rules": [{{"tensors": "{name}", "scheme": "{scheme}"}}]}}"#), "r").unwrap();
    let expected =
        forward(&quantize_model(model, &recipe, &mut |_| {}).unwrap().model, &tokens, ForwardOptions::default())
            .unwrap()
            .logits;
    let err = gpu_common::relative_l2(&gpu_logits(&gpu, &tokens), &expected);
    assert!(err <= LOGITS_TOLERANCE, "relative L2 {err:.2e}");

    // Shapes are checked.
    let wrong = GpuWeight::upload_codebook(ctx(), "blk.3.ffn_down.weight", cb).unwrap();
    assert_eq!(wrong.format, WeightFormat::Codebook { code_bits: cb.code_bits() });
    let err = gpu.replace_matrix(wrong).unwrap_err().to_string();
    assert!(err.contains("blk.3.ffn_down.weight is 576×1536, the replacement 1536×576"), "{err}");
}
