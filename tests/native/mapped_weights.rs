//! Model files are memory-mapped natively: a mapped model computes exactly what a read one
//! does, and the pages of tensors it has checked or uploaded leave the process's resident set.
use crate::common;

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
    let address = mapped.as_ptr() as usize;
    let model = Model::from_gguf(mapped, "mapped", &mut |_| {}).unwrap();

    // Loading checked every tensor for finite values and released each afterwards.
    let file_len = std::fs::metadata(&path).unwrap().len();
    let after_load = resident_bytes_of_mapping(address);
    assert!(after_load < file_len / 4, "{after_load} of {file_len} bytes still resident after the load");

    let read = default_model();
    for t in model.weights.tensors() {
        assert_eq!(model.weights.data(t), read.weights.data(read.weights.get(&t.name).unwrap()), "{}", t.name);
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
    assert_eq!(segments.get(0, 3), Some(&[1u8, 2, 3][..]));
    assert_eq!(segments.get(3, 2), Some(&[4u8, 5][..]));
    assert_eq!(segments.get(4, 1), Some(&[5u8][..]));
    assert_eq!(segments.get(2, 2), None, "a range across two buffers");
    assert_eq!(segments.get(4, 2), None, "a range past the end");
    assert_eq!(segments.get(usize::MAX, 2), None);
    assert_eq!(segments.first(), &[1u8, 2, 3]);
}
