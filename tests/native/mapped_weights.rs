//! Model files are memory-mapped natively, and read a range at a time in the page: a mapped or
//! lazily read model computes exactly what a read one does, the pages of tensors a mapped model
//! has checked or uploaded leave the process's resident set, and a lazy file is read in pieces no
//! larger than its largest tensor.
use std::sync::atomic::Ordering;

use crate::common;

use crate::gpu_common::relocated::relocated_gguf;
use crate::gpu_common::tiny_qwen3_gguf;
use common::*;
use quantscope::model::bytes::ByteSegments;
use quantscope::model::reference::{forward, ForwardOptions};
use quantscope::model::{Model, ModelBytes};

/// Resident bytes of the mapping that starts at `address`, from the kernel's own accounting.
fn resident_bytes_of_mapping(address: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let header = format!("{address:x}-");
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&header));
    assert!(lines.next().is_some(), "no mapping starts at {address:x}");
    let rss = lines.find(|l| l.starts_with("Rss:")).expect("an Rss line");
    let kib: u64 = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_mapped_model_computes_what_a_read_one_does_and_gives_back_its_pages() {
    let path = default_model_path();
    let mapped = ModelBytes::map(&path).unwrap();
    let address = mapped.in_memory().unwrap().as_ptr() as usize;
    let model = Model::from_gguf(mapped, "mapped", &mut |_| {}).unwrap();

    // Loading checked every tensor for finite values and released each afterwards.
    let file_len = std::fs::metadata(&path).unwrap().len();
    let after_load = resident_bytes_of_mapping(address);
    assert!(after_load < file_len / 4, "{after_load} of {file_len} bytes still resident after the load");

    let read = default_model();
    for t in model.weights.tensors() {
        let theirs = read.weights.data(read.weights.get(&t.name).unwrap()).unwrap();
        assert_eq!(model.weights.data(t).unwrap(), theirs, "{}", t.name);
    }
    let touched = resident_bytes_of_mapping(address);
    assert!(touched > file_len * 9 / 10, "reading every tensor made {touched} of {file_len} bytes resident");
    for t in model.weights.tensors() {
        model.weights.release(t);
    }
    let released = resident_bytes_of_mapping(address);
    assert!(released < file_len / 4, "{released} of {file_len} bytes resident after releasing every tensor");

    let tokens = model.tokenizer.encode("The capital of France is").unwrap();
    let ours = forward(&model, &tokens, ForwardOptions::default()).unwrap().logits;
    let theirs = forward(read, &tokens, ForwardOptions::default()).unwrap().logits;
    assert_eq!(ours, theirs, "the mapped model's logits differ from the read model's");
}

#[test]
fn byte_segments_place_each_buffer_after_the_last_and_refuse_ranges_across_them() {
    let mut segments = ByteSegments::new(vec![1u8, 2, 3]);
    assert_eq!(segments.push(Vec::new()), 3);
    assert_eq!(segments.push(vec![4u8, 5]), 3);
    assert_eq!(segments.len(), 5);
    let read = |start, len| segments.read(start, len).map(|b| b.into_owned()).ok();
    assert_eq!(read(0, 3), Some(vec![1, 2, 3]));
    assert_eq!(read(3, 2), Some(vec![4, 5]));
    assert_eq!(read(4, 1), Some(vec![5]));
    assert_eq!(read(2, 2), None, "a range across two buffers");
    assert_eq!(read(4, 2), None, "a range past the end");
    assert_eq!(read(u64::MAX, 2), None);
    assert_eq!(segments.first().and_then(|b| b.in_memory()), Some(&[1u8, 2, 3][..]));
}

#[test]
fn a_lazily_read_model_reads_each_tensor_once_to_load_and_computes_what_a_read_one_does() {
    let bytes = std::fs::read(default_model_path()).unwrap();
    let source = CountingSource::new(bytes.clone());
    let (bytes_read, largest_read) = (source.bytes_read.clone(), source.largest_read.clone());
    let model = Model::from_gguf(ModelBytes::lazy(Box::new(source)), "lazy", &mut |_| {}).unwrap();

    // The header, then every tensor once for the finite check: about the file, not a multiple.
    let loaded = bytes_read.load(Ordering::Relaxed);
    assert!(loaded < bytes.len() * 11 / 10, "loading read {loaded} bytes of a {}-byte file", bytes.len());
    let largest_tensor = model.weights.tensors().iter().map(|t| t.len).max().unwrap();
    assert!(largest_read.load(Ordering::Relaxed) <= largest_tensor.max(8 << 20));

    let read = default_model();
    let tokens = model.tokenizer.encode("The capital of France is").unwrap();
    let ours = forward(&model, &tokens, ForwardOptions::default()).unwrap().logits;
    let theirs = forward(read, &tokens, ForwardOptions::default()).unwrap().logits;
    assert_eq!(ours, theirs, "the lazily read model's logits differ from the read model's");
    assert_eq!(model.summary().tensors.len(), read.summary().tensors.len());
}

#[test]
fn a_lazy_file_that_fails_to_read_is_an_error_naming_the_file() {
    let Err(err) = Model::from_gguf(ModelBytes::lazy(Box::new(RemovedFile(1 << 20))), "gone.gguf", &mut |_| {}) else {
        panic!("a file that cannot be read loaded");
    };
    assert!(err.to_string().contains("gone.gguf") && err.to_string().contains("the file was removed"), "{err}");
}

/// The page reads a file as large as an 8B model's (past wasm32's 4 GiB) a range at a time; its
/// tensors then start past 4 GiB. Here a tiny model's data is moved 5 GiB on (zeros between):
/// read lazily it computes exactly what the compact file does. tests/web.rs does the same in
/// wasm32, where a usize offset would wrap.
#[test]
fn a_lazily_read_file_with_its_tensors_past_4_gib_computes_what_the_compact_one_does() {
    let bytes = tiny_qwen3_gguf(0x4A, None);
    let far = relocated_gguf(&bytes, 5 << 30);
    assert!(far.len() > 5 << 30);
    let lazy = Model::from_gguf(ModelBytes::lazy(Box::new(far)), "far.gguf", &mut |_| {}).unwrap();
    assert!(lazy.weights.tensors().iter().all(|t| t.start >= 5 << 30));
    let compact = Model::from_gguf(bytes, "compact.gguf", &mut |_| {}).unwrap();
    let tokens = [1, 5, 9, 3, 7];
    let ours = forward(&lazy, &tokens, ForwardOptions::default()).unwrap().logits;
    let theirs = forward(&compact, &tokens, ForwardOptions::default()).unwrap().logits;
    assert_eq!(ours, theirs, "the relocated file's logits differ from the compact one's");
}
