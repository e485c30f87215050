//! The `quantscope` binary as a user runs it: JSON shape, info facts, exit codes on bad files.
use crate::common;

use std::process::{Command, Output};

use common::*;

/// The binary as in a container or over ssh: no XDG_RUNTIME_DIR, so a driver's display probe
/// would complain on stderr if the CLI let it.
fn quantscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantscope"))
        .args(args)
        .current_dir(repo())
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap()
}

#[test]
fn predict_json_has_paris_on_top() {
    let model = default_model_path().display().to_string();
    let out =
        quantscope(&["predict", "--model", &model, "--prompt", "The capital of France is", "--top", "5", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["prompt"], "The capital of France is");
    assert_eq!(v["model"], model.as_str());
    assert_eq!(v["tokens"], serde_json::json!([504, 3575, 282, 4649, 314]));
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    assert_eq!(top[0]["token"], " Paris");
    assert!(top[0]["id"].is_u64() && top[0]["logit"].is_f64());
    let probs: Vec<f64> = top.iter().map(|t| t["prob"].as_f64().unwrap()).collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "sorted by probability: {probs:?}");
}

#[test]
fn info_reports_the_architecture_of_the_default_model() {
    let out = quantscope(&["info"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "layers       30",
        "width        576",
        "heads        9 ",
        "kv heads     3",
        "ffn width    1536",
        "vocab        49152",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("blk.29.ffn_down.weight") && text.contains("Q4_1") && text.contains("Q8_0"));

    let out = quantscope(&["info", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["n_layers"], 30);
    assert_eq!(v["tensors"].as_array().unwrap().len(), 272);
}

fn assert_fails_clearly(file: &std::path::Path, expect_in_message: &[&str]) {
    let out = quantscope(&["predict", "--model", &file.display().to_string(), "--prompt", "hi"]);
    assert_eq!(out.status.code(), Some(1), "exit code");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in expect_in_message {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}

#[test]
fn truncated_model_and_random_bytes_exit_with_code_1_and_a_clear_message() {
    let dir = scratch("cli_bad_input");
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(default_model_path()).unwrap();
    std::fs::write(&truncated, &bytes[..1 << 20]).unwrap();
    assert_fails_clearly(&truncated, &["truncated.gguf", "offset", "tokenizer.ggml.merges"]);

    let random = dir.join("random.bin");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&random, noise).unwrap();
    assert_fails_clearly(&random, &["random.bin", "not a GGUF file"]);

    assert_fails_clearly(&dir.join("does-not-exist.gguf"), &["does-not-exist.gguf", "cannot read"]);
}

#[test]
fn predict_on_gpu_and_cpu_agree() {
    let run = |backend: &str| -> serde_json::Value {
        let out = quantscope(&[
            "predict",
            "--backend",
            backend,
            "--prompt",
            "The capital of France is",
            "--top",
            "5",
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{backend}: {stderr}");
        assert!(!stderr.contains("XDG_RUNTIME_DIR"), "a driver's warning leaks into our output: {stderr}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (gpu, cpu) = (run("gpu"), run("cpu"));
    let ids = |v: &serde_json::Value| {
        v["top"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&gpu), ids(&cpu));
    assert_eq!(gpu["top"][0]["token"], " Paris");
    for (g, c) in gpu["top"].as_array().unwrap().iter().zip(cpu["top"].as_array().unwrap()) {
        let (g, c) = (g["logit"].as_f64().unwrap(), c["logit"].as_f64().unwrap());
        assert!((g - c).abs() <= 1e-3 * c.abs(), "logit {g} vs {c}");
    }
}

#[test]
fn eval_refuses_too_few_tokens_and_too_small_windows_and_reports_the_window_it_ran() {
    let out = quantscope(&["eval", "--w", "q8_0", "--tokens", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 2 tokens") && stderr.contains("given 1"), "{stderr}");
    assert!(!stderr.contains("prompt is empty"), "{stderr}");

    let out = quantscope(&["eval", "--w", "q8_0", "--window", "1"]);
    assert_eq!(out.status.code(), Some(2), "a bad flag is a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--window") && stderr.contains("at least 2"), "{stderr}");

    // A window past the context is clamped to it, and the JSON says the window that ran.
    let out = quantscope(&["eval", "--w", "q8_0", "--window", "100000", "--tokens", "4", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["window"], 8192, "SmolLM2's context");
    assert_eq!(v["tokens"], 4);
}

#[test]
fn auto_backend_leaves_a_software_adapter_for_the_cpu_and_says_so() {
    let out = quantscope(&["predict", "--prompt", "The capital of France is", "--top", "1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let software = pollster::block_on(quantscope::gpu::GpuContext::new()).is_ok_and(|ctx| ctx.summary.is_software());
    // This machine's only adapter is lavapipe; a machine with a real GPU must not be told so.
    assert_eq!(stderr.contains("is a software one"), software, "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["top"][0]["token"], " Paris");
}

#[test]
fn generate_streams_text_and_json_agrees_across_backends() {
    let run = |backend: &str| -> serde_json::Value {
        let args = [
            "generate",
            "--backend",
            backend,
            "--prompt",
            "Once upon a time",
            "--max-tokens",
            "8",
            "--seed",
            "1",
            "--json",
        ];
        let out = quantscope(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{backend}: {stderr}");
        assert!(!stderr.contains("XDG_RUNTIME_DIR"), "a driver's warning leaks into our output: {stderr}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (gpu, cpu) = (run("gpu"), run("cpu"));
    assert_eq!(gpu["tokens"], cpu["tokens"]);
    assert_eq!(gpu["tokens"].as_array().unwrap().len(), 8);
    assert!(gpu["tokens_per_second"].as_f64().unwrap() > 0.0);

    let out = quantscope(&["generate", "--backend", "cpu", "--prompt", "Once upon a time", "--max-tokens", "8"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim_end(), format!("Once upon a time{}", cpu["text"].as_str().unwrap()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens/s"));
}

#[test]
fn quick_bench_reports_kernels_ceiling_and_end_to_end() {
    check_quick_bench(&[]);
}

#[test]
fn quick_bench_on_the_synthetic_model_has_the_same_shape() {
    // What scripts/device-bench.sh runs on the GPU machine, where the model file cannot go.
    check_quick_bench(&["--synthetic"]);
}

fn check_quick_bench(extra: &[&str]) {
    let out = quantscope(&[&["bench", "--quick", "--json"], extra].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["ceiling_gb_per_s"].as_f64().unwrap() > 0.0);
    let kernels = v["kernels"].as_array().unwrap();
    let names = [
        "gemv",
        "gemm",
        "bcq_gemv",
        "rms_norm",
        "rope",
        "attention",
        "attention_split",
        "swiglu",
        "embedding",
        "top_k",
    ];
    for name in names {
        assert!(kernels.iter().any(|k| k["kernel"] == name), "no {name} in {kernels:?}");
    }
    for k in kernels {
        let (gbs, frac) = (k["gb_per_s"].as_f64().unwrap(), k["ceiling_fraction"].as_f64().unwrap());
        assert!(gbs > 0.0 && frac > 0.0 && (frac - gbs / v["ceiling_gb_per_s"].as_f64().unwrap()).abs() < 1e-9);
    }
    let e2e = &v["end_to_end"];
    assert!(e2e["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(e2e["prefill_with_probes_tokens_per_s"].as_f64().unwrap() > 0.0);
    // embedding + 7 per block × 30 (q|k|v stacked with the norm fused in; RoPE and the cache
    // append; attention's two passes; o with the residual add; gate|up with the norm and SwiGLU;
    // down with the residual add) + the unembedding with the final norm fused in + the greedy
    // pick's two top-k stages: 7 × layers + 4. A software adapter (lavapipe here) projects q, k
    // and v in three dispatches, faster on a CPU: 9 per block.
    let software = pollster::block_on(quantscope::gpu::GpuContext::new()).unwrap().summary.is_software();
    let per_block = if software { 9.0 } else { 7.0 };
    assert_eq!(e2e["dispatches_per_decode_token"].as_f64().unwrap(), per_block * 30.0 + 4.0);
    // One compute pass a step, and nothing created after the warm-up step.
    assert_eq!(e2e["compute_passes_per_decode_token"].as_f64().unwrap(), 1.0);
    assert_eq!(e2e["buffers_created_per_decode_step"].as_f64().unwrap(), 0.0);
    assert_eq!(e2e["bind_groups_created_per_decode_step"].as_f64().unwrap(), 0.0);
    assert!(e2e["host_record_microseconds_per_decode_step"].as_f64().unwrap() > 0.0);
    let requantize = v["requantize"].as_array().unwrap();
    for (scheme, path) in [("q4_0", "cpu+upload"), ("int4-g128-asym", "gpu"), ("mxfp4", "gpu")] {
        let r = requantize.iter().find(|r| r["scheme"] == scheme).unwrap_or_else(|| panic!("no {scheme}"));
        assert_eq!(r["path"], path, "{r}");
        // The quick run re-quantizes block 0's 7 matrices on the GPU; the CPU path, the model's 211.
        let matrices = if path == "gpu" { 7 } else { 211 };
        assert!(r["milliseconds"].as_f64().unwrap() > 0.0 && r["matrices"] == matrices, "{r}");
    }
}
