//! The CPU reference forward: plain f32 loops, written to be read and trusted, not to be fast.
//! Every GPU kernel is checked against these numbers, so each step mirrors the textbook formula:
//!
//! ```text
//! x = embed(tokens)                                        (× √d for Gemma)
//! for each block:  x += W_o · attention(rope(W_q · norm(x)), rope(W_k · norm(x)), W_v · norm(x))
//!                  x += W_down · (silu(W_gate · norm(x)) ⊙ (W_up · norm(x)))
//! logits = W_out · norm(x)                                (soft-capped for Gemma 2)
//! ```
//!
//! Switches of the config change steps, not the shape: Qwen3 and Gemma 3 normalize each query
//! and key head before RoPE, Gemma normalizes the attention's and the MLP's outputs before the
//! adds (`post_norms`) and gates with GELU instead of SiLU, Gemma 3's local layers rotate with a
//! RoPE base of their own, Gemma 2 soft-caps the attention scores and the logits
//! (`cap·tanh(x/cap)`), and Gemma's 27B models scale the scores by `1/√(width/heads)`, not
//! `1/√head_dim`. GPT-2 normalizes with LayerNorm (mean-centred, with a bias), adds
//! learned position embeddings to the token embeddings instead of rotating queries and keys, has
//! a plain MLP `W_down · gelu(W_up · norm(x) + b) + b` and a bias on every linear layer.
//!
//! Activations are row-major `[tokens × width]`. Weights are dequantized one row at a time, so the
//! quantized model never needs a full f32 copy in memory.

use crate::error::{FormatError, ModelError};
use crate::model::config::{soft_cap, GateActivation, LlamaConfig, MlpKind, NormKind, Positions, RopeLayout};
use crate::model::load::Model;
use crate::model::weights::{WeightTensor, Weights};

/// What a forward returns besides the logits. Everything off by default: the extra tensors are
/// large (attention probabilities grow with tokens²).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Logits of every position (for perplexity) instead of only the last one.
    pub all_logits: bool,
    pub hidden_states: bool,
    pub attention_probs: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ForwardOutput {
    /// `[positions × vocab]`: every position with `all_logits`, else only the last.
    pub logits: Vec<f32>,
    /// `n_layers + 1` entries of `[tokens × d_model]`: the embeddings, then the residual stream
    /// after each block.
    pub hidden_states: Vec<Vec<f32>>,
    /// Per layer `[n_heads × tokens × tokens]`, row = query, column = key; zero above the diagonal.
    pub attention_probs: Vec<Vec<f32>>,
}

/// The weights of one transformer block, resolved by name once per forward.
struct Block<'a> {
    attn_norm: Norm<'a>,
    q: &'a WeightTensor,
    k: &'a WeightTensor,
    v: &'a WeightTensor,
    q_bias: Option<&'a WeightTensor>,
    k_bias: Option<&'a WeightTensor>,
    v_bias: Option<&'a WeightTensor>,
    /// Qwen3's per-head RMSNorm gains of the queries and the keys.
    q_norm: Option<&'a WeightTensor>,
    k_norm: Option<&'a WeightTensor>,
    o: &'a WeightTensor,
    /// GPT-2's biases of the output projection, up and down.
    o_bias: Option<&'a WeightTensor>,
    up_bias: Option<&'a WeightTensor>,
    down_bias: Option<&'a WeightTensor>,
    /// Gemma's norms of the attention's and the MLP's outputs.
    post_attention_norm: Option<&'a WeightTensor>,
    post_ffw_norm: Option<&'a WeightTensor>,
    ffn_norm: Norm<'a>,
    /// None in a plain (non-gated) MLP.
    gate: Option<&'a WeightTensor>,
    up: &'a WeightTensor,
    down: &'a WeightTensor,
}

/// A norm's gain and, for LayerNorm, its bias.
#[derive(Clone, Copy)]
struct Norm<'a> {
    gain: &'a WeightTensor,
    bias: Option<&'a WeightTensor>,
}

/// The input of a transformer block's linear layers, named by the layers that read it (q, k and v
/// read one input, gate and up another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearInput {
    /// The normed residual stream, read by W_q, W_k, W_v.
    AttnQkv,
    /// The attended values, read by W_o.
    AttnOutput,
    /// The normed residual stream, read by W_gate, W_up.
    MlpGateUp,
    /// silu(gate) ⊙ up, read by W_down.
    MlpDown,
}

/// Where an experiment may change the forward (the interventions of `model::intervene`, the
/// activation quantizers of `quant::activation`): the residual stream after each block, which keys
/// each query may attend to, and the input of every linear layer of a block. The defaults change
/// nothing, and [`forward`] is [`forward_with`] with [`NoHook`].
pub trait ForwardHook {
    /// Called with the residual stream `[tokens × d_model]` after block `layer`, before it is
    /// recorded in the hidden states and passed on, so a change here is what later blocks see.
    fn after_block(&mut self, _layer: usize, _x: &mut [f32]) {}

    /// Whether `query` must not attend to `key` (`key ≤ query`; causality is applied already).
    /// A masked key gets probability exactly 0 and the others are renormalized; every query must
    /// keep at least one key (softmax over nothing is undefined).
    fn masks_key(&self, _query: usize, _key: usize) -> bool {
        false
    }

    /// Called with the input `x` (`[tokens × k]`) of the linear layers of block `layer` that read
    /// `input`, right before them, so a change here is what those matmuls see (and only they: the
    /// residual stream is untouched). The output head's input is not offered.
    fn before_linear(&mut self, _layer: usize, _input: LinearInput, _x: &mut [f32], _k: usize) {}

    /// Called with the new queries and keys (both after RoPE, `[tokens × width]`) and values of
    /// block `layer`, right before attention reads them: keys and values here are what the KV
    /// cache holds, so this is where a cache quantizer (or a RoPE-aware rescaling) acts.
    fn after_rope(&mut self, _layer: usize, _q: &mut [f32], _k: &mut [f32], _v: &mut [f32]) {}

    /// Called with one query's probabilities over keys `0..=query` of block `layer`, after the
    /// softmax and before they weight the values: where attention probabilities are quantized.
    /// What it leaves is also what `ForwardOptions::attention_probs` records.
    fn after_softmax(&self, _layer: usize, _probs: &mut [f32]) {}
}

/// The forward as the model computes it.
pub struct NoHook;

impl ForwardHook for NoHook {}

pub fn forward(model: &Model, tokens: &[u32], options: ForwardOptions) -> Result<ForwardOutput, ModelError> {
    forward_with(model, tokens, options, &mut NoHook)
}

/// [`forward`] with `hook` changing the residual stream and the attention mask.
pub fn forward_with(
    model: &Model,
    tokens: &[u32],
    options: ForwardOptions,
    hook: &mut dyn ForwardHook,
) -> Result<ForwardOutput, ModelError> {
    forward_from(model, tokens, options, hook, None)
}

/// A forward that starts at a block: the residual stream `[tokens × d_model]` entering block
/// `block`, as an earlier forward of the same tokens computed it.
#[derive(Debug, Clone, Copy)]
pub struct ResumeAt<'a> {
    pub block: usize,
    pub residual: &'a [f32],
}

/// [`forward_with`], from `resume` when given: the blocks before it are not run, so a model that
/// differs from another only from that block on gives exactly the output of its whole forward
/// (the sensitivity map's cells). Then `hidden_states` starts with `resume.residual` (it has
/// `n_layers + 1 − block` entries) and `attention_probs` with block `resume.block`.
pub fn forward_from(
    model: &Model,
    tokens: &[u32],
    options: ForwardOptions,
    hook: &mut dyn ForwardHook,
    resume: Option<ResumeAt<'_>>,
) -> Result<ForwardOutput, ModelError> {
    let c = &model.config;
    let w = &model.weights;
    let n = tokens.len();
    if n == 0 {
        return Err(ModelError::EmptyPrompt);
    }
    if n > c.context_length {
        return Err(ModelError::PromptTooLong { tokens: n, context: c.context_length });
    }
    let mut out = ForwardOutput::default();

    let (first_block, mut x) = match resume {
        Some(ResumeAt { block, residual }) => {
            if block > c.n_layers || residual.len() != n * c.d_model {
                return Err(ModelError::Resume {
                    block,
                    message: format!(
                        "{} values given, {n} tokens × {} expected, and the model has {} blocks",
                        residual.len(),
                        c.d_model,
                        c.n_layers
                    ),
                });
            }
            (block, residual.to_vec())
        }
        None => (0, embed(model, tokens)?),
    };
    if options.hidden_states {
        out.hidden_states.push(x.clone());
    }

    let global_rope = RopeTable::new(c, c.rope_frequencies(), n);
    let local_rope = c.local_rope_frequencies().map(|frequencies| RopeTable::new(c, frequencies, n));
    for layer in first_block..c.n_layers {
        let rope = match &local_rope {
            Some(local) if c.is_local_layer(layer) => local,
            _ => &global_rope,
        };
        let b = model.block(layer)?;

        let mut xn = norm(w, c, &x, b.attn_norm)?;
        hook.before_linear(layer, LinearInput::AttnQkv, &mut xn, c.d_model);
        let mut q = linear(w, &xn, b.q, b.q_bias)?;
        let mut k = linear(w, &xn, b.k, b.k_bias)?;
        let mut v = linear(w, &xn, b.v, b.v_bias)?;
        // Each head's row of head_dim values is one RMSNorm row: the gain has head_dim entries.
        if let (Some(q_norm), Some(k_norm)) = (b.q_norm, b.k_norm) {
            q = rms_norm(w, &q, q_norm, c.rms_eps)?;
            k = rms_norm(w, &k, k_norm, c.rms_eps)?;
        }
        if c.positions == Positions::Rope {
            rope.apply(&mut q, c.n_heads);
            rope.apply(&mut k, c.n_kv_heads);
        }
        hook.after_rope(layer, &mut q, &mut k, &mut v);
        let (mut attended, probs) = causal_attention(c, layer, n, &q, &k, &v, options.attention_probs, &*hook);
        hook.before_linear(layer, LinearInput::AttnOutput, &mut attended, c.q_dim());
        add_in_place(&mut x, &post_norm(w, linear(w, &attended, b.o, b.o_bias)?, b.post_attention_norm, c.rms_eps)?);
        if options.attention_probs {
            out.attention_probs.push(probs);
        }

        let mut xn = norm(w, c, &x, b.ffn_norm)?;
        hook.before_linear(layer, LinearInput::MlpGateUp, &mut xn, c.d_model);
        let up = linear(w, &xn, b.up, b.up_bias)?;
        let activation = match c.ffn_activation {
            GateActivation::Silu => silu,
            GateActivation::GeluTanh => gelu_tanh,
        };
        let mut hidden: Vec<f32> = match b.gate {
            Some(gate) => linear(w, &xn, gate, None)?.iter().zip(&up).map(|(&g, &u)| activation(g) * u).collect(),
            None => up.iter().map(|&u| activation(u)).collect(),
        };
        hook.before_linear(layer, LinearInput::MlpDown, &mut hidden, c.d_ff);
        let down = linear(w, &hidden, b.down, b.down_bias)?;
        add_in_place(&mut x, &post_norm(w, down, b.post_ffw_norm, c.rms_eps)?);
        hook.after_block(layer, &mut x);

        if options.hidden_states {
            out.hidden_states.push(x.clone());
        }
    }

    let final_rows = if options.all_logits { &x[..] } else { &x[(n - 1) * c.d_model..] };
    let output_norm = Norm { gain: model.tensor("output_norm.weight")?, bias: w.get("output_norm.bias") };
    let xn = norm(w, c, final_rows, output_norm)?;
    out.logits = linear(w, &xn, model.output_tensor()?, None)?;
    if let Some(cap) = c.final_logit_softcap {
        out.logits.iter_mut().for_each(|z| *z = soft_cap(*z, cap));
    }
    Ok(out)
}

/// The embeddings of `tokens`, `[tokens × d_model]`.
fn embed(model: &Model, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
    let d = model.config.d_model;
    let embeddings = model.tensor("token_embd.weight")?;
    let mut x = vec![0.0f32; tokens.len() * d];
    for (t, &id) in tokens.iter().enumerate() {
        if id as usize >= embeddings.n_rows() {
            return Err(ModelError::TokenOutOfRange { id, vocab: embeddings.n_rows() });
        }
        model.weights.dequantize_row(embeddings, id as usize, &mut x[t * d..(t + 1) * d])?;
    }
    let scale = model.config.embedding_scale();
    if scale != 1.0 {
        x.iter_mut().for_each(|v| *v *= scale);
    }
    if model.config.positions == Positions::Learned {
        // Position t's row (the forward starts at position 0; the length is checked already).
        let positions = model.tensor("position_embd.weight")?;
        let mut row = vec![0.0f32; d];
        for (t, x_t) in x.chunks_exact_mut(d).enumerate() {
            model.weights.dequantize_row(positions, t, &mut row)?;
            add_in_place(x_t, &row);
        }
    }
    Ok(x)
}

impl Model {
    fn block(&self, layer: usize) -> Result<Block<'_>, ModelError> {
        let t = |suffix: &str| self.tensor(&format!("blk.{layer}.{suffix}"));
        let optional = |suffix: &str| self.weights.get(&format!("blk.{layer}.{suffix}"));
        let norm = |name: &str| -> Result<Norm<'_>, ModelError> {
            Ok(Norm { gain: t(&format!("{name}.weight"))?, bias: optional(&format!("{name}.bias")) })
        };
        Ok(Block {
            attn_norm: norm("attn_norm")?,
            q: t("attn_q.weight")?,
            k: t("attn_k.weight")?,
            v: t("attn_v.weight")?,
            q_bias: optional("attn_q.bias"),
            k_bias: optional("attn_k.bias"),
            v_bias: optional("attn_v.bias"),
            q_norm: optional("attn_q_norm.weight"),
            k_norm: optional("attn_k_norm.weight"),
            o: t("attn_output.weight")?,
            o_bias: optional("attn_output.bias"),
            up_bias: optional("ffn_up.bias"),
            down_bias: optional("ffn_down.bias"),
            post_attention_norm: optional("post_attention_norm.weight"),
            post_ffw_norm: optional("post_ffw_norm.weight"),
            ffn_norm: norm("ffn_norm")?,
            gate: match self.config.mlp {
                MlpKind::Gated => Some(t("ffn_gate.weight")?),
                MlpKind::Plain => None,
            },
            up: t("ffn_up.weight")?,
            down: t("ffn_down.weight")?,
        })
    }
}

/// `y[t] = W · x[t] (+ bias)` for every token row of `x`. ggml stores W as `n_out` rows of
/// `n_in` values, so each stored row is one output feature: dequantize it once, use it for every token.
/// Natively the output features are split across the machine's cores (each output is still one
/// plain dot product, so the numbers do not depend on the number of threads).
fn linear(w: &Weights, x: &[f32], weight: &WeightTensor, bias: Option<&WeightTensor>) -> Result<Vec<f32>, FormatError> {
    let (n_in, n_out) = (weight.row_len(), weight.n_rows());
    let n_tokens = x.len() / n_in;
    let threads = worker_count(n_out * n_in * n_tokens);
    let per_thread = n_out.div_ceil(threads);
    // Each part is `[tokens × its outputs]`; scattered into `y` afterwards.
    let compute = |first: usize, last: usize| -> Result<Vec<f32>, FormatError> {
        let width = last - first;
        let mut part = vec![0.0f32; n_tokens * width];
        let mut row = vec![0.0f32; n_in];
        for o in first..last {
            w.dequantize_row(weight, o, &mut row)?;
            // Four tokens per pass over the row: one load of the row feeds four independent
            // accumulations (one alone waits on its adds), and each is still exactly `dot`.
            let mut t = 0;
            while t + 4 <= n_tokens {
                let tokens: [&[f32]; 4] = std::array::from_fn(|i| &x[(t + i) * n_in..(t + i + 1) * n_in]);
                for (i, value) in dot4(tokens, &row).into_iter().enumerate() {
                    part[(t + i) * width + o - first] = value;
                }
                t += 4;
            }
            for t in t..n_tokens {
                part[t * width + o - first] = dot(&x[t * n_in..(t + 1) * n_in], &row);
            }
        }
        Ok(part)
    };
    let ranges: Vec<(usize, usize)> =
        (0..threads).map(|i| (i * per_thread, ((i + 1) * per_thread).min(n_out))).filter(|(a, b)| a < b).collect();
    let parts = run_parts(&ranges, &compute)?;
    let mut y = vec![0.0f32; n_tokens * n_out];
    for ((first, last), part) in ranges.iter().zip(parts) {
        let width = last - first;
        for t in 0..n_tokens {
            y[t * n_out + first..t * n_out + last].copy_from_slice(&part[t * width..(t + 1) * width]);
        }
    }
    if let Some(bias) = bias {
        let bias = w.dequantize(bias)?;
        for y_t in y.chunks_exact_mut(n_out) {
            add_in_place(y_t, &bias);
        }
    }
    Ok(y)
}

/// Threads worth starting for `work` multiply-adds: one below ~1M (thread start-up would dominate).
fn worker_count(work: usize) -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        if work >= 1 << 20 {
            return std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
        }
    }
    let _ = work;
    1
}

type Part = Result<Vec<f32>, FormatError>;

fn run_parts(
    ranges: &[(usize, usize)],
    compute: &(dyn Fn(usize, usize) -> Part + Sync),
) -> Result<Vec<Vec<f32>>, FormatError> {
    #[cfg(not(target_arch = "wasm32"))]
    if ranges.len() > 1 {
        return std::thread::scope(|scope| {
            let handles: Vec<_> = ranges.iter().map(|&(a, b)| scope.spawn(move || compute(a, b))).collect();
            handles.into_iter().map(|h| h.join().expect("a linear-layer worker panicked")).collect()
        });
    }
    ranges.iter().map(|&(a, b)| compute(a, b)).collect()
}

/// f32 dot product with eight partial sums: the compiler can vectorize it, and the error stays
/// at the level of any f32 GPU reduction.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut partial = [0.0f32; 8];
    let (a_blocks, b_blocks) = (a.chunks_exact(8), b.chunks_exact(8));
    for (ab, bb) in a_blocks.zip(b_blocks) {
        for i in 0..8 {
            partial[i] += ab[i] * bb[i];
        }
    }
    finish_dot(&partial, a, b)
}

/// `dot(a[i], b)` for four `a`s of `b`'s length, each summed in exactly `dot`'s order.
fn dot4(a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
    let [mut p0, mut p1, mut p2, mut p3] = [[0.0f32; 8]; 4];
    let groups = b
        .chunks_exact(8)
        .zip(a[0].chunks_exact(8))
        .zip(a[1].chunks_exact(8))
        .zip(a[2].chunks_exact(8))
        .zip(a[3].chunks_exact(8));
    for ((((bb, a0), a1), a2), a3) in groups {
        for i in 0..8 {
            p0[i] += a0[i] * bb[i];
            p1[i] += a1[i] * bb[i];
            p2[i] += a2[i] * bb[i];
            p3[i] += a3[i] * bb[i];
        }
    }
    let partial = [p0, p1, p2, p3];
    std::array::from_fn(|j| finish_dot(&partial[j], a[j], b))
}

/// The eight partial sums added in order, then the elements past the last whole group of eight.
fn finish_dot(partial: &[f32; 8], a: &[f32], b: &[f32]) -> f32 {
    let whole = a.len().min(b.len()) / 8 * 8;
    let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
    partial.iter().sum::<f32>() + tail
}

fn rms_norm(w: &Weights, x: &[f32], gain: &WeightTensor, eps: f32) -> Result<Vec<f32>, FormatError> {
    let gain = w.dequantize(gain)?;
    let d = gain.len();
    let mut y = vec![0.0f32; x.len()];
    for (x_t, y_t) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let mean_square = dot(x_t, x_t) / d as f32;
        let scale = 1.0 / (mean_square + eps).sqrt();
        for i in 0..d {
            y_t[i] = x_t[i] * scale * gain[i];
        }
    }
    Ok(y)
}

/// The block's norm of `x`: RMSNorm, or LayerNorm (mean-centred, plus its bias) where the config
/// says so.
fn norm(w: &Weights, c: &LlamaConfig, x: &[f32], norm: Norm<'_>) -> Result<Vec<f32>, FormatError> {
    match c.norm {
        NormKind::Rms => rms_norm(w, x, norm.gain, c.rms_eps),
        NormKind::Layer => layer_norm(w, x, norm, c.rms_eps),
    }
}

/// `(x − mean) / √(var + ε) · γ + β` per row, the variance the biased one (PyTorch's LayerNorm).
/// Mean and variance are taken in f64: a row far from zero-mean keeps its digits.
fn layer_norm(w: &Weights, x: &[f32], norm: Norm<'_>, eps: f32) -> Result<Vec<f32>, FormatError> {
    let gain = w.dequantize(norm.gain)?;
    let d = gain.len();
    let bias = match norm.bias {
        Some(b) => w.dequantize(b)?,
        None => vec![0.0; d],
    };
    Ok(layer_norm_rows(x, &gain, &bias, eps))
}

/// LayerNorm of each `gain.len()`-wide row of `x` (the formula [`layer_norm`] applies; the GPU
/// kernel's test compares with it).
pub fn layer_norm_rows(x: &[f32], gain: &[f32], bias: &[f32], eps: f32) -> Vec<f32> {
    let d = gain.len();
    let mut y = vec![0.0f32; x.len()];
    for (x_t, y_t) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let mean = x_t.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let variance = x_t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let scale = 1.0 / (variance + eps as f64).sqrt();
        for i in 0..d {
            y_t[i] = ((x_t[i] as f64 - mean) * scale) as f32 * gain[i] + bias[i];
        }
    }
    y
}

/// `y` normalized by `gain` where the block has that norm (Gemma's post norms), else as it is.
fn post_norm(w: &Weights, y: Vec<f32>, gain: Option<&WeightTensor>, eps: f32) -> Result<Vec<f32>, FormatError> {
    match gain {
        Some(gain) => rms_norm(w, &y, gain, eps),
        None => Ok(y),
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU's tanh approximation (PyTorch's `gelu(approximate="tanh")`), in f64 inside.
fn gelu_tanh(x: f32) -> f32 {
    let x = x as f64;
    let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    (0.5 * x * (1.0 + inner.tanh())) as f32
}

fn add_in_place(acc: &mut [f32], delta: &[f32]) {
    for (a, d) in acc.iter_mut().zip(delta) {
        *a += d;
    }
}

/// cos/sin of `position × base^(-2i/head_dim)` for every position and pair, computed in f64 and
/// rounded once, so the table itself adds no error worth speaking of.
struct RopeTable {
    head_dim: usize,
    layout: RopeLayout,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    fn new(c: &LlamaConfig, frequencies: Vec<f64>, n_tokens: usize) -> Self {
        let half = c.head_dim / 2;
        let (mut cos, mut sin) = (Vec::with_capacity(n_tokens * half), Vec::with_capacity(n_tokens * half));
        for p in 0..n_tokens {
            for &frequency in &frequencies {
                let angle = p as f64 * frequency;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable { head_dim: c.head_dim, layout: c.rope_layout, cos, sin }
    }

    /// Rotates every head of every token of `x` (`[tokens × n_heads·head_dim]`) in place.
    fn apply(&self, x: &mut [f32], n_heads: usize) {
        let (hd, half) = (self.head_dim, self.head_dim / 2);
        for (p, x_t) in x.chunks_exact_mut(n_heads * hd).enumerate() {
            for head in x_t.chunks_exact_mut(hd) {
                for i in 0..half {
                    let (a, b) = match self.layout {
                        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                        RopeLayout::HalfSplit => (i, i + half),
                    };
                    let (cos, sin) = (self.cos[p * half + i], self.sin[p * half + i]);
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * cos - x1 * sin;
                    head[b] = x0 * sin + x1 * cos;
                }
            }
        }
    }
}

/// softmax(q·kᵀ/√d, causal) · v per head (the scale [`LlamaConfig::attention_scale`], the scores
/// soft-capped first where the config says so). Query head h reads key/value head
/// h / (n_heads / n_kv_heads) (grouped-query attention). Returns the attended values
/// `[tokens × n_heads·head_dim]` and, if asked, the probabilities `[n_heads × tokens × tokens]`.
/// Keys the hook masks score −∞, so they get exactly 0 and add exactly nothing to the sums: with
/// nothing masked the numbers are those of the plain formula, bit for bit.
#[allow(clippy::too_many_arguments)]
fn causal_attention(
    c: &LlamaConfig,
    layer: usize,
    n: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keep_probs: bool,
    hook: &dyn ForwardHook,
) -> (Vec<f32>, Vec<f32>) {
    let hd = c.head_dim;
    let group = c.n_heads / c.n_kv_heads;
    let (q_dim, kv_dim) = (c.q_dim(), c.kv_dim());
    let scale = c.attention_scale();
    let cap = |s: f32| c.attn_logit_softcap.map_or(s, |cap| soft_cap(s, cap));
    let mut attended = vec![0.0f32; n * q_dim];
    let mut probs = if keep_probs { vec![0.0f32; c.n_heads * n * n] } else { Vec::new() };
    let mut p = vec![0.0f32; n];
    for h in 0..c.n_heads {
        let kv_h = h / group;
        for i in 0..n {
            let q_i = &q[i * q_dim + h * hd..][..hd];
            for j in 0..=i {
                p[j] = if hook.masks_key(i, j) {
                    f32::NEG_INFINITY
                } else {
                    cap(dot(q_i, &k[j * kv_dim + kv_h * hd..][..hd]) * scale)
                };
            }
            let max = p[..=i].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for pj in &mut p[..=i] {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            for pj in &mut p[..=i] {
                *pj /= sum;
            }
            hook.after_softmax(layer, &mut p[..=i]);
            let out = &mut attended[i * q_dim + h * hd..][..hd];
            for j in 0..=i {
                let v_j = &v[j * kv_dim + kv_h * hd..][..hd];
                for d in 0..hd {
                    out[d] += p[j] * v_j[d];
                }
            }
            if keep_probs {
                probs[(h * n + i) * n..][..=i].copy_from_slice(&p[..=i]);
            }
        }
    }
    (attended, probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_dot_products_at_once_are_each_bit_for_bit_the_single_one() {
        // Lengths around the groups of eight, values spanning magnitudes so that the order of
        // the additions shows in the low bits.
        let mut state = 0x9e37_79b9u32;
        let mut value = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32 - 0.5) * 10f32.powi((state % 7) as i32 - 3)
        };
        for len in [0, 1, 7, 8, 9, 13, 64, 577, 1003] {
            let b: Vec<f32> = (0..len).map(|_| value()).collect();
            let a: Vec<Vec<f32>> = (0..4).map(|_| (0..len).map(|_| value()).collect()).collect();
            let four = dot4(std::array::from_fn(|i| a[i].as_slice()), &b);
            for (i, got) in four.into_iter().enumerate() {
                assert_eq!(got.to_bits(), dot(&a[i], &b).to_bits(), "length {len}, token {i}");
            }
        }
    }

    /// Masks key 0 for every later query, as `drop-sink` does.
    struct DropKeyZero;

    impl ForwardHook for DropKeyZero {
        fn masks_key(&self, query: usize, key: usize) -> bool {
            key == 0 && query >= 1
        }
    }

    fn tiny_config() -> LlamaConfig {
        LlamaConfig {
            architecture: "llama".into(),
            n_layers: 1,
            d_model: 8,
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 4,
            d_ff: 16,
            vocab_size: 4,
            context_length: 16,
            rope_base: 10000.0,
            rms_eps: 1e-5,
            rope_layout: RopeLayout::Interleaved,
            tied_embeddings: true,
            qkv_bias: false,
            qk_norm: false,
            sliding_window: None,
            rope_freq_factors: None,
            ffn_activation: Default::default(),
            scale_embeddings: false,
            post_norms: false,
            local_layers: None,
            query_pre_attn_scalar: None,
            attn_logit_softcap: None,
            final_logit_softcap: None,
            norm: NormKind::Rms,
            positions: Positions::Rope,
            mlp: Default::default(),
            linear_bias: false,
        }
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32).map(|i| ((i * 7919 + seed * 104729) % 1000) as f32 / 250.0 - 2.0).collect()
    }

    #[test]
    fn a_masked_key_gets_exactly_zero_and_rows_still_sum_to_one() {
        let c = tiny_config();
        let n = 6;
        let (q, k, v) = (values(n * c.q_dim(), 1), values(n * c.kv_dim(), 2), values(n * c.kv_dim(), 3));
        let (_, plain) = causal_attention(&c, 0, n, &q, &k, &v, true, &NoHook);
        let (_, dropped) = causal_attention(&c, 0, n, &q, &k, &v, true, &DropKeyZero);
        for h in 0..c.n_heads {
            for i in 0..n {
                let row = &dropped[(h * n + i) * n..][..n];
                if i == 0 {
                    assert_eq!(row[0], 1.0, "query 0 still attends to itself");
                } else {
                    assert_eq!(row[0], 0.0, "head {h} query {i} still sees key 0");
                    assert!(plain[(h * n + i) * n] > 0.0);
                }
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-6, "head {h} query {i} sums to {sum}");
            }
        }
    }
}
