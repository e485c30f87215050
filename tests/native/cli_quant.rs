//! The quantization commands as a user runs them: `quantize` writes llama.cpp's reference bytes
//! (checked against gguf-py) and the dequantized values; `eval` prints the documented JSON keys and
//! the same numbers twice; `export` writes a GGUF that gguf-py's reader and our loader read; bad
//! schemes and recipes are clear errors.
use crate::common;

use std::process::{Command, Output};

use common::*;

pub(crate) fn quantscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantscope")).args(args).current_dir(repo()).output().unwrap()
}

pub(crate) fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure, got {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn quantize_writes_the_reference_bytes_of_llama_cpp_for_q4_0_q8_0_q4_1() {
    let dir = scratch("cli_quantize");
    let tensor = "blk.0.ffn_down.weight";
    // The tensor as loaded, for the oracle.
    let model = default_model();
    let t = model.tensor(tensor).unwrap();
    let (rows, cols) = (t.n_rows(), t.row_len());
    let values = model.weights.dequantize(t).unwrap();
    let input = dir.join("input.f32");
    std::fs::write(&input, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let (rows_s, cols_s) = (rows.to_string(), cols.to_string());
    let oracle_dir = dir.join("oracle");
    std::fs::create_dir_all(&oracle_dir).unwrap();
    let listing = run_oracle(
        "gguf_quantize.py",
        &["quantize", input.to_str().unwrap(), &rows_s, &cols_s, oracle_dir.to_str().unwrap(), "Q4_0", "Q8_0", "Q4_1"],
        "",
    );
    assert_eq!(listing.lines().filter(|l| l.ends_with("gguf-py")).count(), 3, "{listing}");
    for ty in ["Q4_0", "Q8_0", "Q4_1"] {
        let (packed, dequant) = (dir.join(format!("{ty}.bin")), dir.join(format!("{ty}.f32")));
        let report = ok(&quantscope(&[
            "quantize",
            "--tensor",
            tensor,
            "--scheme",
            &ty.to_lowercase(),
            "--out",
            packed.to_str().unwrap(),
            "--dequant-out",
            dequant.to_str().unwrap(),
            "--json",
        ]));
        let expected = std::fs::read(oracle_dir.join(format!("{ty}.gguf-py.bin"))).unwrap();
        assert!(std::fs::read(&packed).unwrap() == expected, "{ty}: bytes differ from gguf-py's");
        // --dequant-out: gguf-py's dequantization of those bytes, bit for bit, rows = output features.
        let decoded = dir.join(format!("{ty}.gguf-py.f32"));
        let n = (rows * cols).to_string();
        run_oracle(
            "gguf_quantize.py",
            &["dequantize", ty, packed.to_str().unwrap(), &n, decoded.to_str().unwrap()],
            "",
        );
        assert!(std::fs::read(&dequant).unwrap() == std::fs::read(&decoded).unwrap(), "{ty}: dequantized values");
        let v: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!((v["rows"].as_u64(), v["cols"].as_u64()), (Some(rows as u64), Some(cols as u64)));
        // Q4_1 is the file's own format: re-quantizing it is lossless (SQNR +inf, null in JSON).
        let (mse, sqnr) = (v["error"]["mse"].as_f64().unwrap(), v["error"]["sqnr_db"].as_f64());
        assert!(if ty == "Q4_1" { mse == 0.0 && sqnr.is_none() } else { sqnr.unwrap() > 10.0 }, "{v}");
    }
}

#[test]
fn quantize_refuses_packed_output_for_a_codebook_scheme_and_names_bad_input() {
    let dir = scratch("cli_quantize_errors");
    let out = dir.join("nf4.bin");
    let err = failure(&quantscope(&[
        "quantize",
        "--tensor",
        "blk.0.attn_q.weight",
        "--scheme",
        "nf4",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("nf4-g64 has no GGUF block layout"), "{err}");
    let dequant = dir.join("nf4.f32");
    ok(&quantscope(&[
        "quantize",
        "--tensor",
        "blk.0.attn_q.weight",
        "--scheme",
        "nf4",
        "--dequant-out",
        dequant.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::metadata(&dequant).unwrap().len(), 576 * 576 * 4);
    let err = failure(&quantscope(&["quantize", "--tensor", "blk.0.nope", "--scheme", "nf4"]));
    assert!(err.contains("tensor \"blk.0.nope\" is not in the model"), "{err}");
    let err = failure(&quantscope(&["quantize", "--tensor", "blk.0.attn_q.weight", "--scheme", "int12"]));
    assert!(err.contains("bad scheme \"int12\": int takes 2 to 8 bits"), "{err}");
    // q4_k on rows of 576: llama.cpp's fallback, said so.
    let text = ok(&quantscope(&["quantize", "--tensor", "blk.0.attn_q.weight", "--scheme", "q4_k"]));
    assert!(text.contains("llama.cpp's fallback q5_0 used"), "{text}");
}

#[test]
fn eval_prints_the_documented_keys_and_the_same_numbers_twice() {
    let args = ["eval", "--w", "bcq2-g64-r3", "--tokens", "16", "--json"];
    let first = ok(&quantscope(&args));
    assert_eq!(first, ok(&quantscope(&args)), "eval is not reproducible");
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    for key in ["bpw", "bytes", "kl", "pd_kl", "top1_agreement", "perplexity", "qid", "layers"] {
        assert!(!v[key].is_null(), "no {key} in {v}");
    }
    assert_eq!(v["weights"], "bcq2-g64-r3");
    assert_eq!(v["tokens"], 16);
    assert_eq!(v["layers"].as_array().unwrap().len(), 31);
    assert!(v["kl"].as_f64().unwrap() > 0.0 && v["qid"].as_f64().unwrap().is_finite());
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 211, "every matrix is reported");
    assert!(tensors.iter().all(|t| t["scheme"] == "bcq2-g64-r3"));
}

#[test]
fn eval_with_a_recipe_and_a_bad_recipe() {
    let dir = scratch("cli_recipe");
    let recipe = dir.join("mixed.json");
    std::fs::write(
        &recipe,
        r#"{"default": "int4-g32-sym", "rules": [{"tensors": "blk.*.ffn_down.weight", "scheme": "int8-ch"},
            {"tensors": "token_embd.weight", "scheme": "keep"}]}"#,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&quantscope(&[
        "eval",
        "--recipe",
        recipe.to_str().unwrap(),
        "--tokens",
        "12",
        "--json",
    ])))
    .unwrap();
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 210, "token_embd is kept");
    let scheme_of = |name: &str| tensors.iter().find(|t| t["name"] == name).unwrap()["scheme"].clone();
    assert_eq!(scheme_of("blk.7.ffn_down.weight"), "int8-ch-sym");
    assert_eq!(scheme_of("blk.7.ffn_up.weight"), "int4-g32-sym");

    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"rules": [{"tensors": "blk.*", "layers": "9-3", "scheme": "nf4"}]}"#).unwrap();
    let err = failure(&quantscope(&["eval", "--recipe", bad.to_str().unwrap()]));
    assert!(err.contains("bad.json: bad recipe: rule 1 (\"blk.*\"): layers \"9-3\""), "{err}");
}

#[test]
fn eval_against_a_recipe_compares_with_it_instead_of_the_model_as_loaded() {
    let dir = scratch("cli_against");
    let recipe = dir.join("blocks01.json");
    std::fs::write(&recipe, r#"{"default": "keep", "rules": [{"tensors": "blk.*", "layers": "0-1", "scheme": "int3-g128-asym"}]}"#)
        .unwrap();
    let path = recipe.to_str().unwrap();
    let eval = |against: &[&str]| -> serde_json::Value {
        let args = [&["eval", "--recipe", path, "--tokens", "12", "--json"], against].concat();
        serde_json::from_str(&ok(&quantscope(&args))).unwrap()
    };
    let (loaded, itself) = (eval(&[]), eval(&["--against", path]));
    assert_eq!(loaded["reference"], "as loaded");
    assert!(loaded["kl"].as_f64().unwrap() > 0.0);
    assert_eq!(itself["reference"], path);
    assert_eq!((itself["kl"].as_f64(), itself["top1_agreement"].as_f64()), (Some(0.0), Some(1.0)), "{itself}");
    assert_eq!(itself["reference_perplexity"], itself["perplexity"]);
}

#[test]
fn export_writes_a_gguf_that_gguf_py_and_our_loader_read() {
    let dir = scratch("cli_export");
    let recipe = dir.join("k.json");
    std::fs::write(&recipe, r#"{"default": "q4_k", "rules": [{"tensors": "token_embd.weight", "scheme": "q8_0"}]}"#)
        .unwrap();
    let out = dir.join("model.gguf");
    ok(&quantscope(&["export", "--recipe", recipe.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    let listing = run_oracle("gguf_read.py", &[out.to_str().unwrap()], "");
    let source = run_oracle("gguf_read.py", &[default_model_path().to_str().unwrap()], "");
    assert_eq!(listing.lines().next(), source.lines().next(), "the metadata is copied");
    let ty = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("{name}"))
            .split('\t')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(ty("blk.3.ffn_down.weight"), "Q4_K", "rows of 1536 take Q4_K");
    assert_eq!(ty("blk.3.attn_q.weight"), "Q5_0", "rows of 576 take llama.cpp's fallback");
    assert_eq!(ty("token_embd.weight"), "Q8_0");
    assert_eq!(ty("blk.3.attn_norm.weight"), "F32");
    assert_eq!(listing.lines().count(), source.lines().count());
    // Our loader reads it and it still predicts.
    let text = ok(&quantscope(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--backend",
        "cpu",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["top"][0]["token"], " Paris");

    let nf4 = dir.join("nf4.json");
    std::fs::write(&nf4, r#"{"default": "q8_0", "rules": [{"tensors": "blk.2.ffn_up.weight", "scheme": "nf4"}]}"#)
        .unwrap();
    let err = failure(&quantscope(&[
        "export",
        "--recipe",
        nf4.to_str().unwrap(),
        "--out",
        dir.join("x.gguf").to_str().unwrap(),
    ]));
    assert!(err.contains("tensor \"blk.2.ffn_up.weight\" would be nf4-g64, which has no GGUF type"), "{err}");
}

#[test]
fn eval_runs_the_issue_7_flags_and_report_writes_its_table() {
    // The two runs the issue names, and a KV + attention + method run with its JSON keys.
    for a in ["int8-tensor", "int8-token"] {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&quantscope(&["eval", "--w", "f16", "--a", a, "--tokens", "16", "--json"]))).unwrap();
        assert_eq!(v["activations"]["default"], a);
        assert!(v["kl"].as_f64().unwrap().is_finite());
    }
    let args = ["eval", "--kv", "int4-e4m3", "--attn", "adalog4-q18", "--method", "fireq", "--tokens", "16", "--calib-tokens", "32", "--json"];
    let v: serde_json::Value = serde_json::from_str(&ok(&quantscope(&args))).unwrap();
    assert_eq!((v["kv"].as_str(), v["attn"].as_str(), v["method"].as_str()), (Some("int4-e4m3"), Some("adalog4-q18"), Some("fireq")));
    assert_eq!(v["decisions"]["calibration_tokens"], 32);
    assert!(v["kl"].as_f64().unwrap() > 0.0);
    // Bad names and combinations are clear errors.
    assert!(failure(&quantscope(&["eval", "--kv", "int9"])).contains("--kv"));
    assert!(failure(&quantscope(&["eval", "--attn", "adalog4-q0"])).contains("q must be"));
    assert!(failure(&quantscope(&["eval", "--w", "int4", "--method", "ptq161"])).contains("drop --w"));

    let dir = scratch("cli_report");
    let out = dir.join("results.md");
    let out_arg = out.display().to_string();
    let report = ["report", "--only", "--attn uint8", "--tokens", "16", "--window", "16", "--calib-tokens", "32", "--out", &out_arg];
    assert!(ok(&quantscope(&report)).contains("1 configurations"));
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("| attention | `--attn uint8` | as loaded |"), "{md}");
    assert!(md.contains("down_proj input"), "{md}");
    assert!(failure(&quantscope(&["report", "--only", "nothing-matches", "--out", &out_arg])).contains("no configuration"));
}

#[test]
fn eval_positions_lists_every_predicted_token_and_the_worst_first() {
    let out = ok(&quantscope(&["eval", "--w", "q4_0", "--tokens", "24", "--window", "12", "--json", "--positions"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let positions = v["per_position"].as_array().unwrap();
    assert_eq!(positions.len(), 22, "two windows of 12 predict 11 tokens each");
    let mean: f64 = positions.iter().map(|p| p["kl"].as_f64().unwrap()).sum::<f64>() / 22.0;
    assert!((mean - v["kl"].as_f64().unwrap()).abs() < 1e-12);
    let worst: Vec<u64> = v["worst_positions"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap()).collect();
    let kl_at = |index: u64| positions.iter().find(|p| p["index"] == index).unwrap()["kl"].as_f64().unwrap();
    assert!(worst.windows(2).all(|w| kl_at(w[0]) >= kl_at(w[1])), "{worst:?}");
    let text = ok(&quantscope(&["eval", "--w", "q4_0", "--tokens", "24", "--window", "12", "--positions"]));
    assert!(text.contains("worst positions ("), "{text}");
}
