//! Gemma 2 (Gemma 3's scaled embeddings, tanh-GELU gate and norms of the attention's and the
//! MLP's outputs, but no query and key norms, every block at one RoPE base, and soft caps on the
//! attention scores and on the logits): tiny random checkpoints written as GGUF by the test, with
//! caps low enough to bend the result, give the numpy oracle's logits on the CPU reference and on
//! the GPU and decode alike; 46 blocks take the 27B model's query scale, 1/√(width/heads), as
//! llama.cpp does; the same weights as Hugging Face checkpoints (gains stored as w for Gemma's
//! 1 + w, the caps and the query scalar in config.json) load alike.
use crate::architecture_checks::{
    from_hugging_face_files, matches_the_oracle_and_decodes_alike, predicts_alike, HfLayout,
};
use crate::common::scratch;
use crate::gpu_common::{
    tiny_gemma2_gguf, TinyShape, TINY_GEMMA2, TINY_GEMMA2_HEAD_DIM, TINY_GEMMA2_SOFTCAPS, TINY_GEMMA2_WINDOW,
};

use quantscope::model::config::GateActivation;
use quantscope::model::{LlamaConfig, Model};

const SEED: u64 = 0x4745_4d32_0000_0001;
const TOKENS: [u32; 9] = [3, 11, 0, 7, 7, 19, 2, 5, 13];
/// llama.cpp's Gemma 2 27B: picked by its 46 blocks.
const GEMMA2_27B: TinyShape = TinyShape { layers: 46, ..TINY_GEMMA2 };

/// The tiny Gemma 2 of `shape`, written under the scratch directory (for the oracle) and loaded.
fn load(shape: &TinyShape, name: &str) -> (Model, std::path::PathBuf, Vec<u8>) {
    let bytes = tiny_gemma2_gguf(SEED, shape);
    let file = scratch("gemma2").join(name);
    std::fs::write(&file, &bytes).unwrap();
    (Model::from_gguf(bytes.clone(), name, &mut |_| {}).unwrap(), file, bytes)
}

#[test]
fn a_tiny_gemma2_matches_the_numpy_oracle_on_the_cpu_and_the_gpu_and_decodes_alike() {
    let (model, file, _) = load(&TINY_GEMMA2, "tiny-gemma2.gguf");
    let c = &model.config;
    assert!(!c.qk_norm && c.post_norms && c.scale_embeddings && c.tied_embeddings, "{c:?}");
    assert_eq!(
        (c.ffn_activation, c.head_dim, c.context_length, c.local_layers),
        (GateActivation::GeluTanh, TINY_GEMMA2_HEAD_DIM, TINY_GEMMA2_WINDOW, None)
    );
    let (attention_cap, final_cap) = TINY_GEMMA2_SOFTCAPS;
    assert_eq!((c.attn_logit_softcap, c.final_logit_softcap), (Some(attention_cap), Some(final_cap)));
    assert_eq!(c.query_pre_attn_scalar, None, "scores scaled by 1/√head_dim");
    matches_the_oracle_and_decodes_alike(&model, &file, &TOKENS);
}

/// Heads 12 wide at a width of 40 over 4 heads: 1/√10 where 1/√12 would be wrong.
#[test]
fn a_tiny_gemma2_of_46_blocks_takes_the_27b_query_scale_on_the_cpu_and_the_gpu() {
    let (model, file, _) = load(&GEMMA2_27B, "tiny-gemma2-46-blocks.gguf");
    assert_eq!(model.config.query_pre_attn_scalar, Some(10.0));
    assert_eq!(model.config.attention_scale(), 1.0 / 10f32.sqrt());
    matches_the_oracle_and_decodes_alike(&model, &file, &TOKENS);
}

/// Gemma 2 2B's config.json, of the tiny model's sizes.
fn hf_config(c: &LlamaConfig) -> serde_json::Value {
    let (attention_cap, final_cap) = TINY_GEMMA2_SOFTCAPS;
    serde_json::json!({
        "architectures": ["Gemma2ForCausalLM"], "hidden_size": c.d_model, "intermediate_size": c.d_ff,
        "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim, "max_position_embeddings": 64, "rms_norm_eps": c.rms_eps, "rope_theta": c.rope_base,
        "sliding_window": TINY_GEMMA2_WINDOW, "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": c.query_pre_attn_scalar.unwrap_or(c.head_dim as f32),
        "attn_logit_softcapping": attention_cap, "final_logit_softcapping": final_cap,
        "vocab_size": c.vocab_size, "tie_word_embeddings": true, "cache_implementation": "hybrid",
    })
}

/// GGUF holds Gemma's norm gains as 1 + w, Hugging Face as w; config.json names the caps and the
/// query scalar (10 for the 46-block one, as Gemma 2 27B's 144 = 4608 / 32): both load to the
/// GGUF's model.
#[test]
fn the_tiny_gemma2s_from_hugging_face_files_predict_as_from_gguf() {
    for (shape, name) in [(&TINY_GEMMA2, "tiny-gemma2.gguf"), (&GEMMA2_27B, "tiny-gemma2-46-blocks.gguf")] {
        let (gguf, _, bytes) = load(shape, name);
        let hf = from_hugging_face_files(&gguf, &bytes, HfLayout::Gemma, hf_config(&gguf.config));
        assert_eq!(hf.config, gguf.config, "{name}");
        // The forwards of the 4-block one: over 46 blocks, this test's own f32 rounding of the
        // gains (1 + w → w, the loader's w → 1 + w) adds up past predicts_alike's 1e-6.
        if shape.layers == TINY_GEMMA2.layers {
            predicts_alike(&gguf, &hf, &TOKENS);
        }
    }
}
