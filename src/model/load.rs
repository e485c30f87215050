//! Model = config + weights + tokenizer, assembled from a GGUF file or from safetensors +
//! config.json + tokenizer.json; plus the small queries the front ends share (summary, predict).

use serde::Serialize;

use crate::error::{FormatError, ModelError};
use crate::formats::ggml::{self, GgmlType};
use crate::formats::gguf::{GgufFile, GgufTensorInfo};
use crate::formats::safetensors::{self, SafetensorsTensor};
use crate::formats::tokenizer::TextTokenizer;
use crate::model::bytes::{ByteSegments, ModelBytes};
use crate::model::config::{is_gemma, LlamaConfig, MlpKind, NormKind, Positions};
use crate::model::fused::split_fused;
use crate::model::generate::{ranked, CpuBackend};
use crate::model::weights::{WeightTensor, Weights};

/// A step of long work (parsing, validating weights), for progress bars in the page and the CLI.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Progress {
    pub stage: &'static str,
    pub done: u64,
    pub total: u64,
}

pub struct Model {
    /// Where the model came from (file name), used in error messages and summaries.
    pub source: String,
    /// `general.name` of a GGUF, when it has one.
    pub name: Option<String>,
    pub config: LlamaConfig,
    pub weights: Weights,
    pub tokenizer: TextTokenizer,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub dtype: String,
    /// ggml order: shape[0] is the contiguous row length.
    pub shape: Vec<u64>,
    pub bits_per_weight: f64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub source: String,
    pub name: Option<String>,
    pub config: LlamaConfig,
    pub parameters: u64,
    pub bytes: u64,
    pub tensors: Vec<TensorSummary>,
    /// Whether the model carries a chat template (`generate --chat`, the page's Chat).
    pub has_chat_template: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopToken {
    pub id: u32,
    pub token: String,
    pub prob: f32,
    pub logit: f32,
}

/// The `--json` shape of `quantscope predict`, also what the page receives.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub model: String,
    pub prompt: String,
    pub tokens: Vec<u32>,
    pub top: Vec<TopToken>,
}

impl Model {
    /// A model from a whole GGUF file. `source` names the file in errors. Every tensor is checked
    /// for shape and for finite values before the model is returned.
    pub fn from_gguf(
        bytes: impl Into<ModelBytes>,
        source: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model, ModelError> {
        let bytes = bytes.into();
        progress(Progress { stage: "parse", done: 0, total: 1 });
        let gguf = parse_gguf_head(&bytes, source)?;
        progress(Progress { stage: "parse", done: 1, total: 1 });
        let tokenizer = TextTokenizer::from_gguf(&gguf)?;
        let tied = gguf.tensor("output.weight").is_none();
        let qkv_bias = gguf.tensor("blk.0.attn_q.bias").is_some();
        let mut config = LlamaConfig::from_gguf(&gguf, tied, qkv_bias)?;
        config.rope_freq_factors = rope_freq_factors(&gguf, &bytes, &config)?;
        let name = gguf.get("general.name").and_then(|v| v.as_str()).map(str::to_string);
        let tensors = gguf
            .tensors
            .iter()
            .map(|t| {
                Ok(WeightTensor {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    dims: t.dims.clone(),
                    start: gguf.data_offset + t.offset,
                    len: tensor_len(t, source)?,
                })
            })
            .collect::<Result<_, FormatError>>()?;
        let tensors = split_fused(&config, tensors, source)?;
        let weights = Weights::new(bytes, source, tensors)?;
        Model::assemble(source, name, config, weights, tokenizer, progress)
    }

    /// A model from a Hugging Face checkpoint: one `model.safetensors` (in memory, mapped, or
    /// read a range at a time: only its header is read to parse it), its `config.json` and
    /// `tokenizer.json`. Tensor names are mapped onto GGUF's (`model.layers.3.mlp.up_proj.weight`
    /// → `blk.3.ffn_up.weight`) so the rest of the code sees one naming scheme.
    pub fn from_safetensors(
        bytes: impl Into<ModelBytes>,
        config_json: &[u8],
        tokenizer_json: &[u8],
        source: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model, ModelError> {
        let bytes = bytes.into();
        progress(Progress { stage: "parse", done: 0, total: 1 });
        let tensors = read_safetensors_header(&bytes, source)?;
        Model::from_safetensors_table(ByteSegments::new(bytes), tensors, config_json, tokenizer_json, source, progress)
    }

    /// A Hugging Face checkpoint sharded over several safetensors files, as
    /// `model.safetensors.index.json` (`index_json`) lists them: `shards` are (file name, bytes).
    /// Every shard the index names must be given, and every tensor must sit in the shard the
    /// index says. The shards stay separate buffers (mapped files natively, files read a range at
    /// a time in the page), seen as one; errors name the shard as `{source}: {shard}`.
    pub fn from_safetensors_shards<Shard: Into<ModelBytes>>(
        index_json: &[u8],
        shards: Vec<(String, Shard)>,
        config_json: &[u8],
        tokenizer_json: &[u8],
        source: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model, ModelError> {
        progress(Progress { stage: "parse", done: 0, total: 1 });
        let index_file = format!("{source}: model.safetensors.index.json");
        let index = safetensors::read_index(index_json, &index_file)?;
        let mut shards: Vec<(String, Option<ModelBytes>)> =
            shards.into_iter().map(|(name, bytes)| (name, Some(bytes.into()))).collect();
        let mut bytes = ByteSegments::default();
        let mut tensors = Vec::new();
        for shard in index.shards() {
            let Some(shard_bytes) = shards.iter_mut().find(|(name, _)| name == shard).and_then(|(_, b)| b.take())
            else {
                return Err(FormatError::Invalid {
                    file: index_file,
                    message: format!("shard {shard:?} named by the index was not given"),
                }
                .into());
            };
            let file = format!("{source}: {shard}");
            let offset = bytes.len();
            for mut t in read_safetensors_header(&shard_bytes, &file)? {
                let misplaced = match index.shard_of(&t.name) {
                    Some(listed) if listed == shard => None,
                    Some(listed) => Some(format!("holds tensor {:?}, which the index puts in {listed:?}", t.name)),
                    None => Some(format!("holds tensor {:?}, which the index does not list", t.name)),
                };
                if let Some(message) = misplaced {
                    return Err(FormatError::Invalid { file, message }.into());
                }
                t.start += offset;
                tensors.push(t);
            }
            bytes.push(shard_bytes);
        }
        if let Some(missing) = index.tensors().find(|name| !tensors.iter().any(|t| &t.name == *name)) {
            let message = format!("tensor {missing:?} is not in its shard {:?}", index.shard_of(missing).unwrap_or(""));
            return Err(FormatError::Invalid { file: index_file, message }.into());
        }
        Model::from_safetensors_table(bytes, tensors, config_json, tokenizer_json, source, progress)
    }

    /// A Hugging Face model from its weights (`bytes` with the tensor table read from them), its
    /// config.json and tokenizer.json.
    fn from_safetensors_table(
        bytes: ByteSegments,
        table: Vec<SafetensorsTensor>,
        config_json: &[u8],
        tokenizer_json: &[u8],
        source: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model, ModelError> {
        let mut config = LlamaConfig::from_hf_json(config_json, &format!("{source}: config.json"))?;
        let tokenizer = TextTokenizer::from_json(tokenizer_json, &format!("{source}: tokenizer.json"))?;
        let mut tensors = Vec::new();
        for t in table {
            // Rotary inverse-frequency buffers are recomputed from rope_theta; GPT-2's causal
            // mask buffers (`attn.bias`, `attn.masked_bias`) are the causality the forward has.
            let gpt2_mask = config.architecture == "gpt2" && is_gpt2_mask_buffer(&t.name);
            if t.name.ends_with("rotary_emb.inv_freq") || gpt2_mask {
                continue;
            }
            let name = gguf_name(&t.name, &config.architecture).ok_or_else(|| ModelError::BadConfig {
                file: source.into(),
                message: format!("unexpected tensor {:?} for a {} model", t.name, config.architecture),
            })?;
            tensors.push(WeightTensor { name, dtype: t.dtype, dims: t.dims, start: t.start, len: t.len });
        }
        progress(Progress { stage: "parse", done: 1, total: 1 });
        config.tied_embeddings = !tensors.iter().any(|t| t.name == "output.weight");
        let mut bytes = bytes;
        if config.architecture == "gpt2" {
            transpose_conv1d(&mut bytes, &mut tensors, &config, source)?;
        }
        let mut tensors = split_fused(&config, tensors, source)?;
        if is_gemma(&config.architecture) {
            shift_norm_gains(&mut bytes, &mut tensors, source)?;
        }
        let weights = Weights::new(bytes, source, tensors)?;
        Model::assemble(source, None, config, weights, tokenizer, progress)
    }

    fn assemble(
        source: &str,
        name: Option<String>,
        config: LlamaConfig,
        weights: Weights,
        tokenizer: TextTokenizer,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model, ModelError> {
        // Frequency factors the forward does not apply (Phi-3 128k's long and short ones, picked
        // by the sequence's length): refused, not ignored.
        if let Some(t) = weights.tensors().iter().find(|t| t.name.starts_with("rope_factors")) {
            return Err(ModelError::BadConfig {
                file: source.into(),
                message: format!("tensor {:?} scales RoPE's frequencies, which is not supported yet", t.name),
            });
        }
        let model = Model { source: source.into(), name, config, weights, tokenizer };
        model.check_shapes()?;
        model.weights.check_finite(&mut |done, total| progress(Progress { stage: "validate", done, total }))?;
        Ok(model)
    }

    /// Every tensor the forward reads exists with the shape the config implies.
    fn check_shapes(&self) -> Result<(), ModelError> {
        let c = &self.config;
        let [d, q, kv, ff, vocab] = [c.d_model, c.q_dim(), c.kv_dim(), c.d_ff, c.vocab_size].map(|x| x as u64);
        let layer_norm = c.norm == NormKind::Layer;
        let mut expected: Vec<(String, Vec<u64>)> =
            vec![("token_embd.weight".into(), vec![d, vocab]), ("output_norm.weight".into(), vec![d])];
        if !c.tied_embeddings {
            expected.push(("output.weight".into(), vec![d, vocab]));
        }
        if layer_norm {
            expected.push(("output_norm.bias".into(), vec![d]));
        }
        if c.positions == Positions::Learned {
            // One row per position: the context is the table's length.
            expected.push(("position_embd.weight".into(), vec![d, c.context_length as u64]));
        }
        for l in 0..c.n_layers {
            let mut layer = vec![
                ("attn_norm.weight", vec![d]),
                ("attn_q.weight", vec![d, q]),
                ("attn_k.weight", vec![d, kv]),
                ("attn_v.weight", vec![d, kv]),
                ("attn_output.weight", vec![q, d]),
                ("ffn_norm.weight", vec![d]),
                ("ffn_up.weight", vec![d, ff]),
                ("ffn_down.weight", vec![ff, d]),
            ];
            if c.mlp == MlpKind::Gated {
                layer.push(("ffn_gate.weight", vec![d, ff]));
            }
            if layer_norm {
                layer.extend([("attn_norm.bias", vec![d]), ("ffn_norm.bias", vec![d])]);
            }
            if c.linear_bias {
                layer.extend([("attn_output.bias", vec![d]), ("ffn_up.bias", vec![ff]), ("ffn_down.bias", vec![d])]);
            }
            if c.qkv_bias {
                layer.extend([("attn_q.bias", vec![q]), ("attn_k.bias", vec![kv]), ("attn_v.bias", vec![kv])]);
            }
            if c.qk_norm {
                let head = c.head_dim as u64;
                layer.extend([("attn_q_norm.weight", vec![head]), ("attn_k_norm.weight", vec![head])]);
            }
            if c.post_norms {
                layer.extend([("post_attention_norm.weight", vec![d]), ("post_ffw_norm.weight", vec![d])]);
            }
            expected.extend(layer.into_iter().map(|(suffix, dims)| (format!("blk.{l}.{suffix}"), dims)));
        }
        for (name, dims) in expected {
            let t = self.tensor(&name)?;
            if t.dims != dims {
                return Err(ModelError::WrongShape {
                    file: self.source.clone(),
                    tensor: name,
                    found: t.dims.clone(),
                    expected: dims,
                });
            }
        }
        Ok(())
    }

    pub fn tensor(&self, name: &str) -> Result<&WeightTensor, ModelError> {
        self.weights
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor { file: self.source.clone(), tensor: name.into() })
    }

    /// The unembedding matrix: `output.weight`, or the token embeddings when they are tied.
    pub fn output_tensor(&self) -> Result<&WeightTensor, ModelError> {
        self.tensor(if self.config.tied_embeddings { "token_embd.weight" } else { "output.weight" })
    }

    pub fn summary(&self) -> ModelSummary {
        let tensors: Vec<TensorSummary> = self
            .weights
            .tensors()
            .iter()
            .map(|t| TensorSummary {
                name: t.name.clone(),
                dtype: t.dtype.name().into(),
                shape: t.dims.clone(),
                bits_per_weight: t.dtype.bits_per_weight(),
                bytes: t.len as u64,
            })
            .collect();
        ModelSummary {
            source: self.source.clone(),
            name: self.name.clone(),
            config: self.config.clone(),
            parameters: self.weights.tensors().iter().map(|t| t.n_elements()).sum(),
            bytes: tensors.iter().map(|t| t.bytes).sum(),
            tensors,
            has_chat_template: self.tokenizer.chat_template.is_some(),
        }
    }

    /// The `top_k` most likely next tokens after `prompt`, by the CPU reference forward.
    pub fn predict(&self, prompt: &str, top_k: usize) -> Result<Prediction, ModelError> {
        self.predict_with(&mut CpuBackend::new(self), prompt, top_k)
    }

    /// Softmax (in f64, so tiny probabilities keep their digits) and the `k` largest logits,
    /// ties broken by the lower id.
    pub fn top_tokens(&self, logits: &[f32], k: usize) -> Vec<TopToken> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let total: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        let (order, _) = ranked(logits);
        order
            .into_iter()
            .take(k)
            .map(|id| {
                let logit = logits[id as usize];
                TopToken {
                    id,
                    token: self.tokenizer.token_text(id),
                    prob: ((logit as f64 - max).exp() / total) as f32,
                    logit,
                }
            })
            .collect()
    }
}

/// The GGUF header of a file in memory, or of one read lazily: from a first megabyte, read again
/// four times longer while the header runs past it (a 262k-token vocabulary is several MB).
pub(crate) fn parse_gguf_head(bytes: &ModelBytes, source: &str) -> Result<GgufFile, FormatError> {
    if let Some(all) = bytes.in_memory() {
        return GgufFile::parse(all, source);
    }
    let mut head_len = (1 << 20).min(bytes.len());
    loop {
        let head = usize::try_from(head_len)
            .map_err(|_| FormatError::Io { file: source.into(), message: format!("a header of {head_len} bytes") })
            .and_then(|len| bytes.read(0, len).map_err(|message| FormatError::Io { file: source.into(), message }))?;
        match GgufFile::parse_head(&head, bytes.len(), source) {
            Err(FormatError::Truncated { .. }) if head_len < bytes.len() => head_len = (head_len * 4).min(bytes.len()),
            parsed => return parsed,
        }
    }
}

/// A GGUF tensor's length in bytes, which must fit in memory even where the file does not.
fn tensor_len(t: &GgufTensorInfo, source: &str) -> Result<usize, FormatError> {
    usize::try_from(t.n_bytes).map_err(|_| FormatError::BadTensor {
        file: source.into(),
        tensor: t.name.clone(),
        message: format!("{} bytes do not fit in this platform's memory", t.n_bytes),
    })
}

/// The tensor table of a safetensors file in memory, mapped or read lazily: the header's 8-byte
/// length, then the header, each read once through [`ModelBytes::read`] (which borrows where the
/// bytes are in memory), so that both are one code path and no tensor data is read here.
pub fn read_safetensors_header(bytes: &ModelBytes, file: &str) -> Result<Vec<SafetensorsTensor>, FormatError> {
    let io = |message| FormatError::Io { file: file.into(), message };
    let first = bytes.read(0, bytes.len().min(safetensors::HEADER_LEN_BYTES as u64) as usize).map_err(io)?;
    let header_len = safetensors::header_len(&first, bytes.len(), file)?;
    let head = bytes.read(0, safetensors::HEADER_LEN_BYTES + header_len).map_err(io)?;
    safetensors::read_header(&head, bytes.len(), file)
}

/// Llama 3.1's RoPE frequency divisors, which GGUF stores as the f32 tensor `rope_freqs.weight`
/// of `head_dim / 2` values (checked by the config).
fn rope_freq_factors(
    gguf: &GgufFile,
    bytes: &ModelBytes,
    config: &LlamaConfig,
) -> Result<Option<Vec<f32>>, ModelError> {
    let Some(t) = gguf.tensor("rope_freqs.weight") else {
        return Ok(None);
    };
    let expected = vec![config.head_dim as u64 / 2];
    if t.dtype != GgmlType::F32 || t.dims != expected {
        return Err(ModelError::WrongShape {
            file: gguf.file.clone(),
            tensor: t.name.clone(),
            found: t.dims.clone(),
            expected,
        });
    }
    let data = bytes
        .read(gguf.data_offset + t.offset, tensor_len(t, &gguf.file)?)
        .map_err(|message| FormatError::Io { file: gguf.file.clone(), message })?;
    let factors: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if let Some((i, f)) = factors.iter().enumerate().find(|(_, f)| !(f.is_finite() && **f > 0.0)) {
        return Err(ModelError::BadConfig {
            file: gguf.file.clone(),
            message: format!("rope_freqs.weight[{i}] is {f}; a frequency factor must be finite and positive"),
        });
    }
    Ok(Some(factors))
}

/// Gemma's RMSNorms multiply by `1 + w`: Hugging Face stores `w`, GGUF (llama.cpp's converter)
/// `1 + w`, which the forward reads. Each norm gain becomes f32 `1 + w`, appended to `bytes`.
fn shift_norm_gains(bytes: &mut ByteSegments, tensors: &mut [WeightTensor], source: &str) -> Result<(), ModelError> {
    let base = bytes.len();
    let mut shifted = Vec::new();
    for t in tensors.iter_mut().filter(|t| t.name.ends_with("norm.weight")) {
        let data = bytes.read(t.start, t.len).map_err(|message| FormatError::BadTensor {
            file: source.into(),
            tensor: t.name.clone(),
            message,
        })?;
        let values = ggml::dequantize(t.dtype, &data, t.n_elements() as usize, source, &t.name)?;
        let start = shifted.len();
        shifted.extend(values.iter().flat_map(|w| (1.0 + w).to_le_bytes()));
        *t = WeightTensor { dtype: GgmlType::F32, start: base + start as u64, len: shifted.len() - start, ..t.clone() };
    }
    bytes.push(shifted);
    Ok(())
}

/// Whether `name` is one of the causal-mask buffers some GPT-2 checkpoints carry
/// (`h.N.attn.bias`, `h.N.attn.masked_bias`, with or without `transformer.`): constants, not
/// weights.
fn is_gpt2_mask_buffer(name: &str) -> bool {
    let name = name.strip_prefix("transformer.").unwrap_or(name);
    name.strip_prefix("h.").and_then(|rest| rest.split_once('.')).is_some_and(|(layer, suffix)| {
        layer.parse::<usize>().is_ok() && matches!(suffix, "attn.bias" | "attn.masked_bias")
    })
}

/// Hugging Face GPT-2 tensor names (with or without the `transformer.` prefix) → GGUF names.
fn gpt2_gguf_name(hf: &str) -> Option<String> {
    if hf == "lm_head.weight" {
        return Some("output.weight".into());
    }
    let hf = hf.strip_prefix("transformer.").unwrap_or(hf);
    let fixed = match hf {
        "wte.weight" => Some("token_embd.weight"),
        "wpe.weight" => Some("position_embd.weight"),
        "ln_f.weight" => Some("output_norm.weight"),
        "ln_f.bias" => Some("output_norm.bias"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.into());
    }
    let (layer, suffix) = hf.strip_prefix("h.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = suffix.rsplit_once('.')?;
    if !matches!(kind, "weight" | "bias") {
        return None;
    }
    let gguf = match module {
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf}.{kind}"))
}

/// GPT-2's linear layers are Conv1D modules, whose weights Hugging Face stores `[in, out]`, the
/// transpose of nn.Linear's `[out, in]` that GGUF and the forward read. Each is checked against
/// the shape the config implies (naming the tensor) and replaced by its transpose, in its own
/// float format, in one buffer appended to `bytes`.
fn transpose_conv1d(
    bytes: &mut ByteSegments,
    tensors: &mut [WeightTensor],
    c: &LlamaConfig,
    source: &str,
) -> Result<(), ModelError> {
    let (d, qkv, ff) = (c.d_model as u64, (c.q_dim() + 2 * c.kv_dim()) as u64, c.d_ff as u64);
    let base = bytes.len();
    let mut transposed_all = Vec::new();
    for t in tensors.iter_mut().filter(|t| t.name.starts_with("blk.") && t.name.ends_with(".weight")) {
        // PyTorch's [in, out] is ggml's [out, in] (innermost first).
        let (hf, n_in, n_out) = match t.name.rsplit('.').nth(1) {
            Some("attn_qkv") => ("attn.c_attn", d, qkv),
            Some("attn_output") => ("attn.c_proj", c.q_dim() as u64, d),
            Some("ffn_up") => ("mlp.c_fc", d, ff),
            Some("ffn_down") => ("mlp.c_proj", ff, d),
            _ => continue,
        };
        let hf_shape = vec![n_in, n_out];
        if t.dims != [n_out, n_in] {
            return Err(ModelError::WrongShape {
                file: source.into(),
                tensor: format!("{} ({hf}, a Conv1D [in, out])", t.name),
                found: t.dims.iter().rev().copied().collect(),
                expected: hf_shape,
            });
        }
        let size = match t.dtype {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            other => {
                return Err(ModelError::BadConfig {
                    file: source.into(),
                    message: format!(
                        "tensor {:?} is {}; a Conv1D weight must be f32, f16 or bf16",
                        t.name,
                        other.name()
                    ),
                })
            }
        };
        let (n_in, n_out) = (n_in as usize, n_out as usize);
        let stored = bytes.read(t.start, t.len).map_err(|message| FormatError::BadTensor {
            file: source.into(),
            tensor: t.name.clone(),
            message,
        })?;
        // Stored row i (input i) holds its n_out outputs; transposed row o holds output o's inputs.
        let mut transposed = vec![0u8; t.len];
        for i in 0..n_in {
            for o in 0..n_out {
                let (from, to) = ((i * n_out + o) * size, (o * n_in + i) * size);
                transposed[to..to + size].copy_from_slice(&stored[from..from + size]);
            }
        }
        let start = base + transposed_all.len() as u64;
        transposed_all.extend_from_slice(&transposed);
        *t = WeightTensor { dims: vec![n_in as u64, n_out as u64], start, ..t.clone() };
    }
    bytes.push(transposed_all);
    Ok(())
}

/// Hugging Face llama/qwen2/qwen3/phi3/gemma2/gemma3/gpt2 tensor names → GGUF names.
fn gguf_name(hf: &str, architecture: &str) -> Option<String> {
    if architecture == "gpt2" {
        return gpt2_gguf_name(hf);
    }
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.into());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    // Gemma's norms around the attention and the MLP: four per block, not two.
    if is_gemma(architecture) {
        let gemma = match suffix {
            "post_attention_layernorm.weight" => Some("post_attention_norm.weight"),
            "pre_feedforward_layernorm.weight" => Some("ffn_norm.weight"),
            "post_feedforward_layernorm.weight" => Some("post_ffw_norm.weight"),
            _ => None,
        };
        if let Some(name) = gemma {
            return Some(format!("blk.{layer}.{name}"));
        }
    }
    let gguf_suffix = match suffix {
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        // Phi-3's fused projections, under GGUF's names for them; the loader splits both.
        "self_attn.qkv_proj.weight" => "attn_qkv.weight",
        "mlp.gate_up_proj.weight" => "ffn_up.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf_suffix}"))
}
