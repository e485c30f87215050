//! SentencePiece BPE vocabularies (`tokenizer.ggml.model` = "llama": Llama 2, Mistral v0.1,
//! TinyLlama, Phi-3, Gemma) as a `tokenizers` pipeline, built the way Hugging Face's
//! `LlamaConverter` builds one from a `tokenizer.model`: a GGUF stores no merges, only a score per
//! piece, and SentencePiece's BPE joins the adjacent pair whose joined piece scores highest.
//!
//! Spaces are `▁` in the pieces. With `add_space_prefix` (the default; Gemma's files say false) a
//! `▁` goes before the text; as in llama.cpp, it goes before every stretch of text between added
//! tokens, since the normalizer runs on each stretch on its own. The decoder turns `▁` back into
//! spaces and drops the one prefixed to the text.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{NormalizerWrapper, Tokenizer};

use super::{metadata_array, metadata_bool, GgufVocab, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNUSED, TOKEN_TYPE_USER_DEFINED};
use crate::error::FormatError;
use crate::formats::gguf::GgufFile;

/// SentencePiece's stand-in for a space inside pieces.
const SPACE_MARK: &str = "\u{2581}";

/// llama.cpp's unknown token when the file names none.
const DEFAULT_UNKNOWN_ID: u64 = 0;

/// A tokenizer for a SentencePiece vocabulary, and its decoder for text that follows other text
/// (one token's text, a continuation): that one keeps a leading space.
pub(super) fn sentencepiece_tokenizer(
    gguf: &GgufFile,
    vocab: &GgufVocab,
) -> Result<(Tokenizer, DecoderWrapper), FormatError> {
    let invalid = |message: String| FormatError::Invalid { file: gguf.file.clone(), message };
    let scores = scores(gguf, vocab.names.len())?;
    let unknown =
        super::token_id(gguf, "tokenizer.ggml.unknown_token_id", vocab.names.len(), Some(DEFAULT_UNKNOWN_ID))?
            .ok_or_else(|| invalid(format!("no unknown token: the vocabulary has {} tokens", vocab.names.len())))?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.token_ids(), merges_by_score(vocab, &scores))
        .unk_token(vocab.names[unknown as usize].to_string())
        .byte_fallback(true)
        .fuse_unk(true)
        .build()
        .map_err(|e| invalid(format!("cannot build the BPE model: {e}")))?;

    let add_space_prefix = metadata_bool(gguf, "tokenizer.ggml.add_space_prefix", true)?;
    let escape_spaces = NormalizerWrapper::Replace(Replace::new(" ", SPACE_MARK).map_err(|e| invalid(e.to_string()))?);
    let normalizer = if add_space_prefix {
        NormalizerWrapper::Sequence(NormalizerSequence::new(vec![
            NormalizerWrapper::Prepend(Prepend::new(SPACE_MARK.into())),
            escape_spaces,
        ]))
    } else {
        escape_spaces
    };

    let unescape_spaces = Replace::new(SPACE_MARK, " ").map_err(|e| invalid(e.to_string()))?;
    let mut steps = vec![
        DecoderWrapper::Replace(unescape_spaces),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    let infix_decoder = DecoderWrapper::Sequence(DecoderSequence::new(steps.clone()));
    if add_space_prefix {
        steps.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_normalizer(Some(normalizer));
    tokenizer.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(steps))));
    Ok((tokenizer, infix_decoder))
}

/// `tokenizer.ggml.scores`: one number per token.
fn scores(gguf: &GgufFile, n_tokens: usize) -> Result<Vec<f32>, FormatError> {
    const KEY: &str = "tokenizer.ggml.scores";
    let invalid = |message: String| FormatError::Invalid { file: gguf.file.clone(), message };
    let values = metadata_array(gguf, KEY)?;
    if values.len() != n_tokens {
        return Err(invalid(format!("{KEY} has {} entries for {n_tokens} tokens", values.len())));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v.as_f64().map(|s| s as f32).ok_or_else(|| invalid(format!("{KEY}[{i}] is not a number"))))
        .collect()
}

/// Pieces SentencePiece's BPE may join pairs into; control, unknown and byte pieces it never
/// forms (its `pieces_` map, model_interface.cc).
fn is_mergeable(token_type: i64) -> bool {
    matches!(token_type, TOKEN_TYPE_NORMAL | TOKEN_TYPE_USER_DEFINED | TOKEN_TYPE_UNUSED)
}

/// Every split of a piece into two pieces of the vocabulary is a merge, ranked by the joined
/// piece's score (highest first), then by the joined piece's id and the halves' ids, as
/// `SentencePieceExtractor` orders them.
fn merges_by_score(vocab: &GgufVocab, scores: &[f32]) -> Vec<(String, String)> {
    let ids: HashMap<&str, usize> = vocab.names.iter().enumerate().map(|(id, &name)| (name, id)).collect();
    let mut ranked = Vec::new();
    for (joined, name) in vocab.names.iter().enumerate() {
        if !is_mergeable(vocab.types[joined]) {
            continue;
        }
        for (split, _) in name.char_indices().skip(1) {
            let (left, right) = name.split_at(split);
            if let (Some(&left), Some(&right)) = (ids.get(left), ids.get(right)) {
                ranked.push((scores[joined], joined, left, right));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3))));
    ranked
        .into_iter()
        .map(|(_, _, left, right)| (vocab.names[left].to_string(), vocab.names[right].to_string()))
        .collect()
}
