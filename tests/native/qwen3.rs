//! Qwen3 (per-head RMSNorm of the queries and keys before RoPE, head_dim set apart from the
//! width, NEOX RoPE): a tiny random checkpoint written as GGUF by the test gives the numpy
//! oracle's logits (tests/oracle/forward.py) on the CPU reference and on the GPU, and 16 greedy
//! tokens are the same on both.
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
