//! Tokenizers built with the `tokenizers` crate (the library Hugging Face's Python package wraps),
//! either from a GGUF's `tokenizer.ggml.*` metadata or from a Hugging Face `tokenizer.json`.
//! Only the translation of GGUF metadata into a `tokenizers` pipeline is ours.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::error::{FormatError, ModelError};
use crate::formats::gguf::{GgufFile, MetadataValue};

/// llama.cpp's `tokenizer.ggml.token_type` values that matter here.
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Regexes of the pre-tokenizers llama.cpp names in `tokenizer.ggml.pre`, as in the models'
/// own tokenizer.json files.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The GGUF pre-tokenizer names this module can rebuild.
pub const GGUF_PRE_TOKENIZERS: &[&str] = &["default", "gpt2", "smollm", "llama-bpe", "qwen2"];

#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
}

impl TextTokenizer {
    /// A byte-level BPE tokenizer (`tokenizer.ggml.model` = "gpt2") from GGUF metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self, FormatError> {
        let file = gguf.file.as_str();
        let invalid = |message: String| FormatError::Invalid { file: file.into(), message };
        let model = metadata_str(gguf, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(invalid(format!(
                "tokenizer.ggml.model {model:?} is not supported (supported: \"gpt2\" byte-level BPE)"
            )));
        }
        let tokens = metadata_array(gguf, "tokenizer.ggml.tokens")?;
        let mut vocab = Vocab::with_capacity(tokens.len());
        let mut names = Vec::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            let token =
                token.as_str().ok_or_else(|| invalid(format!("tokenizer.ggml.tokens[{id}] is not a string")))?;
            if vocab.insert(token.to_string(), id as u32).is_some() {
                return Err(FormatError::Duplicate { file: file.into(), what: "token".into(), name: token.into() });
            }
            names.push(token);
        }
        let mut merges = Vec::new();
        for (i, merge) in metadata_array(gguf, "tokenizer.ggml.merges")?.iter().enumerate() {
            let pair = merge.as_str().and_then(|m| m.split_once(' '));
            let (left, right) =
                pair.ok_or_else(|| invalid(format!("tokenizer.ggml.merges[{i}] is not \"left right\"")))?;
            merges.push((left.to_string(), right.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| invalid(format!("cannot build the BPE model: {e}")))?;

        let pre = match gguf.get("tokenizer.ggml.pre") {
            Some(v) => v.as_str().ok_or_else(|| invalid("tokenizer.ggml.pre is not a string".into()))?,
            None => "default",
        };
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer(pre).map_err(invalid)?));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

        if let Some(types) = gguf.get("tokenizer.ggml.token_type").and_then(MetadataValue::as_array) {
            let typed = |wanted: i64| -> Vec<AddedToken> {
                types
                    .iter()
                    .zip(&names)
                    .filter(|(t, _)| as_i64(t) == Some(wanted))
                    .map(|(_, name)| AddedToken::from(name.to_string(), wanted == TOKEN_TYPE_CONTROL))
                    .collect()
            };
            tokenizer.add_special_tokens(&typed(TOKEN_TYPE_CONTROL));
            tokenizer.add_tokens(&typed(TOKEN_TYPE_USER_DEFINED));
        }

        let token_id = |key: &str| -> Result<Option<u32>, FormatError> {
            match gguf.get(key).map(|v| v.as_u64()) {
                None => Ok(None),
                Some(Some(id)) if (id as usize) < names.len() => Ok(Some(id as u32)),
                Some(_) => Err(invalid(format!("{key} is not a token id below {}", names.len()))),
            }
        };
        let bos = token_id("tokenizer.ggml.bos_token_id")?;
        let eos = token_id("tokenizer.ggml.eos_token_id")?;
        let add_bos = gguf.get("tokenizer.ggml.add_bos_token").and_then(MetadataValue::as_bool).unwrap_or(false);
        if let (true, Some(bos)) = (add_bos, bos) {
            let bos_text = names[bos as usize].to_string();
            let template = TemplateProcessing::builder()
                .try_single(format!("{bos_text} $A"))
                .and_then(|b| b.try_pair(format!("{bos_text} $A {bos_text} $B")))
                .map_err(|e| invalid(format!("BOS template: {e}")))?
                .special_tokens(vec![(bos_text, bos)])
                .build()
                .map_err(|e| invalid(format!("BOS template: {e}")))?;
            tokenizer.with_post_processor(Some(template));
        }
        Ok(TextTokenizer { inner: tokenizer, bos, eos })
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
        Ok(TextTokenizer { inner, bos, eos })
    }

    /// Token ids of `text`, with the special tokens (BOS) the tokenizer's post-processor adds.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self.inner.encode(text, true).map_err(|e| ModelError::Tokenizer { message: e.to_string() })?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.decode(ids, false).map_err(|e| ModelError::Tokenizer { message: e.to_string() })
    }

    /// The text one token stands for (" Paris"); a lone byte of a multi-byte character decodes
    /// to U+FFFD, as in the Python package.
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id]).unwrap_or_else(|_| format!("<{id}>"))
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

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, String> {
    let byte_level = |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, String> {
        Split::new(SplitPattern::Regex(pattern.into()), SplitDelimiterBehavior::Isolated, false)
            .map(PreTokenizerWrapper::Split)
            .map_err(|e| format!("pre-tokenizer regex: {e}"))
    };
    Ok(match pre {
        "default" | "gpt2" => byte_level(true),
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
