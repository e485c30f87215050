//! The model on the GPU: weights uploaded once in their stored formats, a KV cache per
//! session, and a forward step (prefill of many tokens or decode of one) recorded into one
//! command encoder with no readback until the logits.
//!
//! Capture points ([`Capture`]) copy named intermediate tensors into capture buffers inside
//! the same encoder; with none requested, no copy is recorded, so they cost nothing.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{GpuError, ModelError};
use crate::gpu::kernels::attention::{attention_quantized, AttentionIo, AttentionShape, Scores};
use crate::gpu::kernels::attention_split::{attention_split, split_plan};
use crate::gpu::kernels::attention_summary::{attention_summary, summary_words};
use crate::gpu::kernels::elementwise::{add_in_place, mul_rows_in_place, soft_cap_in_place};
use crate::gpu::kernels::embedding::embedding;
use crate::gpu::kernels::intervene::{intervene_after_block, GpuIntervention};
use crate::gpu::kernels::matmul::{
    matmul_stacked_variant, matmul_variant, MatmulOptions, MatmulOutput, MatmulVariant, StackedOptions, StackedOutput,
};
use crate::gpu::kernels::norm::{layer_norm_rows, rms_norm, rms_norm_rows};
use crate::gpu::kernels::probe::{probe, probe_words, ProbeSummary};
use crate::gpu::kernels::rope::{rope_and_append, rope_with_table, NewKeysValues, RopeTable};
use crate::gpu::kernels::runtime_quant::{fake_quantize_kv, GpuRuntimeQuant};
use crate::gpu::kernels::topk::{top_k_into, TopKScratch, MAX_K};
use crate::gpu::requant::quantize_on_gpu;
use crate::gpu::weights::GpuWeight;
use crate::gpu::{GpuContext, Recorder, Reuse};
use crate::model::config::{MlpKind, NormKind, Positions};
use crate::model::reference::LinearInput;
use crate::model::{LlamaConfig, Model, Progress, WeightTensor};
use crate::quant::apply::QuantizedModel;
use crate::quant::{Codebook, Scheme};

struct GpuBlock {
    attn_norm: GpuNorm,
    q: GpuWeight,
    k: GpuWeight,
    v: GpuWeight,
    qkv_bias: Option<QkvBias>,
    /// Qwen3's per-head RMSNorm gains of the queries and the keys (`head_dim` each).
    qk_norm: Option<[wgpu::Buffer; 2]>,
    o: GpuWeight,
    /// GPT-2's biases of the output projection, up and down.
    o_bias: Option<wgpu::Buffer>,
    up_bias: Option<wgpu::Buffer>,
    down_bias: Option<wgpu::Buffer>,
    /// Gemma's RMSNorm gains of the attention's and the MLP's outputs.
    post_norms: Option<[wgpu::Buffer; 2]>,
    ffn_norm: GpuNorm,
    /// None in a plain (non-gated) MLP.
    gate: Option<GpuWeight>,
    up: GpuWeight,
    down: GpuWeight,
}

/// A norm's gain, and its bias where it is a LayerNorm (GPT-2).
struct GpuNorm {
    gain: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
}

/// Qwen2's q/k/v biases: one buffer each for the projections one at a time, and the three
/// concatenated for the stacked q|k|v projection of a decode step.
struct QkvBias {
    each: [wgpu::Buffer; 3],
    stacked: wgpu::Buffer,
}

pub struct GpuModel {
    pub config: LlamaConfig,
    embeddings: GpuWeight,
    /// `None` when the unembedding is tied to the embeddings.
    output: Option<GpuWeight>,
    output_norm: GpuNorm,
    /// GPT-2's learned position embeddings, one row per position.
    positions: Option<GpuWeight>,
    /// Gemma's √width, one f32, by which the embeddings are multiplied.
    embedding_scale: Option<wgpu::Buffer>,
    /// Gemma 2's soft cap of the logits, one f32.
    final_logit_softcap: Option<wgpu::Buffer>,
    blocks: Vec<GpuBlock>,
    /// The weights as loaded of every matrix that has been replaced by a re-quantized version.
    masters: HashMap<String, GpuWeight>,
    /// How the matrix products compute; `None`: [`MatmulVariant::best`] for the adapter.
    matmul_variant: Option<MatmulVariant>,
    /// Decode steps project q, k and v in one dispatch (see [`GpuModel::set_stacked_qkv`]).
    stacked_qkv: bool,
}

/// The KV cache of one sequence: per layer, `capacity` rows of `n_kv_heads · head_dim` keys
/// and values. `len` rows are filled. It also holds what the steps over it reuse.
pub struct KvCache {
    keys: Vec<wgpu::Buffer>,
    values: Vec<wgpu::Buffer>,
    pub capacity: u32,
    pub len: u32,
    workspace: Workspace,
}

/// What one step after another over the same cache reuses instead of creating: the scratch
/// activations (grown to the largest step so far), the RoPE table of the cache's positions,
/// the kernels' parameter slots and bind groups ([`Reuse`]), and the staging buffer of the
/// logits. After the first decode step, a plain decode step creates no buffer and no bind
/// group.
struct Workspace {
    scratch: HashMap<&'static str, wgpu::Buffer>,
    rope: RopeTable,
    /// Gemma 3's local layers' RoPE (a base of their own).
    local_rope: Option<RopeTable>,
    reuse: Option<Box<Reuse>>,
    readback: Option<wgpu::Buffer>,
    top_k: Option<TopKScratch>,
}

impl Workspace {
    /// Scratch buffer `name` of at least `bytes`.
    fn scratch(&mut self, ctx: &GpuContext, name: &'static str, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        if let Some(b) = self.scratch.get(name).filter(|b| b.size() >= bytes) {
            return Ok(b.clone());
        }
        let b = ctx.storage(name, bytes)?;
        self.scratch.insert(name, b.clone());
        Ok(b)
    }

    /// The top-k scratch for `n` logits and `k`.
    fn top_k(&mut self, ctx: &GpuContext, n: u32, k: u32) -> Result<TopKScratch, GpuError> {
        if let Some(s) = self.top_k.as_ref().filter(|s| s.fits(n, k)) {
            return Ok(s.clone());
        }
        let s = TopKScratch::new(ctx, n, k)?;
        self.top_k = Some(s.clone());
        Ok(s)
    }

    /// The logits' staging buffer, of at least `bytes`.
    fn readback(&mut self, ctx: &GpuContext, bytes: u64) -> wgpu::Buffer {
        match &self.readback {
            Some(b) if b.size() >= bytes => b.clone(),
            _ => {
                let b = ctx.readback_buffer(bytes);
                self.readback = Some(b.clone());
                b
            }
        }
    }
}

/// What one recorded step did, for the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepStats {
    pub compute_passes: u32,
    /// Dispatches of this step alone.
    pub dispatches: u32,
    /// Host time from the start of recording to the submit (native only; 0 in wasm, which
    /// has no monotonic clock in std).
    pub record_microseconds: f64,
}

/// Intermediate tensors a caller wants from a step, beyond the logits.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// The residual stream after the embeddings and after each block: `n_layers + 1` tensors
    /// of `[tokens × d_model]`.
    pub hidden_states: bool,
    /// Attention probabilities `[n_heads × tokens × (past + tokens)]` of these layers.
    pub attention_layers: Vec<usize>,
    /// Logits of every token of the step (`[tokens × vocab]`, for perplexity and KL over a text)
    /// instead of only the last one.
    pub all_logits: bool,
    /// Run the matrices as loaded (their master copies) instead of their re-quantized versions:
    /// the reference of a side-by-side comparison, without a second copy of the model.
    pub weights_as_loaded: bool,
    /// Outlier summaries ([`ProbeSummary`]) of every [`ProbePoint`] of every block, reduced on the
    /// GPU; off, the step records no extra work at all.
    pub probes: bool,
    /// The whole tensor at one probe point of one layer (`[tokens × width]`), for a view that
    /// draws it (a heatmap), without reading back any other.
    pub tensor: Option<(usize, ProbePoint)>,
    /// An intervention (zero-massive, mean-massive, drop-sink, clip) applied in this step, as the
    /// CPU reference's `model::intervene` does.
    pub intervention: Option<Arc<GpuIntervention>>,
    /// Runtime quantization (linear inputs, new keys and values, attention probabilities), as the
    /// CPU reference's `quant::runtime` hook does, with the weights as loaded or re-quantized
    /// alike (a pinned reference configuration runs its quantizers on the masters); None (or
    /// every part off) records no extra work.
    pub runtime: Option<Arc<GpuRuntimeQuant>>,
    /// Only the k (≤ 64) largest logits of the last token, found on the GPU
    /// ([`StepOutput::top`]), instead of the vocabulary's logits: a greedy decode reads back a
    /// token id, not a 49k-float row. Not with `all_logits`.
    pub top_k: Option<u32>,
}

/// Where in a block a probe summarizes the activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbePoint {
    /// The token embeddings (reported as layer 0, before block 0 runs).
    Embeddings,
    /// The normed residual stream: the input of the q, k and v projections.
    AttnInput,
    /// The attended values: the input of the output projection.
    OInput,
    /// The residual stream after the attention sub-block.
    ResidualMid,
    /// The normed residual stream: the input of the gate and up projections.
    MlpInput,
    /// SiLU(gate) · up: the input of the down projection.
    DownInput,
    /// The residual stream after the block.
    Residual,
    /// The new tokens' keys (after RoPE) and values.
    Keys,
    Values,
}

impl ProbePoint {
    /// Every point, as a menu lists them: the residual stream first, the embeddings last.
    pub const MENU: [ProbePoint; 9] = [
        ProbePoint::Residual,
        ProbePoint::ResidualMid,
        ProbePoint::AttnInput,
        ProbePoint::OInput,
        ProbePoint::MlpInput,
        ProbePoint::DownInput,
        ProbePoint::Keys,
        ProbePoint::Values,
        ProbePoint::Embeddings,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub layer: usize,
    pub point: ProbePoint,
    pub summary: ProbeSummary,
}

/// The probes of one step: one buffer, filled point by point as the forward produces them; and
/// the one whole tensor a caller may ask for.
struct Probes {
    buffer: Option<wgpu::Buffer>,
    next: u64,
    taken: Vec<(usize, ProbePoint, u32, u64)>,
    wanted: Option<(usize, ProbePoint)>,
    tensor: Option<(wgpu::Buffer, u32)>,
}

impl Probes {
    fn new(ctx: &GpuContext, c: &LlamaConfig, n: u32, capture: &Capture) -> Result<Probes, GpuError> {
        let on = capture.probes;
        let (d, q, kv, ff) = (c.d_model as u32, c.q_dim() as u32, c.kv_dim() as u32, c.d_ff as u32);
        let per_block: u64 = [d, q, d, d, ff, d, kv, kv].iter().map(|&w| probe_words(n, w)).sum();
        let words = probe_words(n, d) + per_block * c.n_layers as u64;
        let buffer = if on { Some(ctx.storage("probes", words * 4)?) } else { None };
        if let Some((layer, point)) = capture.tensor {
            if layer >= c.n_layers || (point == ProbePoint::Embeddings && layer != 0) {
                let message = format!("no {point:?} tensor of layer {layer} to capture");
                return Err(GpuError::Shape { kernel: "forward", message });
            }
        }
        Ok(Probes { buffer, next: 0, taken: Vec::new(), wanted: capture.tensor, tensor: None })
    }

    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        ctx: &GpuContext,
        enc: &mut Recorder,
        x: &wgpu::Buffer,
        n: u32,
        channels: u32,
        layer: usize,
        point: ProbePoint,
    ) -> Result<(), GpuError> {
        if self.wanted == Some((layer, point)) {
            let bytes = n as u64 * channels as u64 * 4;
            let copy = ctx.storage("captured tensor", bytes)?;
            enc.copy_buffer_to_buffer(x, 0, &copy, 0, bytes);
            self.tensor = Some((copy, channels));
        }
        let Some(buffer) = &self.buffer else { return Ok(()) };
        probe(ctx, enc, x, n, channels, buffer, self.next)?;
        self.taken.push((layer, point, channels, self.next));
        self.next += probe_words(n, channels);
        Ok(())
    }

    async fn read_tensor(&self, ctx: &GpuContext, n: u32) -> Result<Option<(Vec<f32>, usize)>, GpuError> {
        let Some((buffer, width)) = &self.tensor else { return Ok(None) };
        Ok(Some((ctx.read_f32(buffer, n as usize * *width as usize, "captured tensor").await?, *width as usize)))
    }

    async fn read(self, ctx: &GpuContext, n: u32) -> Result<Vec<ProbeResult>, GpuError> {
        let Some(buffer) = &self.buffer else { return Ok(Vec::new()) };
        let words = ctx.read_u32(buffer, self.next as usize, "probes").await?;
        Ok(self
            .taken
            .iter()
            .map(|&(layer, point, channels, at)| ProbeResult {
                layer,
                point,
                summary: ProbeSummary::decode(&words[at as usize..], n as usize, channels as usize),
            })
            .collect())
    }
}

#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    /// Logits of the last token of the step, or of every token (`[tokens × vocab]`) with
    /// `Capture::all_logits`.
    /// Empty with `Capture::top_k`.
    pub logits: Vec<f32>,
    /// With `Capture::top_k`: (token id, logit) of the k largest logits, descending, ties by
    /// lower id.
    pub top: Vec<(u32, f32)>,
    pub hidden_states: Vec<Vec<f32>>,
    /// (layer, probabilities) for each requested layer.
    pub attention_probs: Vec<(usize, Vec<f32>)>,
    /// With `Capture::probes`: the embeddings, then every block's points in forward order.
    pub probes: Vec<ProbeResult>,
    /// With `Capture::probes`: every layer's sink scores and key attention.
    pub attention: Vec<AttentionSummary>,
    /// With `Capture::tensor`: that tensor, `[tokens × width]` row-major, and its width.
    pub tensor: Option<(Vec<f32>, usize)>,
    /// How the step was recorded.
    pub stats: StepStats,
}

/// One layer's attention outliers, reduced on the GPU (see `shaders/attention_summary.wgsl`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionSummary {
    pub layer: usize,
    /// Per head: mean attention of the queries at positions ≥ 1 to key 0.
    pub sink_scores: Vec<f32>,
    /// Per key (every position so far): Σ over this step's queries of the head-averaged attention.
    pub key_attention: Vec<f32>,
}

impl GpuModel {
    /// Uploads every weight of `model`; `progress` counts tensors.
    pub fn upload(ctx: &GpuContext, model: &Model, progress: &mut dyn FnMut(Progress)) -> Result<GpuModel, ModelError> {
        GpuModel::upload_with_codebooks(ctx, model, &HashMap::new(), progress)
    }

    /// Uploads a quantized model: its codebook-quantized matrices as codebooks (decoded in the
    /// kernels), every other tensor in its stored format.
    pub fn upload_quantized(
        ctx: &GpuContext,
        quantized: &QuantizedModel,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<GpuModel, ModelError> {
        GpuModel::upload_with_codebooks(ctx, &quantized.model, &quantized.codebooks, progress)
    }

    /// Like [`GpuModel::upload`], but a matrix named in `codebooks` is uploaded from there.
    pub fn upload_with_codebooks(
        ctx: &GpuContext,
        model: &Model,
        codebooks: &HashMap<String, Codebook>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<GpuModel, ModelError> {
        let c = &model.config;
        let total = model.weights.tensors().len() as u64;
        let mut done = 0u64;
        let mut tick = |progress: &mut dyn FnMut(Progress)| {
            done += 1;
            progress(Progress { stage: "upload", done, total });
        };
        let mut matrix = |name: &str, progress: &mut dyn FnMut(Progress)| -> Result<GpuWeight, ModelError> {
            let w = match codebooks.get(name) {
                Some(cb) => GpuWeight::upload_codebook(ctx, name, cb)?,
                None => {
                    let t = model.tensor(name)?;
                    let w = GpuWeight::upload(ctx, &model.weights, t)?;
                    model.weights.release(t);
                    w
                }
            };
            tick(progress);
            Ok(w)
        };
        let vector = |t: &WeightTensor| -> Result<wgpu::Buffer, ModelError> {
            Ok(ctx.upload_f32(&t.name, &model.weights.dequantize(t)?)?)
        };
        let optional_vector = |name: &str| -> Result<Option<wgpu::Buffer>, ModelError> {
            model.weights.get(name).map(vector).transpose()
        };
        // LayerNorm's bias is part of the norm; a RMSNorm has none to read.
        let norm = |name: &str| -> Result<GpuNorm, ModelError> {
            let bias = match c.norm {
                NormKind::Layer => Some(vector(model.tensor(&format!("{name}.bias"))?)?),
                NormKind::Rms => None,
            };
            Ok(GpuNorm { gain: vector(model.tensor(&format!("{name}.weight"))?)?, bias })
        };
        let embeddings = matrix("token_embd.weight", progress)?;
        let output = if c.tied_embeddings { None } else { Some(matrix("output.weight", progress)?) };
        let output_norm = norm("output_norm")?;
        let positions = match c.positions {
            Positions::Learned => Some(matrix("position_embd.weight", progress)?),
            Positions::Rope => None,
        };
        let mut blocks = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            let name = |s: &str| format!("blk.{l}.{s}");
            let qkv_bias = if c.qkv_bias {
                let [q, k, v] = ["attn_q.bias", "attn_k.bias", "attn_v.bias"].map(|s| name(s));
                let (q, k, v) = (model.tensor(&q)?, model.tensor(&k)?, model.tensor(&v)?);
                let mut stacked = model.weights.dequantize(q)?;
                stacked.extend(model.weights.dequantize(k)?);
                stacked.extend(model.weights.dequantize(v)?);
                let stacked = ctx.upload_f32(&name("attn_qkv.bias"), &stacked)?;
                Some(QkvBias { each: [vector(q)?, vector(k)?, vector(v)?], stacked })
            } else {
                None
            };
            let qk_norm = if c.qk_norm {
                let [q, k] = ["attn_q_norm.weight", "attn_k_norm.weight"].map(|s| name(s));
                Some([vector(model.tensor(&q)?)?, vector(model.tensor(&k)?)?])
            } else {
                None
            };
            let post_norms = if c.post_norms {
                let [attention, mlp] = ["post_attention_norm.weight", "post_ffw_norm.weight"].map(|s| name(s));
                Some([vector(model.tensor(&attention)?)?, vector(model.tensor(&mlp)?)?])
            } else {
                None
            };
            let linear_bias = |s: &str| match c.linear_bias {
                true => optional_vector(&name(s)),
                false => Ok(None),
            };
            blocks.push(GpuBlock {
                attn_norm: norm(&name("attn_norm"))?,
                q: matrix(&name("attn_q.weight"), progress)?,
                k: matrix(&name("attn_k.weight"), progress)?,
                v: matrix(&name("attn_v.weight"), progress)?,
                qkv_bias,
                qk_norm,
                o: matrix(&name("attn_output.weight"), progress)?,
                o_bias: linear_bias("attn_output.bias")?,
                up_bias: linear_bias("ffn_up.bias")?,
                down_bias: linear_bias("ffn_down.bias")?,
                post_norms,
                ffn_norm: norm(&name("ffn_norm"))?,
                gate: match c.mlp {
                    MlpKind::Gated => Some(matrix(&name("ffn_gate.weight"), progress)?),
                    MlpKind::Plain => None,
                },
                up: matrix(&name("ffn_up.weight"), progress)?,
                down: matrix(&name("ffn_down.weight"), progress)?,
            });
        }
        ctx.check("uploading weights")?;
        progress(Progress { stage: "upload", done: total, total });
        Ok(GpuModel {
            config: c.clone(),
            embeddings,
            output,
            output_norm,
            positions,
            embedding_scale: match c.scale_embeddings {
                true => Some(ctx.upload_f32("embedding scale", &[c.embedding_scale()])?),
                false => None,
            },
            final_logit_softcap: match c.final_logit_softcap {
                Some(cap) => Some(ctx.upload_f32("final logit soft cap", &[cap])?),
                None => None,
            },
            blocks,
            masters: HashMap::new(),
            matmul_variant: None,
            stacked_qkv: !ctx.summary.is_software(),
        })
    }

    /// Replaces a matrix (named by `weight.name`) with a re-quantized version; the next step uses
    /// it. The weights as loaded are kept as the matrix's master copy (for [`GpuModel::requantize`]
    /// and [`GpuModel::restore_matrix`]); shapes must match.
    /// Runs every matrix product of later steps in `variant` (the f16 one trades the f32 path's
    /// 1e-4 logits bound for its own, see `tests/native/gpu_forward.rs`); an error naming the missing
    /// feature if the adapter cannot run it.
    pub fn set_matmul_variant(&mut self, ctx: &GpuContext, variant: MatmulVariant) -> Result<(), GpuError> {
        if !variant.is_available(ctx.features()) {
            return Err(GpuError::Shape {
                kernel: "forward",
                message: format!(
                    "the {} matmul variant needs a feature adapter {} lacks",
                    variant.name(),
                    ctx.summary.name
                ),
            });
        }
        self.matmul_variant = Some(variant);
        Ok(())
    }

    /// Whether a decode step whose new keys go straight to the cache projects q, k and v in one
    /// dispatch (`matmul_stacked`) instead of three. On by default on hardware adapters, where it
    /// saves two dispatches a layer; off on software ones (lavapipe, SwiftShader), whose CPU
    /// compilers run the stacked GEMV slower than three (the weight choice sits in its inner
    /// loop). Same logits either way (bit-identical kernels).
    pub fn set_stacked_qkv(&mut self, on: bool) {
        self.stacked_qkv = on;
    }

    pub fn replace_matrix(&mut self, weight: GpuWeight) -> Result<(), GpuError> {
        let name = weight.name.clone();
        let slot = self.matrix_mut(&name).ok_or_else(|| GpuError::Shape {
            kernel: "replace_matrix",
            message: format!("the model has no matrix {name:?}"),
        })?;
        if (slot.n_in, slot.n_out) != (weight.n_in, weight.n_out) {
            return Err(GpuError::Shape {
                kernel: "replace_matrix",
                message: format!(
                    "{name} is {}×{}, the replacement {}×{}",
                    slot.n_out, slot.n_in, weight.n_out, weight.n_in
                ),
            });
        }
        let previous = std::mem::replace(slot, weight);
        self.masters.entry(name).or_insert(previous);
        Ok(())
    }

    /// Puts the weights as loaded back in place of matrix `name`; false if it was never replaced.
    pub fn restore_matrix(&mut self, name: &str) -> bool {
        let Some(master) = self.masters.remove(name) else { return false };
        match self.matrix_mut(name) {
            Some(slot) => {
                *slot = master;
                true
            }
            None => false,
        }
    }

    /// `w` itself, or with `as_loaded` its master copy where it has been replaced.
    fn pick<'s>(&'s self, as_loaded: bool, w: &'s GpuWeight) -> &'s GpuWeight {
        if as_loaded {
            self.masters.get(&w.name).unwrap_or(w)
        } else {
            w
        }
    }

    /// Matrix `name` as loaded (its master copy), whether or not it is replaced now.
    pub fn master(&mut self, name: &str) -> Option<&GpuWeight> {
        if self.masters.contains_key(name) {
            return self.masters.get(name);
        }
        self.matrix_mut(name).map(|w| &*w)
    }

    /// The matrices' names, in forward order. GPT-2's position table is one: the CPU's recipes
    /// quantize every 2-D tensor, so a study that left it as loaded would not be the model the
    /// CLI quantizes.
    pub fn matrix_names(&self) -> Vec<String> {
        let mut names = vec!["token_embd.weight".to_string()];
        if self.positions.is_some() {
            names.push("position_embd.weight".into());
        }
        if self.output.is_some() {
            names.push("output.weight".into());
        }
        for (l, b) in self.blocks.iter().enumerate() {
            for s in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] {
                if s != "ffn_gate" || b.gate.is_some() {
                    names.push(format!("blk.{l}.{s}.weight"));
                }
            }
        }
        names
    }

    /// Whether matrix `name`'s weights as loaded are in one binding, which re-quantizing it on
    /// the GPU needs (a matrix split over bindings is quantized on the CPU and uploaded).
    pub fn can_requantize_on_gpu(&mut self, name: &str) -> bool {
        self.master(name).is_some_and(|w| w.part_count() == 1)
    }

    /// Re-quantizes matrix `name` from its master copy with `scheme` on the GPU (see
    /// [`crate::gpu::requant`] for the schemes it takes), recording the work into `encoder`;
    /// the matrix is replaced at once, so submit the encoder before the next step.
    pub fn requantize(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        name: &str,
        scheme: &Scheme,
    ) -> Result<(), GpuError> {
        let master = self.master(name).ok_or_else(|| GpuError::Shape {
            kernel: "requantize",
            message: format!("the model has no matrix {name:?}"),
        })?;
        let weight = quantize_on_gpu(ctx, encoder, master, scheme)?;
        self.replace_matrix(weight)
    }

    fn matrix_mut(&mut self, name: &str) -> Option<&mut GpuWeight> {
        if name == "token_embd.weight" {
            return Some(&mut self.embeddings);
        }
        if name == "output.weight" {
            return self.output.as_mut();
        }
        if name == "position_embd.weight" {
            return self.positions.as_mut();
        }
        let rest = name.strip_prefix("blk.")?;
        let (layer, suffix) = rest.split_once('.')?;
        let b = self.blocks.get_mut(layer.parse::<usize>().ok()?)?;
        Some(match suffix {
            "attn_q.weight" => &mut b.q,
            "attn_k.weight" => &mut b.k,
            "attn_v.weight" => &mut b.v,
            "attn_output.weight" => &mut b.o,
            "ffn_gate.weight" => b.gate.as_mut()?,
            "ffn_up.weight" => &mut b.up,
            "ffn_down.weight" => &mut b.down,
            _ => return None,
        })
    }

    /// Bytes of weights on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        let matrices =
            self.blocks.iter().flat_map(|b| [&b.q, &b.k, &b.v, &b.o, &b.up, &b.down].into_iter().chain(&b.gate));
        let tables = [&self.embeddings].into_iter().chain(&self.output).chain(&self.positions);
        matrices.chain(tables).map(GpuWeight::gpu_bytes).sum()
    }

    /// An empty KV cache for up to `capacity` tokens (at most the model's context).
    pub fn new_cache(&self, ctx: &GpuContext, capacity: u32) -> Result<KvCache, GpuError> {
        let c = &self.config;
        let capacity = capacity.min(c.context_length as u32).max(1);
        let bytes = capacity as u64 * c.kv_dim() as u64 * 4;
        let mut keys = Vec::with_capacity(c.n_layers);
        let mut values = Vec::with_capacity(c.n_layers);
        for l in 0..c.n_layers {
            keys.push(ctx.storage(&format!("k cache {l}"), bytes)?);
            values.push(ctx.storage(&format!("v cache {l}"), bytes)?);
        }
        let workspace = Workspace {
            scratch: HashMap::new(),
            rope: RopeTable::new(ctx, c.head_dim as u32, c.rope_base, c.rope_freq_factors.as_deref(), capacity)?,
            local_rope: match c.local_layers {
                Some(local) => Some(RopeTable::new(ctx, c.head_dim as u32, local.rope_base, None, capacity)?),
                None => None,
            },
            reuse: Some(Reuse::new()),
            readback: None,
            top_k: None,
        };
        Ok(KvCache { keys, values, capacity, len: 0, workspace })
    }

    /// Runs `tokens` after the cache's contents, appends their keys and values to the cache, and
    /// returns the logits of the last token (plus any captures). On error the cache is left as
    /// it was (its `len` is only advanced after the step succeeded).
    pub async fn step(
        &self,
        ctx: &GpuContext,
        cache: &mut KvCache,
        tokens: &[u32],
        capture: &Capture,
    ) -> Result<StepOutput, ModelError> {
        let c = &self.config;
        let n = tokens.len() as u32;
        if n == 0 {
            return Err(ModelError::EmptyPrompt);
        }
        let past = cache.len;
        if past + n > cache.capacity {
            return Err(ModelError::PromptTooLong { tokens: (past + n) as usize, context: cache.capacity as usize });
        }
        if let Some(&id) = tokens.iter().find(|&&id| id >= self.embeddings.n_out) {
            return Err(ModelError::TokenOutOfRange { id, vocab: self.embeddings.n_out as usize });
        }
        if let Some(&l) = capture.attention_layers.iter().find(|&&l| l >= c.n_layers) {
            return Err(GpuError::Shape { kernel: "forward", message: format!("no layer {l} to capture") }.into());
        }
        let (d, q_dim, kv_dim, ff) = (c.d_model as u32, c.q_dim() as u32, c.kv_dim() as u32, c.d_ff as u32);
        let f32s = |count: u32| count as u64 * 4;
        let ws = &mut cache.workspace;
        let ids = ws.scratch(ctx, "token ids", f32s(n))?;
        ctx.queue.write_buffer(&ids, 0, bytemuck::cast_slice(tokens));
        // GPT-2's positions past..past + n, the rows of its position table to add.
        let position_ids = match self.positions {
            Some(_) => {
                let positions: Vec<u32> = (past..past + n).collect();
                let buffer = ws.scratch(ctx, "position ids", f32s(n))?;
                ctx.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(&positions));
                Some(buffer)
            }
            None => None,
        };
        let x = ws.scratch(ctx, "residual", f32s(n * d))?;
        let xn = ws.scratch(ctx, "normed", f32s(n * d))?;
        // Room for k and v after q: the stacked projection's output.
        let q = ws.scratch(ctx, "q", f32s(n * (q_dim + 2 * kv_dim)))?;
        let k = ws.scratch(ctx, "k", f32s(n * kv_dim))?;
        let v = ws.scratch(ctx, "v", f32s(n * kv_dim))?;
        let attended = ws.scratch(ctx, "attended", f32s(n * q_dim))?;
        // Qwen3's normed queries and keys (a kernel cannot read and write one buffer).
        let qk_normed = if c.qk_norm {
            Some((ws.scratch(ctx, "q normed", f32s(n * q_dim))?, ws.scratch(ctx, "k normed", f32s(n * kv_dim))?))
        } else {
            None
        };
        let gate = ws.scratch(ctx, "gate", f32s(n * ff))?;
        let up = ws.scratch(ctx, "up", f32s(n * ff))?;
        // Gemma's attention and MLP outputs, normalized before they are added to the residual.
        let block_out = if c.post_norms { Some(ws.scratch(ctx, "block output", f32s(n * d))?) } else { None };
        let keys = past + n;

        let hidden_capture = if capture.hidden_states {
            Some(ctx.storage("hidden states", f32s(n * d) * (c.n_layers as u64 + 1))?)
        } else {
            None
        };
        let mut prob_captures = Vec::new();
        for &layer in &capture.attention_layers {
            prob_captures.push((layer, ctx.storage("attention probs", f32s(c.n_heads as u32 * n * keys))?));
        }
        let capture_hidden = |enc: &mut Recorder, index: u64| {
            if let Some(buf) = &hidden_capture {
                enc.copy_buffer_to_buffer(&x, 0, buf, index * f32s(n * d), f32s(n * d));
            }
        };

        let as_loaded = capture.weights_as_loaded;
        let runtime = capture.runtime.as_deref().filter(|r| !r.is_off());
        let kv_quant = runtime.and_then(|r| r.kv.as_ref());
        let prob_quant = runtime.and_then(|r| r.probs.as_ref());
        // Fused kernels wherever nothing reads or changes the activations between them: RMSNorm
        // inside the projections, RoPE writing the cache. Otherwise the normed rows, or the new
        // keys and values, go through buffers of their own first, for the probes to read and
        // the run-time quantizer to change.
        let observed = capture.probes || capture.tensor.is_some();
        // The matmul's prologue is an RMSNorm; GPT-2's LayerNorm is a kernel of its own.
        let layer_norm = c.norm == NormKind::Layer;
        let norm_in_projections = !observed && !runtime.is_some_and(|r| r.changes_linear_inputs()) && !layer_norm;
        // Without RoPE (GPT-2's learned positions) the new keys and values are copied to the cache.
        let rope = c.positions == Positions::Rope;
        let rope_into_cache = !observed && !runtime.is_some_and(|r| r.changes_keys()) && rope;
        // A decode step whose new keys and values go straight to the cache projects q, k and v
        // in one dispatch, into one buffer (q, then k, then v).
        // Not with per-head query/key norms, which read q and k from buffers of their own.
        let stacked_qkv = self.stacked_qkv && n == 1 && rope_into_cache && !c.qk_norm;
        // The stacked kernels read each weight from one binding.
        let whole = |ws: &[&GpuWeight]| ws.iter().all(|w| w.part_count() == 1);
        // The linear inputs are quantized in place after their probes (which show the activations
        // as the model computes them; the CPU hook changes only what the matmuls read).
        let quantize_input =
            |enc: &mut Recorder, layer: usize, input: LinearInput, x: &wgpu::Buffer, k: u32| match runtime {
                Some(r) => r.quantize_input(ctx, enc, layer, input, x, n, k),
                None => Ok(()),
            };
        let mut probes = Probes::new(ctx, c, n, capture)?;
        // With probes, every layer's probabilities go through one scratch buffer (never read back)
        // to be reduced to sink scores and key attention.
        let heads = c.n_heads as u32;
        let (probs_scratch, attention_out) = if capture.probes {
            let per_layer = summary_words(heads, keys);
            (
                Some(ctx.storage("attention probs scratch", f32s(heads * n * keys))?),
                Some(ctx.storage("attention summaries", per_layer * 4 * c.n_layers as u64)?),
            )
        } else {
            (None, None)
        };
        // Usually only the last token's logits are needed: normalize and unembed one row.
        let rows = if capture.all_logits { n } else { 1 };
        let unembedding = self.pick(as_loaded, self.output.as_ref().unwrap_or(&self.embeddings));
        let last_normed = ws.scratch(ctx, "last tokens normed", f32s(rows * d))?;
        let vocab = unembedding.n_out;
        let logits = ws.scratch(ctx, "logits", f32s(rows * vocab))?;
        let top = match capture.top_k {
            None => None,
            Some(k) => {
                if capture.all_logits || k == 0 || k > MAX_K.min(vocab) {
                    let message = format!("top_k {k} must be in 1..={} and without all_logits", MAX_K.min(vocab));
                    return Err(GpuError::Shape { kernel: "forward", message }.into());
                }
                let ids = ws.scratch(ctx, "top ids", f32s(k))?;
                let values = ws.scratch(ctx, "top logits", f32s(k))?;
                Some((k, ws.top_k(ctx, vocab, k)?, ids, values))
            }
        };
        // What the CPU reads: the top k (ids, then logits) or the logits, copied into staging in
        // the step's own submission.
        let read_bytes = top.as_ref().map_or(f32s(rows * vocab), |(k, ..)| 2 * f32s(*k));
        let staging = ws.readback(ctx, read_bytes);
        let shape =
            AttentionShape { n_heads: c.n_heads as u32, n_kv_heads: c.n_kv_heads as u32, head_dim: c.head_dim as u32 };
        let scores = Scores::of(c);
        // attention_split's partial results; its size depends on the token count, not on past.
        let splits = ws.scratch(ctx, "attention splits", 4 * split_plan(shape, n, past).scratch_words)?;
        let (global_rope, local_rope) = (&ws.rope, ws.local_rope.as_ref());
        #[cfg(not(target_arch = "wasm32"))]
        let recording = std::time::Instant::now();
        let mut enc = match ws.reuse.take() {
            Some(reuse) => ctx.encoder_reusing(reuse),
            None => ctx.encoder(),
        };
        let variant = self.matmul_variant.unwrap_or_else(|| MatmulVariant::best(ctx.features()));
        let mm =
            |enc: &mut Recorder,
             w: &GpuWeight,
             x: &wgpu::Buffer,
             y: &wgpu::Buffer,
             rows: u32,
             options: &MatmulOptions| { matmul_variant(ctx, enc, w, x, y, rows, options, variant) };
        embedding(ctx, &mut enc, self.pick(as_loaded, &self.embeddings), &ids, &x, n)?;
        if let Some(scale) = &self.embedding_scale {
            mul_rows_in_place(ctx, &mut enc, &x, scale, n * d, 1)?;
        }
        if let (Some(table), Some(positions)) = (&self.positions, &position_ids) {
            // Rows past..past + n of the position table, gathered like tokens, through xn.
            embedding(ctx, &mut enc, table, positions, &xn, n)?;
            add_in_place(ctx, &mut enc, &x, &xn, n * d)?;
        }
        // `rows` rows of x from `first_row` on, normalized by `norm` into `out`.
        let normalize =
            |enc: &mut Recorder, x: &wgpu::Buffer, first_row: u32, norm: &GpuNorm, out: &wgpu::Buffer, rows: u32| {
                match &norm.bias {
                    Some(bias) => layer_norm_rows(ctx, enc, x, first_row, &norm.gain, bias, out, rows, d, c.rms_eps),
                    None => rms_norm_rows(ctx, enc, x, first_row, &norm.gain, out, rows, d, c.rms_eps),
                }
            };
        // A projection's output added to the residual stream: in the matmul's epilogue, or
        // (Gemma) through a buffer of its own, normalized by `post_norm` first.
        // GPT-2's bias is added by the epilogue either way.
        let add_to_residual = |enc: &mut Recorder,
                               w: &GpuWeight,
                               bias: Option<&wgpu::Buffer>,
                               input: &wgpu::Buffer,
                               rows: u32,
                               post_norm: Option<&wgpu::Buffer>| {
            match (post_norm, &block_out) {
                (Some(gain), Some(out)) => {
                    mm(enc, w, input, out, rows, &MatmulOptions { bias, ..Default::default() })?;
                    rms_norm(ctx, enc, out, gain, &xn, rows, d, c.rms_eps)?;
                    add_in_place(ctx, enc, &x, &xn, rows * d)
                }
                _ => mm(
                    enc,
                    w,
                    input,
                    &x,
                    rows,
                    &MatmulOptions { bias, output: MatmulOutput::Accumulate, ..Default::default() },
                ),
            }
        };
        capture_hidden(&mut enc, 0);
        probes.take(ctx, &mut enc, &x, n, d, 0, ProbePoint::Embeddings)?;
        for (l, b) in self.blocks.iter().enumerate() {
            let rope_table = match local_rope {
                Some(local) if c.is_local_layer(l) => local,
                _ => global_rope,
            };
            let [post_attention_norm, post_ffw_norm] = match &b.post_norms {
                Some([attention, mlp]) => [Some(attention), Some(mlp)],
                None => [None, None],
            };
            let (q_bias, k_bias, v_bias) = match &b.qkv_bias {
                Some(QkvBias { each: [qb, kb, vb], .. }) => (Some(qb), Some(kb), Some(vb)),
                None => (None, None, None),
            };
            let (qkv_input, qkv_norm) = if norm_in_projections {
                (&x, Some((&b.attn_norm.gain, c.rms_eps)))
            } else {
                normalize(&mut enc, &x, 0, &b.attn_norm, &xn, n)?;
                probes.take(ctx, &mut enc, &xn, n, d, l, ProbePoint::AttnInput)?;
                quantize_input(&mut enc, l, LinearInput::AttnQkv, &xn, d)?;
                (&xn, None)
            };
            let (wq, wk, wv) = (self.pick(as_loaded, &b.q), self.pick(as_loaded, &b.k), self.pick(as_loaded, &b.v));
            let stacked = stacked_qkv && whole(&[wq, wk, wv]);
            if stacked {
                // One dispatch for the three projections, into q|k|v of the q buffer.
                let bias = b.qkv_bias.as_ref().map(|b| &b.stacked);
                let options = StackedOptions { rms_norm: qkv_norm, bias, output: StackedOutput::Concatenate };
                matmul_stacked_variant(ctx, &mut enc, &[wq, wk, wv], qkv_input, &q, &options, variant)?;
            } else {
                for (w, out, bias) in [(wq, &q, q_bias), (wk, &k, k_bias), (wv, &v, v_bias)] {
                    let options = MatmulOptions { rms_norm: qkv_norm, bias, output: MatmulOutput::Store };
                    mm(&mut enc, w, qkv_input, out, n, &options)?;
                }
            }
            let (n_heads, n_kv_heads) = (c.n_heads as u32, c.n_kv_heads as u32);
            let (q, k) = match (&b.qk_norm, &qk_normed) {
                (Some([q_gain, k_gain]), Some((q_normed, k_normed))) => {
                    let head_dim = c.head_dim as u32;
                    rms_norm(ctx, &mut enc, &q, q_gain, q_normed, n * n_heads, head_dim, c.rms_eps)?;
                    rms_norm(ctx, &mut enc, &k, k_gain, k_normed, n * n_kv_heads, head_dim, c.rms_eps)?;
                    (q_normed, k_normed)
                }
                _ => (&q, &k),
            };
            let (k_cache, v_cache) = (&cache.keys[l], &cache.values[l]);
            if rope_into_cache {
                let heads = (n_heads, n_kv_heads);
                let new = if stacked { NewKeysValues::AfterQueries } else { NewKeysValues::Buffers(&k, &v) };
                rope_and_append(ctx, &mut enc, &q, new, (k_cache, v_cache), n, heads, past, rope_table, c.rope_layout)?;
            } else {
                if rope {
                    rope_with_table(ctx, &mut enc, &q, n, n_heads, past, rope_table, c.rope_layout)?;
                    rope_with_table(ctx, &mut enc, &k, n, n_kv_heads, past, rope_table, c.rope_layout)?;
                }
                probes.take(ctx, &mut enc, &k, n, kv_dim, l, ProbePoint::Keys)?;
                probes.take(ctx, &mut enc, &v, n, kv_dim, l, ProbePoint::Values)?;
                if let Some(r) = runtime {
                    // FireQ's key/query channel scales, then the cache quantizer, as the CPU hook.
                    r.scale_keys(ctx, &mut enc, l, &q, &k, n, shape)?;
                }
                if let Some(scheme) = kv_quant {
                    // The new keys (after RoPE) and values, before the cache holds them.
                    fake_quantize_kv(ctx, &mut enc, scheme, &k, n, kv_dim, c.head_dim as u32)?;
                    fake_quantize_kv(ctx, &mut enc, scheme, &v, n, kv_dim, c.head_dim as u32)?;
                }
                enc.copy_buffer_to_buffer(&k, 0, k_cache, f32s(past * kv_dim), f32s(n * kv_dim));
                enc.copy_buffer_to_buffer(&v, 0, v_cache, f32s(past * kv_dim), f32s(n * kv_dim));
            }
            let probs =
                prob_captures.iter().find(|(layer, _)| *layer == l).map(|(_, buf)| buf).or(probs_scratch.as_ref());
            let drop_sink = capture.intervention.as_ref().is_some_and(|i| i.drops_sink());
            let io = AttentionIo { q: &q, k_cache, v_cache, out: &attended, n_tokens: n, past };
            match (probs, prob_quant) {
                // Nothing reads or changes the probabilities: split the keys over workgroups.
                (None, None) => attention_split(ctx, &mut enc, shape, scores, io, drop_sink, &splits)?,
                (probs, prob_quant) => {
                    let prob_quant = prob_quant.map(|p| (p, l));
                    attention_quantized(ctx, &mut enc, shape, scores, io, probs, drop_sink, prob_quant)?
                }
            }
            if let (Some(probs), Some(summaries)) = (probs, &attention_out) {
                let at = summary_words(heads, keys) * l as u64;
                attention_summary(ctx, &mut enc, probs, heads, n, past, summaries, at)?;
            }
            probes.take(ctx, &mut enc, &attended, n, q_dim, l, ProbePoint::OInput)?;
            quantize_input(&mut enc, l, LinearInput::AttnOutput, &attended, q_dim)?;
            add_to_residual(
                &mut enc,
                self.pick(as_loaded, &b.o),
                b.o_bias.as_ref(),
                &attended,
                n,
                post_attention_norm,
            )?;
            probes.take(ctx, &mut enc, &x, n, d, l, ProbePoint::ResidualMid)?;

            let (mlp_input, mlp_norm) = if norm_in_projections {
                (&x, Some((&b.ffn_norm.gain, c.rms_eps)))
            } else {
                normalize(&mut enc, &x, 0, &b.ffn_norm, &xn, n)?;
                probes.take(ctx, &mut enc, &xn, n, d, l, ProbePoint::MlpInput)?;
                quantize_input(&mut enc, l, LinearInput::MlpGateUp, &xn, d)?;
                (&xn, None)
            };
            let w_up = self.pick(as_loaded, &b.up);
            let activation = c.ffn_activation;
            match b.gate.as_ref().map(|g| self.pick(as_loaded, g)) {
                None => {
                    // A plain MLP: act(up + bias) in up's epilogue.
                    let output = MatmulOutput::Activated(activation);
                    let options = MatmulOptions { rms_norm: mlp_norm, bias: b.up_bias.as_ref(), output };
                    mm(&mut enc, w_up, mlp_input, &up, n, &options)?;
                }
                Some(w_gate) if n == 1 && whole(&[w_gate, w_up]) => {
                    // One dispatch: each thread's gate and up rows against the same x, act(gate)·up.
                    let output = StackedOutput::GatedPair(activation);
                    let options = StackedOptions { rms_norm: mlp_norm, bias: None, output };
                    matmul_stacked_variant(ctx, &mut enc, &[w_gate, w_up], mlp_input, &up, &options, variant)?;
                }
                Some(w_gate) => {
                    let gate_options = MatmulOptions { rms_norm: mlp_norm, ..Default::default() };
                    mm(&mut enc, w_gate, mlp_input, &gate, n, &gate_options)?;
                    // up's epilogue multiplies by act(gate).
                    let output = MatmulOutput::Gated(&gate, activation);
                    let up_options = MatmulOptions { rms_norm: mlp_norm, bias: None, output };
                    mm(&mut enc, w_up, mlp_input, &up, n, &up_options)?;
                }
            }
            // `up` holds the down projection's input.
            probes.take(ctx, &mut enc, &up, n, ff, l, ProbePoint::DownInput)?;
            quantize_input(&mut enc, l, LinearInput::MlpDown, &up, ff)?;
            add_to_residual(&mut enc, self.pick(as_loaded, &b.down), b.down_bias.as_ref(), &up, n, post_ffw_norm)?;
            if let Some(intervention) = &capture.intervention {
                intervene_after_block(ctx, &mut enc, intervention, &x, n, d, l)?;
            }
            capture_hidden(&mut enc, l as u64 + 1);
            probes.take(ctx, &mut enc, &x, n, d, l, ProbePoint::Residual)?;
        }
        if rows == n && !layer_norm {
            // Every row (a decode step's only one): normalize inside the unembedding.
            let norm = MatmulOptions { rms_norm: Some((&self.output_norm.gain, c.rms_eps)), ..Default::default() };
            mm(&mut enc, unembedding, &x, &logits, rows, &norm)?;
        } else {
            normalize(&mut enc, &x, n - rows, &self.output_norm, &last_normed, rows)?;
            mm(&mut enc, unembedding, &last_normed, &logits, rows, &MatmulOptions::default())?;
        }
        // Before anything reads the logits: the top k, the readback, a capture of every row.
        if let Some(cap) = &self.final_logit_softcap {
            soft_cap_in_place(ctx, &mut enc, &logits, cap, rows * vocab)?;
        }
        match &top {
            Some((k, scratch, ids, values)) => {
                top_k_into(ctx, &mut enc, &logits, vocab, *k, ids, values, scratch)?;
                enc.copy_buffer_to_buffer(ids, 0, &staging, 0, f32s(*k));
                enc.copy_buffer_to_buffer(values, 0, &staging, f32s(*k), f32s(*k));
            }
            None => enc.copy_buffer_to_buffer(&logits, 0, &staging, 0, read_bytes),
        }
        let recorded = enc.stats();
        ws.reuse = ctx.submit(enc);
        #[cfg(not(target_arch = "wasm32"))]
        let record_microseconds = recording.elapsed().as_secs_f64() * 1e6;
        #[cfg(target_arch = "wasm32")]
        let record_microseconds = 0.0;
        let stats =
            StepStats { compute_passes: recorded.compute_passes, dispatches: recorded.dispatches, record_microseconds };

        let bytes = ctx.read_staged(&staging, read_bytes, "logits").await?;
        let mut out = StepOutput { stats, ..Default::default() };
        match &top {
            Some((k, ..)) => {
                let (ids, values) = bytes.split_at(f32s(*k) as usize);
                let ids: Vec<u32> = bytemuck::pod_collect_to_vec(ids);
                let values: Vec<f32> = bytemuck::pod_collect_to_vec(values);
                out.top = ids.into_iter().zip(values).collect();
            }
            None => out.logits = bytemuck::pod_collect_to_vec(&bytes),
        }
        if let Some(buf) = &hidden_capture {
            let all = ctx.read_f32(buf, (n * d) as usize * (c.n_layers + 1), "hidden states").await?;
            out.hidden_states = all.chunks_exact((n * d) as usize).map(<[f32]>::to_vec).collect();
        }
        for (layer, buf) in &prob_captures {
            let len = (c.n_heads as u32 * n * keys) as usize;
            out.attention_probs.push((*layer, ctx.read_f32(buf, len, "attention probabilities").await?));
        }
        out.tensor = probes.read_tensor(ctx, n).await?;
        out.probes = probes.read(ctx, n).await?;
        if let Some(buf) = &attention_out {
            let per_layer = summary_words(heads, keys) as usize;
            let all = ctx.read_f32(buf, per_layer * c.n_layers, "attention summaries").await?;
            out.attention = all
                .chunks_exact(per_layer)
                .enumerate()
                .map(|(layer, w)| AttentionSummary {
                    layer,
                    sink_scores: w[..heads as usize].to_vec(),
                    key_attention: w[heads as usize..].to_vec(),
                })
                .collect();
        }
        cache.len = past + n;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::ProbePoint;

    #[test]
    fn the_probe_menu_names_every_point_once_and_round_trips() {
        // A new point fails to compile here until it is counted, then fails until it is in the menu.
        let variants = |p: ProbePoint| match p {
            ProbePoint::Embeddings
            | ProbePoint::AttnInput
            | ProbePoint::OInput
            | ProbePoint::ResidualMid
            | ProbePoint::MlpInput
            | ProbePoint::DownInput
            | ProbePoint::Residual
            | ProbePoint::Keys
            | ProbePoint::Values => 9,
        };
        assert_eq!(ProbePoint::MENU.len(), variants(ProbePoint::Residual));
        for (i, p) in ProbePoint::MENU.iter().enumerate() {
            assert!(!ProbePoint::MENU[i + 1..].contains(p), "{p:?} twice");
            let name = serde_json::to_value(p).unwrap();
            assert_eq!(serde_json::from_value::<ProbePoint>(name).unwrap(), *p);
        }
    }
}
