//! Gemma 3 270M's vocabulary (262,144 SentencePiece pieces, no space prefix, whitespace runs and
//! HTML tags as user-defined tokens) against Google's `sentencepiece`:
//! tests/oracle/gguf_sentencepiece.py rebuilds the SentencePiece model from the file's own
//! metadata and encodes the hard strings. Only the vocabulary is read, not the model.
use std::time::Instant;

use crate::common::{gemma3_model_path, run_oracle};
use crate::spm_tokenizer_oracle::{assert_matches_sentencepiece, where_llama_cpp_differs, Expected};
use crate::tokenizer_oracle::TEXTS;

use quantscope::formats::gguf::GgufFile;
use quantscope::formats::tokenizer::TextTokenizer;

#[test]
fn gemma3_vocabulary_matches_sentencepiece_on_the_hard_strings() {
    let path = gemma3_model_path();
    let bytes = std::fs::read(&path).unwrap();
    let gguf = GgufFile::parse(&bytes, "gemma-3-270m-q4_k_m.gguf").unwrap();
    let started = Instant::now();
    let tokenizer = TextTokenizer::from_gguf(&gguf).unwrap();
    // Printed, not asserted: the time depends on the machine (see the page's "Building tokenizer").
    eprintln!("TextTokenizer::from_gguf: {:.2?} for Gemma 3's vocabulary", started.elapsed());

    assert_eq!(tokenizer.inner().get_vocab_size(false), 262_144);
    assert_eq!((tokenizer.bos, tokenizer.eos), (Some(2), Some(1)));
    assert_eq!(tokenizer.token_text(2), "<bos>");

    let out =
        run_oracle("gguf_sentencepiece.py", &[&path.display().to_string()], &serde_json::to_string(TEXTS).unwrap());
    let expected: Vec<Expected> = serde_json::from_str(&out).unwrap();
    assert_matches_sentencepiece(&tokenizer, &expected, "gemma3");
    // Without a space prefix, encoding each stretch between user-defined tokens on its own (as
    // llama.cpp does) and sentencepiece's encoding of the whole string agree on every string.
    assert_eq!(where_llama_cpp_differs(&expected), Vec::<&str>::new());
}
