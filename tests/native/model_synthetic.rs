//! A tiny synthetic llama written as GGUF in the test: the loader's checks (missing tensors,
//! shapes, unsupported types, non-finite weights), the RoPE layout equivalence, and Qwen2's q/k/v
//! biases through the GPU forward, without Python.
use crate::gpu_common::{tiny_metadata, TinyShape};
use quantscope::formats::ggml::GgmlType;
use quantscope::formats::gguf::{write_gguf, MetadataValue as V};
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::{Model, RopeLayout};
use quantscope::{FormatError, ModelError};

const D: usize = 32;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = D / HEADS;
const FF: usize = 64;
const VOCAB: usize = 12;
const LAYERS: usize = 2;

type Tensor = (String, Vec<u64>, GgmlType, Vec<u8>);

/// Deterministic values in (-0.5, 0.5): xorshift, so the test needs no rand crate.
struct Noise(u64);
impl Noise {
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }
}

fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> Tensor {
    (name.into(), dims.iter().map(|&d| d as u64).collect(), GgmlType::F32, bytemuck::cast_slice(values).to_vec())
}

/// GGUF llama rows of a Q/K projection are permuted so RoPE can rotate adjacent pairs:
/// Hugging Face row h·hd + s·hd/2 + i becomes h·hd + 2i + s.
fn permute_rows(w: &[f32], heads: usize) -> Vec<f32> {
    let half = HEAD_DIM / 2;
    let mut out = vec![0.0; w.len()];
    for h in 0..heads {
        for s in 0..2 {
            for i in 0..half {
                let (hf, gguf) = (h * HEAD_DIM + s * half + i, h * HEAD_DIM + 2 * i + s);
                out[gguf * D..(gguf + 1) * D].copy_from_slice(&w[hf * D..(hf + 1) * D]);
            }
        }
    }
    out
}

fn metadata(arch: &str) -> Vec<(String, V)> {
    // Letters and one merge of two of them: a valid byte-level BPE vocabulary.
    let shape = TinyShape { d: D, heads: HEADS, kv_heads: KV_HEADS, ff: FF, vocab: VOCAB, layers: LAYERS, context: 64 };
    tiny_metadata(arch, &shape)
}

/// The tiny model's tensors, Q/K rows in GGUF llama order when `permute_qk`.
fn tensors(permute_qk: bool) -> Vec<Tensor> {
    let mut noise = Noise(0x2545_F491_4F6C_DD1D);
    let mut t = vec![
        f32_tensor("token_embd.weight", &[D, VOCAB], &noise.values(D * VOCAB)),
        f32_tensor("output_norm.weight", &[D], &noise.values(D).iter().map(|x| 1.0 + x).collect::<Vec<_>>()),
    ];
    for l in 0..LAYERS {
        let name = |s: &str| format!("blk.{l}.{s}");
        let (q, k) = (noise.values(D * D), noise.values(HEAD_DIM * KV_HEADS * D));
        let (q, k) = if permute_qk { (permute_rows(&q, HEADS), permute_rows(&k, KV_HEADS)) } else { (q, k) };
        let kv = HEAD_DIM * KV_HEADS;
        t.extend([
            f32_tensor(&name("attn_norm.weight"), &[D], &noise.values(D).iter().map(|x| 1.0 + x).collect::<Vec<_>>()),
            f32_tensor(&name("attn_q.weight"), &[D, D], &q),
            f32_tensor(&name("attn_k.weight"), &[D, kv], &k),
            f32_tensor(&name("attn_v.weight"), &[D, kv], &noise.values(D * kv)),
            f32_tensor(&name("attn_output.weight"), &[D, D], &noise.values(D * D)),
            f32_tensor(&name("ffn_norm.weight"), &[D], &noise.values(D).iter().map(|x| 1.0 + x).collect::<Vec<_>>()),
            f32_tensor(&name("ffn_gate.weight"), &[D, FF], &noise.values(D * FF)),
            f32_tensor(&name("ffn_up.weight"), &[D, FF], &noise.values(D * FF)),
            f32_tensor(&name("ffn_down.weight"), &[FF, D], &noise.values(FF * D)),
        ]);
    }
    t
}

fn load(arch: &str, tensors: &[Tensor]) -> Result<Model, ModelError> {
    Model::from_gguf(write_gguf(&metadata(arch), tensors, 32), "tiny.gguf", &mut |_| {})
}

fn set(tensors: &mut [Tensor], name: &str, f: impl FnOnce(&mut Tensor)) {
    f(tensors.iter_mut().find(|t| t.0 == name).expect("tensor exists"));
}

#[test]
fn interleaved_rope_on_permuted_rows_equals_half_split_rope() {
    let llama = load("llama", &tensors(true)).unwrap();
    let qwen2 = load("qwen2", &tensors(false)).unwrap();
    assert_eq!(llama.config.rope_layout, RopeLayout::Interleaved);
    assert_eq!(qwen2.config.rope_layout, RopeLayout::HalfSplit);
    let tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7];
    let a = forward(&llama, &tokens, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits;
    let b = forward(&qwen2, &tokens, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits;
    // Same arithmetic on reordered rows: only the order of f32 sums inside a head differs.
    let max_diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-5, "max |Δlogit| = {max_diff}");
    // And RoPE matters: the unpermuted weights under interleaved RoPE give other logits.
    let wrong = load("llama", &tensors(false)).unwrap();
    let c = forward(&wrong, &tokens, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits;
    let max_wrong = a.iter().zip(&c).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max_wrong > 1e-3, "layout made no difference ({max_wrong})");
}

#[test]
fn tied_embeddings_when_there_is_no_output_tensor() {
    let model = load("llama", &tensors(true)).unwrap();
    assert!(model.config.tied_embeddings);
    let mut with_output = tensors(true);
    with_output.push(f32_tensor("output.weight", &[D, VOCAB], &Noise(7).values(D * VOCAB)));
    let separate = load("llama", &with_output).unwrap();
    assert!(!separate.config.tied_embeddings);
    let a = forward(&model, &[1, 2], ForwardOptions::default()).unwrap().logits;
    let b = forward(&separate, &[1, 2], ForwardOptions::default()).unwrap().logits;
    assert_ne!(a, b);
}

#[test]
fn non_finite_weight_names_tensor_and_index() {
    let mut t = tensors(true);
    set(&mut t, "blk.1.ffn_up.weight", |t| t.3[4 * 37..4 * 38].copy_from_slice(&f32::NAN.to_le_bytes()));
    match load("llama", &t).err().expect("must fail") {
        ModelError::Format(FormatError::NonFinite { file, tensor, index, .. }) => {
            assert_eq!((file.as_str(), tensor.as_str(), index), ("tiny.gguf", "blk.1.ffn_up.weight", 37));
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let mut t = tensors(true);
    t.retain(|t| t.0 != "blk.1.attn_v.weight");
    let err = load("llama", &t).err().expect("must fail");
    assert_eq!(err, ModelError::MissingTensor { file: "tiny.gguf".into(), tensor: "blk.1.attn_v.weight".into() });

    let mut t = tensors(true);
    set(&mut t, "blk.0.ffn_down.weight", |t| t.1 = vec![D as u64, FF as u64]);
    let err = load("llama", &t).err().expect("must fail");
    assert!(matches!(&err, ModelError::WrongShape { tensor, .. } if tensor == "blk.0.ffn_down.weight"), "{err}");
    assert!(err.to_string().contains("expected [64, 32]"), "{err}");
}

#[test]
fn unsupported_tensor_type_says_which_type_and_tensor() {
    let mut t = tensors(true);
    // Same element count as IQ4_NL blocks (32 values in 18 bytes): parses, cannot be dequantized.
    set(&mut t, "blk.0.ffn_gate.weight", |t| {
        t.2 = GgmlType::IQ4_NL;
        t.3 = vec![0; (D * FF / 32) * 18];
    });
    let err = load("llama", &t).err().expect("must fail").to_string();
    assert!(err.contains("unsupported tensor type IQ4_NL in tensor \"blk.0.ffn_gate.weight\""), "{err}");
}

#[test]
fn unsupported_architecture_and_bad_prompts_are_clear_errors() {
    let err = load("gptneox", &tensors(true)).err().expect("must fail").to_string();
    assert!(err.contains("unsupported architecture \"gptneox\"") && err.contains("llama"), "{err}");

    let model = load("llama", &tensors(true)).unwrap();
    assert_eq!(forward(&model, &[], ForwardOptions::default()).err(), Some(ModelError::EmptyPrompt));
    assert_eq!(
        forward(&model, &[VOCAB as u32], ForwardOptions::default()).err(),
        Some(ModelError::TokenOutOfRange { id: VOCAB as u32, vocab: VOCAB })
    );
    assert_eq!(
        forward(&model, &[0; 65], ForwardOptions::default()).err(),
        Some(ModelError::PromptTooLong { tokens: 65, context: 64 })
    );
}

/// Qwen2's q/k/v biases on the GPU: in the projections' epilogue one at a time (prefill) and
/// concatenated for the stacked q|k|v projection (decode steps), against the CPU reference.
#[test]
fn qwen2_biases_on_the_gpu_prefill_and_stacked_decode_match_the_cpu() {
    use quantscope::gpu::forward::{Capture, GpuModel};
    let mut t = tensors(false);
    let mut noise = Noise(0x9E37_79B9);
    for l in 0..LAYERS {
        let kv = HEAD_DIM * KV_HEADS;
        t.push(f32_tensor(&format!("blk.{l}.attn_q.bias"), &[D], &noise.values(D)));
        t.push(f32_tensor(&format!("blk.{l}.attn_k.bias"), &[kv], &noise.values(kv)));
        t.push(f32_tensor(&format!("blk.{l}.attn_v.bias"), &[kv], &noise.values(kv)));
    }
    let model = load("qwen2", &t).unwrap();
    assert!(model.config.qkv_bias);
    let Ok(ctx) = pollster::block_on(quantscope::gpu::GpuContext::new()) else { panic!("no wgpu adapter (lavapipe is installed by scripts/setup)") };
    let mut gpu = GpuModel::upload(&ctx, &model, &mut |_| {}).unwrap();
    gpu.set_stacked_qkv(true); // the concatenated biases, whatever the adapter
    let tokens = [3u32, 1, 4, 1, 5, 9, 2, 6];
    let mut cache = gpu.new_cache(&ctx, 16).unwrap();
    let mut logits = pollster::block_on(gpu.step(&ctx, &mut cache, &tokens[..4], &Capture::default())).unwrap().logits;
    for upto in 4..=tokens.len() {
        let cpu = forward(&model, &tokens[..upto], ForwardOptions::default()).unwrap().logits;
        let err = logits.iter().zip(&cpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-4, "after {upto} tokens: max |Δlogit| = {err}");
        if upto < tokens.len() {
            logits = pollster::block_on(gpu.step(&ctx, &mut cache, &tokens[upto..upto + 1], &Capture::default())).unwrap().logits;
        }
    }
    // The biases matter: without them the logits differ.
    let plain = load("qwen2", &tensors(false)).unwrap();
    let unbiased = forward(&plain, &tokens, ForwardOptions::default()).unwrap().logits;
    let moved = logits.iter().zip(&unbiased).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "biases changed nothing ({moved})");
}
