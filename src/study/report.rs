//! `quantscope report`: one table over weight / activation / KV-cache / attention configurations
//! and the calibrated methods on one model, with bits per weight, KL, perplexity, top-1 agreement
//! and what each configuration does to the model's outliers, written as Markdown
//! (docs/results.md). Everything in it is computed by the run that writes it.
//!
//! "What it breaks" is measured, not assumed: on the first evaluation window the reference's
//! largest residual-stream entry (the massive activation: layer, token, channel) and its
//! attention-sink score (mean attention of later queries on token 0) are compared with the
//! configuration's. The activation-quantization paragraph explains per-tensor vs per-token scales
//! from the linear inputs' calibrated per-token maxima.

use std::fmt::Write as _;

use super::breakage::{Breakage, MassiveAt, BREAK_FACTOR};
use super::{now_ms, ReferenceWindows, Study};
use crate::error::{ModelError, StudyError};
use crate::model::reference::{forward_with, ForwardHook, ForwardOptions, LinearInput};
use crate::model::window::{eval_tokens, windows, EvalOptions, EVAL_TEXT};
use crate::model::{Model, Progress};
use crate::quant::experiment::{Experiment, Method};
use crate::quant::Recipe;

/// One row of the table.
pub struct Config {
    pub group: &'static str,
    /// As one would type it on `quantscope eval`.
    pub flags: String,
    pub experiment: Experiment,
}

/// Parses `eval`-style flags (`--w S --a S --a-down S --kv S --attn S --method M`).
pub fn config(group: &'static str, flags: &str) -> Config {
    let mut experiment = Experiment::default();
    let words: Vec<&str> = flags.split_whitespace().collect();
    let mut down = None;
    for pair in words.chunks(2) {
        let (flag, value) = (pair[0], pair[1]);
        match flag {
            "--w" => experiment.weights = Some(Recipe::uniform(value.parse().expect("report scheme"))),
            "--a" => {
                experiment.activations = Some(crate::quant::activation::forward::ActivationSchemes {
                    default: value.parse().expect("report activation scheme"),
                    down: None,
                })
            }
            "--a-down" => down = Some(value.parse().expect("report activation scheme")),
            "--kv" => experiment.kv = Some(value.parse().expect("report KV scheme")),
            "--attn" => experiment.probs = Some(value.parse().expect("report attention scheme")),
            "--method" => experiment.method = Some(value.parse::<Method>().expect("report method")),
            _ => panic!("report config flag {flag}"),
        }
    }
    if let (Some(a), Some(d)) = (experiment.activations.as_mut(), down) {
        a.down = Some(d);
    }
    Config { group, flags: flags.to_string(), experiment }
}

/// The configurations of the report, in table order.
pub fn default_configs() -> Vec<Config> {
    [
        ("weights", "--w q8_0"),
        ("weights", "--w q4_0"),
        ("weights", "--w int4-g128-asym"),
        ("weights", "--w nf4-g64"),
        ("weights", "--w llmfp4-e2m1-search"),
        ("weights", "--w int3-g128-asym"),
        ("activations", "--a int8-tensor"),
        ("activations", "--a int8-token"),
        ("activations", "--a int8-channel"),
        ("activations", "--a fp8-e4m3-token"),
        ("activations", "--a int4-token"),
        ("activations", "--a int4-token --a-down int8-token"),
        ("activations", "--a int4-token+hadamard"),
        ("activations", "--a mxfp4"),
        ("activations", "--a nvfp4"),
        ("KV cache", "--kv int8"),
        ("KV cache", "--kv fp8-e4m3"),
        ("KV cache", "--kv int4"),
        ("KV cache", "--kv int4-e4m3"),
        ("KV cache", "--kv int4-e4m3 --method fireq"),
        ("KV cache", "--kv int2"),
        ("attention", "--attn uint8"),
        ("attention", "--attn uint4"),
        ("attention", "--attn adalog4-q37"),
        ("attention", "--attn adalog4-search"),
        ("attention", "--attn adalog3-search"),
        ("attention", "--attn sab"),
        ("methods", "--a int8-tensor --method smoothquant:0.5"),
        ("methods", "--a int8-tensor --method sqb:0.5"),
        ("methods", "--method outliertune:8"),
        ("methods", "--method outliertune:6"),
        ("methods", "--method ptq161"),
        ("methods", "--method bitalloc:5.5"),
        ("methods", "--method llmfp4"),
        ("methods", "--method llmfp4:search"),
        ("W/A/KV", "--w int4-g128-asym --a int8-token --kv int8"),
        ("W/A/KV", "--w int4-g128-asym --a int4-token --kv int4-e4m3"),
        ("W/A/KV", "--w int4-g128-asym+hadamard --a int4-token+hadamard --kv int4-e4m3 --method fireq"),
        ("W/A/KV", "--w int4-g128-asym --a fp8-e4m3-token --kv int4-e4m3 --method fireq"),
        ("W/A/KV", "--w int4-g128-asym --a int4-token --a-down int8-token --kv int4-e4m3 --attn adalog4-search"),
    ]
    .iter()
    .map(|&(group, flags)| config(group, flags))
    .collect()
}

/// Per linear input class: over layers, the largest ratio of the tensor's max |x| to its median
/// token's max |x|, with where it happens — why one per-tensor scale fails.
struct TokenSpread {
    input: LinearInput,
    layer: usize,
    tensor_max: f32,
    median_token_max: f32,
}

#[derive(Default)]
struct TokenMaxRecorder {
    /// (layer, input, per-token max |x|).
    seen: Vec<(usize, LinearInput, Vec<f32>)>,
}

impl ForwardHook for TokenMaxRecorder {
    fn before_linear(&mut self, layer: usize, input: LinearInput, x: &mut [f32], k: usize) {
        let maxima = x.chunks_exact(k).map(|row| row.iter().fold(0.0f32, |m, v| m.max(v.abs()))).collect();
        self.seen.push((layer, input, maxima));
    }
}

fn token_spreads(model: &Model, window: &[u32]) -> Result<Vec<TokenSpread>, ModelError> {
    let mut recorder = TokenMaxRecorder::default();
    forward_with(model, window, ForwardOptions::default(), &mut recorder)?;
    let mut best: Vec<TokenSpread> = Vec::new();
    for (layer, input, maxima) in recorder.seen {
        let tensor_max = maxima.iter().copied().fold(0.0f32, f32::max);
        let mut sorted = maxima.clone();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[(sorted.len() - 1) / 2];
        let ratio = tensor_max / median.max(f32::MIN_POSITIVE);
        match best.iter_mut().find(|s| s.input == input) {
            Some(s) if s.tensor_max / s.median_token_max.max(f32::MIN_POSITIVE) >= ratio => {}
            Some(s) => *s = TokenSpread { input, layer, tensor_max, median_token_max: median },
            None => best.push(TokenSpread { input, layer, tensor_max, median_token_max: median }),
        }
    }
    Ok(best)
}

pub struct ReportOptions {
    pub tokens: usize,
    pub window: usize,
    pub calibration_tokens: usize,
}

fn input_name(input: LinearInput) -> &'static str {
    match input {
        LinearInput::AttnQkv => "q/k/v input (normed residual)",
        LinearInput::AttnOutput => "o_proj input (attended values)",
        LinearInput::MlpGateUp => "gate/up input (normed residual)",
        LinearInput::MlpDown => "down_proj input (silu(gate)·up)",
    }
}

/// Runs every configuration on `study` (each replaces the last as the model under study, on the
/// CPU reference) and returns the Markdown report. `progress` counts configurations.
pub async fn report(
    study: &mut Study,
    configs: &[Config],
    options: &ReportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<String, StudyError> {
    let eval_options = EvalOptions { max_tokens: Some(options.tokens), window: options.window, skip: 0 };
    let ids = eval_tokens(&study.model, EVAL_TEXT, &eval_options)?;
    let calib_options = EvalOptions { max_tokens: Some(options.calibration_tokens), window: 512, skip: 0 };
    let calib_ids = eval_tokens(&study.model, EVAL_TEXT, &calib_options)?;
    let first = windows(&study.model, &ids, &eval_options)[0].to_vec();
    let reference = study.outlier_footprint(&first, true, None).await?;
    let MassiveAt { block: mb, token: mt, channel: mc, value: mv } = reference.massive;
    let mut reference_windows = ReferenceWindows::default();

    let mut rows = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        progress(Progress { stage: "report", done: i as u64, total: configs.len() as u64 });
        let started = now_ms();
        study.set_experiment(&config.experiment, None, &calib_ids, 512, false, &mut |_| {}).await?;
        let (result, _) =
            study.evaluate_tokens(&ids, &eval_options, Some(&mut reference_windows), &mut |_| {}, &|| false).await?;
        let seen = Breakage::between(reference, study.outlier_footprint(&first, false, Some((mb, mt, mc))).await?);
        let bits_per_weight = study.prepared().and_then(|p| p.bits_per_weight);
        rows.push((config, bits_per_weight, result, seen, (now_ms() - started) / 1000.0));
    }
    progress(Progress { stage: "report", done: configs.len() as u64, total: configs.len() as u64 });
    let model = &study.model;
    let c = &model.config;

    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Results on {}\n", model.name.as_deref().unwrap_or(&model.source));
    let _ = writeln!(
        w,
        "Generated by `quantscope report --tokens {} --calib-tokens {}` (CPU reference). Do not edit by hand: \
         run the command again.\n",
        options.tokens, options.calibration_tokens
    );
    let _ = writeln!(
        w,
        "Evaluation: the first {} tokens of the shipped text (data/eval.txt) in windows of {}, every \
         configuration against the model as loaded ({}). Calibration (methods, AdaLog's search): the \
         first {} tokens of the same text. bpw: stored bits per weight of the whole model \
         (embeddings included) when its weights are quantized, \"as loaded\" otherwise.\n",
        ids.len(),
        options.window,
        model.source.rsplit('/').next().unwrap_or(&model.source),
        calib_ids.len()
    );
    let _ = writeln!(
        w,
        "Outliers tracked on the first window: the massive activation (the reference's largest \
         residual-stream entry: after block {mb} (from 0), token {mt}, channel {mc}, value {:.1}) and \
         the attention sink (mean attention of later queries on token 0 over blocks 1–{} and all \
         heads: {:.3} in the reference). A configuration *breaks* one when it moves it by more than \
         a factor of {BREAK_FACTOR}.\n",
        mv.abs(),
        c.n_layers - 1,
        reference.sink
    );
    let _ = writeln!(w, "| group | configuration | bpw | KL | perplexity | top-1 | massive act. | sink | breaks | s |");
    let _ = writeln!(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
    for (config, bpw, result, seen, seconds) in &rows {
        let m = &result.logits;
        let mut breaks = seen.breaks.clone();
        if m.top1_agreement < 0.5 {
            breaks.push("predictions");
        }
        let _ = writeln!(
            w,
            "| {} | `{}` | {} | {:.4} | {:.2} | {:.3} | {:.1} ({:.2}×) | {:.3} ({:.2}×) | {} | {:.0} |",
            config.group,
            config.flags,
            bpw.map_or("as loaded".to_string(), |b| format!("{b:.3}")),
            m.kl,
            m.perplexity,
            m.top1_agreement,
            seen.under_study.massive.value.abs(),
            seen.massive_ratio,
            seen.under_study.sink,
            seen.sink_ratio,
            if breaks.is_empty() { "—".to_string() } else { breaks.join(", ") },
            seconds
        );
    }
    let _ = writeln!(w, "\nReference perplexity: {:.2}.", rows.first().map_or(0.0, |r| r.2.logits.reference_perplexity));

    let _ = writeln!(w, "\n## Why per-tensor and per-token int8 activations differ\n");
    let find = |flags: &str| rows.iter().find(|r| r.0.flags == flags).map(|r| r.2.logits.kl);
    if let (Some(tensor), Some(token)) = (find("--a int8-tensor"), find("--a int8-token")) {
        let _ = writeln!(
            w,
            "`--a int8-tensor` gives KL {tensor:.4}, `--a int8-token` {token:.4}. One int8 scale per \
             tensor is set by the tensor's largest |x|; the step is that over 127. The linear inputs \
             of this model (first window) have tokens whose maxima dwarf the median token's:\n"
        );
    }
    let _ = writeln!(w, "| linear input | worst block | tensor max \\|x\\| | median token's max \\|x\\| | ratio | per-tensor int8 levels left for the median token |");
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for s in token_spreads(model, &first)? {
        let step = s.tensor_max / 127.0;
        let _ = writeln!(
            w,
            "| {} | {} | {:.2} | {:.3} | {:.0}× | {:.1} |",
            input_name(s.input),
            s.layer,
            s.tensor_max,
            s.median_token_max,
            s.tensor_max / s.median_token_max.max(f32::MIN_POSITIVE),
            s.median_token_max / step
        );
    }
    let _ = writeln!(
        w,
        "\nWith a per-tensor scale, a typical token's largest value spans only the few int8 levels in \
         the last column, and its smaller entries round to zero; these outlier tokens are the \
         massive-activation carriers (token 0, delimiters) that the outlier lab finds. A per-token \
         scale gives each token its own step, so the carriers no longer set everyone else's \
         resolution; that is the whole difference between the two rows. SmoothQuant/SQ-b move part \
         of the per-channel spread into the weights, which helps a per-tensor scale only as far as \
         the spread is per channel rather than per token."
    );
    let _ = writeln!(w, "\n## Sensitivity maps and recipes chosen from them\n");
    let _ = writeln!(
        w,
        "Which matrices can take 3 and 4 bits (`quantscope sensitivity`), and recipes chosen from \
         those measurements against `bitalloc`'s proxy at equal bits per weight on held-back tokens \
         (`quantscope allocate`): [sensitivity.md](sensitivity.md). They take tens of minutes on the \
         CPU reference, so this report does not rerun them."
    );
    Ok(md)
}
