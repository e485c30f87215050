//! Model files are memory-mapped natively, and read a range at a time in the page: a mapped or
//! lazily read model computes exactly what a read one does, the pages of tensors a mapped model
//! has checked or uploaded leave the process's resident set, and a lazy file is read in pieces no
//! larger than its largest tensor.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common;

use common::*;
use quantscope::model::bytes::{ByteSegments, ByteSource};
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
    assert_eq!(read(usize::MAX, 2), None);
    assert_eq!(segments.first().and_then(|b| b.in_memory()), Some(&[1u8, 2, 3][..]));
}

/// A file in memory served a range at a time, counting what it was asked for.
struct CountingSource {
    bytes: Vec<u8>,
    bytes_read: Arc<AtomicUsize>,
    largest_read: Arc<AtomicUsize>,
}

impl ByteSource for CountingSource {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn read(&self, start: usize, len: usize) -> Result<Vec<u8>, String> {
        self.bytes_read.fetch_add(len, Ordering::Relaxed);
        self.largest_read.fetch_max(len, Ordering::Relaxed);
        Ok(self.bytes[start..start + len].to_vec())
    }
}

#[test]
fn a_lazily_read_model_reads_each_tensor_once_to_load_and_computes_what_a_read_one_does() {
    let bytes = std::fs::read(default_model_path()).unwrap();
    let (bytes_read, largest_read) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let source =
        CountingSource { bytes: bytes.clone(), bytes_read: bytes_read.clone(), largest_read: largest_read.clone() };
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
    struct Failing(usize);
    impl ByteSource for Failing {
        fn len(&self) -> usize {
            self.0
        }
        fn read(&self, _: usize, _: usize) -> Result<Vec<u8>, String> {
            Err("the file was removed".into())
        }
    }
    let Err(err) = Model::from_gguf(ModelBytes::lazy(Box::new(Failing(1 << 20))), "gone.gguf", &mut |_| {}) else {
        panic!("a file that cannot be read loaded");
    };
    assert!(err.to_string().contains("gone.gguf") && err.to_string().contains("the file was removed"), "{err}");
}
