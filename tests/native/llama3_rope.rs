//! Llama 3.1's RoPE scaling (Llama 3.1 and 3.2): each pair's frequency divided by a factor. From
//! GGUF (`rope_freqs.weight`) a tiny random llama gives the numpy oracle's logits on the CPU
//! reference and the GPU and decodes alike; from a Hugging Face config (`rope_scaling`,
//! `rope_type: "llama3"`) the factors equal those of transformers' formula, written again in
//! numpy (tests/oracle/rope_scaling.py).
use crate::architecture_checks::{matches_the_oracle_and_decodes_alike, oracle_logits, LOGITS_TOLERANCE};
use crate::common::{relative_l2_f32, run_oracle, scratch};
use crate::gpu_common::tiny_llama3_gguf;

use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::{LlamaConfig, Model};

const SEED: u64 = 0x4c4c_4d33_0000_0001;
const TOKENS: [u32; 9] = [3, 11, 0, 7, 7, 19, 2, 5, 13];
/// One per pair of the tiny model's 8-wide heads: below and above 1, so every pair turns at
/// another speed than without them.
const FACTORS: [f32; 4] = [0.6, 3.0, 17.0, 40.0];

#[test]
fn a_tiny_llama_with_rope_frequency_factors_matches_the_numpy_oracle_on_the_cpu_and_the_gpu() {
    let bytes = tiny_llama3_gguf(SEED, &FACTORS);
    let file = scratch("llama3-rope").join("tiny-llama3.gguf");
    std::fs::write(&file, &bytes).unwrap();
    let model = Model::from_gguf(bytes.clone(), "tiny-llama3.gguf", &mut |_| {}).unwrap();
    assert_eq!(model.config.rope_freq_factors.as_deref(), Some(&FACTORS[..]));
    matches_the_oracle_and_decodes_alike(&model, &file, &TOKENS);

    // The factors matter here: the same weights without them are far from the oracle.
    let mut unscaled = model.config.clone();
    unscaled.rope_freq_factors = None;
    let plain = Model { config: unscaled, ..Model::from_gguf(bytes, "tiny-llama3.gguf", &mut |_| {}).unwrap() };
    let logits = forward(&plain, &TOKENS, ForwardOptions::default()).unwrap().logits;
    let err = relative_l2_f32(&logits, &oracle_logits(&file, &TOKENS));
    assert!(err > 100.0 * LOGITS_TOLERANCE, "the factors change the logits by only {err:.2e}");
}

/// Llama-3.2-1B's config.json (its rope_scaling; width and heads as shipped).
const LLAMA_3_2_1B: &str = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "head_dim": 64,
    "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "vocab_size": 128256,
    "tie_word_embeddings": true, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192, "rope_type": "llama3"}}"#;

#[test]
fn llama3_rope_scaling_from_a_hugging_face_config_equals_the_transformers_formula() {
    let config = LlamaConfig::from_hf_json(LLAMA_3_2_1B.as_bytes(), "config.json").unwrap();
    let ours = config.rope_freq_factors.expect("factors from rope_scaling");
    let oracle: serde_json::Value = serde_json::from_str(&run_oracle("rope_scaling.py", &[], LLAMA_3_2_1B)).unwrap();
    let oracle: Vec<f32> = oracle["factors"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(ours.len(), 32);
    for (i, (a, b)) in ours.iter().zip(&oracle).enumerate() {
        assert!((a / b - 1.0).abs() < 1e-6, "pair {i}: ours {a}, transformers' formula {b}");
    }
    // All three bands occur: kept (1), interpolated (between), divided by the whole factor (32).
    assert!(ours.contains(&1.0) && ours.contains(&32.0));
    assert!(ours.iter().any(|&f| f > 1.0 && f < 32.0), "{ours:?}");
}

#[test]
fn bad_rope_frequency_factors_are_refused_naming_them() {
    let err = |factors: &[f32]| match Model::from_gguf(tiny_llama3_gguf(SEED, factors), "bad.gguf", &mut |_| {}) {
        Ok(_) => panic!("factors {factors:?} loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err(&[1.0, 2.0, 3.0]).contains("rope_freqs.weight"));
    assert!(err(&[1.0, 0.0, 3.0, 4.0]).contains("rope_freqs.weight[1] is 0"));
}
