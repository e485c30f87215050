//! Llama-family architecture hyper-parameters, read from GGUF metadata or a Hugging Face
//! `config.json`. One struct serves llama, SmolLM2, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2,
//! Gemma 3 and GPT-2: they differ only in values and switches (heads, rope base, q/k/v biases,
//! Qwen3's per-head RMSNorm of queries and keys, RoPE pair layout, Phi-3's and GPT-2's fused
//! projections, which the loader splits, Gemma's query scale and soft-capping, GPT-2's LayerNorm,
//! learned positions, plain MLP and biases), not in the shape of the computation.

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, ModelError};
use crate::formats::gguf::GgufFile;

/// Which dimensions of a head RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RopeLayout {
    /// Pairs (2i, 2i+1). llama.cpp's mode 0: GGUF llama files store Q/K rows permuted for it.
    Interleaved,
    /// Pairs (i, i + head_dim/2). Hugging Face's `rotate_half`, and GGUF's NEOX mode (qwen2).
    HalfSplit,
}

/// What the feed-forward's gate projection goes through before it multiplies the up projection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateActivation {
    /// SwiGLU: `silu(g) = g / (1 + e^−g)` (llama, Qwen, Mistral, Phi-3).
    #[default]
    Silu,
    /// GeGLU with GELU's tanh approximation, `0.5 g (1 + tanh(√(2/π) (g + 0.044715 g³)))` (Gemma).
    GeluTanh,
}

/// How a block normalizes the residual stream (and the output head its last state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// `x / √(mean(x²) + ε) · γ` (llama and its descendants).
    #[default]
    Rms,
    /// `(x − mean(x)) / √(var(x) + ε) · γ + β`: mean-centred, with a bias `β` (the norm's
    /// `.bias` tensor) (GPT-2).
    Layer,
}

/// How a token's position enters the computation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Positions {
    /// Queries and keys rotated by RoPE in every block.
    #[default]
    Rope,
    /// A learned absolute position embedding (`position_embd.weight`, one row per position, the
    /// context's length) added to the token embeddings; no rotation anywhere (GPT-2).
    Learned,
}

/// The feed-forward's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlpKind {
    /// `down(act(gate(x)) ⊙ up(x))`, with `ffn_gate`.
    #[default]
    Gated,
    /// `down(act(up(x)))`, no gate (GPT-2); `act` is [`LlamaConfig::ffn_activation`].
    Plain,
}

/// Gemma 3's interleaved attention: of every `period` blocks the last attends globally, the
/// others to a sliding window with a RoPE base of their own.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LocalLayers {
    pub period: usize,
    pub rope_base: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub architecture: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub d_ff: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub rope_layout: RopeLayout,
    pub tied_embeddings: bool,
    /// Qwen2 adds biases to the q, k and v projections.
    pub qkv_bias: bool,
    /// Qwen3 normalizes each head of the queries and of the keys (RMSNorm over `head_dim`, a
    /// weight of its own per block) after the projections and before RoPE.
    #[serde(default)]
    pub qk_norm: bool,
    /// Mistral v0.1 attends to the last `sliding_window` tokens only, Gemma 2's local layers
    /// (every other one) and Gemma 3's (five of six) too. The forward attends to every earlier
    /// token, which is the same computation up to that length: `context_length` is clamped to it,
    /// so a longer sequence is refused rather than computed differently (and Gemma 2's local
    /// layers, with the global RoPE base, compute what its global ones do).
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Llama 3.1's RoPE scaling: each pair's frequency is divided by its factor (`head_dim / 2`
    /// of them). GGUF stores them as the tensor `rope_freqs.weight`; HF computes them from
    /// `rope_scaling` (`rope_type: "llama3"`), as [`llama3_rope_factors`] does.
    #[serde(default)]
    pub rope_freq_factors: Option<Vec<f32>>,
    #[serde(default)]
    pub ffn_activation: GateActivation,
    /// Gemma multiplies the embeddings by √d_model (the tied unembedding reads them unscaled).
    #[serde(default)]
    pub scale_embeddings: bool,
    /// Gemma 2 and 3 normalize the attention's and the MLP's outputs (RMSNorm, weights
    /// `post_attention_norm`, `post_ffw_norm`) before adding them to the residual stream.
    #[serde(default)]
    pub post_norms: bool,
    /// Gemma 3's local layers. Their window is `sliding_window`, which also bounds the context, so
    /// they differ from the global ones only in their RoPE base.
    #[serde(default)]
    pub local_layers: Option<LocalLayers>,
    /// Gemma 2 and 3 scale the scores by `1/√query_pre_attn_scalar`; `None` where that is
    /// `head_dim` (every other model). The 27B models use `d_model / n_heads` instead.
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f32>,
    /// Gemma 2's soft-capping of the attention scores before the softmax: `s → cap·tanh(s/cap)`.
    #[serde(default)]
    pub attn_logit_softcap: Option<f32>,
    /// Gemma 2's soft-capping of the logits after the unembedding: `z → cap·tanh(z/cap)`.
    #[serde(default)]
    pub final_logit_softcap: Option<f32>,
    /// RMSNorm or GPT-2's LayerNorm (then `rms_eps` is the LayerNorm's ε).
    #[serde(default)]
    pub norm: NormKind,
    /// RoPE or GPT-2's learned absolute positions (then `context_length` is the position table's
    /// rows, and the RoPE fields mean nothing).
    #[serde(default)]
    pub positions: Positions,
    #[serde(default)]
    pub mlp: MlpKind,
    /// GPT-2 adds a bias to every linear layer: the output projection, up and down (q, k and v
    /// have theirs by `qkv_bias`).
    #[serde(default)]
    pub linear_bias: bool,
}

/// Llama 3.1's per-pair RoPE frequency divisors from its `rope_scaling` parameters (Hugging
/// Face's `_compute_llama3_parameters`; llama.cpp's converter writes the same as `rope_freqs`):
/// wavelengths shorter than `original / high_freq_factor` keep their frequency, longer than
/// `original / low_freq_factor` are divided by `factor`, and those between are interpolated.
pub fn llama3_rope_factors(
    head_dim: usize,
    base: f32,
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    original_context: f64,
) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let wavelength = std::f64::consts::TAU / (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
            if wavelength < original_context / high_freq_factor {
                1.0
            } else if wavelength > original_context / low_freq_factor {
                factor as f32
            } else {
                let smooth = (original_context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

/// Each RoPE pair's angle per position: `base^(-2i/head_dim)`, divided by its factor when there
/// are factors. In f64, for the CPU reference's and the GPU's tables alike.
pub fn rope_frequencies(head_dim: usize, base: f32, factors: Option<&[f32]>) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|i| {
            let frequency = (base as f64).powf(-2.0 * i as f64 / head_dim as f64);
            frequency / factors.map_or(1.0, |f| f[i] as f64)
        })
        .collect()
}

/// Architectures this file knows how to run, with the RoPE layout their GGUF exports use.
const GGUF_ARCHITECTURES: &[(&str, RopeLayout)] = &[
    ("llama", RopeLayout::Interleaved),
    ("qwen2", RopeLayout::HalfSplit),
    ("qwen3", RopeLayout::HalfSplit),
    ("phi3", RopeLayout::HalfSplit),
    ("gemma2", RopeLayout::HalfSplit),
    ("gemma3", RopeLayout::HalfSplit),
    // GPT-2 has no RoPE; the layout is never read.
    ("gpt2", RopeLayout::HalfSplit),
];
/// Hugging Face architectures and the name this crate gives each (GGUF's).
const HF_ARCHITECTURES: &[(&str, &str)] = &[
    ("LlamaForCausalLM", "llama"),
    ("MistralForCausalLM", "llama"),
    ("Qwen2ForCausalLM", "qwen2"),
    ("Qwen3ForCausalLM", "qwen3"),
    ("Phi3ForCausalLM", "phi3"),
    ("Gemma2ForCausalLM", "gemma2"),
    ("Gemma3ForCausalLM", "gemma3"),
    ("GPT2LMHeadModel", "gpt2"),
];

/// Whether `architecture` is a Gemma: embeddings × √width, GeGLU, norms around both sub-blocks,
/// norm gains `1 + w` (Hugging Face stores `w`).
pub fn is_gemma(architecture: &str) -> bool {
    matches!(architecture, "gemma2" | "gemma3")
}

/// Gemma 2's window where a file names none (llama.cpp's and transformers' default).
const GEMMA2_WINDOW: usize = 4096;
/// Gemma 2's soft caps where a file names none (llama.cpp's and transformers' defaults).
const GEMMA2_ATTN_SOFTCAP: f32 = 50.0;
const GEMMA2_FINAL_SOFTCAP: f32 = 30.0;

/// `cap·tanh(x/cap)`: Gemma 2's soft-capping of attention scores and logits, in f64 inside.
pub fn soft_cap(x: f32, cap: f32) -> f32 {
    (cap as f64 * (x as f64 / cap as f64).tanh()) as f32
}

impl LlamaConfig {
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Whether a block of this architecture has the linear layer `name` (a GGUF suffix such as
    /// `ffn_gate`, or a tensor name such as `blk.0.ffn_gate.weight`): all of them but a plain
    /// MLP's gate (GPT-2's).
    pub fn has_linear(&self, name: &str) -> bool {
        self.mlp == MlpKind::Gated || !name.split('.').any(|part| part == "ffn_gate")
    }

    /// Each RoPE pair's angle per position (see [`rope_frequencies`]) in the global layers.
    pub fn rope_frequencies(&self) -> Vec<f64> {
        rope_frequencies(self.head_dim, self.rope_base, self.rope_freq_factors.as_deref())
    }

    /// Whether block `layer` is one of Gemma 3's local (sliding-window) layers.
    pub fn is_local_layer(&self, layer: usize) -> bool {
        self.local_layers.is_some_and(|l| (layer + 1) % l.period != 0)
    }

    /// The RoPE frequencies of the local layers, where there are any.
    pub fn local_rope_frequencies(&self) -> Option<Vec<f64>> {
        self.local_layers.map(|local| rope_frequencies(self.head_dim, local.rope_base, None))
    }

    /// The factor the attention scores `q·k` are multiplied by: `1/√query_pre_attn_scalar`, which
    /// is `head_dim` but for Gemma's 27B models.
    pub fn attention_scale(&self) -> f32 {
        1.0 / self.query_pre_attn_scalar.unwrap_or(self.head_dim as f32).sqrt()
    }

    /// The factor the embeddings are multiplied by: √d_model where `scale_embeddings`, else 1.
    pub fn embedding_scale(&self) -> f32 {
        if self.scale_embeddings {
            (self.d_model as f32).sqrt()
        } else {
            1.0
        }
    }

    /// Config from GGUF metadata (`{arch}.block_count`, ...). Tensor-dependent facts (tied
    /// embeddings, biases) are passed in by the loader, which sees the tensor list.
    pub fn from_gguf(gguf: &GgufFile, tied_embeddings: bool, qkv_bias: bool) -> Result<Self, ModelError> {
        let file = gguf.file.as_str();
        let architecture = get_str(gguf, "general.architecture")?.to_string();
        let Some(&(_, rope_layout)) = GGUF_ARCHITECTURES.iter().find(|(name, _)| *name == architecture) else {
            return Err(ModelError::UnsupportedArchitecture {
                file: file.into(),
                architecture,
                supported: GGUF_ARCHITECTURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            });
        };
        let key = |suffix: &str| format!("{architecture}.{suffix}");
        let gemma = is_gemma(&architecture);
        let gpt2 = architecture == "gpt2";
        let d_model = get_usize(gguf, &key("embedding_length"))?;
        let n_heads = get_usize(gguf, &key("attention.head_count"))?;
        let n_kv_heads = match gguf.get(&key("attention.head_count_kv")) {
            Some(_) => get_usize(gguf, &key("attention.head_count_kv"))?,
            None => n_heads,
        };
        let head_dim = match gguf.get(&key("attention.key_length")) {
            Some(_) => get_usize(gguf, &key("attention.key_length"))?,
            None if n_heads > 0 => d_model / n_heads,
            None => 0,
        };
        let vocab_size = match gguf.get(&key("vocab_size")) {
            Some(_) => get_usize(gguf, &key("vocab_size"))?,
            None => gguf.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map_or(0, |a| a.len()),
        };
        let optional_f32 = |suffix: &str| match gguf.get(&key(suffix)) {
            Some(_) => get_f32(gguf, &key(suffix)).map(Some),
            None => Ok(None),
        };
        let gemma2 = architecture == "gemma2";
        let (attn_logit_softcap, final_logit_softcap) = match gemma2 {
            true => (
                optional_f32("attn_logit_softcapping")?.or(Some(GEMMA2_ATTN_SOFTCAP)),
                optional_f32("final_logit_softcapping")?.or(Some(GEMMA2_FINAL_SOFTCAP)),
            ),
            false => (optional_f32("attn_logit_softcapping")?, optional_f32("final_logit_softcapping")?),
        };
        let n_layers = get_usize(gguf, &key("block_count"))?;
        // GGUF has no key for the query scale: llama.cpp scales Gemma 2 27B's (46 blocks) and
        // Gemma 3 27B's (62 blocks) queries by 1/√(width/heads), picked by the layer count.
        let is_27b = (gemma2 && n_layers == 46) || (architecture == "gemma3" && n_layers == 62);
        let query_pre_attn_scalar = match is_27b && n_heads > 0 && d_model / n_heads != head_dim {
            true => Some((d_model / n_heads) as f32),
            false => None,
        };
        let local_rope_base = optional_f32("rope.freq_base_swa")?;
        let config = LlamaConfig {
            n_layers,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            d_ff: get_usize(gguf, &key("feed_forward_length"))?,
            vocab_size,
            context_length: get_usize(gguf, &key("context_length"))?,
            rope_base: match gguf.get(&key("rope.freq_base")) {
                Some(_) => get_f32(gguf, &key("rope.freq_base"))?,
                None => 10_000.0,
            },
            rms_eps: match gpt2 {
                true => get_f32(gguf, &key("attention.layer_norm_epsilon"))?,
                false => get_f32(gguf, &key("attention.layer_norm_rms_epsilon"))?,
            },
            rope_layout,
            tied_embeddings,
            // GPT-2's q, k and v biases are parts of its fused `attn_qkv.bias`.
            qkv_bias: qkv_bias || gpt2,
            qk_norm: matches!(architecture.as_str(), "qwen3" | "gemma3"),
            sliding_window: match gguf.get(&key("attention.sliding_window")) {
                Some(_) => Some(get_usize(gguf, &key("attention.sliding_window"))?),
                None if gemma2 => Some(GEMMA2_WINDOW),
                None => None,
            },
            rope_freq_factors: None,
            ffn_activation: if gemma || gpt2 { GateActivation::GeluTanh } else { GateActivation::Silu },
            scale_embeddings: gemma,
            post_norms: gemma,
            // llama.cpp's gemma3: every 6th block global, the local ones at RoPE base 10000. Gemma
            // 2's local layers (every other one) share the global base: with the context clamped
            // to the window they compute what the global ones do.
            local_layers: (architecture == "gemma3")
                .then(|| LocalLayers { period: 6, rope_base: local_rope_base.unwrap_or(10_000.0) }),
            query_pre_attn_scalar,
            attn_logit_softcap,
            final_logit_softcap,
            architecture: architecture.clone(),
            ..LlamaConfig::gpt2_switches(gpt2)
        };
        if let Some(base) = local_rope_base.filter(|&base| gemma2 && base != config.rope_base) {
            return Err(bad(
                file,
                format!("gemma2 local layers' RoPE base {base} (not the global one) is not supported"),
            ));
        }
        let config = config.bounded_by_its_window();
        // Llama 3.1's and Phi-3 128k's RoPE scalings ship as tensors (`rope_freqs`,
        // `rope_factors_long`), which the loader refuses; the linear and YaRN ones as metadata.
        if let Some(scaling) = gguf.get(&key("rope.scaling.type")).and_then(|v| v.as_str()).filter(|&t| t != "none") {
            return Err(bad(file, format!("RoPE scaling {scaling:?} is not supported yet")));
        }
        if let Some(rope_dims) = gguf.get(&key("rope.dimension_count")).and_then(|v| v.as_u64()) {
            if rope_dims != config.head_dim as u64 {
                return Err(bad(
                    file,
                    format!("partial RoPE ({rope_dims} of {} head dims) is not supported", config.head_dim),
                ));
            }
        }
        config.validate(file)?;
        Ok(config)
    }

    /// Config from a Hugging Face `config.json` (LlamaForCausalLM, MistralForCausalLM,
    /// Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM). HF checkpoints keep Q/K unpermuted,
    /// so RoPE is half-split.
    pub fn from_hf_json(json: &[u8], file: &str) -> Result<Self, ModelError> {
        let v: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| FormatError::Invalid { file: file.into(), message: format!("invalid JSON: {e}") })?;
        let hf_architecture = v["architectures"][0].as_str().unwrap_or("").to_string();
        let Some(&(_, architecture)) = HF_ARCHITECTURES.iter().find(|(hf, _)| *hf == hf_architecture) else {
            return Err(ModelError::UnsupportedArchitecture {
                file: file.into(),
                architecture: hf_architecture,
                supported: HF_ARCHITECTURES.iter().map(|(hf, _)| *hf).collect::<Vec<_>>().join(", "),
            });
        };
        let uint = |k: &str| -> Result<usize, ModelError> {
            v[k].as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| bad(file, format!("field {k:?} is missing or not a non-negative integer")))
        };
        let float_or = |k: &str, default: f64| -> Result<f32, ModelError> {
            match &v[k] {
                serde_json::Value::Null => Ok(default as f32),
                x => x.as_f64().map(|f| f as f32).ok_or_else(|| bad(file, format!("field {k:?} is not a number"))),
            }
        };
        if architecture == "gpt2" {
            return LlamaConfig::from_hf_gpt2(&v, file, &uint, &float_or);
        }

        // Phi-4-mini rotates 3/4 of each head.
        if let Some(factor) = v["partial_rotary_factor"].as_f64().filter(|&f| f != 1.0) {
            return Err(bad(file, format!("partial RoPE (partial_rotary_factor {factor}) is not supported")));
        }
        let d_model = uint("hidden_size")?;
        let n_heads = uint("num_attention_heads")?;
        let n_kv_heads = if v["num_key_value_heads"].is_null() { n_heads } else { uint("num_key_value_heads")? };
        let head_dim = if v["head_dim"].is_null() { d_model / n_heads.max(1) } else { uint("head_dim")? };
        let gemma = is_gemma(architecture);
        let gemma2 = architecture == "gemma2";
        // Qwen2 and Qwen3 name a window but turn it off (`use_sliding_window: false`).
        let sliding_window = match (&v["sliding_window"], v["use_sliding_window"].as_bool()) {
            (_, Some(false)) => None,
            (serde_json::Value::Null, _) if gemma2 => Some(GEMMA2_WINDOW),
            (serde_json::Value::Null, _) => None,
            _ => Some(uint("sliding_window")?),
        };
        let rope_base = float_or("rope_theta", 10_000.0)?;
        // Gemma 2's caps where config.json leaves them out (Gemma2Config's defaults); `null` is off.
        let softcap = |k: &str, gemma2_default: f32| -> Result<Option<f32>, ModelError> {
            match v.get(k) {
                None if gemma2 => Ok(Some(gemma2_default)),
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(_) => float_or(k, 0.0).map(Some),
            }
        };
        // Gemma's configs default to 256 (Gemma2Config, Gemma3TextConfig); other models have none.
        let query_pre_attn_scalar = match gemma {
            true => Some(float_or("query_pre_attn_scalar", 256.0)?).filter(|&s| s != head_dim as f32),
            false => None,
        };
        let rope_freq_factors = match &v["rope_scaling"] {
            serde_json::Value::Null => None,
            scaling => {
                let kind = scaling["rope_type"].as_str().or(scaling["type"].as_str()).unwrap_or("");
                if kind != "llama3" {
                    return Err(bad(
                        file,
                        format!("rope_scaling {kind:?} is not supported yet (supported: \"llama3\")"),
                    ));
                }
                let number = |k: &str| {
                    scaling[k].as_f64().ok_or_else(|| bad(file, format!("rope_scaling.{k} is missing or not a number")))
                };
                let (low, high) = (number("low_freq_factor")?, number("high_freq_factor")?);
                if !(low > 0.0 && high > low) {
                    return Err(bad(
                        file,
                        format!("rope_scaling needs 0 < low_freq_factor < high_freq_factor, got {low} and {high}"),
                    ));
                }
                Some(llama3_rope_factors(
                    head_dim,
                    rope_base,
                    number("factor")?,
                    low,
                    high,
                    number("original_max_position_embeddings")?,
                ))
            }
        };
        let config = LlamaConfig {
            n_layers: uint("num_hidden_layers")?,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            d_ff: uint("intermediate_size")?,
            vocab_size: uint("vocab_size")?,
            context_length: uint("max_position_embeddings")?,
            rope_base,
            rms_eps: float_or("rms_norm_eps", 1e-6)?,
            rope_layout: RopeLayout::HalfSplit,
            tied_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
            qkv_bias: architecture == "qwen2" || v["attention_bias"].as_bool().unwrap_or(false),
            qk_norm: matches!(architecture, "qwen3" | "gemma3"),
            sliding_window,
            rope_freq_factors,
            ffn_activation: if gemma { GateActivation::GeluTanh } else { GateActivation::Silu },
            scale_embeddings: gemma,
            post_norms: gemma,
            local_layers: match architecture == "gemma3" {
                true => Some(gemma3_local_layers(&v, file)?),
                false => None,
            },
            query_pre_attn_scalar,
            attn_logit_softcap: softcap("attn_logit_softcapping", GEMMA2_ATTN_SOFTCAP)?,
            final_logit_softcap: softcap("final_logit_softcapping", GEMMA2_FINAL_SOFTCAP)?,
            architecture: architecture.into(),
            norm: NormKind::Rms,
            positions: Positions::Rope,
            mlp: MlpKind::Gated,
            linear_bias: false,
        }
        .bounded_by_its_window();
        if gemma && v["hidden_activation"].as_str().is_some_and(|a| a != "gelu_pytorch_tanh") {
            return Err(bad(
                file,
                format!("hidden_activation {} is not supported (gelu_pytorch_tanh)", v["hidden_activation"]),
            ));
        }
        if !gemma {
            for cap in ["final_logit_softcapping", "attn_logit_softcapping", "query_pre_attn_scalar"] {
                if !v[cap].is_null() {
                    return Err(bad(file, format!("{cap} is not supported for {architecture}")));
                }
            }
        }
        config.validate(file)?;
        Ok(config)
    }

    /// The fields in which GPT-2 differs from the llama layout, as they are for `gpt2` or not;
    /// the rest is filled in by the caller. GPT-2: LayerNorm, learned positions, a plain
    /// tanh-GELU MLP, a bias on every linear layer, no RoPE.
    fn gpt2_switches(gpt2: bool) -> LlamaConfig {
        LlamaConfig {
            architecture: if gpt2 { "gpt2" } else { "llama" }.into(),
            n_layers: 0,
            d_model: 0,
            n_heads: 0,
            n_kv_heads: 0,
            head_dim: 0,
            d_ff: 0,
            vocab_size: 0,
            context_length: 0,
            rope_base: 10_000.0,
            rms_eps: 0.0,
            rope_layout: RopeLayout::HalfSplit,
            tied_embeddings: false,
            qkv_bias: gpt2,
            qk_norm: false,
            sliding_window: None,
            rope_freq_factors: None,
            ffn_activation: if gpt2 { GateActivation::GeluTanh } else { GateActivation::Silu },
            scale_embeddings: false,
            post_norms: false,
            local_layers: None,
            query_pre_attn_scalar: None,
            attn_logit_softcap: None,
            final_logit_softcap: None,
            norm: if gpt2 { NormKind::Layer } else { NormKind::Rms },
            positions: if gpt2 { Positions::Learned } else { Positions::Rope },
            mlp: if gpt2 { MlpKind::Plain } else { MlpKind::Gated },
            linear_bias: gpt2,
        }
    }

    /// GPT-2's config.json (`GPT2LMHeadModel`): its own field names (`n_embd`, `n_layer`, ...),
    /// the context is `n_positions` (the rows of its position table), the MLP `n_inner` wide
    /// (4·n_embd when null). Only `gelu_new` (tanh GELU) is computed; switches that change the
    /// attention's scaling are refused by name.
    fn from_hf_gpt2(
        v: &serde_json::Value,
        file: &str,
        uint: &dyn Fn(&str) -> Result<usize, ModelError>,
        float_or: &dyn Fn(&str, f64) -> Result<f32, ModelError>,
    ) -> Result<Self, ModelError> {
        let activation = v["activation_function"].as_str().unwrap_or("gelu_new");
        if activation != "gelu_new" {
            return Err(bad(file, format!("activation_function {activation:?} is not supported (gelu_new)")));
        }
        if v["scale_attn_by_inverse_layer_idx"].as_bool() == Some(true) {
            return Err(bad(file, "scale_attn_by_inverse_layer_idx is not supported".into()));
        }
        if v["scale_attn_weights"].as_bool() == Some(false) {
            return Err(bad(file, "scale_attn_weights false (unscaled attention) is not supported".into()));
        }
        let d_model = uint("n_embd")?;
        let n_heads = uint("n_head")?;
        let config = LlamaConfig {
            n_layers: uint("n_layer")?,
            d_model,
            n_heads,
            n_kv_heads: n_heads,
            head_dim: d_model / n_heads.max(1),
            d_ff: if v["n_inner"].is_null() { 4 * d_model } else { uint("n_inner")? },
            vocab_size: uint("vocab_size")?,
            context_length: uint("n_positions")?,
            rms_eps: float_or("layer_norm_epsilon", 1e-5)?,
            tied_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(true),
            ..LlamaConfig::gpt2_switches(true)
        };
        if config.n_heads > 0 && !config.d_model.is_multiple_of(config.n_heads) {
            return Err(bad(file, format!("n_embd {} is not a multiple of n_head {}", config.d_model, config.n_heads)));
        }
        config.validate(file)?;
        Ok(config)
    }

    /// The context clamped to the sliding window: up to the window, attending to every earlier
    /// token is the same computation, so a longer sequence is refused rather than computed
    /// differently.
    fn bounded_by_its_window(mut self) -> Self {
        self.context_length = self.context_length.min(self.sliding_window.unwrap_or(usize::MAX));
        self
    }

    fn validate(&self, file: &str) -> Result<(), ModelError> {
        let positive = [
            ("layers", self.n_layers),
            ("width", self.d_model),
            ("heads", self.n_heads),
            ("kv heads", self.n_kv_heads),
            ("head dim", self.head_dim),
            ("ffn width", self.d_ff),
            ("vocab", self.vocab_size),
            ("context length", self.context_length),
        ];
        for (what, value) in positive {
            if value == 0 {
                return Err(bad(file, format!("{what} is 0")));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(bad(
                file,
                format!("{} heads are not a multiple of {} kv heads", self.n_heads, self.n_kv_heads),
            ));
        }
        if self.positions == Positions::Rope && !self.head_dim.is_multiple_of(2) {
            return Err(bad(file, format!("head dim {} is odd; RoPE rotates pairs", self.head_dim)));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0 && self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return Err(bad(file, format!("rope base {} / rms eps {} out of range", self.rope_base, self.rms_eps)));
        }
        if let Some(local) = self.local_layers {
            if !(local.rope_base.is_finite() && local.rope_base > 1.0 && local.period > 0) {
                return Err(bad(file, format!("local layers {local:?} out of range")));
            }
        }
        let positive = [
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("attention soft cap", self.attn_logit_softcap),
            ("final logit soft cap", self.final_logit_softcap),
        ];
        for (what, value) in positive {
            if let Some(x) = value.filter(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(bad(file, format!("{what} {x} is not a positive number")));
            }
        }
        if let Some(factors) = &self.rope_freq_factors {
            if factors.len() != self.head_dim / 2 || !factors.iter().all(|f| f.is_finite() && *f > 0.0) {
                return Err(bad(
                    file,
                    format!("RoPE needs {} finite positive frequency factors, got {factors:?}", self.head_dim / 2),
                ));
            }
        }
        // Keeps every derived size (and the CPU forward's scratch buffers) far from overflow.
        const LIMIT: usize = 1 << 20;
        if [self.n_layers, self.d_model, self.q_dim(), self.d_ff, self.vocab_size].iter().any(|&x| x > LIMIT) {
            return Err(bad(file, format!("a dimension exceeds {LIMIT}")));
        }
        Ok(())
    }
}

/// Gemma 3's local layers from its config.json: `layer_types` (newer transformers) or
/// `sliding_window_pattern`, and `rope_local_base_freq`. Only the pattern "every period-th layer
/// global" is known to the forward; another is refused.
fn gemma3_local_layers(v: &serde_json::Value, file: &str) -> Result<LocalLayers, ModelError> {
    let rope_base = v["rope_local_base_freq"].as_f64().unwrap_or(10_000.0) as f32;
    if let Some(types) = v["layer_types"].as_array() {
        let global: Vec<bool> = types.iter().map(|t| t.as_str() == Some("full_attention")).collect();
        let period = global.iter().position(|&g| g).map_or(global.len() + 1, |first| first + 1);
        let local = LocalLayers { period, rope_base };
        if global.iter().enumerate().any(|(l, &g)| g != ((l + 1) % period == 0)) {
            return Err(bad(file, "layer_types is not every n-th layer full_attention; not supported".into()));
        }
        return Ok(local);
    }
    let period = v["sliding_window_pattern"].as_u64().unwrap_or(6) as usize;
    if period == 0 {
        return Err(bad(file, "sliding_window_pattern is 0".into()));
    }
    Ok(LocalLayers { period, rope_base })
}

fn bad(file: &str, message: String) -> ModelError {
    ModelError::BadConfig { file: file.into(), message }
}

fn get_str<'a>(gguf: &'a GgufFile, key: &str) -> Result<&'a str, ModelError> {
    let value = gguf.get(key).ok_or_else(|| missing(gguf, key))?;
    value.as_str().ok_or_else(|| wrong_type(gguf, key, "string", value.type_name()))
}

fn get_usize(gguf: &GgufFile, key: &str) -> Result<usize, ModelError> {
    let value = gguf.get(key).ok_or_else(|| missing(gguf, key))?;
    let n = value.as_u64().ok_or_else(|| wrong_type(gguf, key, "unsigned integer", value.type_name()))?;
    usize::try_from(n).map_err(|_| bad(&gguf.file, format!("{key} = {n} does not fit in memory")))
}

fn get_f32(gguf: &GgufFile, key: &str) -> Result<f32, ModelError> {
    let value = gguf.get(key).ok_or_else(|| missing(gguf, key))?;
    Ok(value.as_f64().ok_or_else(|| wrong_type(gguf, key, "number", value.type_name()))? as f32)
}

fn missing(gguf: &GgufFile, key: &str) -> ModelError {
    FormatError::MissingMetadata { file: gguf.file.clone(), key: key.into() }.into()
}

fn wrong_type(gguf: &GgufFile, key: &str, expected: &str, found: &str) -> ModelError {
    FormatError::WrongMetadataType {
        file: gguf.file.clone(),
        key: key.into(),
        expected: expected.into(),
        found: found.into(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2_HF: &str = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "rms_norm_eps": 1e-05, "rope_theta": 100000,
        "max_position_embeddings": 8192, "vocab_size": 49152, "tie_word_embeddings": true,
        "rope_scaling": null}"#;

    #[test]
    fn hf_llama_config() {
        let c = LlamaConfig::from_hf_json(SMOLLM2_HF.as_bytes(), "config.json").unwrap();
        assert_eq!((c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim), (30, 576, 9, 3, 64));
        assert_eq!((c.d_ff, c.vocab_size, c.context_length), (1536, 49152, 8192));
        assert_eq!((c.rope_base, c.rms_eps), (100000.0, 1e-5));
        assert_eq!(c.rope_layout, RopeLayout::HalfSplit);
        assert!(c.tied_embeddings && !c.qkv_bias);
        assert_eq!(c.architecture, "llama");
    }

    #[test]
    fn hf_qwen2_has_qkv_bias_and_defaults() {
        let json = SMOLLM2_HF
            .replace("LlamaForCausalLM", "Qwen2ForCausalLM")
            .replace(r#""num_key_value_heads": 3,"#, "")
            .replace(r#""rope_theta": 100000,"#, "");
        let c = LlamaConfig::from_hf_json(json.as_bytes(), "config.json").unwrap();
        assert!(c.qkv_bias);
        assert_eq!(c.architecture, "qwen2");
        assert_eq!(c.n_kv_heads, 9, "defaults to the head count");
        assert_eq!(c.rope_base, 10_000.0, "HF default");
    }

    /// Qwen3-0.6B's config.json: head_dim 128 with a width of 1024 and 16 heads, no q/k/v bias.
    #[test]
    fn hf_qwen3_has_query_key_norms_and_its_own_head_dim() {
        let json = r#"{"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "head_dim": 128,
            "hidden_size": 1024, "intermediate_size": 3072, "max_position_embeddings": 40960,
            "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
            "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
            "tie_word_embeddings": true, "vocab_size": 151936}"#;
        let c = LlamaConfig::from_hf_json(json.as_bytes(), "config.json").unwrap();
        assert_eq!(c.architecture, "qwen3");
        assert!(c.qk_norm && !c.qkv_bias);
        assert_eq!((c.head_dim, c.q_dim(), c.kv_dim()), (128, 2048, 1024));
        let llama = LlamaConfig::from_hf_json(SMOLLM2_HF.as_bytes(), "config.json").unwrap();
        assert!(!llama.qk_norm);
    }

    /// Mistral-7B-v0.1 attends to a window of 4096; Qwen2 names one and turns it off.
    #[test]
    fn a_sliding_window_bounds_the_context_unless_it_is_turned_off() {
        let mistral = SMOLLM2_HF
            .replace("LlamaForCausalLM", "MistralForCausalLM")
            .replace(r#""rope_scaling": null"#, r#""rope_scaling": null, "sliding_window": 4096"#);
        let c = LlamaConfig::from_hf_json(mistral.as_bytes(), "config.json").unwrap();
        assert_eq!((c.sliding_window, c.context_length), (Some(4096), 4096));
        let off = mistral
            .replace("MistralForCausalLM", "Qwen2ForCausalLM")
            .replace(r#""sliding_window": 4096"#, r#""sliding_window": 4096, "use_sliding_window": false"#);
        let c = LlamaConfig::from_hf_json(off.as_bytes(), "config.json").unwrap();
        assert_eq!((c.sliding_window, c.context_length), (None, 8192));
    }

    /// Gemma 2 2B's config.json: its caps, window and query scalar (its head_dim: None). A cap of
    /// null is off, an absent one Gemma2Config's default; a cap on a llama is refused by name.
    #[test]
    fn hf_gemma2_reads_its_soft_caps_window_and_query_scalar() {
        let json = r#"{"architectures": ["Gemma2ForCausalLM"], "hidden_size": 2304, "intermediate_size": 9216,
            "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096,
            "query_pre_attn_scalar": 256, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
            "hidden_activation": "gelu_pytorch_tanh", "vocab_size": 256000, "tie_word_embeddings": true}"#;
        let c = LlamaConfig::from_hf_json(json.as_bytes(), "config.json").unwrap();
        assert_eq!(c.architecture, "gemma2");
        assert!(!c.qk_norm && c.post_norms && c.scale_embeddings && c.local_layers.is_none());
        assert_eq!((c.attn_logit_softcap, c.final_logit_softcap), (Some(50.0), Some(30.0)));
        assert_eq!((c.sliding_window, c.context_length, c.query_pre_attn_scalar), (Some(4096), 4096, None));
        let defaults = json
            .replace(r#""attn_logit_softcapping": 50.0"#, r#""attn_logit_softcapping": null"#)
            .replace(r#""final_logit_softcapping": 30.0,"#, "")
            .replace(r#""sliding_window": 4096,"#, "");
        let c = LlamaConfig::from_hf_json(defaults.as_bytes(), "config.json").unwrap();
        assert_eq!((c.attn_logit_softcap, c.final_logit_softcap, c.sliding_window), (None, Some(30.0), Some(4096)));
        // Gemma 2 27B: 4608 wide, 32 heads of 128, queries scaled by 1/√144.
        let big = json.replace(r#""query_pre_attn_scalar": 256"#, r#""query_pre_attn_scalar": 144"#);
        assert_eq!(LlamaConfig::from_hf_json(big.as_bytes(), "c").unwrap().attention_scale(), 1.0 / 12.0);

        let err = |json: &str| LlamaConfig::from_hf_json(json.as_bytes(), "cfg.json").unwrap_err().to_string();
        assert!(err(&json.replace("50.0", "-1")).contains("attention soft cap -1 is not a positive number"));
        let capped_llama =
            SMOLLM2_HF.replace(r#""rope_scaling": null"#, r#""rope_scaling": null, "final_logit_softcapping": 30"#);
        assert!(err(&capped_llama).contains("final_logit_softcapping is not supported for llama"));
    }

    /// GPT-2 (124M)'s config.json: its own field names, n_inner null for 4·n_embd, tied.
    const GPT2_HF: &str = r#"{"architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-05, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_inner": null,
        "n_layer": 12, "n_positions": 1024, "scale_attn_weights": true, "vocab_size": 50257}"#;

    #[test]
    fn hf_gpt2_config_has_its_switches_and_refuses_what_it_does_not_compute() {
        let c = LlamaConfig::from_hf_json(GPT2_HF.as_bytes(), "config.json").unwrap();
        assert_eq!(c.architecture, "gpt2");
        assert_eq!((c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim), (12, 768, 12, 12, 64));
        assert_eq!((c.d_ff, c.vocab_size, c.context_length, c.rms_eps), (3072, 50257, 1024, 1e-5));
        assert_eq!((c.norm, c.positions, c.mlp), (NormKind::Layer, Positions::Learned, MlpKind::Plain));
        assert!(c.linear_bias && c.qkv_bias && c.tied_embeddings && !c.has_linear("ffn_gate"));
        let err = |json: String| LlamaConfig::from_hf_json(json.as_bytes(), "cfg.json").unwrap_err().to_string();
        assert!(err(GPT2_HF.replace("gelu_new", "relu")).contains("activation_function \"relu\""));
        let inverse = GPT2_HF.replace(r#""n_inner": null"#, r#""scale_attn_by_inverse_layer_idx": true"#);
        assert!(err(inverse).contains("scale_attn_by_inverse_layer_idx"));
        assert!(err(GPT2_HF.replace(r#""n_head": 12"#, r#""n_head": 7"#)).contains("not a multiple of n_head 7"));
    }

    #[test]
    fn hf_config_errors_name_the_problem() {
        let err = |json: &str| LlamaConfig::from_hf_json(json.as_bytes(), "cfg.json").unwrap_err().to_string();
        assert!(err("{not json").contains("cfg.json: invalid JSON"));
        assert!(err(&SMOLLM2_HF.replace("LlamaForCausalLM", "BertModel"))
            .contains("unsupported architecture \"BertModel\""));
        assert!(err(&SMOLLM2_HF.replace(r#""hidden_size": 576,"#, "")).contains("\"hidden_size\" is missing"));
        assert!(err(&SMOLLM2_HF.replace(r#""rope_scaling": null"#, r#""rope_scaling": {"type": "yarn"}"#))
            .contains("rope_scaling \"yarn\" is not supported"));
        assert!(err(&SMOLLM2_HF.replace(r#""rope_scaling": null"#, r#""rope_scaling": {"rope_type": "llama3"}"#))
            .contains("rope_scaling.low_freq_factor is missing"));
        assert!(err(&SMOLLM2_HF.replace(r#""num_key_value_heads": 3"#, r#""num_key_value_heads": 4"#))
            .contains("not a multiple of 4 kv heads"));
        assert!(
            err(&SMOLLM2_HF.replace(r#""num_hidden_layers": 30"#, r#""num_hidden_layers": 0"#)).contains("layers is 0")
        );
    }
}
