//! GPT-2 (LayerNorm with biases, learned absolute positions instead of RoPE, a plain tanh-GELU
//! MLP, a bias on every linear layer, q|k|v and their biases fused): a tiny random checkpoint
//! written as GGUF by the test gives the numpy oracle's logits on the CPU reference and on the
//! GPU and decodes alike; the same weights as a Hugging Face GPT2LMHeadModel (Conv1D `[in, out]`
//! weights, with and without the `transformer.` prefix, with the causal-mask buffers) load alike;
//! a checkpoint whose config and tensors disagree is refused naming the tensor and the shapes.
use crate::architecture_checks::{
    as_safetensors, matches_the_oracle_and_decodes_alike, oracle_logits, predicts_alike, HfLayout, LOGITS_TOLERANCE,
};
use crate::common::{relative_l2_f32, scratch};
use crate::gpu_common::{tiny_gpt2_gguf, TINY_GPT2};

use quantscope::formats::gguf::{write_gguf, GgufFile};
use quantscope::model::config::{GateActivation, MlpKind, NormKind, Positions};
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::{LlamaConfig, Model};

const SEED: u64 = 0x4750_5432_0000_0001;
const TOKENS: [u32; 9] = [3, 11, 0, 7, 7, 19, 2, 5, 13];

fn load(bytes: Vec<u8>) -> Model {
    Model::from_gguf(bytes, "tiny-gpt2.gguf", &mut |_| {}).unwrap()
}

#[test]
fn a_tiny_gpt2_matches_the_numpy_oracle_on_the_cpu_and_the_gpu_and_decodes_alike() {
    let bytes = tiny_gpt2_gguf(SEED);
    let file = scratch("gpt2").join("tiny-gpt2.gguf");
    std::fs::write(&file, &bytes).unwrap();
    let model = load(bytes);
    let c = &model.config;
    assert_eq!(
        (c.norm, c.positions, c.mlp, c.ffn_activation),
        (NormKind::Layer, Positions::Learned, MlpKind::Plain, GateActivation::GeluTanh)
    );
    assert!(c.linear_bias && c.qkv_bias && c.tied_embeddings, "{c:?}");
    assert_eq!((c.context_length, c.head_dim), (TINY_GPT2.context, TINY_GPT2.d / TINY_GPT2.heads));
    // The fused q|k|v and its bias are gone; their parts are views of them.
    assert!(model.weights.get("blk.0.attn_qkv.bias").is_none());
    assert_eq!(model.tensor("blk.1.attn_v.bias").unwrap().dims, [TINY_GPT2.d as u64]);
    matches_the_oracle_and_decodes_alike(&model, &file, &TOKENS);

    // The context is the position table's length: one token more is refused, not wrapped.
    let long: Vec<u32> = (0..TINY_GPT2.context as u32 + 1).map(|i| i % 20).collect();
    let err = forward(&model, &long, ForwardOptions::default()).unwrap_err().to_string();
    assert!(err.contains(&TINY_GPT2.context.to_string()), "{err}");
}

/// GPT-2's config.json for a model of config `c`.
fn hf_config(c: &LlamaConfig) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["GPT2LMHeadModel"], "n_embd": c.d_model, "n_layer": c.n_layers, "n_head": c.n_heads,
        "n_positions": c.context_length, "n_ctx": c.context_length, "n_inner": null, "vocab_size": c.vocab_size,
        "layer_norm_epsilon": c.rms_eps, "activation_function": "gelu_new", "scale_attn_weights": true,
        "tie_word_embeddings": true,
    })
}

fn from_hf(safetensors: Vec<u8>, config: &serde_json::Value, tokenizer: &str) -> Result<Model, String> {
    Model::from_safetensors(safetensors, config.to_string().as_bytes(), tokenizer.as_bytes(), "tiny-gpt2", &mut |_| {})
        .map_err(|e| e.to_string())
}

/// The error of a load that must fail.
fn refused(load: Result<Model, String>) -> String {
    match load {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    }
}

/// Conv1D weights stored [in, out] are transposed at load; the mask buffers are skipped; with or
/// without the `transformer.` prefix the model is the GGUF's.
#[test]
fn the_tiny_gpt2_from_hugging_face_files_predicts_as_from_gguf() {
    let bytes = tiny_gpt2_gguf(SEED);
    let gguf = load(bytes.clone());
    let tokenizer = gguf.tokenizer.to_json().unwrap();
    let config = hf_config(&gguf.config);
    for prefixed in [true, false] {
        let safetensors = as_safetensors(&bytes, HfLayout::Gpt2 { prefixed });
        let hf = from_hf(safetensors.clone(), &config, &tokenizer).unwrap();
        assert_eq!(hf.config, gguf.config);
        predicts_alike(&gguf, &hf, &TOKENS);
        // The oracle reads the Conv1D weights as Hugging Face stores them, [in, out].
        let dir = scratch(if prefixed { "gpt2-hf" } else { "gpt2-hf-unprefixed" });
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        std::fs::write(dir.join("model.safetensors"), &safetensors).unwrap();
        let cpu = forward(&hf, &TOKENS, ForwardOptions::default()).unwrap().logits;
        let err = relative_l2_f32(&cpu, &oracle_logits(&dir.join("model.safetensors"), &TOKENS));
        assert!(err <= LOGITS_TOLERANCE, "HF GPT-2 on the CPU vs the oracle on its safetensors: relative L2 {err:.3e}");
    }
    // Another activation is refused by name, not computed as tanh-GELU.
    let mut relu = config.clone();
    relu["activation_function"] = "relu".into();
    let err = refused(from_hf(as_safetensors(&bytes, HfLayout::Gpt2 { prefixed: true }), &relu, &tokenizer));
    assert!(err.contains("activation_function \"relu\""), "{err}");
}

type Tensors = Vec<(String, Vec<u64>, quantscope::formats::ggml::GgmlType, Vec<u8>)>;

/// The GGUF `bytes` with its tensors changed by `edit`.
fn rewritten(bytes: &[u8], edit: &dyn Fn(&mut Tensors)) -> Vec<u8> {
    let file = GgufFile::parse(bytes, "t").unwrap();
    let mut tensors: Tensors = file
        .tensors
        .iter()
        .map(|t| {
            let start = (file.data_offset + t.offset) as usize;
            (t.name.clone(), t.dims.clone(), t.dtype, bytes[start..start + t.n_bytes as usize].to_vec())
        })
        .collect();
    edit(&mut tensors);
    write_gguf(&file.metadata, &tensors, 32)
}

/// A position table of another length than the context, or a fused q|k|v projection of another
/// width than 3·n_embd: refused, naming the tensor and both shapes, from GGUF and from Hugging
/// Face files.
#[test]
fn a_gpt2_whose_config_and_tensors_disagree_is_refused_naming_tensor_and_shapes() {
    let gguf = load(tiny_gpt2_gguf(SEED));
    let tokenizer = gguf.tokenizer.to_json().unwrap();
    let config = hf_config(&gguf.config);
    let (d, context) = (TINY_GPT2.d, TINY_GPT2.context);
    let gguf_error = |bytes: Vec<u8>| match Model::from_gguf(bytes, "t.gguf", &mut |_| {}) {
        Ok(_) => panic!("the edited GGUF loaded"),
        Err(e) => e.to_string(),
    };
    let hf_error =
        |bytes: &[u8]| from_hf(as_safetensors(bytes, HfLayout::Gpt2 { prefixed: true }), &config, &tokenizer);

    // 24 positions under a context of 40.
    let short_positions = rewritten(&tiny_gpt2_gguf(SEED), &|tensors| {
        let wpe = tensors.iter_mut().find(|t| t.0 == "position_embd.weight").unwrap();
        wpe.1[1] = 24;
        wpe.3.truncate(24 * d * 4);
    });
    let err = gguf_error(short_positions.clone());
    assert!(err.contains("position_embd.weight") && err.contains("[48, 24]") && err.contains("[48, 40]"), "{err}");
    let err = refused(hf_error(&short_positions));
    assert!(err.contains("position_embd.weight") && err.contains("[48, 24]") && err.contains("[48, 40]"), "{err}");
    assert_eq!(context, 40);

    // Block 1's q|k|v (and its bias) 132 wide instead of 3 · 48.
    let narrow_qkv = rewritten(&tiny_gpt2_gguf(SEED), &|tensors| {
        for t in tensors.iter_mut().filter(|t| t.0.starts_with("blk.1.attn_qkv.")) {
            *t.1.last_mut().unwrap() = 132;
            t.3.truncate(t.1.iter().product::<u64>() as usize * 4);
        }
    });
    let err = gguf_error(narrow_qkv.clone());
    assert!(err.contains("blk.1.attn_qkv") && err.contains("132") && err.contains("144"), "{err}");
    let err = refused(hf_error(&narrow_qkv));
    assert!(
        err.contains("blk.1.attn_qkv.weight (attn.c_attn") && err.contains("[48, 132]") && err.contains("[48, 144]"),
        "{err}"
    );
}

/// What runs beside the forward works on GPT-2 as on the llama layout: the GPU's captured hidden
/// states (the probes on, so every normed row goes through a buffer) equal the CPU reference's,
/// dropping the attention sink, quantizing the attention probabilities and the KV cache change
/// the GPU's logits as the CPU hook changes the reference's.
#[test]
fn captures_an_intervention_and_runtime_quantization_on_the_gpu_match_the_cpu_on_gpt2() {
    use crate::gpu_common::ctx;
    use quantscope::gpu::forward::{Capture, GpuModel};
    use quantscope::gpu::kernels::intervene::GpuIntervention;
    use quantscope::gpu::kernels::runtime_quant::GpuRuntimeQuant;
    use quantscope::model::intervene::{Intervener, Intervention};
    use quantscope::model::reference::forward_with;
    use quantscope::model::window::EvalOptions;
    use quantscope::quant::attention_probs::ProbQuantizer;
    use quantscope::quant::runtime::{RuntimeQuant, RuntimeQuantizer};

    let model = load(tiny_gpt2_gguf(SEED));
    let c = &model.config;
    let gpu = GpuModel::upload(ctx(), &model, &mut |_| {}).unwrap();
    let step = |capture: Capture| {
        let mut cache = gpu.new_cache(ctx(), TOKENS.len() as u32).unwrap();
        pollster::block_on(gpu.step(ctx(), &mut cache, &TOKENS, &capture)).unwrap()
    };
    let hidden = ForwardOptions { hidden_states: true, ..Default::default() };
    let cpu = forward(&model, &TOKENS, hidden).unwrap();
    let out = step(Capture { hidden_states: true, probes: true, ..Default::default() });
    assert_eq!((out.hidden_states.len(), out.probes.len()), (c.n_layers + 1, 1 + 8 * c.n_layers));
    for (i, (g, want)) in out.hidden_states.iter().zip(&cpu.hidden_states).enumerate() {
        let err = relative_l2_f32(g, want);
        assert!(err <= 1e-5, "hidden state {i}: relative L2 {err:.2e}");
    }

    let plain = cpu.logits;
    let options = EvalOptions { max_tokens: None, window: 16, skip: 0 };
    let mut intervener = Intervener::new(&model, Intervention::DropSink, &TOKENS, &options).unwrap();
    let intervention = GpuIntervention::new(ctx(), &intervener, c.n_layers, c.d_model).unwrap();
    let want = forward_with(&model, &TOKENS, ForwardOptions::default(), &mut intervener).unwrap().logits;
    let got = step(Capture { intervention: Some(intervention), ..Default::default() }).logits;
    let (err, effect) = (relative_l2_f32(&got, &want), relative_l2_f32(&want, &plain));
    assert!(err <= 1e-4 && effect > 1e-2, "drop-sink: GPU vs CPU {err:.2e}, effect {effect:.2e}");

    let probabilities = RuntimeQuant {
        probs: Some(ProbQuantizer::with_layer_q(4, (0..c.n_layers as u32).map(|l| 30 + l).collect())),
        ..Default::default()
    };
    // The keys and values as the cache holds them (no RoPE before), int4 per 12-wide head.
    let cache = RuntimeQuant { kv: Some("int4".parse().unwrap()), ..Default::default() };
    for (name, quant) in [("adalog4 probabilities", probabilities), ("int4 KV cache", cache)] {
        let mut hook = RuntimeQuantizer::new(&quant, c);
        let want = forward_with(&model, &TOKENS, ForwardOptions::default(), &mut hook).unwrap().logits;
        let runtime = GpuRuntimeQuant::new(ctx(), &quant, c).unwrap();
        let got = step(Capture { runtime: Some(runtime.into()), ..Default::default() }).logits;
        let (err, effect) = (relative_l2_f32(&got, &want), relative_l2_f32(&want, &plain));
        assert!(err <= 1e-3 && effect > 1e-3, "{name}: GPU vs CPU {err:.2e}, effect {effect:.2e}");
    }
}

/// SmoothQuant migrates each channel's factor into the norm before the linears: with LayerNorm
/// the bias is divided as well as the gain (and up alone reads ffn_norm, there is no gate), so
/// the smoothed GPT-2 computes the same logits up to f32 rounding.
#[test]
fn smoothquant_divides_the_layernorm_bias_too_and_keeps_the_logits() {
    use quantscope::quant::calibrate::calibrate;
    use quantscope::quant::smoothquant::{smooth, DEFAULT_ALPHA};

    let model = load(tiny_gpt2_gguf(SEED));
    let calibration = calibrate(&model, &TOKENS, 16, &mut |_| {}).unwrap();
    let smoothed = smooth(&model, &calibration, DEFAULT_ALPHA).unwrap();
    let changed = |name: &str| {
        let (a, b) = (model.tensor(name).unwrap(), smoothed.tensor(name).unwrap());
        model.weights.dequantize(a).unwrap() != smoothed.weights.dequantize(b).unwrap()
    };
    assert!(changed("blk.1.ffn_norm.bias") && changed("blk.1.ffn_up.weight") && changed("blk.0.attn_norm.bias"));
    let all = ForwardOptions { all_logits: true, ..Default::default() };
    let (a, b) = (forward(&model, &TOKENS, all).unwrap().logits, forward(&smoothed, &TOKENS, all).unwrap().logits);
    let err = relative_l2_f32(&b, &a);
    assert!(err <= 1e-5, "smoothed vs plain: relative L2 {err:.2e}");
}

/// Exported, the file stores q|k|v and their biases fused again (llama.cpp's gpt2 layout), it
/// loads back to the model quantize_model made, and the oracle reading it gives its logits. (f32:
/// the tiny GPT-2's rows of 48 are no whole Q8_0 blocks.)
#[test]
fn an_exported_gpt2_is_fused_again_and_predicts_what_the_oracle_reads_from_it() {
    use quantscope::quant::apply::quantize_model;
    use quantscope::quant::export::export_gguf;
    use quantscope::quant::Recipe;

    let model = load(tiny_gpt2_gguf(SEED));
    let recipe = Recipe::from_json(r#"{"default": "f32"}"#, "t").unwrap();
    let exported = export_gguf(&model, &recipe, &mut |_| {}).unwrap();
    let file = GgufFile::parse(&exported, "exported.gguf").unwrap();
    let d = TINY_GPT2.d as u64;
    assert_eq!(file.tensor("blk.1.attn_qkv.weight").expect("a fused attn_qkv").dims, [d, 3 * d]);
    assert_eq!(file.tensor("blk.1.attn_qkv.bias").expect("a fused bias").dims, [3 * d]);
    assert!(file.tensor("blk.0.attn_q.weight").is_none() && file.tensor("blk.0.attn_v.bias").is_none());

    let path = scratch("gpt2").join("exported.gguf");
    std::fs::write(&path, &exported).unwrap();
    let reloaded = Model::from_gguf(exported, "exported.gguf", &mut |_| {}).unwrap();
    predicts_alike(&quantize_model(&model, &recipe, &mut |_| {}).unwrap().model, &reloaded, &TOKENS);
    let ours = forward(&reloaded, &TOKENS, ForwardOptions::default()).unwrap().logits;
    let err = relative_l2_f32(&ours, &oracle_logits(&path, &TOKENS));
    assert!(err <= LOGITS_TOLERANCE, "exported vs oracle: relative L2 {err:.3e}");
}

/// The study re-quantizes every matrix on the GPU that a recipe quantizes on the CPU: with
/// GPT-2 that includes its position table, which the CPU's recipes quantize as a 2-D tensor. The
/// GPU model so re-quantized predicts what the CPU-quantized model does, and the position table
/// alone moves the logits by far more than the two differ.
#[test]
fn the_position_table_is_requantized_on_the_gpu_as_the_cpu_recipe_quantizes_it() {
    use crate::gpu_common::ctx;
    use quantscope::gpu::forward::{Capture, GpuModel};
    use quantscope::quant::apply::quantize_model;
    use quantscope::quant::{Recipe, Scheme};

    let model = load(tiny_gpt2_gguf(SEED));
    let scheme: Scheme = "int4-ch-asym".parse().unwrap();
    let mut gpu = GpuModel::upload(ctx(), &model, &mut |_| {}).unwrap();
    let names = gpu.matrix_names();
    assert!(names.iter().any(|n| n == "position_embd.weight"), "{names:?}");
    let mut encoder = ctx().encoder();
    for name in &names {
        gpu.requantize(ctx(), &mut encoder, name, &scheme).unwrap();
    }
    ctx().submit(encoder);
    let mut cache = gpu.new_cache(ctx(), TOKENS.len() as u32).unwrap();
    let on_gpu = pollster::block_on(gpu.step(ctx(), &mut cache, &TOKENS, &Capture::default())).unwrap().logits;
    let quantized = |recipe: &Recipe| {
        let q = quantize_model(&model, recipe, &mut |_| {}).unwrap().model;
        forward(&q, &TOKENS, ForwardOptions::default()).unwrap().logits
    };
    let on_cpu = quantized(&Recipe::uniform(scheme.clone()));
    let json = r#"{"default": "int4-ch-asym", "rules": [{"tensors": "position_embd.weight", "scheme": "keep"}]}"#;
    let without_positions = quantized(&Recipe::from_json(json, "test recipe").unwrap());
    let (err, effect) = (relative_l2_f32(&on_gpu, &on_cpu), relative_l2_f32(&without_positions, &on_cpu));
    println!("GPU vs CPU {err:.2e}; the position table's own effect {effect:.2e}");
    assert!(err <= 1e-4 && effect > 1e-3, "GPU vs CPU {err:.2e}, the position table's effect {effect:.2e}");
}
