//! Tokenizers built with the `tokenizers` crate (the library Hugging Face's Python package wraps),
//! either from a GGUF's `tokenizer.ggml.*` metadata (byte-level BPE here, SentencePiece BPE in
//! `spm.rs`) or from a Hugging Face `tokenizer.json`. Only the translation of GGUF metadata into
//! a `tokenizers` pipeline is ours.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Decoder, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::error::{FormatError, ModelError};
use crate::formats::gguf::{GgufFile, MetadataValue};

mod spm;

/// llama.cpp's `tokenizer.ggml.token_type` values that matter here (byte tokens, 6, are found by
/// their `<0xXX>` text).
const TOKEN_TYPE_NORMAL: i64 = 1;
const TOKEN_TYPE_UNKNOWN: i64 = 2;
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
const TOKEN_TYPE_UNUSED: i64 = 5;

/// Regexes of the pre-tokenizers llama.cpp names in `tokenizer.ggml.pre`, as in the models'
/// own tokenizer.json files.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.model` kinds this module can rebuild: byte-level BPE and SentencePiece BPE.
pub const GGUF_TOKENIZER_MODELS: &[&str] = &["gpt2", "llama"];

/// The GGUF pre-tokenizer names this module can rebuild (byte-level BPE).
pub const GGUF_PRE_TOKENIZERS: &[&str] = &["default", "gpt2", "gpt-2", "smollm", "llama-bpe", "qwen2"];

#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The decoder for text that follows other text, where the tokenizer's own decoder would drop
    /// a leading space (a SentencePiece vocabulary's, which strips the space it prefixed to the
    /// text); `None` where the two agree.
    infix_decoder: Option<DecoderWrapper>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// The Jinja chat template GGUF files carry (`tokenizer.chat_template`), for `model::chat`.
    pub chat_template: Option<String>,
}

impl TextTokenizer {
    /// A tokenizer from GGUF metadata: byte-level BPE (`tokenizer.ggml.model` = "gpt2") or
    /// SentencePiece BPE ("llama").
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self, FormatError> {
        let file = gguf.file.as_str();
        let invalid = |message: String| FormatError::Invalid { file: file.into(), message };
        let model = metadata_str(gguf, "tokenizer.ggml.model")?;
        let vocab = GgufVocab::read(gguf)?;
        let (mut tokenizer, infix_decoder, bos_by_default, default_ids) = match model {
            "gpt2" => (byte_level_tokenizer(gguf, &vocab)?, None, false, [None, None]),
            // llama.cpp's defaults for SentencePiece vocabularies: BOS added, <s> = 1, </s> = 2.
            "llama" => {
                let (tokenizer, infix) = spm::sentencepiece_tokenizer(gguf, &vocab)?;
                (tokenizer, Some(infix), true, [Some(1), Some(2)])
            }
            other => {
                return Err(invalid(format!(
                    "tokenizer.ggml.model {other:?} is not supported (supported: {})",
                    GGUF_TOKENIZER_MODELS.join(", ")
                )))
            }
        };

        // As llama.cpp matches them in the text: control and unknown tokens (only where
        // special tokens are parsed, as here) and user-defined ones, before the normalizer.
        let typed = |wanted: &[i64], special: bool| -> Vec<AddedToken> {
            (vocab.names.iter().zip(&vocab.types))
                .filter(|(_, t)| wanted.contains(t))
                .map(|(name, _)| AddedToken::from(name.to_string(), special).normalized(false))
                .collect()
        };
        tokenizer.add_special_tokens(&typed(&[TOKEN_TYPE_CONTROL, TOKEN_TYPE_UNKNOWN], true));
        tokenizer.add_tokens(&typed(&[TOKEN_TYPE_USER_DEFINED], false));

        let n_tokens = vocab.names.len();
        let [default_bos, default_eos] = default_ids;
        let bos = token_id(gguf, "tokenizer.ggml.bos_token_id", n_tokens, default_bos)?;
        let eos = token_id(gguf, "tokenizer.ggml.eos_token_id", n_tokens, default_eos)?;
        let add_bos = metadata_bool(gguf, "tokenizer.ggml.add_bos_token", bos_by_default)?;
        let add_eos = metadata_bool(gguf, "tokenizer.ggml.add_eos_token", false)?;
        let added =
            |add: bool, id: Option<u32>| id.filter(|_| add).map(|id| (vocab.names[id as usize].to_string(), id));
        if let Some(template) = special_tokens_template(added(add_bos, bos), added(add_eos, eos)).map_err(invalid)? {
            tokenizer.with_post_processor(Some(template));
        }
        let chat_template = match gguf.get("tokenizer.chat_template") {
            None => None,
            Some(v) => Some(v.as_str().ok_or_else(|| invalid("tokenizer.chat_template is not a string".into()))?.to_string()),
        };
        Ok(TextTokenizer { inner: tokenizer, infix_decoder, bos, eos, chat_template })
    }

    /// A Hugging Face `tokenizer.json`.
    pub fn from_json(bytes: &[u8], file: &str) -> Result<Self, FormatError> {
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| FormatError::Invalid {
            file: file.into(),
            message: format!("not a usable tokenizer.json: {e}"),
        })?;
        let id = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let bos = id(&["<s>", "<|begin_of_text|>", "<|endoftext|>"]);
        let eos = id(&["</s>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>"]);
        Ok(TextTokenizer { inner, infix_decoder: None, bos, eos, chat_template: None })
    }

    /// Token ids of `text`, with the special tokens (BOS) the tokenizer's post-processor adds.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self.inner.encode(text, true).map_err(|e| ModelError::Tokenizer { message: e.to_string() })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text `ids` stand for, as the start of a text (what `encode` made of it).
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.decode(ids, false).map_err(|e| ModelError::Tokenizer { message: e.to_string() })
    }

    /// The text `ids` stand for after other text (a continuation of a prompt): the same as
    /// `decode`, except that a leading space is kept.
    pub fn decode_continuation(&self, ids: &[u32]) -> Result<String, ModelError> {
        let Some(decoder) = &self.infix_decoder else { return self.decode(ids) };
        let pieces = ids
            .iter()
            .map(|&id| {
                self.inner.id_to_token(id).ok_or_else(|| ModelError::Tokenizer { message: format!("no token {id}") })
            })
            .collect::<Result<Vec<_>, _>>()?;
        decoder.decode(pieces).map_err(|e| ModelError::Tokenizer { message: e.to_string() })
    }

    /// The text one token stands for (" Paris"); a lone byte of a multi-byte character decodes
    /// to U+FFFD, as in the Python package.
    pub fn token_text(&self, id: u32) -> String {
        self.decode_continuation(&[id]).unwrap_or_else(|_| format!("<{id}>"))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The tokenizer as a Hugging Face `tokenizer.json` document.
    pub fn to_json(&self) -> Result<String, ModelError> {
        self.inner.to_string(false).map_err(|e| ModelError::Tokenizer { message: e.to_string() })
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// A byte-level BPE model with its merges and the pre-tokenizer `tokenizer.ggml.pre` names.
fn byte_level_tokenizer(gguf: &GgufFile, vocab: &GgufVocab) -> Result<Tokenizer, FormatError> {
    let invalid = |message: String| FormatError::Invalid { file: gguf.file.clone(), message };
    let mut merges = Vec::new();
    for (i, merge) in metadata_array(gguf, "tokenizer.ggml.merges")?.iter().enumerate() {
        let pair = merge.as_str().and_then(|m| m.split_once(' '));
        let (left, right) = pair.ok_or_else(|| invalid(format!("tokenizer.ggml.merges[{i}] is not \"left right\"")))?;
        merges.push((left.to_string(), right.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.token_ids(), merges)
        .build()
        .map_err(|e| invalid(format!("cannot build the BPE model: {e}")))?;
    let pre = match gguf.get("tokenizer.ggml.pre") {
        Some(v) => v.as_str().ok_or_else(|| invalid("tokenizer.ggml.pre is not a string".into()))?,
        None => "default",
    };
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(pre).map_err(invalid)?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// The vocabulary every kind of GGUF tokenizer has: token texts and their llama.cpp types.
struct GgufVocab<'a> {
    names: Vec<&'a str>,
    /// `tokenizer.ggml.token_type`, all normal where the file has none.
    types: Vec<i64>,
}

impl<'a> GgufVocab<'a> {
    fn read(gguf: &'a GgufFile) -> Result<Self, FormatError> {
        let file = gguf.file.as_str();
        let invalid = |message: String| FormatError::Invalid { file: file.into(), message };
        let tokens = metadata_array(gguf, "tokenizer.ggml.tokens")?;
        let mut seen = std::collections::HashSet::with_capacity(tokens.len());
        let mut names = Vec::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            let token =
                token.as_str().ok_or_else(|| invalid(format!("tokenizer.ggml.tokens[{id}] is not a string")))?;
            if !seen.insert(token) {
                return Err(FormatError::Duplicate { file: file.into(), what: "token".into(), name: token.into() });
            }
            names.push(token);
        }
        const TYPES: &str = "tokenizer.ggml.token_type";
        let types = match gguf.get(TYPES) {
            None => vec![TOKEN_TYPE_NORMAL; names.len()],
            Some(_) => {
                let types = metadata_array(gguf, TYPES)?;
                if types.len() != names.len() {
                    return Err(invalid(format!("{TYPES} has {} entries for {} tokens", types.len(), names.len())));
                }
                let typed = |(i, t): (usize, &MetadataValue)| {
                    as_i64(t).ok_or_else(|| invalid(format!("{TYPES}[{i}] is not an integer")))
                };
                types.iter().enumerate().map(typed).collect::<Result<_, _>>()?
            }
        };
        Ok(GgufVocab { names, types })
    }

    /// Token text → id, the BPE model's vocabulary.
    fn token_ids(&self) -> Vocab {
        self.names.iter().enumerate().map(|(id, name)| (name.to_string(), id as u32)).collect()
    }
}

/// The token id under `key` (or `default` where the file has none, if it is a token), checked
/// against the vocabulary's size.
fn token_id(gguf: &GgufFile, key: &str, n_tokens: usize, default: Option<u64>) -> Result<Option<u32>, FormatError> {
    match gguf.get(key).map(|v| v.as_u64()) {
        None => Ok(default.filter(|&id| (id as usize) < n_tokens).map(|id| id as u32)),
        Some(Some(id)) if (id as usize) < n_tokens => Ok(Some(id as u32)),
        Some(_) => Err(FormatError::Invalid {
            file: gguf.file.clone(),
            message: format!("{key} is not a token id below {n_tokens}"),
        }),
    }
}

/// The post-processor that puts BOS before and EOS after a text, where the file asks for them.
fn special_tokens_template(
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
) -> Result<Option<TemplateProcessing>, String> {
    if bos.is_none() && eos.is_none() {
        return Ok(None);
    }
    let text = |token: &Option<(String, u32)>| -> Option<String> { token.as_ref().map(|(t, _)| t.clone()) };
    let around = |sequence: &str| {
        [text(&bos), Some(sequence.to_string()), text(&eos)].into_iter().flatten().collect::<Vec<_>>().join(" ")
    };
    let template = TemplateProcessing::builder()
        .try_single(around("$A"))
        .and_then(|b| b.try_pair(format!("{} {}", around("$A"), around("$B"))))
        .map_err(|e| format!("special-token template: {e}"))?
        .special_tokens(bos.into_iter().chain(eos).collect::<Vec<_>>())
        .build()
        .map_err(|e| format!("special-token template: {e}"))?;
    Ok(Some(template))
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, String> {
    let byte_level = |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, String> {
        Split::new(SplitPattern::Regex(pattern.into()), SplitDelimiterBehavior::Isolated, false)
            .map(PreTokenizerWrapper::Split)
            .map_err(|e| format!("pre-tokenizer regex: {e}"))
    };
    Ok(match pre {
        // "gpt-2": what llama.cpp's converter writes for GPT-2 itself, GPT-2's regex as well.
        "default" | "gpt2" | "gpt-2" => byte_level(true),
        // SmolLM's tokenizer.json: every digit on its own, then GPT-2's byte-level split.
        "smollm" => PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            byte_level(true),
        ])),
        "llama-bpe" => PreTokenizerWrapper::Sequence(Sequence::new(vec![split(LLAMA3_SPLIT)?, byte_level(false)])),
        "qwen2" => PreTokenizerWrapper::Sequence(Sequence::new(vec![split(QWEN2_SPLIT)?, byte_level(false)])),
        other => {
            return Err(format!(
                "tokenizer.ggml.pre {other:?} is not supported (supported: {})",
                GGUF_PRE_TOKENIZERS.join(", ")
            ))
        }
    })
}

fn metadata_bool(gguf: &GgufFile, key: &str, default: bool) -> Result<bool, FormatError> {
    match gguf.get(key) {
        None => Ok(default),
        Some(value) => value.as_bool().ok_or_else(|| wrong_type(gguf, key, "bool", value)),
    }
}

fn metadata_str<'a>(gguf: &'a GgufFile, key: &str) -> Result<&'a str, FormatError> {
    let value =
        gguf.get(key).ok_or_else(|| FormatError::MissingMetadata { file: gguf.file.clone(), key: key.into() })?;
    value.as_str().ok_or_else(|| wrong_type(gguf, key, "string", value))
}

fn metadata_array<'a>(gguf: &'a GgufFile, key: &str) -> Result<&'a [MetadataValue], FormatError> {
    let value =
        gguf.get(key).ok_or_else(|| FormatError::MissingMetadata { file: gguf.file.clone(), key: key.into() })?;
    value.as_array().ok_or_else(|| wrong_type(gguf, key, "array", value))
}

fn wrong_type(gguf: &GgufFile, key: &str, expected: &str, value: &MetadataValue) -> FormatError {
    FormatError::WrongMetadataType {
        file: gguf.file.clone(),
        key: key.into(),
        expected: expected.into(),
        found: value.type_name().into(),
    }
}

fn as_i64(v: &MetadataValue) -> Option<i64> {
    match *v {
        MetadataValue::I8(x) => Some(x.into()),
        MetadataValue::I16(x) => Some(x.into()),
        MetadataValue::I32(x) => Some(x.into()),
        MetadataValue::I64(x) => Some(x),
        _ => v.as_u64().and_then(|x| i64::try_from(x).ok()),
    }
}
