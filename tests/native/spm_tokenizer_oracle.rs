//! SentencePiece vocabularies (`tokenizer.ggml.model` = "llama") against Google's `sentencepiece`:
//! tests/oracle/spm_tokenizer.py trains a small BPE model, writes its vocabulary as llama.cpp's
//! converter does, and encodes the hard strings; the tokenizer built from that GGUF must give the
//! same ids, decodings and token texts, with and without the space prefix. Also the typed errors
//! for malformed vocabularies, and a tiny llama model with such a vocabulary (the fuzz seed).
use crate::common::{repo, run_oracle, scratch};
use crate::tokenizer_oracle::TEXTS;

use quantscope::formats::gguf::{write_gguf, GgufFile, MetadataValue as V};
use quantscope::formats::tokenizer::TextTokenizer;
use quantscope::model::Model;
use quantscope::FormatError;

/// What the SentencePiece oracles (spm_tokenizer.py, gguf_sentencepiece.py) print for one string.
#[derive(serde::Deserialize)]
pub(crate) struct Expected {
    /// The ids llama.cpp's encoding gives, made by sentencepiece stretch by stretch.
    ids: Vec<u32>,
    decoded: String,
    pieces: Vec<String>,
    /// sentencepiece's encoding of the whole string.
    sentencepiece_ids: Vec<u32>,
}

/// `tokenizer` gives the oracle's ids (after its BOS), decodings and token texts on every TEXTS.
pub(crate) fn assert_matches_sentencepiece(tokenizer: &TextTokenizer, expected: &[Expected], what: &str) {
    assert_eq!(expected.len(), TEXTS.len(), "{what}: the oracle's answers");
    let bos = tokenizer.bos.expect("BOS");
    for (text, want) in TEXTS.iter().zip(expected) {
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(ids[0], bos, "{what}: BOS first in {text:?}");
        assert_eq!(ids[1..], want.ids, "{what}: ids of {text:?}");
        assert_eq!(tokenizer.decode(&ids[1..]).unwrap(), want.decoded, "{what}: decode of {text:?}");
        let pieces: Vec<String> = ids[1..].iter().map(|&id| tokenizer.token_text(id)).collect();
        assert_eq!(pieces, want.pieces, "{what}: token texts of {text:?}");
    }
}

/// The TEXTS where llama.cpp's encoding is not sentencepiece's encoding of the whole string.
pub(crate) fn where_llama_cpp_differs(expected: &[Expected]) -> Vec<&'static str> {
    TEXTS.iter().zip(expected).filter(|(_, e)| e.ids != e.sentencepiece_ids).map(|(t, _)| *t).collect()
}

/// The hard string with user-defined symbols (`<|im_start|>`, `<|im_end|>` in the oracle's model).
const WITH_USER_DEFINED_SYMBOLS: &str = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";

fn trained_vocabulary(add_space_prefix: bool) -> (TextTokenizer, Vec<Expected>) {
    let file = scratch("spm_tokenizer").join(format!("vocab-space-prefix-{add_space_prefix}.gguf"));
    let out = run_oracle(
        "spm_tokenizer.py",
        &[&file.display().to_string(), &add_space_prefix.to_string()],
        &serde_json::to_string(TEXTS).unwrap(),
    );
    let bytes = std::fs::read(&file).unwrap();
    let tokenizer = TextTokenizer::from_gguf(&GgufFile::parse(&bytes, "spm.gguf").unwrap()).unwrap();
    (tokenizer, serde_json::from_str(&out).unwrap())
}

#[test]
fn sentencepiece_vocabulary_matches_sentencepiece_with_and_without_the_space_prefix() {
    for add_space_prefix in [true, false] {
        let what = format!("add_space_prefix={add_space_prefix}");
        let (tokenizer, expected) = trained_vocabulary(add_space_prefix);
        // The oracle's file leaves add_bos_token and the BOS id to llama.cpp's defaults.
        assert_eq!(tokenizer.token_text(tokenizer.bos.expect("BOS")), "<s>", "{what}");
        assert_matches_sentencepiece(&tokenizer, &expected, &what);
        // llama.cpp (and so this crate) encodes the text after a user-defined or control token
        // on its own, with its own space prefix; sentencepiece prefixes the whole text once. With
        // the prefix on, the two differ exactly on the string with such tokens, nowhere else.
        let known = if add_space_prefix { vec![WITH_USER_DEFINED_SYMBOLS] } else { vec![] };
        assert_eq!(
            where_llama_cpp_differs(&expected),
            known,
            "{what}: strings where llama.cpp's encoding is not sentencepiece's"
        );
    }
}

#[test]
fn control_token_text_is_the_control_token_as_llama_cpp_parses_special_tokens() {
    let (tokenizer, _) = trained_vocabulary(true);
    let control = tokenizer.inner().token_to_id("<|ctrl|>").expect("the oracle's control symbol");
    let ids = tokenizer.encode("<|ctrl|>The").unwrap();
    assert_eq!(ids[..2], [tokenizer.bos.unwrap(), control], "{ids:?}");
    assert_eq!(tokenizer.token_text(ids[2]), " T", "the text after a control token has its space prefix");
}

/// Our tokenizer.json of a SentencePiece vocabulary gives the same ids in Hugging Face's Python
/// `tokenizers` (the page and the CLI export it).
#[test]
fn sentencepiece_vocabulary_as_tokenizer_json_encodes_alike_in_python() {
    let (tokenizer, _) = trained_vocabulary(true);
    let file = scratch("spm_tokenizer").join("tokenizer.json");
    std::fs::write(&file, tokenizer.to_json().unwrap()).unwrap();
    let out =
        run_oracle("tokenizer.py", &["json", &file.display().to_string()], &serde_json::to_string(TEXTS).unwrap());
    let python: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    for (text, want) in TEXTS.iter().zip(&python) {
        let want: Vec<u32> = serde_json::from_value(want["ids"].clone()).unwrap();
        assert_eq!(tokenizer.encode(text).unwrap(), want, "ids of {text:?}");
    }
}

/// A SentencePiece vocabulary of 12 tokens: control, unknown, byte, user-defined and normal
/// pieces, scores ranking `▁a` before `ab` before `▁ab`.
fn tiny_spm_vocabulary() -> Vec<(String, V)> {
    let pieces: [(&str, f32, i32); 12] = [
        ("<unk>", 0.0, 2),
        ("<s>", 0.0, 3),
        ("</s>", 0.0, 3),
        ("<0x0A>", 0.0, 6),
        ("\u{2581}", -1.0, 1),
        ("a", -2.0, 1),
        ("b", -3.0, 1),
        ("\u{2581}a", -4.0, 1),
        ("ab", -5.0, 1),
        ("\u{2581}ab", -6.0, 1),
        ("<|user|>", 0.0, 4),
        ("c", -7.0, 1),
    ];
    vec![
        ("tokenizer.ggml.model".into(), V::String("llama".into())),
        ("tokenizer.ggml.tokens".into(), V::Array(pieces.iter().map(|p| V::String(p.0.into())).collect())),
        ("tokenizer.ggml.scores".into(), V::Array(pieces.iter().map(|p| V::F32(p.1)).collect())),
        ("tokenizer.ggml.token_type".into(), V::Array(pieces.iter().map(|p| V::I32(p.2)).collect())),
        ("tokenizer.ggml.unknown_token_id".into(), V::U32(0)),
    ]
}

fn load_vocabulary(metadata: &[(String, V)]) -> Result<TextTokenizer, FormatError> {
    TextTokenizer::from_gguf(&GgufFile::parse(&write_gguf(metadata, &[], 32), "vocab.gguf").unwrap())
}

/// The tiny vocabulary with `key` set to `value` (removed when `None`).
fn with(key: &str, value: Option<V>) -> Vec<(String, V)> {
    let mut metadata: Vec<(String, V)> = tiny_spm_vocabulary().into_iter().filter(|(k, _)| k != key).collect();
    metadata.extend(value.map(|v| (key.to_string(), v)));
    metadata
}

fn error_of(metadata: &[(String, V)]) -> String {
    load_vocabulary(metadata).err().expect("a malformed vocabulary loaded").to_string()
}

#[test]
fn tiny_sentencepiece_vocabulary_encodes_by_score_with_bos_prefix_and_bytes() {
    let tokenizer = load_vocabulary(&tiny_spm_vocabulary()).unwrap();
    assert_eq!(tokenizer.encode("ab a\n").unwrap(), [1, 9, 7, 3]);
    assert_eq!(tokenizer.encode("<|user|>a").unwrap(), [1, 10, 7]);
    assert_eq!(tokenizer.decode(&[9, 7, 3]).unwrap(), "ab a\n");
    assert_eq!(tokenizer.decode_continuation(&[9, 7]).unwrap(), " ab a");
    assert_eq!(tokenizer.token_text(9), " ab");
    assert_eq!((tokenizer.bos, tokenizer.eos), (Some(1), Some(2)));

    let without_prefix = load_vocabulary(&with("tokenizer.ggml.add_space_prefix", Some(V::Bool(false)))).unwrap();
    assert_eq!(without_prefix.encode("ab a").unwrap(), [1, 8, 7]);
    let with_eos = with("tokenizer.ggml.add_eos_token", Some(V::Bool(true)));
    assert_eq!(load_vocabulary(&with_eos).unwrap().encode("a").unwrap(), [1, 7, 2]);
    let no_bos = with("tokenizer.ggml.add_bos_token", Some(V::Bool(false)));
    assert_eq!(load_vocabulary(&no_bos).unwrap().encode("a").unwrap(), [7]);
}

#[test]
fn unsupported_tokenizer_kinds_name_the_kind_and_the_supported_ones() {
    for kind in ["bert", "t5", "rwkv"] {
        let err = error_of(&with("tokenizer.ggml.model", Some(V::String(kind.into()))));
        assert!(err.contains(&format!("{kind:?}")) && err.contains("gpt2") && err.contains("llama"), "{err}");
    }
}

#[test]
fn malformed_sentencepiece_metadata_names_the_key_and_index() {
    let scores = "tokenizer.ggml.scores";
    let Err(FormatError::MissingMetadata { key, .. }) = load_vocabulary(&with(scores, None)) else {
        panic!("a vocabulary without scores loaded or gave another error");
    };
    assert_eq!(key, scores);

    let short = error_of(&with(scores, Some(V::Array(vec![V::F32(0.0); 11]))));
    assert!(short.contains(scores) && short.contains("11") && short.contains("12"), "{short}");

    // GGUF arrays hold one type: a score that is not a number is a whole array of strings.
    let not_a_number = error_of(&with(scores, Some(V::Array(vec![V::String("high".into()); 12]))));
    assert!(not_a_number.contains("tokenizer.ggml.scores[0] is not a number"), "{not_a_number}");

    let unknown = error_of(&with("tokenizer.ggml.unknown_token_id", Some(V::U32(12))));
    assert!(unknown.contains("tokenizer.ggml.unknown_token_id") && unknown.contains("12"), "{unknown}");

    let types = error_of(&with("tokenizer.ggml.token_type", Some(V::Array(vec![V::I32(1); 3]))));
    assert!(types.contains("tokenizer.ggml.token_type") && types.contains('3'), "{types}");

    let not_an_integer = error_of(&with("tokenizer.ggml.token_type", Some(V::Array(vec![V::F32(1.0); 12]))));
    assert!(not_an_integer.contains("tokenizer.ggml.token_type[0] is not an integer"), "{not_an_integer}");

    let prefix = error_of(&with("tokenizer.ggml.add_space_prefix", Some(V::String("yes".into()))));
    assert!(prefix.contains("tokenizer.ggml.add_space_prefix") && prefix.contains("bool"), "{prefix}");
}

/// The tiny llama fuzz seed's weights with the tiny SentencePiece vocabulary in place of its
/// byte-level one: it loads and predicts, and is written to target/oracle/ as the model_load
/// fuzz seed `seed-tiny-spm-vocab.gguf`.
#[test]
fn a_tiny_llama_with_a_sentencepiece_vocabulary_loads_and_predicts() {
    let llama = std::fs::read(repo().join("fuzz/corpus/model_load/seed-tiny-llama.gguf")).unwrap();
    let gguf = GgufFile::parse(&llama, "seed-tiny-llama.gguf").unwrap();
    let metadata: Vec<(String, V)> = (gguf.metadata.iter())
        .filter(|(k, _)| !k.starts_with("tokenizer."))
        .cloned()
        .chain(tiny_spm_vocabulary())
        .collect();
    let tensors: Vec<_> = (gguf.tensors.iter())
        .map(|t| (t.name.clone(), t.dims.clone(), t.dtype, gguf.tensor_data(&llama, t).to_vec()))
        .collect();
    let bytes = write_gguf(&metadata, &tensors, 32);
    std::fs::write(scratch("spm_tokenizer").join("seed-tiny-spm-vocab.gguf"), &bytes).unwrap();
    let model = Model::from_gguf(bytes, "seed-tiny-spm-vocab.gguf", &mut |_| {}).unwrap();
    let prediction = model.predict("ab a", 3).unwrap();
    assert_eq!(prediction.tokens, [1, 9, 7]);
    assert!(prediction.top.iter().all(|t| t.prob.is_finite()), "{:?}", prediction.top.len());
}
