//! Qwen3 (per-head RMSNorm of the queries and keys before RoPE, head_dim set apart from the
//! width, NEOX RoPE): a tiny random checkpoint written as GGUF by the test gives the numpy
//! oracle's logits (tests/oracle/forward.py) on the CPU reference and on the GPU, 16 greedy
//! tokens are the same on both, and the same weights as a Hugging Face checkpoint load alike.
use crate::common::{relative_l2_f32, run_oracle, scratch};
use crate::gpu_common::{ctx, tiny_qwen3_gguf, TINY_QWEN3_HEAD_DIM};

use pollster::block_on;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::Model;

const LOGITS_TOLERANCE: f64 = 1e-4;
const SEED: u64 = 0x5157_454E_3300_0001;

#[test]
fn a_tiny_qwen3_matches_the_numpy_oracle_on_the_cpu_and_the_gpu_and_decodes_alike() {
    let bytes = tiny_qwen3_gguf(SEED, None);
    let file = scratch("qwen3").join("tiny-qwen3.gguf");
    std::fs::write(&file, &bytes).unwrap();
    let model = Model::from_gguf(bytes, "tiny-qwen3.gguf", &mut |_| {}).unwrap();
    let c = &model.config;
    assert!(c.qk_norm && c.head_dim == TINY_QWEN3_HEAD_DIM && c.q_dim() != c.d_model, "{c:?}");

    let tokens: Vec<u32> = vec![3, 11, 0, 7, 7, 19, 2];
    let args: Vec<String> =
        std::iter::once(file.display().to_string()).chain(tokens.iter().map(u32::to_string)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let oracle: serde_json::Value = serde_json::from_str(&run_oracle("forward.py", &args, "")).unwrap();
    let oracle: Vec<f32> = oracle["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();

    let cpu = forward(&model, &tokens, ForwardOptions::default()).unwrap().logits;
    let err = relative_l2_f32(&cpu, &oracle);
    assert!(err <= LOGITS_TOLERANCE, "CPU reference vs oracle: relative L2 {err:.3e}");

    let gpu = GpuModel::upload(ctx(), &model, &mut |_| {}).unwrap();
    let mut cache = gpu.new_cache(ctx(), 64).unwrap();
    let prefill = block_on(gpu.step(ctx(), &mut cache, &tokens, &Capture::default())).unwrap().logits;
    let err = relative_l2_f32(&prefill, &oracle);
    assert!(err <= LOGITS_TOLERANCE, "GPU vs oracle: relative L2 {err:.3e}");

    // Greedy decode: the GPU with its KV cache one token at a time, the CPU recomputing the whole
    // sequence; the norms run on every new query and key.
    let argmax = |l: &[f32]| l.iter().enumerate().fold(0, |b, (i, &v)| if v > l[b] { i } else { b }) as u32;
    let (mut on_cpu, mut sequence) = (Vec::new(), tokens.clone());
    for _ in 0..16 {
        let next = argmax(&forward(&model, &sequence, ForwardOptions::default()).unwrap().logits);
        on_cpu.push(next);
        sequence.push(next);
    }
    let mut on_gpu = vec![argmax(&prefill)];
    while on_gpu.len() < 16 {
        let last = [*on_gpu.last().unwrap()];
        on_gpu.push(argmax(&block_on(gpu.step(ctx(), &mut cache, &last, &Capture::default())).unwrap().logits));
    }
    assert_eq!(on_gpu, on_cpu);
    assert!(on_cpu.iter().collect::<std::collections::HashSet<_>>().len() > 1, "a constant continuation: {on_cpu:?}");
}

#[test]
fn a_qwen3_file_without_its_query_norm_names_the_tensor() {
    let Err(err) = Model::from_gguf(tiny_qwen3_gguf(SEED, Some(1)), "cut.gguf", &mut |_| {}) else {
        panic!("a qwen3 file without blk.1.attn_q_norm.weight loaded");
    };
    assert!(err.to_string().contains("blk.1.attn_q_norm.weight"), "{err}");
}

/// The Hugging Face name of a GGUF tensor name (the inverse of the loader's mapping).
fn hf_name(gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.").expect("a block tensor");
    let (layer, suffix) = rest.split_once('.').unwrap();
    let hf = match suffix {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_q_norm.weight" => "self_attn.q_norm.weight",
        "attn_k_norm.weight" => "self_attn.k_norm.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        other => panic!("no Hugging Face name for {other}"),
    };
    format!("model.layers.{layer}.{hf}")
}

/// The tiny Qwen3 as a Hugging Face checkpoint (model.safetensors with PyTorch's [out, in]
/// shapes, Qwen3ForCausalLM's config.json, tokenizer.json) loads to the same model: the same
/// logits as from GGUF, and Qwen3's config read from config.json.
#[test]
fn the_tiny_qwen3_from_hugging_face_files_predicts_as_from_gguf() {
    use safetensors::tensor::{Dtype, TensorView};

    let gguf = Model::from_gguf(tiny_qwen3_gguf(SEED, None), "tiny-qwen3.gguf", &mut |_| {}).unwrap();
    let tensors: Vec<(String, Vec<usize>, &[u8])> = gguf
        .weights
        .tensors()
        .iter()
        .map(|t| {
            // GGUF lists dimensions innermost first; PyTorch outermost first. The bytes are the same.
            let shape = t.dims.iter().rev().map(|&d| d as usize).collect();
            (hf_name(&t.name), shape, gguf.weights.data(t))
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap()))
        .collect();
    let weights = safetensors::serialize(views, None).unwrap();
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
    let hf =
        Model::from_safetensors(weights, config.as_bytes(), tokenizer.as_bytes(), "tiny-qwen3", &mut |_| {}).unwrap();
    assert_eq!((hf.config.architecture.as_str(), hf.config.qk_norm), ("qwen3", true));
    assert_eq!(hf.config.head_dim, TINY_QWEN3_HEAD_DIM);

    let tokens: Vec<u32> = vec![3, 11, 0, 7, 7, 19, 2];
    let all = ForwardOptions { all_logits: true, ..Default::default() };
    let (a, b) = (forward(&gguf, &tokens, all).unwrap().logits, forward(&hf, &tokens, all).unwrap().logits);
    assert!(relative_l2_f32(&b, &a) <= 1e-6, "Hugging Face vs GGUF: relative L2 {:.3e}", relative_l2_f32(&b, &a));
}
