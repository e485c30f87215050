//! Parsers of model files. Everything here reads untrusted bytes: it validates before it
//! allocates and returns a typed [`crate::FormatError`], never panics.

pub mod blocks;
pub mod ggml;
pub mod gguf;
pub mod safetensors;
pub mod tokenizer;
