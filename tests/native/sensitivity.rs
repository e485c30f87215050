//! The sensitivity map: a cell is exactly what `eval` gives for a recipe of that one tensor, and
//! a run (finished or cancelled) leaves the study as it found it, bit for bit.
use crate::cli_quant::{ok, quantscope};
use crate::common;

use common::{load_default_model, scratch};
use pollster::block_on;
use quantscope::model::window::{eval_tokens, EvalOptions, EVAL_TEXT};
use quantscope::quant::apply::{storage_bits, stored_bits};
use quantscope::quant::bitalloc::BudgetOver;
use quantscope::quant::recipe::{Assignment, Rule};
use quantscope::quant::{Recipe, Scheme};
use quantscope::study::sensitivity::{single_tensor_recipe, SensitivityConfig};
use quantscope::study::Study;
use quantscope::StudyError;
use std::collections::HashMap;

const PROMPT: &str = "The capital of France is";

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_cell_is_the_eval_of_its_one_tensor_recipe() {
    let tensor = "blk.11.ffn_down.weight";
    let scheme = "int3-g128-asym";
    let map = json(&ok(&quantscope(&["sensitivity", "--w", scheme, "--tokens", "48", "--tensors", tensor, "--json"])));
    let cells = map["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "{map}");
    assert_eq!(cells[0]["tensor"], tensor);

    let recipe = scratch("sensitivity").join("one_tensor.json");
    std::fs::write(&recipe, single_tensor_recipe(tensor, scheme.parse().unwrap()).to_json()).unwrap();
    let eval = json(&ok(&quantscope(&["eval", "--recipe", recipe.to_str().unwrap(), "--tokens", "48", "--json"])));
    let (cell_kl, eval_kl) = (cells[0]["kl"].as_f64().unwrap(), eval["kl"].as_f64().unwrap());
    eprintln!("{tensor} at {scheme}: sensitivity KL {cell_kl:.9}, eval KL {eval_kl:.9}");
    assert!(cell_kl > 1e-3, "3 bits on this matrix moves the predictions");
    assert!((cell_kl - eval_kl).abs() < 1e-9, "cell {cell_kl} vs eval {eval_kl}");
    assert_eq!(cells[0]["top1Agreement"].as_f64(), eval["top1_agreement"].as_f64());
}

#[test]
fn a_live_run_on_the_gpu_leaves_the_study_bit_for_bit_as_it_was() {
    let mut study = block_on(Study::new(load_default_model(), 0.0, true, None, &mut |_| {}));
    assert!(study.gpu.is_some(), "no GPU: {:?}", study.gpu_reason);
    let applied =
        Recipe::from_json(r#"{"rules": [{"tensors": "blk.0.attn_q.weight", "scheme": "q8_0"}]}"#, "t").unwrap();
    block_on(study.apply_recipe(&applied, &mut |_| {})).unwrap();
    let logits = |s: &Study| block_on(s.predict(PROMPT, 8)).unwrap().top.iter().map(|t| t.logit).collect::<Vec<f32>>();
    let before = logits(&study);

    let options = EvalOptions { max_tokens: Some(24), window: 24, skip: 0 };
    let tokens = eval_tokens(&study.model, EVAL_TEXT, &options).unwrap();
    let config = SensitivityConfig {
        scheme: "int4-g128-asym".parse().unwrap(),
        activations: None,
        kv: None,
        tensors: Some("blk.1.*".into()),
    };
    let mut seen = Vec::new();
    let map = block_on(study.sensitivity(&config, &tokens, &options, &mut |c| seen.push(c.kl), &mut |_| {}, &|| false))
        .unwrap();
    assert_eq!((map.backend, map.cells.len()), ("webgpu", 7));
    assert_eq!(seen.len(), 7, "every cell was reported as it was measured");
    assert!(map.cells.iter().all(|c| c.kl.is_finite() && c.kl > 0.0), "{:?}", map.cells);
    assert_eq!(study.applied_recipe(), Some(applied.clone()), "what was applied is applied again");
    assert_eq!(logits(&study), before, "the recipe applied before is back, bit for bit");

    // The live cell agrees with the CPU reference's (the GPU re-quantizes like the CPU).
    let mut on_cpu = block_on(Study::new(load_default_model(), 0.0, false, None, &mut |_| {}));
    let one = SensitivityConfig { tensors: Some("blk.1.ffn_down.weight".into()), ..config.clone() };
    let cpu = block_on(on_cpu.sensitivity(&one, &tokens, &options, &mut |_| {}, &mut |_| {}, &|| false)).unwrap();
    let live = map.cells.iter().find(|c| c.tensor == "blk.1.ffn_down.weight").unwrap();
    let relative = (live.kl - cpu.cells[0].kl).abs() / cpu.cells[0].kl;
    assert!(relative < 0.05, "GPU KL {} vs CPU KL {}", live.kl, cpu.cells[0].kl);

    // Cancelled after two cells: an error, and the study as it was.
    let started = std::cell::Cell::new(0);
    let err =
        block_on(study.sensitivity(&config, &tokens, &options, &mut |_| {}, &mut |p| started.set(p.done), &|| {
            started.get() >= 2
        }))
        .unwrap_err();
    assert_eq!(err, StudyError::Cancelled { what: "the sensitivity map" });
    assert_eq!(logits(&study), before);
}

#[test]
fn a_measured_allocation_takes_its_first_step_down_where_its_maps_say_it_costs_least_per_bit() {
    let mut study = block_on(Study::new(load_default_model(), 0.0, false, None, &mut |_| {}));
    let options = EvalOptions { max_tokens: Some(24), window: 24, skip: 0 };
    let tokens = eval_tokens(&study.model, EVAL_TEXT, &options).unwrap();
    let ladder: Vec<Scheme> = ["int8-g128-asym", "int3-g128-asym"].iter().map(|n| n.parse().unwrap()).collect();
    let glob = "blk.2.*";
    let model = common::default_model();
    let bits_of = |name: &str, scheme: &Scheme| {
        let t = model.tensor(name).unwrap();
        storage_bits(scheme, name, t.n_rows(), t.row_len()).unwrap()
    };
    let linears: Vec<String> = model
        .weights
        .tensors()
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| n.starts_with("blk.2.") && n.ends_with(".weight") && !n.contains("norm"))
        .collect();
    assert_eq!(linears.len(), 7, "{linears:?}");
    // One bit under every linear of block 2 on the top rung: exactly one step down is needed.
    let top: HashMap<String, u64> = linears.iter().map(|n| (n.clone(), bits_of(n, &ladder[0]))).collect();
    let (bits, weights) = stored_bits(model, &top);
    let target = (bits - 1) as f64 / weights as f64;

    let chosen = block_on(study.allocate_by_measurement(
        &ladder,
        &[target],
        BudgetOver::Model,
        Some(glob.into()),
        &tokens,
        &options,
        &mut |_| {},
        &|| false,
    ))
    .unwrap();
    assert_eq!(chosen.maps.len(), 2);
    let kl = |rung: usize, name: &str| chosen.maps[rung].cells.iter().find(|c| c.tensor == name).unwrap().kl;
    let per_bit = |name: &String| {
        (kl(1, name) - kl(0, name)).max(0.0) / (bits_of(name, &ladder[0]) - bits_of(name, &ladder[1])) as f64
    };
    let cheapest = linears.iter().min_by(|a, b| per_bit(a).total_cmp(&per_bit(b))).unwrap();
    let demoted: Vec<&Rule> =
        chosen.allocations[0].recipe.rules.iter().filter(|r| r.scheme == Assignment::Quantize(ladder[1])).collect();
    eprintln!("demoted {:?}; KL per bit {:?}", demoted, linears.iter().map(per_bit).collect::<Vec<_>>());
    assert_eq!(demoted.len(), 1, "{:?}", chosen.allocations);
    assert_eq!(&demoted[0].tensors, cheapest);
    assert!(chosen.allocations[0].bits_per_weight <= target);
    assert_eq!(chosen.allocations[0].rung_counts, vec![("int8-g128-asym".into(), 6), ("int3-g128-asym".into(), 1)]);
}

#[test]
fn allocate_writes_a_recipe_that_eval_reads_and_eval_skips_the_measured_tokens() {
    let dir = scratch("allocate");
    let recipe = dir.join("measured.json");
    let chosen = json(&ok(&quantscope(&[
        "allocate",
        "--budget",
        "4.9",
        "--ladder",
        "int8-g128-asym,int3-g128-asym",
        "--tensors",
        "blk.29.*",
        "--tokens",
        "16",
        "--out",
        recipe.to_str().unwrap(),
        "--json",
    ])));
    let allocation = &chosen["allocations"][0];
    assert_eq!(allocation["budget_over"], "linears");
    let bpw = allocation["bits_per_weight"].as_f64().unwrap();
    assert!(bpw <= 4.9 && bpw > 3.25, "{allocation}");
    assert_eq!(chosen["maps"].as_array().unwrap().len(), 2);
    assert_eq!(chosen["tokens"], 16);
    let written = Recipe::from_json(&std::fs::read_to_string(&recipe).unwrap(), "measured.json").unwrap();
    assert_eq!(serde_json::to_value(&written).unwrap(), allocation["recipe"]);
    let eval = |skip: &str| {
        json(&ok(&quantscope(&[
            "eval",
            "--recipe",
            recipe.to_str().unwrap(),
            "--tokens",
            "24",
            "--skip",
            skip,
            "--json",
        ])))
    };
    let (held_back, measured_on) = (eval("16"), eval("0"));
    assert_eq!((held_back["tokens"].as_u64(), held_back["skip"].as_u64()), (Some(24), Some(16)));
    assert_ne!(held_back["kl"], measured_on["kl"], "other tokens, other KL");
}
