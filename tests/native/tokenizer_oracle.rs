//! Tokenization built from GGUF metadata against Hugging Face's Python `tokenizers` package on
//! the same vocabulary, for every pre-tokenizer we can rebuild; and the tokenizer.json round trip.
use crate::common;

use common::*;
use quantscope::formats::gguf::{write_gguf, GgufFile, MetadataValue};
use quantscope::formats::tokenizer::TextTokenizer;

pub const TEXTS: &[&str] = &[
    "The capital of France is",
    "Hello, world! It's 2026; isn't it?",
    "  leading spaces,   runs   of spaces and trailing  ",
    "line one\nline two\n\n\nafter blank lines\r\nwindows\tand\ttabs",
    "emoji 🙂👍🏽 and a family 👨‍👩‍👧 and flags 🇫🇷",
    "accents: café, naïve, Ångström, São Paulo, Dvořák",
    "numbers 1234567890 3.14159 1,000,000 x²",
    "日本語のテキストと中文文本",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "code: fn main() { println!(\"{}\", x >= 0 && y != 1); }",
    "",
];

#[derive(serde::Deserialize, Debug)]
struct Expected {
    ids: Vec<u32>,
    decoded: String,
    pieces: Vec<String>,
}

fn check(tokenizer: &TextTokenizer, expected: &[Expected], what: &str) {
    for (text, want) in TEXTS.iter().zip(expected) {
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(ids, want.ids, "{what}: ids of {text:?}");
        assert_eq!(tokenizer.decode(&ids).unwrap(), want.decoded, "{what}: decode of {text:?}");
        let pieces: Vec<String> = ids.iter().map(|&id| tokenizer.token_text(id)).collect();
        assert_eq!(pieces, want.pieces, "{what}: pieces of {text:?}");
    }
}

fn python_encodings(args: &[&str]) -> Vec<Expected> {
    serde_json::from_str(&run_oracle("tokenizer.py", args, &serde_json::to_string(TEXTS).unwrap())).unwrap()
}

/// The default model's tokenizer metadata with `tokenizer.ggml.pre` replaced, as a new GGUF.
fn gguf_with_pre(gguf: &GgufFile, pre: &str) -> GgufFile {
    let metadata: Vec<(String, MetadataValue)> = gguf
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer.ggml.") && k != "tokenizer.ggml.pre")
        .cloned()
        .chain([("tokenizer.ggml.pre".to_string(), MetadataValue::String(pre.into()))])
        .collect();
    let bytes = write_gguf(&metadata, &[], 32);
    GgufFile::parse(&bytes, &format!("pre={pre}")).unwrap()
}

#[test]
fn gguf_tokenizer_matches_python_tokenizers_for_every_pre_tokenizer() {
    let path = default_model_path();
    let bytes = std::fs::read(&path).unwrap();
    let gguf = GgufFile::parse(&bytes, "default").unwrap();
    assert_eq!(gguf.get("tokenizer.ggml.pre").and_then(|v| v.as_str()), Some("smollm"));
    for pre in ["smollm", "gpt2", "gpt-2", "llama-bpe", "qwen2"] {
        let tokenizer = TextTokenizer::from_gguf(&gguf_with_pre(&gguf, pre)).unwrap();
        let expected = python_encodings(&["gguf", &path.display().to_string(), pre]);
        check(&tokenizer, &expected, pre);
    }
}

#[test]
fn exported_tokenizer_json_loads_in_python_and_back() {
    let model = default_model();
    let json = model.tokenizer.to_json().unwrap();
    let file = scratch("tokenizer").join("tokenizer.json");
    std::fs::write(&file, &json).unwrap();
    let expected = python_encodings(&["json", &file.display().to_string()]);
    check(&model.tokenizer, &expected, "python from our tokenizer.json");
    let reloaded = TextTokenizer::from_json(json.as_bytes(), "tokenizer.json").unwrap();
    check(&reloaded, &expected, "rust from our tokenizer.json");
}

#[test]
fn unknown_pre_tokenizer_is_a_clear_error() {
    let bytes = std::fs::read(default_model_path()).unwrap();
    let gguf = GgufFile::parse(&bytes, "default").unwrap();
    let err = TextTokenizer::from_gguf(&gguf_with_pre(&gguf, "klingon")).err().expect("must fail").to_string();
    assert!(err.contains("klingon") && err.contains("smollm"), "{err}");
}

#[test]
fn bad_tokenizer_json_is_a_clear_error() {
    let err = TextTokenizer::from_json(b"{\"not\": \"a tokenizer\"}", "tok.json").err().expect("must fail").to_string();
    assert!(err.starts_with("tok.json:"), "{err}");
}
