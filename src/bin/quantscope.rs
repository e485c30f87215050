//! `quantscope`: the native front end. Same engine as the browser playground.
// Native only. On wasm32 the binary is empty (no main), so that `cargo test --target
// wasm32-unknown-unknown` (tests/web.rs), which builds every binary of the package, compiles.
#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` into a String (writing to a String cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
use pollster::block_on;
use quantscope::gpu::bench::{self, BenchOptions};
use quantscope::gpu::GpuContext;
use quantscope::model::chat::ChatMessage;
use quantscope::model::config::{MlpKind, NormKind, Positions};
use quantscope::model::intervene::Intervention;
use quantscope::model::sampling::SamplingParams;
use quantscope::model::window::{eval_tokens, EvalOptions, EVAL_TEXT};
use quantscope::model::{Model, ModelBytes, Prediction, Progress};
use quantscope::quant::activation::forward::ActivationSchemes;
use quantscope::quant::activation::ActScheme;
use quantscope::quant::apply::{self, TensorError};
use quantscope::quant::attention_probs::ProbScheme;
use quantscope::quant::bitalloc::{default_ladder, BudgetOver};
use quantscope::quant::experiment::{Experiment, Method, Prepared};
use quantscope::quant::kv::KvScheme;
use quantscope::quant::smoothquant::SmoothInfo;
use quantscope::quant::{export, Encoding, Recipe, Scheme};
use quantscope::study::breakage::{BREAKAGE_TOKENS, BREAK_FACTOR};
use quantscope::study::sensitivity::{SensitivityConfig, SensitivityMap};
use quantscope::study::token_view::TokenView;
use quantscope::study::{report, ExperimentSet, Study};
use quantscope::QuantError;

/// The model the README's setup downloads.
const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Parser)]
#[command(name = "quantscope", version, about = "Run a transformer, quantize it, see what changes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Architecture, dimensions and every tensor (dtype, shape, bits per weight, bytes).
    Info {
        /// A .gguf file, a .safetensors file (config.json and tokenizer.json beside it), or a
        /// folder holding model.safetensors, config.json and tokenizer.json.
        model: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The most likely next tokens after a prompt (CPU reference forward).
    Predict {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long)]
        json: bool,
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
        /// Quantize every matrix with this scheme first.
        #[arg(long = "w", conflicts_with = "recipe")]
        weights: Option<String>,
        /// Quantize with this recipe first.
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Run with an intervention (zero-massive, mean-massive, drop-sink, clip:P) on the CPU
        /// reference; mean-massive calibrates on the model as loaded, over the first 256 tokens of
        /// the shipped evaluation text in windows of 64 (as everywhere).
        #[arg(long)]
        intervene: Option<String>,
    },
    /// Generate text after a prompt, streaming tokens; prints tokens/s at the end.
    Generate {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 32)]
        max_tokens: usize,
        /// 0 is greedy decoding.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Backend::Auto)]
        backend: Backend,
        /// Print one JSON object at the end instead of streaming text.
        #[arg(long)]
        json: bool,
        /// The prompt is a user's message: the model's chat template (tokenizer.chat_template)
        /// turns it into the prompt, up to the start of the assistant's reply.
        #[arg(long)]
        chat: bool,
    },
    /// Per-kernel time, GB/s and fraction of a measured read ceiling; end-to-end prefill and
    /// decode tokens/s and dispatches per token (GPU).
    Bench {
        #[arg(long)]
        model: Option<PathBuf>,
        /// Default-model shapes only and short timing windows (a smoke run).
        #[arg(long)]
        quick: bool,
        /// Random weights in the default model's shapes and formats instead of a model file
        /// (for machines without the file, such as the lent GPU machine).
        #[arg(long, conflicts_with = "model")]
        synthetic: bool,
        #[arg(long)]
        json: bool,
    },
    /// Quantize one tensor (from the model as loaded) and report its error; optionally write the
    /// packed bytes (GGUF block layout) or the dequantized values (raw little-endian f32,
    /// row-major: rows = output features).
    Quantize {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        tensor: String,
        /// A scheme name, e.g. q4_0, int4-g128-asym, nf4, mxfp4 (`quantscope schemes` lists them).
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        dequant_out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Quantize the model with one scheme or a recipe, its activations and/or apply an intervention, and compare it
    /// with the model as loaded (or with --against, another recipe) on the evaluation text: KL, PD-KL, top-1 agreement, perplexity,
    /// QiD, per-layer error.
    Eval {
        #[arg(long)]
        model: Option<PathBuf>,
        /// One scheme for every matrix.
        #[arg(
            long = "w",
            conflicts_with = "recipe",
            required_unless_present_any = ["recipe", "intervene", "activations", "smooth", "kv", "attn", "method"]
        )]
        weights: Option<String>,
        /// A recipe JSON file (see README).
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Compare with this recipe (a recipe JSON file) instead of the model as loaded: every
        /// metric then says how the evaluated configuration differs from that one (e.g. a
        /// measured recipe against bitalloc's, `allocate --by measured|proxy`).
        #[arg(long, value_name = "RECIPE")]
        against: Option<PathBuf>,
        /// Another text instead of the shipped one (data/eval.txt).
        #[arg(long)]
        text: Option<PathBuf>,
        /// Use only the first N tokens of the text (after --skip).
        #[arg(long)]
        tokens: Option<usize>,
        /// Pass over the first N tokens of the text: evaluate on what a recipe was not measured
        /// or calibrated on (e.g. --skip 64 after `allocate --tokens 64`).
        #[arg(long, default_value_t = 0)]
        skip: usize,
        /// Tokens per forward (at least 2; clamped to the model's context).
        #[arg(long, default_value_t = 512, value_parser = window_size)]
        window: usize,
        #[arg(long)]
        json: bool,
        /// Where both forwards run: the CPU reference (the ground truth, the default) or the GPU.
        #[arg(long, value_enum, default_value_t = Backend::Cpu)]
        backend: Backend,
        /// Apply an intervention (zero-massive, mean-massive, drop-sink, clip:P) to the evaluated
        /// model, quantized or not. mean-massive calibrates on the model as loaded, over the first 256
        /// tokens of the shipped evaluation text in windows of 64 (as everywhere; the JSON says so).
        #[arg(long)]
        intervene: Option<String>,
        /// Fake-quantize the input of every linear layer of the blocks (int8-tensor, int8-token,
        /// int4-channel, fp8-e4m3-token, mxfp4, nvfp4, ...; -clipP clips the amax); CPU reference only.
        #[arg(long = "a")]
        activations: Option<String>,
        /// Another activation scheme for the down projection's input (e.g. int8-token with --a int4-token).
        #[arg(long = "a-down", requires = "activations")]
        activations_down: Option<String>,
        /// SmoothQuant with migration strength ALPHA (0.5 is the paper's default); the same as
        /// --method smoothquant:ALPHA. CPU reference only.
        #[arg(long, value_name = "ALPHA", conflicts_with = "method")]
        smooth: Option<f32>,
        /// Quantize the KV cache (keys after RoPE, values): int8, int4, int4-e4m3 (FireQ's FP8 group
        /// scales), int4-g128-e4m3, fp8-e4m3, fp8-e5m2. CPU reference only.
        #[arg(long)]
        kv: Option<String>,
        /// Quantize the attention probabilities: uint8, uint4, adalog4-q37, adalog4-search (q searched
        /// per layer on the calibration text), sab (BiViT). CPU reference only.
        #[arg(long)]
        attn: Option<String>,
        /// A calibrated method: smoothquant[:ALPHA], sqb[:ALPHA] (MPTQ-ViT), outliertune[:BITS],
        /// ptq161, fireq (RoPE-aware key scaling; --kv int4-e4m3 unless given), bitalloc:BPW.
        #[arg(long)]
        method: Option<String>,
        /// The calibration text (default: the shipped evaluation text).
        #[arg(long, value_name = "TEXTFILE")]
        calib: Option<PathBuf>,
        /// Calibrate on the first N tokens of the calibration text.
        #[arg(long, default_value_t = 512)]
        calib_tokens: usize,
        /// Also report every predicted position (KL, both top-1 tokens, whether it flipped) and
        /// list the worst positions of the text.
        #[arg(long)]
        positions: bool,
    },
    /// The sensitivity map: quantize one (layer, tensor class) at a time with the scheme, everything
    /// else as loaded, and measure KL, top-1 agreement and perplexity against the model as loaded.
    /// Each cell is what `eval --recipe` gives for a recipe of that one tensor.
    Sensitivity {
        #[arg(long)]
        model: Option<PathBuf>,
        /// The scheme each cell applies to its one matrix.
        #[arg(long = "w")]
        weights: String,
        /// Run-time activation quantization every cell runs with (CPU reference).
        #[arg(long = "a")]
        activations: Option<String>,
        /// Another activation scheme for the down projection's input.
        #[arg(long = "a-down", requires = "activations")]
        activations_down: Option<String>,
        /// KV-cache quantization every cell runs with (CPU reference).
        #[arg(long)]
        kv: Option<String>,
        /// Only the matrices whose name matches this glob (`*` any run, `?` one character), e.g.
        /// "blk.11.*" or "*.ffn_down.weight".
        #[arg(long)]
        tensors: Option<String>,
        /// Another text instead of the shipped one (data/eval.txt).
        #[arg(long)]
        text: Option<PathBuf>,
        #[command(flatten)]
        measure: MeasureArgs,
        #[arg(long)]
        json: bool,
    },
    /// Choose a recipe for a bits-per-weight budget: every block linear gets a rung of a ladder of
    /// schemes, greedily, cheapest added cost per bit saved first. The cost is measured (--by
    /// measured: the sensitivity map of every rung, KL of that one matrix quantized) or the
    /// Hessian-proxy error of `--method bitalloc` (--by proxy). Writes the recipe JSON.
    Allocate {
        #[arg(long)]
        model: Option<PathBuf>,
        /// The target bits per weight; several, comma-separated, are chosen from one set of
        /// measurements.
        #[arg(long, required = true, value_delimiter = ',')]
        budget: Vec<f64>,
        /// What the budget counts: the linears that get a rung (the usual count in papers), or
        /// the whole model (embeddings, norms and head as stored; `--method bitalloc`'s count).
        #[arg(long, value_enum, default_value_t = BudgetScope::Linears)]
        over: BudgetScope,
        /// What a rung costs: measured KL, or the Hessian-proxy error.
        #[arg(long, value_enum, default_value_t = AllocationCost::Measured)]
        by: AllocationCost,
        /// The ladder, most bits first, comma-separated (default: bitalloc's).
        #[arg(long, value_delimiter = ',')]
        ladder: Option<Vec<String>>,
        /// Only the linears whose name matches this glob get a rung; the rest stay as loaded.
        #[arg(long)]
        tensors: Option<String>,
        #[command(flatten)]
        measure: MeasureArgs,
        /// Write the recipe JSON here ("{budget}" in the name is replaced by the budget, as it
        /// must be when there are several).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the allocation (with the measured maps) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a fixed table of weight / activation / KV-cache / attention configurations and the
    /// calibrated methods on the model, and write it as Markdown (docs/results.md).
    Report {
        #[arg(long)]
        model: Option<PathBuf>,
        /// Evaluate on the first N tokens of the shipped text.
        #[arg(long, default_value_t = 256)]
        tokens: usize,
        /// Tokens per forward (at least 2; clamped to the model's context).
        #[arg(long, default_value_t = 256, value_parser = window_size)]
        window: usize,
        /// Calibrate methods (and AdaLog's search) on the first N tokens.
        #[arg(long, default_value_t = 512)]
        calib_tokens: usize,
        /// Only configurations whose flags contain this text (e.g. --only "--kv").
        #[arg(long, allow_hyphen_values = true)]
        only: Option<String>,
        #[arg(long, default_value = "docs/results.md")]
        out: PathBuf,
    },
    /// Write a GGUF quantized by a recipe of GGUF schemes (q8_0, q4_k, f16, ...), readable by llama.cpp.
    Export {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        recipe: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Activation, weight and attention outliers of one prompt by the CPU reference forward:
    /// per layer max/median/mean |x| and the largest entries, outlier tokens with their category,
    /// weight-outlier columns of the down projections, sink scores, outlier keys and the causal
    /// chain (docs/quantizers.md §3).
    Outliers {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        prompt: String,
        /// systematic: |h| > 1000·mean|h|; massive: |h| > 100 and > 1000·median|h|.
        #[arg(long, default_value = "systematic")]
        rule: quantscope::analysis::outliers::OutlierRule,
        /// Entries, channels and weight columns listed per layer.
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
    /// Every scheme family with an example name and its bits per weight on a 576-wide tensor.
    Schemes,
}

/// How `sensitivity` and `allocate` measure a matrix quantized alone (the proxy allocation
/// calibrates on the same tokens).
#[derive(clap::Args)]
struct MeasureArgs {
    /// Use only the first N tokens of the text.
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// Tokens per forward (at least 2; clamped to the model's context).
    #[arg(long, default_value_t = 512, value_parser = window_size)]
    window: usize,
    /// Where the measurements run: the CPU reference (the default) or the GPU (live
    /// re-quantization of one matrix at a time; weights only).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// The GPU where a hardware adapter exists, else the CPU reference (a software adapter such
    /// as lavapipe runs slower than the CPU reference on the same cores).
    Auto,
    Gpu,
    Cpu,
}

/// The Wayland client library, loaded by the Vulkan driver while it enumerates adapters, prints
/// "error: XDG_RUNTIME_DIR is invalid or not set" twice when that variable is missing (containers,
/// CI, ssh sessions). It reads as our error and is not one: with the variable pointing at the
/// temporary directory the driver finds no display there and stays silent. Set before any thread
/// starts, and only when unset, so a real session's value is never changed.
fn quiet_display_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

/// An evaluation window predicts each token from those before it, so it needs two.
fn window_size(text: &str) -> Result<usize, String> {
    let window: usize = text.parse().map_err(|e| format!("{e}"))?;
    if window < 2 {
        return Err(format!("{window} tokens: a window needs at least 2 (a token and the next one to predict)"));
    }
    Ok(window)
}

fn main() -> ExitCode {
    quiet_display_probe();
    let mut out = String::new();
    match run(Cli::parse(), &mut out) {
        Ok(()) => {
            // A closed pipe (`quantscope info | head`) is the reader's choice, not an error.
            let written = std::io::stdout().lock().write_all(out.as_bytes());
            match written {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: writing output: {e}");
                    ExitCode::from(1)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Runs a command, appending what it prints to `out`.
fn run(cli: Cli, out: &mut String) -> Result<(), String> {
    match cli.command {
        Command::Info { model, json } => {
            let model = load(model)?;
            let summary = model.summary();
            if json {
                outln!(out, "{}", serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?);
                return Ok(());
            }
            let c = &summary.config;
            outln!(out, "model        {}", summary.name.as_deref().unwrap_or(&summary.source));
            outln!(out, "file         {}", summary.source);
            outln!(out, "architecture {}", c.architecture);
            outln!(out, "layers       {}", c.n_layers);
            outln!(out, "width        {}", c.d_model);
            outln!(out, "heads        {} (head dim {})", c.n_heads, c.head_dim);
            outln!(out, "kv heads     {}", c.n_kv_heads);
            outln!(out, "ffn width    {}", c.d_ff);
            outln!(out, "vocab        {}", c.vocab_size);
            match c.sliding_window {
                Some(w) => outln!(
                    out,
                    "context      {} (its sliding window of {w}: longer sequences are refused)",
                    c.context_length
                ),
                None => outln!(out, "context      {}", c.context_length),
            }
            match (&c.rope_freq_factors, c.positions) {
                (_, Positions::Learned) => {
                    outln!(out, "positions    learned (position_embd, {} rows), no RoPE", c.context_length)
                }
                (Some(f), _) => outln!(
                    out,
                    "rope         base {}, {:?} pairs, Llama 3.1 scaling (frequency factors {:?} … {:?})",
                    c.rope_base,
                    c.rope_layout,
                    f[0],
                    f[f.len() - 1]
                ),
                (None, _) => outln!(out, "rope         base {}, {:?} pairs", c.rope_base, c.rope_layout),
            }
            match c.norm {
                NormKind::Rms => outln!(out, "rms eps      {:e}", c.rms_eps),
                NormKind::Layer => outln!(out, "layer norm   eps {:e}, with a bias", c.rms_eps),
            }
            if c.mlp == MlpKind::Plain {
                outln!(out, "mlp          plain: down({:?}(up(x))), no gate", c.ffn_activation);
            }
            if c.linear_bias {
                outln!(out, "biases       on every linear layer");
            }
            outln!(out, "tied embed.  {}", c.tied_embeddings);
            outln!(
                out,
                "parameters   {} ({:.1} M), {} bytes ({:.2} bits/weight)",
                summary.parameters,
                summary.parameters as f64 / 1e6,
                summary.bytes,
                8.0 * summary.bytes as f64 / summary.parameters as f64
            );
            out.push('\n');
            outln!(out, "{:<28} {:<6} {:>16} {:>6} {:>12}", "tensor", "dtype", "shape", "bpw", "bytes");
            for t in &summary.tensors {
                let shape = t.shape.iter().map(u64::to_string).collect::<Vec<_>>().join("×");
                outln!(out, "{:<28} {:<6} {:>16} {:>6.2} {:>12}", t.name, t.dtype, shape, t.bits_per_weight, t.bytes);
            }
            Ok(())
        }
        Command::Predict { model, prompt, top, json, backend, weights, recipe, intervene } => {
            let intervention = parse_intervention(intervene)?;
            let recipe = match (weights, recipe) {
                (Some(name), _) => Some(Recipe::uniform(name.parse().map_err(|e: QuantError| e.to_string())?)),
                (None, Some(path)) => Some(read_recipe(&path)?),
                (None, None) => None,
            };
            let mut study = study_on(load(model)?, backend)?;
            if recipe.is_some() || intervention.is_some() {
                let experiment = Experiment { weights: recipe, ..Default::default() };
                set_experiment(&mut study, &experiment, intervention, &[], 512)?;
            }
            let p = block_on(study.predict(&prompt, top)).map_err(|e| e.to_string())?;
            let prediction = Prediction { model: p.model, prompt: p.prompt, tokens: p.tokens, top: p.top };
            if json {
                outln!(out, "{}", serde_json::to_string(&prediction).map_err(|e| e.to_string())?);
                return Ok(());
            }
            outln!(out, "prompt: {prompt:?} ({} tokens: {:?})", prediction.tokens.len(), prediction.tokens);
            for (rank, t) in prediction.top.iter().enumerate() {
                let bar = "█".repeat((t.prob * 40.0).round() as usize);
                outln!(
                    out,
                    "{:>2}. {:<20} {:>7.3}%  logit {:>8.3}  {bar}",
                    rank + 1,
                    format!("{:?}", t.token),
                    t.prob * 100.0,
                    t.logit
                );
            }
            Ok(())
        }
        Command::Generate { model, prompt, max_tokens, temperature, top_p, seed, backend, json, chat } => {
            let model = load(model)?;
            let prompt = match chat {
                true => quantscope::model::chat::chat_prompt(&model.tokenizer, &[ChatMessage::user(&prompt)])
                    .map_err(|e| e.to_string())?,
                false => prompt,
            };
            let study = study_on(model, backend)?;
            let mut stdout = std::io::stdout();
            if !json {
                let _ = write!(stdout, "{prompt}");
                let _ = stdout.flush();
            }
            // Timed from the prompt on (`GenerationSummary`): loading and upload are not generation.
            let params = SamplingParams { temperature, top_p, seed };
            let summary = block_on(async {
                let mut generation = study.generation(&prompt, max_tokens, params, false).await?;
                while let Some(token) = generation.next().await? {
                    if !json && !token.piece.is_empty() {
                        let _ = write!(stdout, "{}", token.piece);
                        let _ = stdout.flush();
                    }
                }
                generation.finish()
            })
            .map_err(|e| e.to_string())?;
            if json {
                let v = serde_json::json!({
                    "prompt_tokens": summary.prompt_tokens,
                    "tokens": summary.tokens,
                    "text": summary.text,
                    "stop": summary.stop,
                    "tokens_per_second": summary.tokens_per_second,
                });
                outln!(out, "{v}");
            } else {
                let _ = writeln!(stdout, "{}", summary.rest);
                eprintln!(
                    "{} tokens in {:.2} s: {:.1} tokens/s (stop: {})",
                    summary.tokens.len(),
                    summary.ms / 1000.0,
                    summary.tokens_per_second,
                    summary.stop
                );
            }
            Ok(())
        }
        Command::Bench { model, quick, synthetic, json } => {
            let model =
                if synthetic { bench::synthetic_default_model().map_err(|e| e.to_string())? } else { load(model)? };
            let ctx = block_on(GpuContext::new()).map_err(|e| e.to_string())?;
            let a = &ctx.summary;
            eprintln!("adapter: {} ({}, {}), driver {}", a.name, a.backend, a.device_type, a.driver);
            let report = block_on(bench::run(&ctx, &model, BenchOptions { quick }, &mut |line| eprintln!("{line}")))
                .map_err(|e| e.to_string())?;
            if json {
                outln!(out, "{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            }
            Ok(())
        }
        Command::Quantize { model, tensor, scheme, out: packed_out, dequant_out, json } => {
            let model = load(model)?;
            let scheme: Scheme = scheme.parse().map_err(|e: QuantError| e.to_string())?;
            let (used, q, original) = apply::quantize_tensor(&model, &tensor, &scheme).map_err(|e| e.to_string())?;
            let error = TensorError::between(&original, &q.values);
            if let Some(path) = &packed_out {
                let Encoding::Ggml { bytes, .. } = &q.encoding else {
                    return Err(format!(
                        "scheme {used} has no GGUF block layout to write with --out; use --dequant-out"
                    ));
                };
                write_file(path, bytes)?;
            }
            if let Some(path) = &dequant_out {
                let bytes: Vec<u8> = q.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                write_file(path, &bytes)?;
            }
            let report = serde_json::json!({
                "tensor": tensor,
                "scheme": used.to_string(),
                "requested": (used != scheme).then(|| scheme.to_string()),
                "rows": q.rows,
                "cols": q.cols,
                "bits_per_weight": q.bits_per_weight(),
                "bytes": q.storage_bits.div_ceil(8),
                "error": error,
            });
            if json {
                outln!(out, "{report}");
            } else {
                if used != scheme {
                    outln!(out, "{scheme} cannot hold rows of {}; llama.cpp's fallback {used} used", q.cols);
                }
                outln!(out, "{tensor}: {}×{} as {used}", q.rows, q.cols);
                outln!(out, "bits/weight {:.4}, {} bytes", q.bits_per_weight(), q.storage_bits.div_ceil(8));
                outln!(out, "mse {:.4e}, sqnr {:.2} dB, max |error| {:.4e}", error.mse, error.sqnr_db, error.max_abs);
            }
            Ok(())
        }
        Command::Eval {
            model,
            weights,
            recipe,
            against,
            text,
            tokens,
            skip,
            window,
            json,
            backend,
            intervene,
            activations,
            activations_down,
            smooth,
            kv,
            attn,
            method,
            calib,
            calib_tokens,
            positions,
        } => {
            let intervention = parse_intervention(intervene)?;
            let activations = parse_activations(activations, activations_down)?;
            let method = match (smooth, method) {
                (Some(alpha), _) => Some(format!("smoothquant:{alpha}")),
                (None, m) => m,
            };
            let method: Option<Method> =
                method.map(|m| m.parse()).transpose().map_err(|e: QuantError| format!("--method: {e}"))?;
            let kv: Option<KvScheme> = kv.map(|k| k.parse()).transpose().map_err(|e| format!("--kv: {e}"))?;
            let probs: Option<ProbScheme> = attn.map(|a| a.parse()).transpose().map_err(|e| format!("--attn: {e}"))?;
            let runtime_asked = activations.is_some() || kv.is_some() || probs.is_some() || method.is_some();
            let model = load(model)?;
            let (recipe, label) = match (weights, recipe) {
                (Some(name), _) => {
                    let scheme: Scheme = name.parse().map_err(|e: QuantError| e.to_string())?;
                    (Some(Recipe::uniform(scheme)), scheme.to_string())
                }
                (None, Some(path)) => (Some(read_recipe(&path)?), path.display().to_string()),
                (None, None) if intervention.is_some() || runtime_asked => (None, "as loaded".to_string()),
                (None, None) => {
                    return Err(
                        "give --w SCHEME, --recipe FILE, --a SCHEME, --kv, --attn, --method or --intervene".into()
                    )
                }
            };
            let read_text = |path: &Option<PathBuf>| -> Result<String, String> {
                match path {
                    Some(path) => {
                        std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
                    }
                    None => Ok(EVAL_TEXT.to_string()),
                }
            };
            let text = read_text(&text)?;
            let experiment = Experiment { weights: recipe.clone(), activations, kv, probs, method };
            experiment.validate().map_err(|e| e.to_string())?;
            let calib_ids = if experiment.needs_calibration() {
                let calib_options = EvalOptions { max_tokens: Some(calib_tokens.max(2)), window: 512, skip: 0 };
                eval_tokens(&model, &read_text(&calib)?, &calib_options).map_err(|e| e.to_string())?
            } else {
                Vec::new()
            };
            let options = EvalOptions { max_tokens: tokens, window, skip };
            let ids = eval_tokens(&model, &text, &options).map_err(|e| e.to_string())?;
            // Auto keeps run-time quantization on the CPU reference, the ground truth.
            let backend = if backend == Backend::Auto && runtime_asked { Backend::Cpu } else { backend };
            let mut study = study_on(model, backend)?;
            let set = set_experiment(&mut study, &experiment, intervention, &calib_ids, 512)?;
            let calibration = set.intervention_calibration;
            let reference = match &against {
                Some(path) => {
                    let pinned = Experiment { weights: Some(read_recipe(path)?), ..Default::default() };
                    let label = path.display().to_string();
                    let mut bar = ProgressBar::new();
                    let pinned = block_on(study.pin_reference(&pinned, None, &[], 512, &label, &mut |p| bar.show(p)));
                    bar.finish();
                    pinned.map_err(|e| e.to_string())?;
                    label
                }
                None => "as loaded".to_string(),
            };
            let backend_name = if set.backend == "webgpu" { "gpu" } else { "cpu" };
            let started = std::time::Instant::now();
            let mut bar = ProgressBar::new();
            let (result, window, view) = if positions {
                let view = block_on(study.token_view(&ids, &options, &mut |p| bar.show(p), &|| false));
                let view = view.map_err(|e| e.to_string())?;
                (view.result.clone(), view.window, Some(view))
            } else {
                let evaluated = block_on(study.evaluate_tokens(&ids, &options, None, &mut |p| bar.show(p), &|| false));
                let (result, window) = evaluated.map_err(|e| e.to_string())?;
                (result, window, None)
            };
            bar.finish();
            eprintln!(
                "quantized in {:.2} s, evaluated {} tokens in {:.2} s",
                set.ms / 1000.0,
                result.tokens,
                started.elapsed().as_secs_f64()
            );
            let probed = &ids[..ids.len().min(window).min(BREAKAGE_TOKENS)];
            let breakage = block_on(study.breakage(probed)).map_err(|e| e.to_string())?;
            let model = &study.model;
            let prepared = study.prepared().expect("set_experiment leaves a prepared experiment");
            if json {
                let mut v = serde_json::json!({
                    "model": model.source,
                    "weights": label,
                    "recipe": recipe,
                    "reference": reference,
                    "intervention": intervention,
                    "intervention_calibration": calibration,
                    "activations": prepared.runtime.activations,
                    "kv": prepared.runtime.kv,
                    "attn": experiment.probs,
                    "method": experiment.method,
                    "smoothquant": smooth_info(&experiment, &prepared),
                    "decisions": prepared.decisions,
                    "window": window,
                    "skip": skip,
                    "backend": backend_name,
                    "bpw": prepared.bits_per_weight,
                    "bytes": prepared.quantized.as_ref().map(|q| q.bytes),
                    "tensors": prepared.tensors(),
                    "breakage": breakage,
                });
                let metrics = serde_json::to_value(&result).map_err(|e| e.to_string())?;
                if let (Some(v), Some(metrics)) = (v.as_object_mut(), metrics.as_object()) {
                    v.extend(metrics.clone());
                }
                if let Some(view) = &view {
                    v["per_position"] = serde_json::to_value(&view.positions).map_err(|e| e.to_string())?;
                    v["worst_positions"] = view.worst.iter().map(|&i| view.positions[i].index).collect();
                }
                outln!(out, "{v}");
                return Ok(());
            }
            let m = &result.logits;
            outln!(out, "weights        {label}");
            outln!(out, "compared with  {reference}");
            if let Some(bpw) = prepared.bits_per_weight {
                outln!(out, "size           {bpw:.3} bits/weight");
            }
            if let Some(m) = &experiment.method {
                let on = prepared
                    .decisions
                    .calibration_tokens
                    .map_or(String::new(), |t| format!(" (calibrated on {t} tokens)"));
                outln!(out, "method         {m}{on}");
            }
            if let Some(kv) = &prepared.runtime.kv {
                outln!(out, "KV cache       {kv}");
            }
            if let Some(p) = &experiment.probs {
                outln!(out, "attention      {p}");
            }
            if let Some(intervention) = intervention {
                let on = calibration.map_or(String::new(), |c| {
                    format!(" (means of the model {}, {} tokens of the shipped text)", c.model, c.tokens)
                });
                outln!(out, "intervention   {intervention}{on}");
            }
            if let Some(a) = &prepared.runtime.activations {
                let down = a.down.map_or(String::new(), |d| format!(" (down projection input: {d})"));
                outln!(out, "activations    {}{down}", a.default);
            }
            outln!(out, "tokens         {} (windows of {window})", result.tokens);
            outln!(out, "KL             {:.5} nats/token", m.kl);
            outln!(out, "PD-KL (T=4)    {:.5}", m.pd_kl);
            outln!(out, "top-1 agree    {:.2}%", m.top1_agreement * 100.0);
            outln!(out, "perplexity     {:.3} ({reference} {:.3})", m.perplexity, m.reference_perplexity);
            outln!(out, "QiD            {:+.5} nats/token", m.qid);
            let (r, u) = (&breakage.reference, &breakage.under_study);
            outln!(
                out,
                "massive act.   {:.1} → {:.1} ({:.2}×; after block {}, token {}, channel {}, first {} tokens)",
                r.massive.value,
                u.massive.value,
                breakage.massive_ratio,
                r.massive.block,
                r.massive.token,
                r.massive.channel,
                probed.len()
            );
            outln!(out, "attention sink {:.3} → {:.3} ({:.2}×)", r.sink, u.sink, breakage.sink_ratio);
            if !breakage.breaks.is_empty() {
                outln!(out, "breaks         {} (moved by more than {BREAK_FACTOR}×)", breakage.breaks.join(", "));
            }
            outln!(out, "\nlayer  relative error of the residual stream");
            for l in &result.layers {
                let bar = "█".repeat(((l.relative_error * 200.0).min(60.0)).round() as usize);
                outln!(out, "{:>5}  {:.5}  {bar}", l.layer, l.relative_error);
            }
            if let Some(view) = &view {
                print_worst_positions(view, &study.model, out);
            }
            Ok(())
        }
        Command::Sensitivity {
            model,
            weights,
            activations,
            activations_down,
            kv,
            tensors,
            text,
            measure: MeasureArgs { tokens, window, backend },
            json,
        } => {
            let config = SensitivityConfig {
                scheme: weights.parse().map_err(|e: QuantError| format!("--w: {e}"))?,
                activations: parse_activations(activations, activations_down)?,
                kv: kv.map(|k| k.parse()).transpose().map_err(|e| format!("--kv: {e}"))?,
                tensors,
            };
            let text = match &text {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?
                }
                None => EVAL_TEXT.to_string(),
            };
            let model = load(model)?;
            let options = EvalOptions { max_tokens: Some(tokens), window, skip: 0 };
            let ids = eval_tokens(&model, &text, &options).map_err(|e| e.to_string())?;
            let mut study = study_on(model, backend)?;
            let mut bar = ProgressBar::new();
            let map =
                block_on(study.sensitivity(&config, &ids, &options, &mut |_| {}, &mut |p| bar.show(p), &|| false));
            bar.finish();
            let map = map.map_err(|e| e.to_string())?;
            if json {
                outln!(out, "{}", serde_json::to_string(&map).map_err(|e| e.to_string())?);
                return Ok(());
            }
            print_sensitivity(&map, out);
            Ok(())
        }
        Command::Allocate {
            model,
            budget,
            over,
            by,
            ladder,
            tensors,
            measure: MeasureArgs { tokens, window, backend },
            out: path,
            json,
        } => {
            let ladder: Vec<Scheme> = match ladder {
                Some(names) => names
                    .iter()
                    .map(|n| n.trim().parse().map_err(|e: QuantError| format!("--ladder: {e}")))
                    .collect::<Result<_, _>>()?,
                None => default_ladder(),
            };
            if let Some(bad) = budget.iter().find(|b| !(**b > 0.0 && b.is_finite())) {
                return Err(format!("--budget: bits per weight must be positive, not {bad}"));
            }
            let paths: Vec<PathBuf> = match &path {
                Some(p) if budget.len() > 1 && !p.to_string_lossy().contains("{budget}") => {
                    return Err(format!("--out {}: with several budgets the name needs {{budget}}", p.display()))
                }
                Some(p) => budget
                    .iter()
                    .map(|b| PathBuf::from(p.to_string_lossy().replace("{budget}", &b.to_string())))
                    .collect(),
                None => Vec::new(),
            };
            let model = load(model)?;
            let options = EvalOptions { max_tokens: Some(tokens), window, skip: 0 };
            let ids = eval_tokens(&model, EVAL_TEXT, &options).map_err(|e| e.to_string())?;
            let mut study = study_on(model, backend)?;
            let mut bar = ProgressBar::new();
            let (allocations, measured) = match by {
                AllocationCost::Measured => {
                    let m = block_on(study.allocate_by_measurement(
                        &ladder,
                        &budget,
                        over.into(),
                        tensors,
                        &ids,
                        &options,
                        &mut |p| bar.show(p),
                        &|| false,
                    ));
                    let m = m.map_err(|e| e.to_string())?;
                    (m.allocations.clone(), Some(m))
                }
                AllocationCost::Proxy => {
                    if tensors.is_some() {
                        return Err("--tensors: the proxy allocation covers every block linear".into());
                    }
                    let a = study.allocate_by_proxy(&ladder, &budget, over.into(), &ids, &mut |p| bar.show(p));
                    (a.map_err(|e| e.to_string())?, None)
                }
            };
            bar.finish();
            for (allocation, path) in allocations.iter().zip(&paths) {
                let text = serde_json::to_string_pretty(&allocation.recipe).map_err(|e| e.to_string())?;
                write_file(path, text.as_bytes())?;
            }
            if json {
                let v = match &measured {
                    Some(m) => serde_json::to_string(m),
                    None => serde_json::to_string(&serde_json::json!({ "allocations": allocations })),
                };
                outln!(out, "{}", v.map_err(|e| e.to_string())?);
                return Ok(());
            }
            let on = match by {
                AllocationCost::Measured => format!("measured KL on {} tokens", ids.len()),
                AllocationCost::Proxy => format!("Hessian-proxy error calibrated on {} tokens", ids.len()),
            };
            let counted = match over {
                BudgetScope::Linears => "of the linears",
                BudgetScope::Model => "of the model",
            };
            for (i, allocation) in allocations.iter().enumerate() {
                outln!(
                    out,
                    "{:.3} bits per weight {counted} (budget {}), rungs chosen by {on}:",
                    allocation.bits_per_weight,
                    allocation.target_bits_per_weight
                );
                for (scheme, n) in &allocation.rung_counts {
                    outln!(out, "  {scheme:<18} {n:>4} linears");
                }
                if let Some(path) = paths.get(i) {
                    outln!(out, "wrote {}", path.display());
                }
            }
            Ok(())
        }
        Command::Report { model, tokens, window, calib_tokens, only, out: path } => {
            let model = load(model)?;
            let configs: Vec<_> = report::default_configs()
                .into_iter()
                .filter(|c| only.as_deref().is_none_or(|o| c.flags.contains(o)))
                .collect();
            if configs.is_empty() {
                return Err(format!("--only {:?}: no configuration matches", only.unwrap_or_default()));
            }
            let options = report::ReportOptions { tokens, window, calibration_tokens: calib_tokens };
            let mut study = study_on(model, Backend::Cpu)?;
            let mut bar = ProgressBar::new();
            let markdown = block_on(report::report(&mut study, &configs, &options, &mut |p| bar.show(p)));
            bar.finish();
            let markdown = markdown.map_err(|e| e.to_string())?;
            write_file(&path, markdown.as_bytes())?;
            outln!(out, "wrote {} ({} configurations)", path.display(), configs.len());
            Ok(())
        }
        Command::Export { model, recipe, out: path } => {
            let model = load(model)?;
            let recipe = read_recipe(&recipe)?;
            let bytes = export::export_gguf(&model, &recipe, &mut |_| {}).map_err(|e| e.to_string())?;
            write_file(&path, &bytes)?;
            outln!(out, "wrote {} ({} bytes)", path.display(), bytes.len());
            Ok(())
        }
        Command::Outliers { model, prompt, rule, top, json } => {
            outliers_command(study_on(load(model)?, Backend::Cpu)?, &prompt, rule, top, json, out)
        }
        Command::Schemes => {
            outln!(out, "{:<28} {:>8}  ", "scheme", "bpw@576");
            let sample: Vec<f32> = (0..4 * 576).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05).collect();
            for scheme in Scheme::catalog() {
                let bpw = quantscope::quant::quantize(&scheme, "sample", 4, 576, &sample)
                    .map(|q| format!("{:>8.3}", q.bits_per_weight()))
                    .unwrap_or_else(|e| format!("error: {e}"));
                outln!(out, "{:<28} {bpw}", scheme.to_string());
            }
            Ok(())
        }
    }
}

/// The positions of the text where the models part most, with a little context.
fn print_worst_positions(view: &TokenView, model: &Model, out: &mut String) {
    let flips = view.positions.iter().filter(|p| p.flipped).count();
    outln!(out, "\nworst positions ({flips} of {} flip the top-1 token)", view.positions.len());
    outln!(
        out,
        "{:>6}  {:>9}  {:<32} {:<14} {:<14}",
        "token",
        "KL",
        "text (predicted token in [ ])",
        "as loaded",
        "under study"
    );
    let text = |id: u32| format!("{:?}", model.tokenizer.token_text(id));
    for &i in &view.worst {
        let p = &view.positions[i];
        let before: String = view.tokens[p.index.saturating_sub(4)..p.index].iter().map(|t| t.text.as_str()).collect();
        let context = format!("{before}[{}]", view.tokens[p.index].text).replace('\n', "⏎");
        let tail: String = context.chars().rev().take(32).collect::<Vec<_>>().into_iter().rev().collect();
        outln!(
            out,
            "{:>6}  {:>9.5}  {:<32} {:<14} {:<14}{}",
            p.index,
            p.metrics.kl,
            tail,
            text(p.metrics.reference_top1),
            text(p.metrics.quantized_top1),
            if p.flipped { "  flipped" } else { "" }
        );
    }
}

/// The map as a table: KL (nats/token) per layer and class, then the totals.
/// What `allocate` ranks the rungs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AllocationCost {
    Measured,
    Proxy,
}

/// `allocate --over`: what its budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BudgetScope {
    Linears,
    Model,
}

impl From<BudgetScope> for BudgetOver {
    fn from(scope: BudgetScope) -> Self {
        match scope {
            BudgetScope::Linears => BudgetOver::Linears,
            BudgetScope::Model => BudgetOver::Model,
        }
    }
}

fn print_sensitivity(map: &SensitivityMap, out: &mut String) {
    outln!(
        out,
        "{} on one matrix at a time: KL to the model as loaded, nats/token ({} tokens, windows of {}, {})",
        map.scheme,
        map.tokens,
        map.window,
        map.backend
    );
    let mut header = format!("{:>5}", "layer");
    for class in &map.classes {
        header.push_str(&format!(" {class:>11}"));
    }
    outln!(out, "{header}");
    for layer in (0..map.layers).filter(|&l| map.cells.iter().any(|c| c.layer == l)) {
        let mut line = format!("{layer:>5}");
        for class in &map.classes {
            match map.cells.iter().find(|c| c.layer == layer && c.class == *class) {
                Some(cell) => line.push_str(&format!(" {:>11.5}", cell.kl)),
                None => line.push_str(&format!(" {:>11}", "-")),
            }
        }
        outln!(out, "{line}");
    }
    let mut line = format!("{:>5}", "sum");
    for class in &map.classes {
        match map.per_class.iter().find(|t| t.name == *class) {
            Some(total) => line.push_str(&format!(" {:>11.5}", total.kl)),
            None => line.push_str(&format!(" {:>11}", "-")),
        }
    }
    outln!(out, "{line}");
    if let Some(worst) = map.cells.iter().max_by(|a, b| a.kl.total_cmp(&b.kl)) {
        outln!(
            out,
            "most sensitive: {} (KL {:.5}, top-1 {:.2}%, perplexity {:.3} vs {:.3} as loaded)",
            worst.tensor,
            worst.kl,
            worst.top1_agreement * 100.0,
            worst.perplexity,
            map.reference_perplexity
        );
    }
}

/// The eval JSON's `"smoothquant"` (kept from before `--method`): `{alpha, calibration_tokens}`.
fn smooth_info(experiment: &Experiment, prepared: &Prepared) -> Option<SmoothInfo> {
    match (experiment.method, prepared.decisions.calibration_tokens) {
        (Some(Method::SmoothQuant { alpha }), Some(calibration_tokens)) => {
            Some(SmoothInfo { alpha, calibration_tokens })
        }
        _ => None,
    }
}

/// The `--a` / `--a-down` schemes.
fn parse_activations(default: Option<String>, down: Option<String>) -> Result<Option<ActivationSchemes>, String> {
    let Some(default) = default else { return Ok(None) };
    let default: ActScheme = default.parse().map_err(|e| format!("--a: {e}"))?;
    let down: Option<ActScheme> = down.map(|d| d.parse()).transpose().map_err(|e| format!("--a-down: {e}"))?;
    Ok(Some(ActivationSchemes { default, down }))
}

/// The `--intervene` name.
fn parse_intervention(name: Option<String>) -> Result<Option<Intervention>, String> {
    name.map(|n| n.parse().map_err(|e| format!("--intervene: {e}"))).transpose()
}

fn read_recipe(path: &Path) -> Result<Recipe, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Recipe::from_json(&text, &path.display().to_string()).map_err(|e| e.to_string())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// `--backend auto`'s GPU: the adapter if there is one and it is hardware. A software adapter
/// (lavapipe, SwiftShader) runs the engine several times slower than the CPU reference on the
/// same cores, so auto says so on stderr and takes the CPU; `--backend gpu` still forces it.
fn auto_gpu() -> Option<GpuContext> {
    let ctx = block_on(GpuContext::new()).ok()?;
    if ctx.summary.is_software() {
        eprintln!(
            "backend auto: the only adapter, {} ({}), is a software one, slower than the CPU reference here; \
             running on the CPU (--backend gpu forces the adapter)",
            ctx.summary.name, ctx.summary.device_type
        );
        return None;
    }
    Some(ctx)
}

/// The study every command that runs the model goes through, on the chosen backend: `auto`
/// takes a hardware GPU only ([`auto_gpu`]); `gpu` fails without one. Shows the upload's progress.
fn study_on(model: Model, backend: Backend) -> Result<Study, String> {
    let ctx = match backend {
        Backend::Cpu => Err("--backend cpu".to_string()),
        Backend::Gpu => Ok(block_on(GpuContext::new()).map_err(|e| e.to_string())?),
        Backend::Auto => auto_gpu().ok_or_else(|| "no hardware GPU (--backend auto)".to_string()),
    };
    let mut bar = ProgressBar::new();
    let study = Study::on(model, ctx, &mut |p| bar.show(p));
    bar.finish();
    match (&study.gpu, backend) {
        (None, Backend::Gpu) => Err(study.gpu_reason.unwrap_or_default()),
        _ => Ok(study),
    }
}

/// Makes the model under study `experiment` with `intervention`, on the study's GPU when it has
/// one, with a progress bar.
fn set_experiment(
    study: &mut Study,
    experiment: &Experiment,
    intervention: Option<Intervention>,
    calibration_tokens: &[u32],
    window: usize,
) -> Result<ExperimentSet, String> {
    let mut bar = ProgressBar::new();
    let set = block_on(
        study.set_experiment(experiment, intervention, calibration_tokens, window, true, &mut |p| bar.show(p)),
    );
    bar.finish();
    set.map_err(|e| e.to_string())
}

fn default_model() -> PathBuf {
    let relative = PathBuf::from(DEFAULT_MODEL);
    if relative.exists() {
        relative
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL)
    }
}

/// Reads a model from a GGUF file, a safetensors file or a folder; shows a progress bar on a terminal.
fn load(path: Option<PathBuf>) -> Result<Model, String> {
    let path = path.unwrap_or_else(default_model);
    let name = path.display().to_string();
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()));
    // Weights are mapped, not read: pages already checked or uploaded go back to the OS.
    let map = |p: &Path| ModelBytes::map(p).map_err(|e| format!("{}: cannot read: {e}", p.display()));
    let mut bar = ProgressBar::new();
    let mut progress = |p: Progress| bar.show(p);
    let index = path.join("model.safetensors.index.json");
    let result = if path.is_dir() && index.exists() {
        let index_json = read(&index)?;
        let names = quantscope::formats::safetensors::read_index(&index_json, &index.display().to_string())
            .map_err(|e| e.to_string())?;
        let mut shards = Vec::new();
        for shard in names.shards() {
            shards.push((shard.to_string(), map(&path.join(shard))?));
        }
        Model::from_safetensors_shards(
            &index_json,
            shards,
            &read(&path.join("config.json"))?,
            &read(&path.join("tokenizer.json"))?,
            &name,
            &mut progress,
        )
    } else if path.is_dir() {
        Model::from_safetensors(
            map(&path.join("model.safetensors"))?,
            &read(&path.join("config.json"))?,
            &read(&path.join("tokenizer.json"))?,
            &name,
            &mut progress,
        )
    } else if path.extension().is_some_and(|e| e == "safetensors") {
        let dir = path.parent().unwrap_or(Path::new("."));
        Model::from_safetensors(
            map(&path)?,
            &read(&dir.join("config.json"))?,
            &read(&dir.join("tokenizer.json"))?,
            &name,
            &mut progress,
        )
    } else {
        Model::from_gguf(map(&path)?, &name, &mut progress)
    };
    bar.finish();
    result.map_err(|e| e.to_string())
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
struct ProgressBar {
    enabled: bool,
    drawn: bool,
}

impl ProgressBar {
    fn new() -> Self {
        ProgressBar { enabled: std::io::stderr().is_terminal(), drawn: false }
    }

    fn show(&mut self, p: Progress) {
        if !self.enabled || p.total == 0 {
            return;
        }
        const WIDTH: usize = 30;
        let filled = (WIDTH as u64 * p.done / p.total) as usize;
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{:<9} [{}{}] {}/{}",
            p.stage,
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            p.done,
            p.total
        );
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
        }
    }
}

/// `quantscope outliers`: the study's outlier report (the page's, too), as JSON or as tables.
fn outliers_command(
    study: Study,
    prompt: &str,
    rule: quantscope::analysis::outliers::OutlierRule,
    top: usize,
    json: bool,
    out: &mut String,
) -> Result<(), String> {
    use quantscope::analysis::outliers::ChainLink;

    let (report, _) = study.outlier_report(prompt, rule, top).map_err(|e| e.to_string())?;
    if json {
        outln!(out, "{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let text = |t: usize| format!("{:?}", report.tokens[t].text);
    let state_name = |index: usize| if index == 0 { "embeddings".to_string() } else { format!("block {}", index - 1) };
    let list = |items: Vec<String>| if items.is_empty() { "-".to_string() } else { items.join(", ") };

    outln!(out, "prompt {:?}: {} tokens; rule {rule}: {}", report.prompt, report.tokens.len(), rule.describe());
    let tokens: Vec<String> =
        report.tokens.iter().map(|t| format!("{} {:?} {}", t.index, t.text, t.category.name())).collect();
    outln!(out, "tokens: {}", tokens.join(" · "));

    outln!(out, "\nresidual stream (block L = after block L)");
    outln!(
        out,
        "{:<11} {:>10} {:>10} {:>10} {:>10}  outlier tokens",
        "state",
        "max|x|",
        "median|x|",
        "mean|x|",
        "threshold"
    );
    for s in &report.hidden_states {
        let tokens = s
            .outlier_tokens
            .iter()
            .map(|t| format!("{} {} ({}, ch {})", t.token, text(t.token), t.category.name(), t.channel));
        outln!(
            out,
            "{:<11} {:>10.4} {:>10.5} {:>10.5} {:>10.3}  {}",
            state_name(s.index),
            s.max_abs,
            s.median_abs,
            s.mean_abs,
            s.threshold,
            list(tokens.collect())
        );
        let entries =
            s.top_entries.iter().map(|e| format!("{} {} ch {} = {:.4}", e.token, text(e.token), e.channel, e.value));
        outln!(out, "            top entries: {}", list(entries.collect()));
        let channels = s.top_channels.iter().map(|c| format!("{} ({:.4} @ token {})", c.channel, c.max_abs, c.token));
        outln!(out, "            top channels: {}", list(channels.collect()));
    }

    outln!(
        out,
        "\nattention: sink score per head (mean P[q≥1 → key 0]), sink heads (≥ 0.5), outlier keys (c_k ≥ 0.1·T)"
    );
    for a in &report.attention {
        let scores: Vec<String> = a.sink_scores.iter().map(|s| format!("{s:.2}")).collect();
        let keys = a.outlier_keys.iter().map(|&k| format!("{k} {} ({:.2})", text(k), a.key_attention[k]));
        outln!(
            out,
            "block {:<3} {}  sink heads {}  outlier keys {}",
            a.block,
            scores.join(" "),
            list(a.sink_heads.iter().map(usize::to_string).collect()),
            list(keys.collect())
        );
    }

    outln!(out, "\ndown-projection weight outliers: per input column max|W| / mean|W| (rows = output channels)");
    for w in report.weights.iter().filter(|w| w.kind == "ffn_down") {
        let columns = w.outliers.top_columns.iter().map(|c| {
            let rows: Vec<String> = c.rows.iter().map(|r| format!("{} ({:.3})", r.row, r.value)).collect();
            format!("col {} r={:.1} rows {}", c.column, c.ratio, rows.join(" "))
        });
        outln!(
            out,
            "block {:<3} max {:>6.1} median {:>5.2}  {}",
            w.block,
            w.outliers.max_ratio,
            w.outliers.median_ratio,
            list(columns.collect())
        );
    }

    outln!(
        out,
        "\ncausal chain: outlier channel → first block showing it → its down-projection row → attention on its tokens"
    );
    if report.chain.is_empty() {
        outln!(out, "no activation exceeds the {rule} threshold in any layer");
    }
    for link in &report.chain {
        let ChainLink { appearance: a, first_block, down_projection, attention } = link;
        let carriers = a.carriers.iter().map(|e| format!("{} {} ({:.2})", e.token, text(e.token), e.value));
        // Consecutive hidden states as one range: "block 11 – block 27".
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &i in &a.hidden_states {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == i => *last = i,
                _ => runs.push((i, i)),
            }
        }
        let states = runs.iter().map(|&(first, last)| {
            if first == last {
                state_name(first)
            } else {
                format!("{} – {}", state_name(first), state_name(last))
            }
        });
        outln!(
            out,
            "channel {}: first in {} on {}; outlier in {}",
            a.channel,
            state_name(a.first_hidden_state),
            list(carriers.collect()),
            list(states.collect())
        );
        match (first_block, down_projection) {
            (Some(_), Some(d)) => outln!(
                out,
                "    written by {} row {}: largest weight in column {} ({:.4}, {:.1}× the row's mean |W|); \
                 that column's ratio {:.1}, rank {} in the tensor",
                d.tensor,
                d.row,
                d.dominant_column,
                d.weight,
                d.row_ratio,
                d.column_ratio,
                d.column_rank
            ),
            _ => outln!(out, "    already in the embeddings"),
        }
        let shares = attention.iter().map(|c| format!("{}:{:.2}/{:.2}", c.block, c.share, c.mean_sink_score));
        outln!(
            out,
            "    later blocks, share of attention on these tokens / mean sink score: {}",
            list(shares.collect())
        );
    }
    Ok(())
}
