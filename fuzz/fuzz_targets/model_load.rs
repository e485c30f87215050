//! Fuzz model assembly from a GGUF: config and tokenizer are read from untrusted metadata
//! (`{arch}.*` keys, `tokenizer.ggml.*` arrays), shapes checked, weights validated. Any bytes must
//! give Ok or a typed error. On Ok, a short forward must run and give finite-length logits. The
//! same bytes read a range at a time (as the page reads a file) must load or fail alike.
#![no_main]

mod ranges;

use libfuzzer_sys::fuzz_target;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::{Model, ModelBytes};
use ranges::Ranges;

/// Skip the forward for models whose arithmetic would make a run slow (the loader accepts
/// large dims if the file really holds them).
const MAX_FORWARD_WEIGHTS: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let loaded = Model::from_gguf(data.to_vec(), "fuzz.gguf", &mut |_| {});
    let lazy = Model::from_gguf(ModelBytes::lazy(Box::new(Ranges(data.to_vec()))), "fuzz.gguf", &mut |_| {});
    match (&loaded, &lazy) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("loads whole but not a range at a time: {e}"),
        (Err(e), Ok(_)) => panic!("loads a range at a time but not whole: {e}"),
    }
    let Ok(model) = loaded else {
        return;
    };
    let weights: u64 = model.weights.tensors().iter().map(|t| t.n_elements()).sum();
    if weights > MAX_FORWARD_WEIGHTS {
        return;
    }
    let vocab = model.config.vocab_size as u32;
    let tokens = [0, vocab / 2, vocab - 1];
    let n = tokens.len().min(model.config.context_length);
    if let Ok(out) = forward(&model, &tokens[..n], ForwardOptions::default()) {
        assert_eq!(out.logits.len(), model.config.vocab_size);
    }
    let _ = model.tokenizer.encode("fuzz: 12 ab\n");
});
