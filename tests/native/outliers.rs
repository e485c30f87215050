//! `quantscope outliers` on the default model against statistics recomputed here, independently,
//! from the CPU reference forward's full hidden states and attention probabilities.
use crate::common;

use std::process::Command;

use common::*;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::Model;
use serde_json::Value;

const PROMPT: &str = "The capital of France is Paris. It is known for";

fn outliers_json(extra: &[&str]) -> Value {
    let model = default_model_path().display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_quantscope"))
        .args(["outliers", "--model", &model, "--prompt", PROMPT, "--json"])
        .args(extra)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn f32_of(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not an index: {v}")) as usize
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// The reference's hidden states and attention probabilities for PROMPT.
fn reference(model: &Model) -> (Vec<u32>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let ids = model.tokenizer.encode(PROMPT).unwrap();
    let out =
        forward(model, &ids, ForwardOptions { all_logits: false, hidden_states: true, attention_probs: true }).unwrap();
    (ids, out.hidden_states, out.attention_probs)
}

#[test]
fn residual_stream_statistics_and_top_entries_equal_the_cpu_reference() {
    let v = outliers_json(&[]);
    let model = default_model();
    let c = &model.config;
    let (ids, hidden, _) = reference(&model);
    let d = c.d_model;

    assert_eq!(v["prompt"], PROMPT);
    assert_eq!(v["rule"], "systematic");
    assert_eq!(v["top_k"], 5);
    let tokens = array(&v["tokens"]);
    assert_eq!(tokens.len(), ids.len());
    for (t, (token, &id)) in tokens.iter().zip(&ids).enumerate() {
        assert_eq!((usize_of(&token["index"]), token["id"].as_u64().unwrap()), (t, id as u64));
        assert_eq!(token["text"], model.tokenizer.token_text(id));
    }
    assert_eq!(tokens[0]["category"], "initial");
    assert_eq!((tokens[6]["text"].as_str(), tokens[6]["category"].as_str()), (Some("."), Some("strong_delimiter")));

    let states = array(&v["hidden_states"]);
    assert_eq!(states.len(), c.n_layers + 1);
    for (i, (s, h)) in states.iter().zip(&hidden).enumerate() {
        assert_eq!(usize_of(&s["index"]), i);
        assert_eq!(s["block"], if i == 0 { Value::Null } else { Value::from(i - 1) });

        // Independent recomputation: sort every magnitude.
        let mut by_magnitude: Vec<(f32, usize)> = h.iter().enumerate().map(|(j, x)| (x.abs(), j)).collect();
        by_magnitude.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut ascending: Vec<f32> = h.iter().map(|x| x.abs()).collect();
        ascending.sort_by(f32::total_cmp);
        let mean = (h.iter().map(|x| x.abs() as f64).sum::<f64>() / h.len() as f64) as f32;
        assert_eq!(f32_of(&s["max_abs"]), by_magnitude[0].0, "state {i}");
        assert_eq!(f32_of(&s["median_abs"]), ascending[(ascending.len() - 1) / 2], "state {i}");
        assert_eq!(f32_of(&s["mean_abs"]), mean, "state {i}");
        assert_eq!(f32_of(&s["threshold"]), 1000.0 * mean, "state {i}");

        let entries = array(&s["top_entries"]);
        assert_eq!(entries.len(), 5);
        for (e, &(_, j)) in entries.iter().zip(&by_magnitude) {
            let (token, channel) = (usize_of(&e["token"]), usize_of(&e["channel"]));
            // The reported value is the reference's activation at the reported place, bit for bit,
            // and the places are the five largest magnitudes in order.
            assert_eq!(f32_of(&e["value"]), h[token * d + channel], "state {i} ({token}, {channel})");
            assert_eq!((token, channel), (j / d, j % d), "state {i}");
        }

        for ch in array(&s["top_channels"]) {
            let channel = usize_of(&ch["channel"]);
            let column_max = (0..ids.len()).map(|t| h[t * d + channel].abs()).fold(0.0, f32::max);
            assert_eq!(f32_of(&ch["max_abs"]), column_max);
            assert_eq!(h[usize_of(&ch["token"]) * d + channel].abs(), column_max);
        }

        let token_max: Vec<f32> =
            h.chunks_exact(d).map(|row| row.iter().map(|x| x.abs()).fold(0.0, f32::max)).collect();
        let reported: Vec<f32> = array(&s["token_max_abs"]).iter().map(f32_of).collect();
        assert_eq!(reported, token_max, "state {i}");
        let threshold = 1000.0 * mean;
        let expected: Vec<usize> = (0..ids.len()).filter(|&t| token_max[t] > threshold).collect();
        let outliers: Vec<usize> = array(&s["outlier_tokens"]).iter().map(|o| usize_of(&o["token"])).collect();
        assert_eq!(outliers, expected, "state {i}");
        for o in array(&s["outlier_tokens"]) {
            let t = usize_of(&o["token"]);
            assert_eq!(o["text"], tokens[t]["text"]);
            assert_eq!(o["category"], tokens[t]["category"]);
            assert_eq!(f32_of(&o["max_abs"]), token_max[t]);
        }
        let channels: Vec<usize> =
            (0..d).filter(|&ch| (0..ids.len()).any(|t| h[t * d + ch].abs() > threshold)).collect();
        let reported: Vec<usize> = array(&s["outlier_channels"]).iter().map(usize_of).collect();
        assert_eq!(reported, channels, "state {i}");
    }
}

#[test]
fn sink_scores_and_outlier_keys_equal_the_cpu_reference() {
    let v = outliers_json(&[]);
    let model = default_model();
    let (ids, _, probs) = reference(&model);
    let (heads, n) = (model.config.n_heads, ids.len());
    let attention = array(&v["attention"]);
    assert_eq!(attention.len(), model.config.n_layers);
    for (block, (a, p)) in attention.iter().zip(&probs).enumerate() {
        assert_eq!(usize_of(&a["block"]), block);
        let scores: Vec<f32> = array(&a["sink_scores"]).iter().map(f32_of).collect();
        assert_eq!(scores.len(), heads);
        for (h, &score) in scores.iter().enumerate() {
            let expected = (1..n).map(|q| p[(h * n + q) * n] as f64).sum::<f64>() / (n - 1) as f64;
            assert!((score as f64 - expected).abs() < 1e-6, "block {block} head {h}: {score} vs {expected}");
        }
        let sink_heads: Vec<usize> = array(&a["sink_heads"]).iter().map(usize_of).collect();
        assert_eq!(sink_heads, (0..heads).filter(|&h| scores[h] >= 0.5).collect::<Vec<_>>());

        let c: Vec<f32> = array(&a["key_attention"]).iter().map(f32_of).collect();
        let total: f64 = c.iter().map(|&x| x as f64).sum();
        assert!((total - n as f64).abs() < 1e-4, "the c_k sum to T: {total}");
        for (k, &ck) in c.iter().enumerate() {
            let expected: f64 =
                (0..heads).flat_map(|h| (0..n).map(move |q| (h, q))).map(|(h, q)| p[(h * n + q) * n + k] as f64).sum();
            assert!((ck as f64 - expected / heads as f64).abs() < 1e-5, "block {block} key {k}");
        }
        let keys: Vec<usize> = array(&a["outlier_keys"]).iter().map(usize_of).collect();
        assert_eq!(keys, (0..n).filter(|&k| c[k] as f64 >= 0.1 * n as f64).collect::<Vec<_>>());
    }
}

#[test]
fn the_chain_links_each_outlier_channel_to_the_down_projection_row_that_writes_it() {
    for rule in ["systematic", "massive"] {
        let v = outliers_json(&["--rule", rule]);
        assert_eq!(v["rule"], rule);
        let model = default_model();
        let states = array(&v["hidden_states"]);
        let chain = array(&v["chain"]);
        // The default model has massive activations on this prompt under both rules.
        assert!(!chain.is_empty(), "{rule}: no outlier channel found");
        for link in chain {
            let channel = usize_of(&link["channel"]);
            let first = usize_of(&link["first_hidden_state"]);
            let in_state = |i: usize| array(&states[i]["outlier_channels"]).iter().any(|c| usize_of(c) == channel);
            assert!(in_state(first), "{rule}: channel {channel} not an outlier in state {first}");
            assert!((0..first).all(|i| !in_state(i)), "{rule}: channel {channel} appears before state {first}");
            let present: Vec<usize> = array(&link["hidden_states"]).iter().map(usize_of).collect();
            assert_eq!(present, (0..states.len()).filter(|&i| in_state(i)).collect::<Vec<_>>());
            for e in array(&link["carriers"]) {
                assert_eq!(usize_of(&e["channel"]), channel);
                assert!(f32_of(&e["value"]).abs() > f32_of(&states[first]["threshold"]));
            }

            let Some(block) = first.checked_sub(1) else {
                // Already in the embeddings: no block wrote it.
                assert!(link["first_block"].is_null() && link["down_projection"].is_null());
                continue;
            };
            assert_eq!(usize_of(&link["first_block"]), block);
            let down = &link["down_projection"];
            let name = format!("blk.{block}.ffn_down.weight");
            assert_eq!(down["tensor"], name.as_str());
            assert_eq!(usize_of(&down["row"]), channel);
            let tensor = model.tensor(&name).unwrap();
            let w = model.weights.dequantize(tensor).unwrap();
            let row = &w[channel * tensor.row_len()..(channel + 1) * tensor.row_len()];
            let column = usize_of(&down["dominant_column"]);
            assert_eq!(f32_of(&down["weight"]), row[column]);
            assert_eq!(row[column].abs(), row.iter().map(|x| x.abs()).fold(0.0, f32::max));

            let later: Vec<usize> = array(&link["attention"]).iter().map(|a| usize_of(&a["block"])).collect();
            assert_eq!(later, (block + 1..model.config.n_layers).collect::<Vec<_>>());
        }
        // Every ffn_down of every block has its weight-outlier columns.
        let downs = array(&v["weights"]).iter().filter(|w| w["kind"] == "ffn_down").count();
        assert_eq!(downs, model.config.n_layers);
        assert_eq!(array(&v["weights"]).len(), 7 * model.config.n_layers);
    }
}

#[test]
fn the_table_names_every_section() {
    let model = default_model_path().display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_quantscope"))
        .args(["outliers", "--model", &model, "--prompt", PROMPT, "--rule", "massive", "--top", "3"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "rule massive: |h| > max(100, 1000·median|h|)",
        "0 \"The\" initial",
        "residual stream",
        "top entries: ",
        "attention: sink score per head",
        "down-projection weight outliers",
        "causal chain",
        "written by blk.",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_quantscope"))
        .args(["outliers", "--model", &model, "--prompt", PROMPT, "--rule", "median"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
