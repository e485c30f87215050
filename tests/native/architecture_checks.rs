//! What every architecture's tiny random checkpoint must pass (tests/native/qwen3.rs,
//! tests/native/phi3.rs): the numpy oracle's logits on the CPU reference and on the GPU, the same
//! greedy continuation on both, and the same model from its Hugging Face form.
use std::path::Path;

use crate::common::{relative_l2_f32, run_oracle};
use crate::gpu_common::ctx;

use pollster::block_on;
use quantscope::formats::gguf::GgufFile;
use quantscope::gpu::forward::{Capture, GpuModel};
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::Model;

pub const LOGITS_TOLERANCE: f64 = 1e-4;

/// The last position's logits of `tokens` by tests/oracle/forward.py on the GGUF at `file`.
pub fn oracle_logits(file: &Path, tokens: &[u32]) -> Vec<f32> {
    let args: Vec<String> =
        std::iter::once(file.display().to_string()).chain(tokens.iter().map(u32::to_string)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let oracle: serde_json::Value = serde_json::from_str(&run_oracle("forward.py", &args, "")).unwrap();
    oracle["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

/// `model` (loaded from the GGUF at `file`) gives the oracle's logits after `tokens` within
/// [`LOGITS_TOLERANCE`] on the CPU reference and on the GPU (lavapipe), and 16 greedy tokens are
/// the same on both: the GPU with its KV cache one token at a time, the CPU's choices read from
/// one forward of the whole sequence.
pub fn matches_the_oracle_and_decodes_alike(model: &Model, file: &Path, tokens: &[u32]) {
    let oracle = oracle_logits(file, tokens);
    let cpu = forward(model, tokens, ForwardOptions::default()).unwrap().logits;
    let err = relative_l2_f32(&cpu, &oracle);
    assert!(err <= LOGITS_TOLERANCE, "CPU reference vs oracle: relative L2 {err:.3e}");

    let gpu = GpuModel::upload(ctx(), model, &mut |_| {}).unwrap();
    let mut cache = gpu.new_cache(ctx(), 64).unwrap();
    let prefill = block_on(gpu.step(ctx(), &mut cache, tokens, &Capture::default())).unwrap().logits;
    let err = relative_l2_f32(&prefill, &oracle);
    assert!(err <= LOGITS_TOLERANCE, "GPU vs oracle: relative L2 {err:.3e}");

    let argmax = |l: &[f32]| l.iter().enumerate().fold(0, |b, (i, &v)| if v > l[b] { i } else { b }) as u32;
    let mut on_gpu = vec![argmax(&prefill)];
    while on_gpu.len() < 16 {
        let last = [*on_gpu.last().unwrap()];
        on_gpu.push(argmax(&block_on(gpu.step(ctx(), &mut cache, &last, &Capture::default())).unwrap().logits));
    }
    // The CPU's greedy choice after every prefix, from one forward of the whole sequence (a
    // position's logits see only the tokens before it): the same as decoding on the CPU.
    let sequence: Vec<u32> = tokens.iter().chain(&on_gpu[..15]).copied().collect();
    let all = forward(model, &sequence, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits;
    let vocab = model.config.vocab_size;
    let on_cpu: Vec<u32> =
        (tokens.len() - 1..sequence.len()).map(|p| argmax(&all[p * vocab..(p + 1) * vocab])).collect();
    assert_eq!(on_gpu, on_cpu);
    assert!(on_cpu.iter().collect::<std::collections::HashSet<_>>().len() > 1, "a constant continuation: {on_cpu:?}");
}

/// How a Hugging Face checkpoint of an architecture differs from its GGUF.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HfLayout {
    Llama,
    /// `ffn_up` is the gate|up matrix, `attn_qkv` the q|k|v one.
    Phi3,
    /// Gemma 2 and 3: four norms a block, and every norm gain stored as w where GGUF stores 1 + w.
    Gemma,
    /// GPT2LMHeadModel: `wte`, `wpe`, `h.N.attn.c_attn`, ... (under `transformer.` when
    /// `prefixed`), each block's linear weights Conv1D `[in, out]` (the transpose of nn.Linear),
    /// and the causal-mask buffers `attn.bias` and `attn.masked_bias`, which are not weights.
    Gpt2 {
        prefixed: bool,
    },
}

/// The Hugging Face GPT-2 name of a tensor of a GGUF gpt2 file (without `transformer.`).
fn gpt2_hf_name(gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "wte.weight".into(),
        "position_embd.weight" => return "wpe.weight".into(),
        _ => {}
    }
    if let Some(kind) = gguf.strip_prefix("output_norm.") {
        return format!("ln_f.{kind}");
    }
    let (layer, suffix) = gguf.strip_prefix("blk.").expect("a block tensor").split_once('.').unwrap();
    let (module, kind) = suffix.split_once('.').unwrap();
    let hf = match module {
        "attn_norm" => "ln_1",
        "attn_qkv" => "attn.c_attn",
        "attn_output" => "attn.c_proj",
        "ffn_norm" => "ln_2",
        "ffn_up" => "mlp.c_fc",
        "ffn_down" => "mlp.c_proj",
        other => panic!("no Hugging Face GPT-2 name for {other}"),
    };
    format!("h.{layer}.{hf}.{kind}")
}

/// The Hugging Face name of a tensor of a GGUF file (the inverse of the loader's mapping).
fn hf_name(gguf: &str, layout: HfLayout) -> String {
    if let HfLayout::Gpt2 { prefixed } = layout {
        return format!("{}{}", if prefixed { "transformer." } else { "" }, gpt2_hf_name(gguf));
    }
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.").expect("a block tensor");
    let (layer, suffix) = rest.split_once('.').unwrap();
    let hf = match (suffix, layout) {
        ("attn_norm.weight", _) => "input_layernorm.weight",
        ("attn_q.weight", _) => "self_attn.q_proj.weight",
        ("attn_k.weight", _) => "self_attn.k_proj.weight",
        ("attn_v.weight", _) => "self_attn.v_proj.weight",
        ("attn_qkv.weight", _) => "self_attn.qkv_proj.weight",
        ("attn_q_norm.weight", _) => "self_attn.q_norm.weight",
        ("attn_k_norm.weight", _) => "self_attn.k_norm.weight",
        ("attn_output.weight", _) => "self_attn.o_proj.weight",
        ("post_attention_norm.weight", HfLayout::Gemma) => "post_attention_layernorm.weight",
        ("ffn_norm.weight", HfLayout::Gemma) => "pre_feedforward_layernorm.weight",
        ("post_ffw_norm.weight", HfLayout::Gemma) => "post_feedforward_layernorm.weight",
        ("ffn_norm.weight", _) => "post_attention_layernorm.weight",
        ("ffn_gate.weight", _) => "mlp.gate_proj.weight",
        ("ffn_up.weight", HfLayout::Phi3) => "mlp.gate_up_proj.weight",
        ("ffn_up.weight", _) => "mlp.up_proj.weight",
        ("ffn_down.weight", _) => "mlp.down_proj.weight",
        (other, _) => panic!("no Hugging Face name for {other}"),
    };
    format!("model.layers.{layer}.{hf}")
}

/// The f32 tensors of a GGUF file in a model.safetensors under Hugging Face's names with
/// PyTorch's [out, in] shapes (GGUF lists dimensions innermost first; the bytes are the same,
/// but for Gemma's norm gains, stored as w where GGUF has 1 + w, and GPT-2's Conv1D weights,
/// stored transposed as [in, out]).
pub fn as_safetensors(gguf_bytes: &[u8], layout: HfLayout) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let gguf = GgufFile::parse(gguf_bytes, "tiny.gguf").unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = gguf
        .tensors
        .iter()
        .map(|t| {
            let start = (gguf.data_offset + t.offset) as usize;
            let mut bytes = gguf_bytes[start..start + t.n_bytes as usize].to_vec();
            if layout == HfLayout::Gemma && t.name.ends_with("norm.weight") {
                let gains: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
                bytes = gains.iter().flat_map(|g| (g - 1.0).to_le_bytes()).collect();
            }
            let mut shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
            if matches!(layout, HfLayout::Gpt2 { .. }) && t.name.starts_with("blk.") && t.dims.len() == 2 {
                let (n_in, n_out) = (t.dims[0] as usize, t.dims[1] as usize);
                let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
                let conv1d: Vec<f32> = (0..n_in * n_out).map(|at| values[(at % n_out) * n_in + at / n_out]).collect();
                bytes = bytemuck::cast_slice(&conv1d).to_vec();
                shape = vec![n_in, n_out];
            }
            (hf_name(&t.name, layout), shape, bytes)
        })
        .collect();
    let mut tensors = tensors;
    if let HfLayout::Gpt2 { prefixed } = layout {
        // The causal mask and its fill value, as older transformers saved them in every block.
        let context = gguf.tensor("position_embd.weight").unwrap().dims[1] as usize;
        let mask: Vec<f32> = (0..context * context).map(|at| (at % context <= at / context) as u8 as f32).collect();
        let prefix = if prefixed { "transformer." } else { "" };
        let blocks = gguf.tensors.iter().filter(|t| t.name.ends_with("attn_qkv.weight")).count();
        for l in 0..blocks {
            tensors.push((format!("{prefix}h.{l}.attn.bias"), vec![1, 1, context, context], f32_bytes(&mask)));
            tensors.push((format!("{prefix}h.{l}.attn.masked_bias"), vec![], f32_bytes(&[-1e4])));
        }
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// The model of the GGUF `gguf_bytes` (loaded as `gguf`) loaded from Hugging Face files: its
/// tensors as [`as_safetensors`] writes them in `layout`, `config` as config.json, and its
/// tokenizer as tokenizer.json.
pub fn from_hugging_face_files(gguf: &Model, gguf_bytes: &[u8], layout: HfLayout, config: serde_json::Value) -> Model {
    let tokenizer = gguf.tokenizer.to_json().unwrap();
    let (config, safetensors) = (config.to_string(), as_safetensors(gguf_bytes, layout));
    Model::from_safetensors(safetensors, config.as_bytes(), tokenizer.as_bytes(), "tiny", &mut |_| {}).unwrap()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    bytemuck::cast_slice(values).to_vec()
}

/// Every position's logits of `tokens` from two loads of one model agree within 1e-6.
pub fn predicts_alike(a: &Model, b: &Model, tokens: &[u32]) {
    let all = ForwardOptions { all_logits: true, ..Default::default() };
    let (a, b) = (forward(a, tokens, all).unwrap().logits, forward(b, tokens, all).unwrap().logits);
    let err = relative_l2_f32(&b, &a);
    assert!(err <= 1e-6, "relative L2 {err:.3e} between the two loads");
}
