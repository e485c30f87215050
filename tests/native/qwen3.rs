//! Qwen3 (per-head RMSNorm of the queries and keys before RoPE, head_dim set apart from the
//! width, NEOX RoPE): a tiny random checkpoint written as GGUF by the test gives the numpy
//! oracle's logits (tests/oracle/forward.py) on the CPU reference and on the GPU, 16 greedy
//! tokens are the same on both, and the same weights as a Hugging Face checkpoint load alike.
use crate::architecture_checks::{as_safetensors, matches_the_oracle_and_decodes_alike, predicts_alike, HfLayout};
use crate::common::scratch;
use crate::gpu_common::{tiny_qwen3_gguf, TINY_QWEN3_HEAD_DIM};

use quantscope::model::Model;

const SEED: u64 = 0x5157_454E_3300_0001;
const TOKENS: [u32; 7] = [3, 11, 0, 7, 7, 19, 2];

#[test]
fn a_tiny_qwen3_matches_the_numpy_oracle_on_the_cpu_and_the_gpu_and_decodes_alike() {
    let bytes = tiny_qwen3_gguf(SEED, None);
    let file = scratch("qwen3").join("tiny-qwen3.gguf");
    std::fs::write(&file, &bytes).unwrap();
    let model = Model::from_gguf(bytes, "tiny-qwen3.gguf", &mut |_| {}).unwrap();
    let c = &model.config;
    assert!(c.qk_norm && c.head_dim == TINY_QWEN3_HEAD_DIM && c.q_dim() != c.d_model, "{c:?}");
    matches_the_oracle_and_decodes_alike(&model, &file, &TOKENS);
}

#[test]
fn a_qwen3_file_without_its_query_norm_names_the_tensor() {
    let Err(err) = Model::from_gguf(tiny_qwen3_gguf(SEED, Some(1)), "cut.gguf", &mut |_| {}) else {
        panic!("a qwen3 file without blk.1.attn_q_norm.weight loaded");
    };
    assert!(err.to_string().contains("blk.1.attn_q_norm.weight"), "{err}");
}

/// The tiny Qwen3 as a Hugging Face checkpoint (model.safetensors, Qwen3ForCausalLM's
/// config.json, tokenizer.json) loads to the same model: the same logits as from GGUF, and
/// Qwen3's config read from config.json.
#[test]
fn the_tiny_qwen3_from_hugging_face_files_predicts_as_from_gguf() {
    let bytes = tiny_qwen3_gguf(SEED, None);
    let gguf = Model::from_gguf(bytes.clone(), "tiny-qwen3.gguf", &mut |_| {}).unwrap();
    let c = &gguf.config;
    let config = serde_json::json!({
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "head_dim": c.head_dim,
        "hidden_size": c.d_model, "intermediate_size": c.d_ff, "max_position_embeddings": c.context_length,
        "num_attention_heads": c.n_heads, "num_hidden_layers": c.n_layers, "num_key_value_heads": c.n_kv_heads,
        "rms_norm_eps": c.rms_eps, "rope_scaling": null, "rope_theta": c.rope_base, "tie_word_embeddings": true,
        "vocab_size": c.vocab_size, "sliding_window": null, "use_sliding_window": false,
    })
    .to_string();
    let tokenizer = gguf.tokenizer.to_json().unwrap();
    let weights = as_safetensors(&bytes, HfLayout::Llama);
    let hf =
        Model::from_safetensors(weights, config.as_bytes(), tokenizer.as_bytes(), "tiny-qwen3", &mut |_| {}).unwrap();
    assert_eq!((hf.config.architecture.as_str(), hf.config.qk_norm), ("qwen3", true));
    assert_eq!(hf.config.head_dim, TINY_QWEN3_HEAD_DIM);
    predicts_alike(&gguf, &hf, &TOKENS);
}
