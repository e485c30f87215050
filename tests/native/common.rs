//! Shared by the native integration tests: where the default model and the Python oracles live.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use quantscope::model::bytes::ByteSource;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A model file that `scripts/fetch-model NAME` downloads; its absence fails the test (never
/// skips it).
fn fetched_model_path(file: &str, name: &str) -> PathBuf {
    let path = repo().join("models").join(file);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model {name} (scripts/setup and scripts/test run it too)",
        path.display()
    );
    path
}

/// The default model (SmolLM2-135M Q4_1).
pub fn default_model_path() -> PathBuf {
    fetched_model_path("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2")
}

/// Gemma 3 270M (Q4_K_M): the second real model, with a 262,144-piece SentencePiece vocabulary.
pub fn gemma3_model_path() -> PathBuf {
    fetched_model_path("gemma-3-270m-q4_k_m.gguf", "gemma3")
}

/// A copy of the default model of the test's own, for what takes ownership of a model (a study).
pub fn load_default_model() -> quantscope::model::Model {
    let path = default_model_path();
    let bytes = std::fs::read(&path).expect("read default model");
    quantscope::model::Model::from_gguf(bytes, &path.display().to_string(), &mut |_| {}).expect("load default model")
}

/// The default model (SmolLM2-135M Q4_1), loaded once for all tests: they only read it.
pub fn default_model() -> &'static quantscope::model::Model {
    static MODEL: std::sync::OnceLock<quantscope::model::Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(load_default_model)
}

/// The Python with the oracle packages (`.venv`, made by scripts/setup), or `QUANTSCOPE_PYTHON`.
pub fn python() -> PathBuf {
    let path =
        std::env::var_os("QUANTSCOPE_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test (or scripts/setup) to create the oracle venv",
        path.display()
    );
    path
}

/// Runs `tests/oracle/<script>` with `args`, feeding `stdin`; returns stdout, panicking with the
/// script's stderr if it fails.
pub fn run_oracle(script: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(python())
        .arg(repo().join("tests/oracle").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python oracle");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle {script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// ‖a − b‖₂ / ‖b‖₂, computed in f64.
pub fn relative_l2(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

/// ‖a − b‖₂ / ‖a‖₂ of two f32 vectors (logits of two runs), computed in f64.
pub fn relative_l2_f32(a: &[f32], b: &[f32]) -> f64 {
    let (mut d2, mut r2) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        d2 += (x as f64 - y as f64).powi(2);
        r2 += (x as f64).powi(2);
    }
    (d2 / r2).sqrt()
}

/// A scratch folder under target/ for files the oracles write.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo().join("target/oracle").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file in memory served a range at a time (as the page reads a `Blob`), counting what it was
/// asked for; the counters are shared, so a test keeps them after the source is boxed.
pub struct CountingSource {
    pub bytes: Vec<u8>,
    pub bytes_read: Arc<AtomicUsize>,
    pub largest_read: Arc<AtomicUsize>,
}

impl CountingSource {
    pub fn new(bytes: Vec<u8>) -> CountingSource {
        CountingSource { bytes, bytes_read: Arc::default(), largest_read: Arc::default() }
    }
}

impl ByteSource for CountingSource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read(&self, start: u64, len: usize) -> Result<Vec<u8>, String> {
        self.bytes_read.fetch_add(len, Ordering::Relaxed);
        self.largest_read.fetch_max(len, Ordering::Relaxed);
        let start = start as usize;
        Ok(self.bytes[start..start + len].to_vec())
    }
}

pub use crate::gpu_common::hf_shards::{shard_like_hugging_face, SHARD_NAMES};

/// A file of this many bytes that fails every read, as a `Blob` whose file was removed does.
pub struct RemovedFile(pub u64);

impl ByteSource for RemovedFile {
    fn len(&self) -> u64 {
        self.0
    }

    fn read(&self, _: u64, _: usize) -> Result<Vec<u8>, String> {
        Err("the file was removed".into())
    }
}
