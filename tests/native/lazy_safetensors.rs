//! Hugging Face checkpoints read a range at a time, as the page reads a `Blob`: one file or
//! shards compute exactly what the same checkpoint in memory does, loading reads about the file
//! once, a file past 4 GiB keeps its offsets, and a bad header or an unreadable shard is one typed
//! error naming the file (and shard), lazily and in memory alike.
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use crate::common::*;
use crate::gpu_common::relocated::relocated_safetensors;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::{Model, ModelBytes};

/// The default model's first two blocks as a Hugging Face checkpoint (tests/oracle/export_hf.py):
/// model.safetensors (141 MB of f32), config.json and tokenizer.json, exported once.
fn checkpoint() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static CHECKPOINT: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    CHECKPOINT.get_or_init(|| {
        let dir = scratch("lazy_safetensors");
        run_oracle("export_hf.py", &[&default_model_path().display().to_string(), &dir.display().to_string(), "2"], "");
        let read = |file: &str| std::fs::read(dir.join(file)).unwrap();
        (read("model.safetensors"), read("config.json"), read("tokenizer.json"))
    })
}

fn in_memory() -> Model {
    let (weights, config, tokenizer) = checkpoint();
    Model::from_safetensors(weights.clone(), config, tokenizer, "in-memory", &mut |_| {}).unwrap()
}

/// Every position's logits of a short prompt.
fn logits(model: &Model) -> Vec<f32> {
    let tokens = model.tokenizer.encode("The capital of France is").unwrap();
    forward(model, &tokens, ForwardOptions { all_logits: true, ..Default::default() }).unwrap().logits
}

fn lazy(source: impl quantscope::model::bytes::ByteSource + 'static) -> ModelBytes {
    ModelBytes::lazy(Box::new(source))
}

#[test]
fn a_safetensors_file_read_a_range_at_a_time_reads_it_about_once_and_computes_what_one_in_memory_does() {
    let (weights, config, tokenizer) = checkpoint();
    let source = CountingSource::new(weights.clone());
    let (bytes_read, largest_read) = (source.bytes_read.clone(), source.largest_read.clone());
    let model = Model::from_safetensors(lazy(source), config, tokenizer, "lazy", &mut |_| {}).unwrap();

    // The header, then every tensor once for the finite check: about the file, not a multiple.
    let loaded = bytes_read.load(Ordering::Relaxed);
    assert!(
        (weights.len()..weights.len() * 11 / 10).contains(&loaded),
        "loading read {loaded} bytes of a {}-byte file",
        weights.len()
    );
    let largest_tensor = model.weights.tensors().iter().map(|t| t.len).max().unwrap();
    assert!(largest_read.load(Ordering::Relaxed) <= largest_tensor.max(8 << 20));
    assert_eq!(logits(&model), logits(&in_memory()), "the lazily read checkpoint's logits differ");
}

#[test]
fn a_sharded_checkpoint_read_a_range_at_a_time_reads_it_about_once_and_computes_what_one_in_memory_does() {
    let (weights, config, tokenizer) = checkpoint();
    let (index, shards) = shard_like_hugging_face(weights);
    let total: usize = shards.iter().map(|(_, bytes)| bytes.len()).sum();
    let sources: Vec<(String, CountingSource)> =
        shards.into_iter().map(|(name, bytes)| (name, CountingSource::new(bytes))).collect();
    let counters: Vec<_> = sources.iter().map(|(_, s)| s.bytes_read.clone()).collect();
    let shards: Vec<(String, ModelBytes)> = sources.into_iter().map(|(name, s)| (name, lazy(s))).collect();
    let model =
        Model::from_safetensors_shards(index.as_bytes(), shards, config, tokenizer, "lazy", &mut |_| {}).unwrap();
    let loaded: usize = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    assert!((total..total * 11 / 10).contains(&loaded), "loading read {loaded} bytes of {total} in two shards");
    assert_eq!(logits(&model), logits(&in_memory()), "the lazily read shards' logits differ");
}

/// The page reads a shard as large as Hugging Face's 5 GB ones a range at a time; its tensors
/// then start past 4 GiB. Here the checkpoint's data is moved 5 GiB on (tensors the loader skips
/// fill the gap): read lazily it computes exactly what the compact file does. tests/web.rs does
/// the same in wasm32, where a usize offset would wrap.
#[test]
fn a_safetensors_file_past_4_gib_read_a_range_at_a_time_computes_what_the_compact_one_does() {
    let (weights, config, tokenizer) = checkpoint();
    let far = relocated_safetensors(weights, 5 << 30);
    assert!(far.len() > 5 << 30);
    let model = Model::from_safetensors(lazy(far), config, tokenizer, "far", &mut |_| {}).unwrap();
    assert!(model.weights.tensors().iter().all(|t| t.start >= 5 << 30));
    assert_eq!(logits(&model), logits(&in_memory()), "the relocated file's logits differ from the compact one's");
}

/// A file of `header` (as given) followed by `data_len` zero bytes.
fn file(header: &str, data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data_len, 0);
    bytes
}

const GOOD_HEADER: &str = r#"{"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"lm_head.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}"#;

/// The error of loading `bytes` as a one-file checkpoint, the same in memory and read lazily.
fn load_error(bytes: &[u8], source: &str) -> String {
    let load = |weights: ModelBytes| match Model::from_safetensors(weights, b"{}", b"{}", source, &mut |_| {}) {
        Ok(_) => panic!("{source} loaded"),
        Err(err) => err.to_string(),
    };
    let whole = load(bytes.to_vec().into());
    assert_eq!(whole, load(lazy(CountingSource::new(bytes.to_vec()))), "in memory vs lazily");
    whole
}

#[test]
fn a_bad_safetensors_header_is_one_typed_error_naming_the_file_lazily_and_in_memory() {
    // The good file's header passes: what fails is the config.json given.
    assert!(load_error(&file(GOOD_HEADER, 24), "good").contains("good: config.json"));

    let mut past_the_end = file(GOOD_HEADER, 24);
    let len = past_the_end.len() as u64;
    past_the_end[..8].copy_from_slice(&len.to_le_bytes());
    let mut over_the_limit = file(GOOD_HEADER, 24);
    over_the_limit[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let h = GOOD_HEADER.len();
    let cases = [
        (
            "the header's length past the end",
            past_the_end,
            format!("truncated at offset 8: reading the safetensors JSON header needs {len} bytes, {} left", len - 8),
        ),
        (
            "the header's length over the limit",
            over_the_limit,
            "implausible safetensors header length = 1099511627776 at offset 0 (limit 100000000)".into(),
        ),
        ("a file shorter than the header's length", file(GOOD_HEADER, 24)[..6].to_vec(), "needs 8 bytes, 6 left".into()),
        (
            "the header not JSON",
            file(&GOOD_HEADER.replacen("],\"data", "]\"data", 1), 24),
            format!("the safetensors header (bytes 8..{}) is not valid: expected `,` or `}}`", 8 + h - 1),
        ),
        (
            "offsets not contiguous",
            file(&GOOD_HEADER.replace("[8,24]", "[12,28]"), 28),
            "tensor \"lm_head.weight\": data offsets [12, 28) do not follow the previous tensor's end (8)".into(),
        ),
        (
            "data shorter than the header says",
            file(GOOD_HEADER, 20),
            format!(
                "truncated at offset {}: reading the tensor data the safetensors header describes needs 24 bytes, 20 left",
                8 + h
            ),
        ),
    ];
    for (what, bytes, expected) in cases {
        let err = load_error(&bytes, "bad.safetensors");
        assert!(err.starts_with("bad.safetensors: ") && err.contains(&expected), "{what}: {err}");
    }
}

#[test]
fn a_shard_that_is_bad_or_cannot_be_read_is_named_lazily_and_in_memory() {
    let index =
        serde_json::json!({"weight_map": {"model.norm.weight": SHARD_NAMES[0], "lm_head.weight": SHARD_NAMES[1]}})
            .to_string();
    let first = file(r#"{"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8);
    let second = file(r#"{"lm_head.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, 12);
    let load = |second: ModelBytes| {
        let shards =
            vec![(SHARD_NAMES[0].to_string(), ModelBytes::from(first.clone())), (SHARD_NAMES[1].into(), second)];
        match Model::from_safetensors_shards(index.as_bytes(), shards, b"{}", b"{}", "ckpt", &mut |_| {}) {
            Ok(_) => panic!("a checkpoint with a bad shard loaded"),
            Err(err) => err.to_string(),
        }
    };
    let short = load(second.clone().into());
    assert_eq!(short, load(lazy(CountingSource::new(second))), "in memory vs lazily");
    let expected = format!("ckpt: {}: truncated at offset", SHARD_NAMES[1]);
    assert!(short.starts_with(&expected) && short.contains("needs 16 bytes, 12 left"), "{short}");

    let removed = load(lazy(RemovedFile(1 << 20)));
    let expected = format!("ckpt: {}: cannot read file: ", SHARD_NAMES[1]);
    assert!(removed.starts_with(&expected) && removed.ends_with("the file was removed"), "{removed}");
}
