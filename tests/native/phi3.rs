//! Phi-3 (each block's q|k|v and gate|up projections stored fused, a separate unembedding, NEOX
//! RoPE, a sliding window): a tiny random checkpoint written as GGUF by the test gives the numpy
//! oracle's logits on the CPU reference and on the GPU and decodes alike; the same weights as a
//! Hugging Face checkpoint load alike; an exported GGUF has the fused layout again, which the
//! oracle (gguf-py) reads to the same logits.
use crate::architecture_checks::{
    as_safetensors, matches_the_oracle_and_decodes_alike, oracle_logits, predicts_alike, HfLayout, LOGITS_TOLERANCE,
};
use crate::common::{relative_l2_f32, scratch};
use crate::gpu_common::{tiny_phi3_gguf, TINY_PHI3, TINY_PHI3_WINDOW};

use quantscope::formats::ggml::GgmlType;
use quantscope::formats::gguf::{write_gguf, GgufFile};
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::Model;
use quantscope::quant::export::export_gguf;
use quantscope::quant::Recipe;

const SEED: u64 = 0x5048_4933_0000_0001;
const TOKENS: [u32; 7] = [3, 11, 0, 7, 7, 19, 2];

fn load(bytes: Vec<u8>) -> Model {
    Model::from_gguf(bytes, "tiny-phi3.gguf", &mut |_| {}).unwrap()
}

#[test]
fn a_tiny_phi3_matches_the_numpy_oracle_on_the_cpu_and_the_gpu_and_decodes_alike() {
    let bytes = tiny_phi3_gguf(SEED);
    let file = scratch("phi3").join("tiny-phi3.gguf");
    std::fs::write(&file, &bytes).unwrap();
    let model = load(bytes);
    let c = &model.config;
    assert_eq!((c.architecture.as_str(), c.tied_embeddings), ("phi3", false));
    assert_eq!((c.sliding_window, c.context_length), (Some(TINY_PHI3_WINDOW), TINY_PHI3_WINDOW));
    // The fused tensors are gone; their parts are views of their rows.
    let names: Vec<&str> = model.weights.tensors().iter().map(|t| t.name.as_str()).collect();
    assert!(!names.contains(&"blk.0.attn_qkv.weight") && names.contains(&"blk.1.ffn_gate.weight"), "{names:?}");
    assert_eq!(model.tensor("blk.1.ffn_up.weight").unwrap().dims, [TINY_PHI3.d as u64, TINY_PHI3.ff as u64]);
    matches_the_oracle_and_decodes_alike(&model, &file, &TOKENS);
}

#[test]
fn the_tiny_phi3_from_hugging_face_files_predicts_as_from_gguf() {
    let bytes = tiny_phi3_gguf(SEED);
    let gguf = load(bytes.clone());
    let c = &gguf.config;
    let config = serde_json::json!({
        "architectures": ["Phi3ForCausalLM"], "hidden_size": c.d_model, "intermediate_size": c.d_ff,
        "max_position_embeddings": 64, "num_attention_heads": c.n_heads, "num_hidden_layers": c.n_layers,
        "num_key_value_heads": c.n_kv_heads, "rms_norm_eps": c.rms_eps, "rope_scaling": null,
        "rope_theta": c.rope_base, "sliding_window": TINY_PHI3_WINDOW, "tie_word_embeddings": false,
        "vocab_size": c.vocab_size, "partial_rotary_factor": 1.0,
    });
    let tokenizer = gguf.tokenizer.to_json().unwrap();
    let hf = Model::from_safetensors(
        as_safetensors(&bytes, HfLayout::Phi3),
        config.to_string().as_bytes(),
        tokenizer.as_bytes(),
        "tiny-phi3",
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(hf.config, gguf.config);
    predicts_alike(&gguf, &hf, &TOKENS);

    // Phi-4-mini rotates part of each head: refused by name, not computed as a full rotation.
    let mut partial = config.clone();
    partial["partial_rotary_factor"] = serde_json::json!(0.75);
    let Err(err) = Model::from_safetensors(
        as_safetensors(&bytes, HfLayout::Phi3),
        partial.to_string().as_bytes(),
        tokenizer.as_bytes(),
        "tiny-phi4",
        &mut |_| {},
    ) else {
        panic!("a partial rotary factor loaded");
    };
    assert!(err.to_string().contains("partial_rotary_factor 0.75"), "{err}");
}

/// Exported at q8_0, the file stores the fused tensors again (what llama.cpp's phi3 reads), it
/// loads back to the model quantize_model made, and gguf-py reading it gives the same logits.
#[test]
fn an_exported_phi3_is_fused_again_and_predicts_what_the_oracle_reads_from_it() {
    let model = load(tiny_phi3_gguf(SEED));
    let exported =
        export_gguf(&model, &Recipe::from_json(r#"{"default": "q8_0"}"#, "t").unwrap(), &mut |_| {}).unwrap();
    let file = GgufFile::parse(&exported, "exported.gguf").unwrap();
    let (d, kv) = (TINY_PHI3.d as u64, (TINY_PHI3.kv_heads * TINY_PHI3.d / TINY_PHI3.heads) as u64);
    let qkv = file.tensor("blk.1.attn_qkv.weight").expect("a fused attn_qkv");
    assert_eq!((qkv.dims.clone(), qkv.dtype), (vec![d, d + 2 * kv], GgmlType::Q8_0));
    assert_eq!(file.tensor("blk.1.ffn_up.weight").unwrap().dims, [d, 2 * TINY_PHI3.ff as u64]);
    assert!(file.tensor("blk.0.attn_q.weight").is_none() && file.tensor("blk.0.ffn_gate.weight").is_none());

    let path = scratch("phi3").join("exported-q8_0.gguf");
    std::fs::write(&path, &exported).unwrap();
    let reloaded = Model::from_gguf(exported, "exported.gguf", &mut |_| {}).unwrap();
    let quantized = quantscope::quant::apply::quantize_model(
        &model,
        &Recipe::from_json(r#"{"default": "q8_0"}"#, "t").unwrap(),
        &mut |_| {},
    )
    .unwrap();
    predicts_alike(&quantized.model, &reloaded, &TOKENS);
    let ours = forward(&reloaded, &TOKENS, ForwardOptions::default()).unwrap().logits;
    let err = relative_l2_f32(&ours, &oracle_logits(&path, &TOKENS));
    assert!(err <= LOGITS_TOLERANCE, "exported q8_0 vs oracle: relative L2 {err:.3e}");
}

#[test]
fn parts_of_one_fused_tensor_with_different_schemes_are_refused_naming_them() {
    let model = load(tiny_phi3_gguf(SEED));
    let recipe = Recipe::from_json(
        r#"{"default": "q8_0", "rules": [{"tensors": "blk.1.attn_k.weight", "scheme": "q4_0"}]}"#,
        "t",
    )
    .unwrap();
    let err = export_gguf(&model, &recipe, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("blk.1.attn_qkv.weight") && err.contains("blk.1.attn_k.weight") && err.contains("q4_0"),
        "{err}"
    );
}

/// Phi-3 128k's long-context RoPE factors ship as tensors the forward does not apply: refused,
/// naming the tensor; so is a file whose fused projection has the wrong height.
#[test]
fn rope_factors_and_a_misshapen_fused_tensor_are_refused_by_name() {
    let bytes = tiny_phi3_gguf(SEED);
    let file = GgufFile::parse(&bytes, "t").unwrap();
    type Tensors = Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>;
    let rewrite = |edit: &dyn Fn(&mut Tensors)| {
        let mut tensors: Vec<_> = file
            .tensors
            .iter()
            .map(|t| {
                let start = (file.data_offset + t.offset) as usize;
                (t.name.clone(), t.dims.clone(), t.dtype, bytes[start..start + t.n_bytes as usize].to_vec())
            })
            .collect();
        edit(&mut tensors);
        match Model::from_gguf(write_gguf(&file.metadata, &tensors, 32), "edited.gguf", &mut |_| {}) {
            Ok(_) => panic!("the edited file loaded"),
            Err(e) => e.to_string(),
        }
    };
    let err = rewrite(&|t| t.push(("rope_factors_long.weight".into(), vec![8], GgmlType::F32, vec![0; 32])));
    assert!(err.contains("rope_factors_long.weight") && err.contains("not supported"), "{err}");
    let err = rewrite(&|t| {
        let qkv = t.iter_mut().find(|t| t.0 == "blk.0.attn_qkv.weight").unwrap();
        qkv.1[1] -= 1;
        qkv.3.truncate(qkv.3.len() - 4 * qkv.1[0] as usize);
    });
    assert!(err.contains("blk.0.attn_qkv.weight"), "{err}");
}
