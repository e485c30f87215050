//! Gemma 3 (embeddings times √width, tanh-GELU gate, per-head query and key norms, norms of the
//! attention's and the MLP's outputs, local blocks with a RoPE base of their own, a sliding
//! window): a tiny random checkpoint written as GGUF by the test gives the numpy oracle's logits
//! on the CPU reference and on the GPU and decodes alike; the same weights as a Hugging Face
//! checkpoint (norm gains stored as w for Gemma's 1 + w) load alike; 62 blocks take the 27B
//! model's query scale, 1/√(width/heads), as llama.cpp does.
use crate::architecture_checks::{
    from_hugging_face_files, matches_the_oracle_and_decodes_alike, oracle_logits, predicts_alike, HfLayout,
    LOGITS_TOLERANCE,
};
use crate::common::{relative_l2_f32, scratch};
use crate::gpu_common::{
    tiny_gemma3_gguf, tiny_gemma3_gguf_of, TinyShape, TINY_GEMMA3, TINY_GEMMA3_HEAD_DIM, TINY_GEMMA3_WINDOW,
};

use quantscope::model::config::GateActivation;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::Model;

const SEED: u64 = 0x4745_4d33_0000_0001;
const TOKENS: [u32; 9] = [3, 11, 0, 7, 7, 19, 2, 5, 13];

#[test]
fn a_tiny_gemma3_matches_the_numpy_oracle_on_the_cpu_and_the_gpu_and_decodes_alike() {
    let bytes = tiny_gemma3_gguf(SEED);
    let file = scratch("gemma3").join("tiny-gemma3.gguf");
    std::fs::write(&file, &bytes).unwrap();
    let model = Model::from_gguf(bytes, "tiny-gemma3.gguf", &mut |_| {}).unwrap();
    let c = &model.config;
    assert!(c.qk_norm && c.post_norms && c.scale_embeddings && c.tied_embeddings, "{c:?}");
    assert_eq!(
        (c.ffn_activation, c.head_dim, c.context_length),
        (GateActivation::GeluTanh, TINY_GEMMA3_HEAD_DIM, TINY_GEMMA3_WINDOW)
    );
    let local: Vec<bool> = (0..TINY_GEMMA3.layers).map(|l| c.is_local_layer(l)).collect();
    assert_eq!(local, [true, true, true, true, true, false]);
    matches_the_oracle_and_decodes_alike(&model, &file, &TOKENS);
}

/// Gemma 3 270M's config.json as shipped (newer transformers list the layer types).
fn hf_config(c: &quantscope::model::LlamaConfig) -> serde_json::Value {
    let layer_types: Vec<&str> =
        (0..c.n_layers).map(|l| if (l + 1) % 6 == 0 { "full_attention" } else { "sliding_attention" }).collect();
    serde_json::json!({
        "architectures": ["Gemma3ForCausalLM"], "hidden_size": c.d_model, "intermediate_size": c.d_ff,
        "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim, "max_position_embeddings": 64, "rms_norm_eps": c.rms_eps, "rope_theta": c.rope_base,
        "rope_local_base_freq": 10000.0, "rope_scaling": null, "sliding_window": TINY_GEMMA3_WINDOW,
        "layer_types": layer_types,
        "query_pre_attn_scalar": c.query_pre_attn_scalar.unwrap_or(c.head_dim as f32), "hidden_activation": "gelu_pytorch_tanh",
        "final_logit_softcapping": null, "attn_logit_softcapping": null, "vocab_size": c.vocab_size,
        "tie_word_embeddings": true,
    })
}

/// GGUF holds Gemma's norm gains as 1 + w, Hugging Face as w: the checkpoint written with w
/// loads to the same model.
#[test]
fn the_tiny_gemma3_from_hugging_face_files_predicts_as_from_gguf() {
    let bytes = tiny_gemma3_gguf(SEED);
    let gguf = Model::from_gguf(bytes.clone(), "tiny-gemma3.gguf", &mut |_| {}).unwrap();
    let hf = from_hugging_face_files(&gguf, &bytes, HfLayout::Gemma, hf_config(&gguf.config));
    assert_eq!(hf.config, gguf.config);
    predicts_alike(&gguf, &hf, &TOKENS);
}

/// Gemma 3 27B's queries are scaled by 1/√(width/heads) (its query_pre_attn_scalar 168 = 5376 /
/// 32, not head_dim 128); GGUF has no key for it, llama.cpp picks the 27B by its 62 blocks. The
/// tiny Gemma 3 of 62 blocks (heads 16 wide at a width of 32 over 4 heads: 1/√8) gives the numpy
/// oracle's logits on the CPU reference (the GPU reads the same scale: tests/native/gemma2.rs),
/// and its config.json with the scalar loads to the same config.
#[test]
fn a_tiny_gemma3_of_62_blocks_takes_the_27b_query_scale_from_gguf_and_config_json() {
    let bytes = tiny_gemma3_gguf_of(SEED, &TinyShape { layers: 62, ..TINY_GEMMA3 });
    let file = scratch("gemma3").join("tiny-gemma3-62-blocks.gguf");
    std::fs::write(&file, &bytes).unwrap();
    let model = Model::from_gguf(bytes.clone(), "tiny-gemma3-62-blocks.gguf", &mut |_| {}).unwrap();
    assert_eq!(model.config.query_pre_attn_scalar, Some(8.0));
    let cpu = forward(&model, &TOKENS, ForwardOptions::default()).unwrap().logits;
    let err = relative_l2_f32(&cpu, &oracle_logits(&file, &TOKENS));
    assert!(err <= LOGITS_TOLERANCE, "CPU reference vs oracle: relative L2 {err:.3e}");

    let hf = from_hugging_face_files(&model, &bytes, HfLayout::Gemma, hf_config(&model.config));
    assert_eq!(hf.config, model.config);
}

/// The real Gemma 3 270M (Q4_K_M): the top 5 of three prompts by the CPU reference equal the
/// numpy oracle's (ids, and logits within 1e-3), the GPU predicts the same top 5 (Q5_0 blocks,
/// 256-wide heads, embeddings split over two bindings on lavapipe), and the outlier analysis
/// finds its massive activation.
#[test]
fn gemma3_270m_predicts_the_numpy_oracles_top5_for_three_prompts() {
    use crate::common::{gemma3_model_path, run_oracle};
    use quantscope::analysis::outliers;
    use quantscope::gpu::forward::{Capture, GpuModel};

    let path = gemma3_model_path();
    let model = Model::from_gguf(std::fs::read(&path).unwrap(), "gemma-3-270m-q4_k_m.gguf", &mut |_| {}).unwrap();
    assert_eq!(
        (model.config.architecture.as_str(), model.config.n_layers, model.config.context_length),
        ("gemma3", 18, 512)
    );
    let prompts = ["The capital of France is", "def fibonacci(n):", "Water boils at a temperature of"];
    let sequences: Vec<Vec<u32>> = prompts.iter().map(|p| model.tokenizer.encode(p).unwrap()).collect();
    let mut args = vec![path.display().to_string(), "--top".into(), "5".into()];
    for (i, tokens) in sequences.iter().enumerate() {
        if i > 0 {
            args.push(",".into());
        }
        args.extend(tokens.iter().map(u32::to_string));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let oracle: serde_json::Value = serde_json::from_str(&run_oracle("forward.py", &args, "")).unwrap();
    // Its 170 MiB of Q8_0 embeddings exceed lavapipe's 128 MiB bindings: uploaded in two parts.
    let gpu = GpuModel::upload(crate::gpu_common::ctx(), &model, &mut |_| {}).unwrap();
    assert!(gpu.gpu_bytes() > 128 << 20);
    for ((prompt, tokens), want) in prompts.iter().zip(&sequences).zip(oracle["top"].as_array().unwrap()) {
        let want: Vec<(u32, f64)> =
            want.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap())).collect();
        let top = model.predict(prompt, 5).unwrap().top;
        let ids: Vec<u32> = top.iter().map(|t| t.id).collect();
        assert_eq!(ids, want.iter().map(|w| w.0).collect::<Vec<_>>(), "{prompt:?}: top 5 ids");
        for (t, (_, logit)) in top.iter().zip(&want) {
            assert!(
                (t.logit as f64 - logit).abs() <= 1e-3,
                "{prompt:?}: {:?} logit {} vs the oracle's {logit}",
                t.token,
                t.logit
            );
        }
        let ctx = crate::gpu_common::ctx();
        let mut cache = gpu.new_cache(ctx, tokens.len() as u32).unwrap();
        let logits = pollster::block_on(gpu.step(ctx, &mut cache, tokens, &Capture::default())).unwrap().logits;
        let on_gpu: Vec<u32> = model.top_tokens(&logits, 5).iter().map(|t| t.id).collect();
        assert_eq!(on_gpu, ids, "{prompt:?} on the GPU");
    }
    // Gemma 3 270M's massive activation: the first token's channel 163, tens of thousands.
    let report = outliers::outlier_report(&model, prompts[0], outliers::OutlierRule::Massive, 5).unwrap();
    assert_eq!(report.hidden_states.len(), 19, "the embeddings and each of 18 blocks");
    assert!(report.hidden_states.iter().any(|h| !h.outlier_tokens.is_empty()), "no massive activation found");
}
