//! `quantscope bench`: per-kernel time and effective bandwidth on the default model's shapes and
//! on large LLM shapes, against a measured read ceiling; then end-to-end prefill and decode.
//!
//! Bandwidth counts the bytes a kernel must move at least once (weights as stored + activations
//! in + out), divided by the time per call. The ceiling is a plain WGSL read kernel over a large
//! buffer measured in the same run on the same device, so the fraction compares like with like.
//! Times are wall-clock from submit to completion of a batch of calls recorded in one encoder,
//! divided by the batch size: launch overhead is included, as it is in a real forward.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{GpuError, ModelError};
use crate::formats::blocks::{q4_1, q8_0, F16Le};
use crate::formats::ggml::GgmlType;
use crate::gpu::context::AdapterSummary;
use crate::gpu::forward::{Capture, GpuModel};
use crate::gpu::kernels::attention::{attention, attention_quantized, AttentionIo, AttentionShape, Scores};
use crate::gpu::kernels::attention_split::{attention_split, split_plan};
use crate::gpu::kernels::bcq::{bcq_gemv, GpuBcqWeight};
use crate::gpu::kernels::elementwise::swiglu_in_place;
use crate::gpu::kernels::embedding::embedding;
use crate::gpu::kernels::matmul::{
    matmul_stacked_variant, matmul_variant, MatmulOptions, MatmulOutput, MatmulVariant, StackedOptions, StackedOutput,
};
use crate::gpu::kernels::norm::rms_norm;
use crate::gpu::kernels::rope::rope;
use crate::gpu::kernels::runtime_quant::{fake_quantize_activation, GpuProbQuant};
use crate::gpu::kernels::topk::top_k;
use crate::gpu::requant::gpu_quantizable;
use crate::gpu::weights::GpuWeight;
use crate::gpu::{GpuContext, Recorder, ShaderSource};
use crate::model::{Model, Weights};
use crate::quant::activation::ActScheme;
use crate::quant::apply::quantize_model;
use crate::quant::attention_probs::{ProbQuantizer, ProbScheme};
use crate::quant::bcq::BcqPacked;
use crate::quant::{Recipe, Scheme};

#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Only the default model's shapes, short timing windows, a short end-to-end run.
    pub quick: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelResult {
    pub kernel: String,
    pub shape: String,
    pub microseconds: f64,
    pub bytes: u64,
    pub gb_per_s: f64,
    pub ceiling_fraction: f64,
    /// Arithmetic rate for matrix products (2 flops per weight per token); prefill GEMMs are
    /// judged by this, not by bandwidth.
    pub gflop_per_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    pub prefill_tokens: usize,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens: usize,
    pub decode_tokens_per_s: f64,
    pub dispatches_per_decode_token: f64,
    /// After a warm-up decode step (which compiles the decode pipelines and fills the caches).
    pub compute_passes_per_decode_token: f64,
    pub buffers_created_per_decode_step: f64,
    pub bind_groups_created_per_decode_step: f64,
    /// Median host time of a decode step from the start of recording to the submit (included).
    pub host_record_microseconds_per_decode_step: f64,
    pub weight_bytes_on_gpu: u64,
    /// Weight bytes per decode token / decode time per token.
    pub decode_weight_gb_per_s: f64,
    /// The same prefill with every outlier probe on (8 points per block, reduced on the GPU,
    /// read back with the logits).
    pub prefill_with_probes_tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub adapter: AdapterSummary,
    pub ceiling_gb_per_s: f64,
    pub ceiling_buffer_bytes: u64,
    pub kernels: Vec<KernelResult>,
    pub end_to_end: EndToEnd,
    pub requantize: Vec<RequantResult>,
}

/// Seconds per call of `record`, batching calls into one encoder until a batch takes at least
/// `window` (after one warm-up batch that also compiles the pipelines).
fn time_per_call(
    ctx: &GpuContext,
    window: Duration,
    record: &mut dyn FnMut(&mut Recorder) -> Result<(), GpuError>,
) -> Result<f64, GpuError> {
    let mut batch = 1u32;
    let mut warm = false;
    loop {
        let mut enc = ctx.encoder();
        for _ in 0..batch {
            record(&mut enc)?;
        }
        let started = Instant::now();
        ctx.submit(enc);
        ctx.wait_idle()?;
        let elapsed = started.elapsed();
        if !warm {
            warm = true;
            continue;
        }
        if elapsed >= window || batch >= 4096 {
            return Ok(elapsed.as_secs_f64() / batch as f64);
        }
        let scale = (window.as_secs_f64() / elapsed.as_secs_f64().max(1e-6)).clamp(2.0, 64.0);
        batch = ((batch as f64 * scale).ceil() as u32).min(4096);
    }
}

/// GB/s of the plain read kernel over a buffer of `bytes`.
fn read_ceiling(ctx: &GpuContext, bytes: u64, window: Duration) -> Result<f64, GpuError> {
    let n_vec4 = (bytes / 16) as u32;
    let data = ctx.storage("ceiling data", n_vec4 as u64 * 16)?;
    let n_threads = n_vec4.min(1 << 19);
    let sums = ctx.storage("ceiling sums", n_threads as u64 * 4)?;
    let source = ShaderSource::new("bench_read", include_str!("../../shaders/bench_read.wgsl"));
    let pipeline = ctx.pipeline(&source, "read_all", &[])?;
    let seconds = time_per_call(ctx, window, &mut |enc| {
        ctx.dispatch(enc, &pipeline, &[n_vec4, n_threads], &[&data, &sums], n_threads.div_ceil(256));
        Ok(())
    })?;
    Ok(n_vec4 as f64 * 16.0 / seconds / 1e9)
}

/// Deterministic bytes for random weights (xorshift64): the benchmark needs no rand crate.
struct Xorshift(u64);

impl Xorshift {
    fn next_byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as u8
    }
}

/// A weight of `dtype` with `n_out` rows of `n_in` random bytes' worth of blocks: timing does
/// not depend on the values.
fn random_weight(ctx: &GpuContext, dtype: GgmlType, n_in: u32, n_out: u32) -> Result<GpuWeight, ModelError> {
    let elements = n_in as u64 * n_out as u64;
    let len = dtype.bytes_for(elements).ok_or_else(|| GpuError::Shape {
        kernel: "bench",
        message: format!("{n_in} is not a multiple of the {} block", dtype.name()),
    })? as usize;
    let mut noise = Xorshift(0x9E37_79B9_7F4A_7C15);
    // Small values: scales stay finite, so the kernels see ordinary numbers.
    let bytes: Vec<u8> = (0..len).map(|_| noise.next_byte() & 0x3B).collect();
    let name = format!("{}×{} {}", n_out, n_in, dtype.name());
    let (weights, tensor) = Weights::single("bench", &name, dtype, n_out as usize, n_in as usize, bytes)?;
    Ok(GpuWeight::upload(ctx, &weights, &tensor)?)
}

/// A BCQ matrix of `bits` random bit planes and halving scales per group of `group` inputs, as
/// ShiftAddLLM's LUT kernel reads it: timing does not depend on the values, so no fit is run.
fn random_bcq_weight(ctx: &GpuContext, n_out: u32, n_in: u32, bits: u8, group: u32) -> Result<GpuBcqWeight, GpuError> {
    let (rows, cols, group) = (n_out as usize, n_in as usize, group as usize);
    let words_per_row = cols.div_ceil(32);
    let mut noise = Xorshift(0x6A09_E667_F3BC_C908);
    let mut planes: Vec<u32> = (0..rows * bits as usize * words_per_row)
        .map(|_| u32::from_le_bytes([noise.next_byte(), noise.next_byte(), noise.next_byte(), noise.next_byte()]))
        .collect();
    // The layout's rule: digits past the row end are 0.
    if !cols.is_multiple_of(32) {
        let last = (1u32 << (cols % 32)) - 1;
        planes.iter_mut().skip(words_per_row - 1).step_by(words_per_row).for_each(|w| *w &= last);
    }
    let alphas = (0..rows * cols.div_ceil(group)).flat_map(|_| (0..bits).map(|i| 0.04 / (1 << i) as f32)).collect();
    let packed = BcqPacked { rows, cols, bits, group, words_per_row, planes, alphas };
    GpuBcqWeight::upload(ctx, &packed)
}

/// Async like every GPU operation of the library; the CLI blocks on it.
pub async fn run(
    ctx: &GpuContext,
    model: &Model,
    options: BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<BenchReport, ModelError> {
    let window = Duration::from_millis(if options.quick { 30 } else { 300 });
    let ceiling_bytes = (if options.quick { 64u64 } else { 1024 } << 20)
        .min(ctx.summary.max_storage_buffer_binding_size)
        .min(ctx.summary.max_buffer_size);
    let ceiling = read_ceiling(ctx, ceiling_bytes, window)?;
    log(&format!("read ceiling: {ceiling:.1} GB/s over {} MiB", ceiling_bytes >> 20));
    let mut kernels = Vec::new();
    let mut push =
        |kernel: &str, shape: String, seconds: f64, bytes: u64, flops: Option<f64>, log: &mut dyn FnMut(&str)| {
            let gb_per_s = bytes as f64 / seconds / 1e9;
            let r = KernelResult {
                kernel: kernel.into(),
                shape,
                microseconds: seconds * 1e6,
                bytes,
                gb_per_s,
                ceiling_fraction: gb_per_s / ceiling,
                gflop_per_s: flops.map(|f| f / seconds / 1e9),
            };
            let rate = r.gflop_per_s.map_or(String::new(), |g| format!(" {g:>9.2} GFLOP/s"));
            log(&format!(
                "{:<13} {:<34} {:>10.1} µs {:>9.2} GB/s {:>6.1}% of ceiling{rate}",
                r.kernel,
                r.shape,
                r.microseconds,
                r.gb_per_s,
                100.0 * r.ceiling_fraction
            ));
            kernels.push(r);
        };

    // Matrix products: the model's own weights, then large LLM shapes.
    let mut weights: Vec<(String, GpuWeight)> = Vec::new();
    let own = ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_down.weight"];
    // A plain MLP (GPT-2) has no gate to time.
    for name in own.into_iter().filter(|name| model.config.has_linear(name)).chain(["token_embd.weight"]) {
        weights.push((
            format!("{name} {}", model.tensor(name)?.dtype.name()),
            GpuWeight::upload(ctx, &model.weights, model.tensor(name)?)?,
        ));
    }
    if !options.quick {
        for dtype in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F16] {
            for (n_out, n_in) in [(4096, 4096), (11008, 4096)] {
                let w = random_weight(ctx, dtype, n_in, n_out)?;
                weights.push((w.name.clone(), w));
            }
        }
    }
    let prefill_tokens: u32 = if options.quick { 16 } else { 128 };
    // Every variant the adapter has (the forward uses MatmulVariant::best); the GEMM is the same
    // kernel in the portable and subgroup variants, so it is timed once for both.
    let variants = MatmulVariant::available(ctx.features());
    for (label, w) in &weights {
        for n_tokens in [1, prefill_tokens] {
            let x = ctx.storage("x", 4 * n_tokens as u64 * w.n_in as u64)?;
            let y = ctx.storage("y", 4 * n_tokens as u64 * w.n_out as u64)?;
            for &variant in &variants {
                if n_tokens > 1 && variant == MatmulVariant::Subgroup {
                    continue;
                }
                let seconds = time_per_call(ctx, window, &mut |enc| {
                    matmul_variant(ctx, enc, w, &x, &y, n_tokens, &MatmulOptions::default(), variant)
                })?;
                let bytes = w.gpu_bytes() + 4 * n_tokens as u64 * (w.n_in + w.n_out) as u64;
                let kernel = if n_tokens == 1 { "gemv" } else { "gemm" };
                let flops = 2.0 * w.n_in as f64 * w.n_out as f64 * n_tokens as f64;
                let shape = format!("{label} ×{n_tokens} tok {}", variant.name());
                push(kernel, shape, seconds, bytes, Some(flops), log);
            }
        }
    }

    // The decode step's stacked GEMVs (one dispatch for q/k/v, one for gate/up with its gate, both
    // with the RMSNorm prologue) on the model's block 0, against the separate dispatches they
    // replace ("gemv_unstacked": the same products and epilogues, one dispatch per weight).
    let stacks = [
        (&["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"][..], StackedOutput::Concatenate),
        (&["blk.0.ffn_gate.weight", "blk.0.ffn_up.weight"][..], StackedOutput::GatedPair(model.config.ffn_activation)),
    ];
    for (names, output) in stacks.into_iter().filter(|(names, _)| names.iter().all(|n| model.config.has_linear(n))) {
        let mut stack = Vec::new();
        for name in names {
            stack.push(GpuWeight::upload(ctx, &model.weights, model.tensor(name)?)?);
        }
        let stack: Vec<&GpuWeight> = stack.iter().collect();
        let n_in = stack[0].n_in;
        let total: u32 = stack.iter().map(|w| w.n_out).sum();
        let x = ctx.storage("x", 4 * n_in as u64)?;
        let gain = ctx.storage("gain", 4 * n_in as u64)?;
        let y = ctx.storage("y", 4 * total as u64)?;
        let separate = stack.iter().map(|w| ctx.storage("y", 4 * w.n_out as u64)).collect::<Result<Vec<_>, _>>()?;
        let rms_norm = Some((&gain, 1e-5));
        let bytes = stack.iter().map(|w| w.gpu_bytes()).sum::<u64>() + 4 * (2 * n_in + total) as u64;
        let flops = 2.0 * n_in as f64 * total as f64;
        let outs: Vec<String> = stack.iter().map(|w| w.n_out.to_string()).collect();
        let dtype = model.tensor(names[0])?.dtype.name();
        for &variant in &variants {
            let options = StackedOptions { rms_norm, bias: None, output };
            let stacked = time_per_call(ctx, window, &mut |enc| {
                matmul_stacked_variant(ctx, enc, &stack, &x, &y, &options, variant)
            })?;
            let unstacked = time_per_call(ctx, window, &mut |enc| {
                for (i, (w, y)) in stack.iter().zip(&separate).enumerate() {
                    // The pair's up projection reads the gate's output.
                    let output = match output {
                        StackedOutput::GatedPair(activation) if i == 1 => MatmulOutput::Gated(&separate[0], activation),
                        _ => MatmulOutput::Store,
                    };
                    matmul_variant(ctx, enc, w, &x, y, 1, &MatmulOptions { rms_norm, bias: None, output }, variant)?;
                }
                Ok(())
            })?;
            let shape = format!("{n_in}→{} {dtype} {}", outs.join("+"), variant.name());
            push("gemv_stacked", shape.clone(), stacked, bytes, Some(flops), log);
            push("gemv_unstacked", shape, unstacked, bytes, Some(flops), log);
        }
    }

    // ShiftAddLLM's LUT GEMV (one token), 3 bits in groups of 128 inputs: the default model's
    // ffn_down shape, then a large LLM shape. Bytes: packed digits, f32 scales, x and y.
    let ffn_down = (model.config.d_model as u32, model.config.d_ff as u32);
    for (n_out, n_in) in [ffn_down, (4096, 4096)] {
        let w = random_bcq_weight(ctx, n_out, n_in, 3, 128)?;
        let x = ctx.storage("x", 4 * n_in as u64)?;
        let y = ctx.storage("y", 4 * n_out as u64)?;
        let seconds = time_per_call(ctx, window, &mut |enc| bcq_gemv(ctx, enc, &w, &x, &y))?;
        let bytes = w.gpu_bytes() + 4 * (n_in + n_out) as u64;
        let flops = 2.0 * n_in as f64 * n_out as f64;
        push("bcq_gemv", format!("{n_out}×{n_in} bcq3 g128 ×1 tok"), seconds, bytes, Some(flops), log);
    }

    // The other kernels at decode shapes of the default model.
    let c = &model.config;
    let (d, q_dim, kv_dim, ff, vocab) =
        (c.d_model as u32, c.q_dim() as u32, c.kv_dim() as u32, c.d_ff as u32, c.vocab_size as u32);
    let f32s = |n: u32| 4 * n as u64;
    let x = ctx.storage("x", f32s(d))?;
    let out = ctx.storage("out", f32s(d))?;
    let gain = ctx.upload_f32("gain", &vec![1.0; d as usize])?;
    let seconds = time_per_call(ctx, window, &mut |enc| rms_norm(ctx, enc, &x, &gain, &out, 1, d, c.rms_eps))?;
    push("rms_norm", format!("{d}"), seconds, 3 * f32s(d), None, log);

    let q = ctx.storage("q", f32s(q_dim))?;
    let seconds = time_per_call(ctx, window, &mut |enc| {
        rope(ctx, enc, &q, 1, c.n_heads as u32, c.head_dim as u32, 100, c.rope_base, c.rope_layout)
    })?;
    push("rope", format!("{} heads × {}", c.n_heads, c.head_dim), seconds, 2 * f32s(q_dim), None, log);

    // Decode attention at a short and a long context: the one-pass kernel (one workgroup per
    // head) against the split over the keys the plain forward uses.
    let shape =
        AttentionShape { n_heads: c.n_heads as u32, n_kv_heads: c.n_kv_heads as u32, head_dim: c.head_dim as u32 };
    let attended = ctx.storage("attended", f32s(q_dim))?;
    for context in [16, if options.quick { 128 } else { 4096 }] {
        let past = context - 1;
        let keys = ctx.storage("k cache", f32s(kv_dim * context))?;
        let values = ctx.storage("v cache", f32s(kv_dim * context))?;
        let scratch = ctx.storage("attention splits", 4 * split_plan(shape, 1, past).scratch_words)?;
        let bytes = 2 * f32s(q_dim) + 2 * f32s(kv_dim * context);
        let seconds = time_per_call(ctx, window, &mut |enc| {
            attention(
                ctx,
                enc,
                shape,
                AttentionIo { q: &q, k_cache: &keys, v_cache: &values, out: &attended, n_tokens: 1, past: past },
                None,
            )
        })?;
        push("attention", format!("decode over {context} keys"), seconds, bytes, None, log);
        let seconds = time_per_call(ctx, window, &mut |enc| {
            attention_split(
                ctx,
                enc,
                shape,
                Scores::of(c),
                AttentionIo { q: &q, k_cache: &keys, v_cache: &values, out: &attended, n_tokens: 1, past: past },
                false,
                &scratch,
            )
        })?;
        let splits = split_plan(shape, 1, past).splits;
        push("attention_split", format!("decode over {context} keys, {splits} splits"), seconds, bytes, None, log);
    }

    let gate = ctx.storage("gate", f32s(ff))?;
    let up = ctx.storage("up", f32s(ff))?;
    let seconds = time_per_call(ctx, window, &mut |enc| swiglu_in_place(ctx, enc, &gate, &up, ff))?;
    push("swiglu", format!("{ff}"), seconds, 3 * f32s(ff), None, log);

    // Run-time activation fake quantization (in place): a decode token's MLP input and a prefill's
    // down-projection input. Bytes: the tensor read and written once (per tensor and per channel
    // read it twice: the max pass, then the elements). Values are nonzero: an all-zero group
    // takes a shortcut.
    for (rows, k) in [(1, d), (prefill_tokens, ff)] {
        let values: Vec<f32> = (0..rows * k).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0).collect();
        let x = ctx.upload_f32("activations", &values)?;
        for name in ["int8-token", "int8-tensor", "int8-channel", "fp8-e4m3-token", "mxfp4", "nvfp4"] {
            let scheme: ActScheme =
                name.parse().map_err(|e| GpuError::Shape { kernel: "bench", message: format!("{e}") })?;
            let seconds =
                time_per_call(ctx, window, &mut |enc| fake_quantize_activation(ctx, enc, &scheme, &x, rows, k))?;
            push("act_quant", format!("{name} {rows}×{k}"), seconds, 2 * f32s(rows * k), None, log);
        }
    }
    // Attention with quantized probabilities (the second pass over the keys), over as many keys as
    // a prefill's last query.
    let past = prefill_tokens - 1;
    let keys = ctx.storage("k cache", f32s(kv_dim * (past + 1)))?;
    let values = ctx.storage("v cache", f32s(kv_dim * (past + 1)))?;
    let uint8 = GpuProbQuant::new(
        ctx,
        &ProbQuantizer::new(ProbScheme::Uniform { bits: 8 }, 1)
            .map_err(|e| GpuError::Shape { kernel: "bench", message: e.to_string() })?,
        1,
    )?;
    let seconds = time_per_call(ctx, window, &mut |enc| {
        attention_quantized(
            ctx,
            enc,
            shape,
            Scores::of(c),
            AttentionIo { q: &q, k_cache: &keys, v_cache: &values, out: &attended, n_tokens: 1, past: past },
            None,
            false,
            Some((&uint8, 0)),
        )
    })?;
    push(
        "attention",
        format!("uint8 probs, decode over {} keys", past + 1),
        seconds,
        2 * f32s(q_dim) + 2 * f32s(kv_dim * (past + 1)),
        None,
        log,
    );

    let embeddings = &weights.iter().find(|(l, _)| l.starts_with("token_embd")).expect("uploaded above").1;
    let ids = ctx.upload_u32("ids", &[42])?;
    let row = ctx.storage("row", f32s(d))?;
    let seconds = time_per_call(ctx, window, &mut |enc| embedding(ctx, enc, embeddings, &ids, &row, 1))?;
    push(
        "embedding",
        format!("1 row of {}", embeddings.name),
        seconds,
        embeddings.gpu_bytes() / vocab as u64 + f32s(d),
        None,
        log,
    );

    let logits = ctx.storage("logits", f32s(vocab))?;
    let (top_ids, top_values) = (ctx.storage("top ids", 4 * 64)?, ctx.storage("top values", 4 * 64)?);
    let seconds = time_per_call(ctx, window, &mut |enc| top_k(ctx, enc, &logits, vocab, 10, &top_ids, &top_values))?;
    push("top_k", format!("10 of {vocab}"), seconds, f32s(vocab), None, log);

    let end_to_end = end_to_end(ctx, model, prefill_tokens as usize, if options.quick { 4 } else { 64 }, log).await?;
    let requantize = requantize(ctx, model, options, log)?;
    Ok(BenchReport {
        adapter: ctx.summary.clone(),
        ceiling_gb_per_s: ceiling,
        ceiling_buffer_bytes: ceiling_bytes,
        kernels,
        end_to_end,
        requantize,
    })
}

/// Time to switch the whole model to `scheme`: on the GPU from the master copy where
/// [`gpu_quantizable`], else the CPU reference quantizers plus the upload of their result.
#[derive(Debug, Clone, Serialize)]
pub struct RequantResult {
    pub scheme: String,
    /// "gpu" or "cpu+upload".
    pub path: &'static str,
    pub milliseconds: f64,
    pub matrices: usize,
}

fn requantize(
    ctx: &GpuContext,
    model: &Model,
    options: BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<RequantResult>, ModelError> {
    let mut gpu_model = GpuModel::upload(ctx, model, &mut |_| {})?;
    let mut names = gpu_model.matrix_names();
    let all_matrices = names.len();
    let mut results = Vec::new();
    // The quick run (a smoke test, often on lavapipe) times one scheme of each path, the GPU's on
    // the first block's matrices: a whole model takes a minute a scheme on lavapipe.
    let quick = ["q4_0", "int4-g128-asym", "mxfp4"];
    if options.quick {
        names.retain(|n| n.starts_with("blk.0."));
    }
    for scheme in Scheme::catalog() {
        let name = scheme.to_string();
        if options.quick && !quick.contains(&name.as_str()) {
            continue;
        }
        let (path, seconds) = if gpu_quantizable(&scheme) {
            let run = |gpu_model: &mut GpuModel| -> Result<f64, ModelError> {
                let started = Instant::now();
                let mut encoder = ctx.encoder();
                for matrix in &names {
                    gpu_model.requantize(ctx, &mut encoder, matrix, &scheme)?;
                }
                ctx.submit(encoder);
                ctx.wait_idle()?;
                Ok(started.elapsed().as_secs_f64())
            };
            run(&mut gpu_model)?; // compiles the pipelines
            ("gpu", run(&mut gpu_model)?)
        } else {
            let started = Instant::now();
            let quantized = quantize_model(model, &Recipe::uniform(scheme), &mut |_| {})?;
            let uploaded = GpuModel::upload_quantized(ctx, &quantized, &mut |_| {})?;
            ctx.wait_idle()?;
            drop(uploaded);
            ("cpu+upload", started.elapsed().as_secs_f64())
        };
        let matrices = if path == "gpu" { names.len() } else { all_matrices };
        log(&format!("requantize {name:<28} {path:<10} {:>10.1} ms for {matrices} matrices", seconds * 1e3));
        results.push(RequantResult { scheme: name, path, milliseconds: seconds * 1e3, matrices });
    }
    Ok(results)
}

async fn end_to_end(
    ctx: &GpuContext,
    model: &Model,
    prefill: usize,
    decode: usize,
    log: &mut dyn FnMut(&str),
) -> Result<EndToEnd, ModelError> {
    let gpu = GpuModel::upload(ctx, model, &mut |_| {})?;
    // The opening of Pride and Prejudice (Jane Austen, 1813; public domain).
    let text = include_str!("bench_prompt.txt");
    let mut tokens = model.tokenizer.encode(text)?;
    if tokens.len() < prefill {
        return Err(GpuError::Shape {
            kernel: "bench",
            message: format!("bench prompt has only {} tokens", tokens.len()),
        }
        .into());
    }
    tokens.truncate(prefill);
    let mut cache = gpu.new_cache(ctx, (prefill + decode + 1) as u32)?;
    // Warm-up compiles every pipeline, then the timed runs start from an empty cache.
    // A greedy decode: each step finds its next token on the GPU and reads back only its id.
    let greedy = Capture { top_k: Some(1), ..Default::default() };
    let next = |out: crate::gpu::forward::StepOutput| out.top.first().map_or(0, |&(id, _)| id);
    gpu.step(ctx, &mut cache, &tokens[..2], &greedy).await?;
    cache.len = 0;
    let started = Instant::now();
    let mut token = next(gpu.step(ctx, &mut cache, &tokens, &greedy).await?);
    let prefill_seconds = started.elapsed().as_secs_f64();
    // One untimed decode step compiles the decode pipelines and fills the reuse caches.
    token = next(gpu.step(ctx, &mut cache, &[token], &greedy).await?);
    let (dispatches_before, buffers_before, bind_groups_before) =
        (ctx.dispatch_count(), ctx.buffer_count(), ctx.bind_group_count());
    let mut passes = 0u64;
    let mut record_micros = Vec::with_capacity(decode);
    let started = Instant::now();
    for _ in 0..decode {
        let out = gpu.step(ctx, &mut cache, &[token], &greedy).await?;
        passes += out.stats.compute_passes as u64;
        record_micros.push(out.stats.record_microseconds);
        token = next(out);
    }
    let decode_seconds = started.elapsed().as_secs_f64();
    let decode_dispatches = ctx.dispatch_count() - dispatches_before;
    let per_step = |count: u64| count as f64 / decode as f64;
    let buffers_per_step = per_step(ctx.buffer_count() - buffers_before);
    let bind_groups_per_step = per_step(ctx.bind_group_count() - bind_groups_before);
    record_micros.sort_by(f64::total_cmp);
    let per_token = decode_seconds / decode as f64;
    let probes = Capture { probes: true, ..Default::default() };
    let mut probe_cache = gpu.new_cache(ctx, prefill as u32)?;
    gpu.step(ctx, &mut probe_cache, &tokens[..2], &probes).await?;
    probe_cache.len = 0;
    let started = Instant::now();
    gpu.step(ctx, &mut probe_cache, &tokens, &probes).await?;
    let probe_seconds = started.elapsed().as_secs_f64();
    let r = EndToEnd {
        prefill_tokens: prefill,
        prefill_tokens_per_s: prefill as f64 / prefill_seconds,
        decode_tokens: decode,
        decode_tokens_per_s: 1.0 / per_token,
        dispatches_per_decode_token: decode_dispatches as f64 / decode as f64,
        compute_passes_per_decode_token: per_step(passes),
        buffers_created_per_decode_step: buffers_per_step,
        bind_groups_created_per_decode_step: bind_groups_per_step,
        host_record_microseconds_per_decode_step: record_micros.get(decode / 2).copied().unwrap_or(f64::NAN),
        weight_bytes_on_gpu: gpu.gpu_bytes(),
        decode_weight_gb_per_s: gpu.gpu_bytes() as f64 / per_token / 1e9,
        prefill_with_probes_tokens_per_s: prefill as f64 / probe_seconds,
    };
    log(&format!(
        "end to end: prefill {} tokens at {:.1} tokens/s ({:.1} with every probe on); decode {} tokens at {:.2} tokens/s, {:.0} dispatches/token, weights {:.1} MB read at {:.2} GB/s",
        r.prefill_tokens, r.prefill_tokens_per_s, r.prefill_with_probes_tokens_per_s, r.decode_tokens, r.decode_tokens_per_s,
        r.dispatches_per_decode_token, r.weight_bytes_on_gpu as f64 / 1e6, r.decode_weight_gb_per_s
    ));
    log(&format!(
        "decode step: {:.1} compute passes, {:.1} buffers and {:.1} bind groups created, {:.0} µs to record and submit (median)",
        r.compute_passes_per_decode_token, r.buffers_created_per_decode_step, r.bind_groups_created_per_decode_step,
        r.host_record_microseconds_per_decode_step
    ));
    Ok(r)
}

/// A model with the default model's shapes (SmolLM2-135M: 30 layers, width 576, 9 query and 3
/// KV heads, FFN 1536, vocabulary 49152, Q4_1 matrices, Q8_0 embeddings) and random weights, for
/// machines that cannot hold the model file (the lent GPU machine has no network). Kernel
/// timings depend on shapes and formats, not on values. Its tokenizer has one token per byte,
/// so any prompt encodes.
pub fn synthetic_default_model() -> Result<Model, ModelError> {
    use crate::formats::gguf::{write_gguf, MetadataValue as V};
    let (d, layers, heads, kv_heads, ff, vocab) = (576u64, 30u32, 9u32, 3u32, 1536u64, 49152usize);
    let kv = d / heads as u64 * kv_heads as u64;
    let mut tokens: Vec<V> = byte_level_alphabet().into_iter().map(|c| V::String(c.to_string())).collect();
    tokens.extend((tokens.len()..vocab).map(|i| V::String(format!("<filler {i}>"))));
    let metadata = vec![
        ("general.architecture".to_string(), V::String("llama".into())),
        ("general.name".into(), V::String("synthetic SmolLM2-135M shapes".into())),
        ("llama.block_count".into(), V::U32(layers)),
        ("llama.context_length".into(), V::U32(8192)),
        ("llama.embedding_length".into(), V::U32(d as u32)),
        ("llama.feed_forward_length".into(), V::U32(ff as u32)),
        ("llama.attention.head_count".into(), V::U32(heads)),
        ("llama.attention.head_count_kv".into(), V::U32(kv_heads)),
        ("llama.rope.freq_base".into(), V::F32(100_000.0)),
        ("llama.attention.layer_norm_rms_epsilon".into(), V::F32(1e-5)),
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), V::Array(tokens)),
        ("tokenizer.ggml.merges".into(), V::Array(Vec::new())),
    ];
    let mut noise = Xorshift(0x2545_F491_4F6C_DD1D);
    let mut matrix = |name: String, n_in: u64, n_out: u64, dtype: GgmlType| {
        // Random quants under small f16 scales (and Q4_1's offsets).
        let blocks = (n_in * n_out) as usize / dtype.block_size();
        let mut bytes = Vec::with_capacity(blocks * dtype.type_size());
        for _ in 0..blocks {
            let d = F16Le::from_f32(0.01);
            match dtype {
                GgmlType::Q8_0 => {
                    let qs = std::array::from_fn(|_| noise.next_byte() as i8);
                    bytes.extend_from_slice(bytemuck::bytes_of(&q8_0::Block { d, qs }));
                }
                _ => {
                    let (m, qs) = (F16Le::from_f32(-0.08), std::array::from_fn(|_| noise.next_byte()));
                    bytes.extend_from_slice(bytemuck::bytes_of(&q4_1::Block { d, m, qs }));
                }
            }
        }
        (name, vec![n_in, n_out], dtype, bytes)
    };
    let ones = |name: String| (name, vec![d], GgmlType::F32, bytemuck::cast_slice(&vec![1.0f32; d as usize]).to_vec());
    let mut tensors =
        vec![matrix("token_embd.weight".into(), d, vocab as u64, GgmlType::Q8_0), ones("output_norm.weight".into())];
    for l in 0..layers {
        let name = |s: &str| format!("blk.{l}.{s}");
        tensors.extend([
            ones(name("attn_norm.weight")),
            matrix(name("attn_q.weight"), d, d, GgmlType::Q4_1),
            matrix(name("attn_k.weight"), d, kv, GgmlType::Q4_1),
            matrix(name("attn_v.weight"), d, kv, GgmlType::Q4_1),
            matrix(name("attn_output.weight"), d, d, GgmlType::Q4_1),
            ones(name("ffn_norm.weight")),
            matrix(name("ffn_gate.weight"), d, ff, GgmlType::Q4_1),
            matrix(name("ffn_up.weight"), d, ff, GgmlType::Q4_1),
            matrix(name("ffn_down.weight"), ff, d, GgmlType::Q4_1),
        ]);
    }
    Model::from_gguf(write_gguf(&metadata, &tensors, 32), "synthetic", &mut |_| {})
}

/// The 256 characters GPT-2's byte-level BPE uses for the bytes 0..=255, in byte order.
fn byte_level_alphabet() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap_or('?')
            }
        })
        .collect()
}
