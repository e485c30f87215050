//! Fuzz the safetensors header (the page reads a checkpoint's header from a file's head, then its
//! tensors a range at a time): any bytes give a tensor table or a typed error, the same read whole
//! and read a range at a time (as `Model::from_safetensors` reads a lazy file), and the verdict
//! and the table are the `safetensors` crate's own.
#![no_main]

mod ranges;

use libfuzzer_sys::fuzz_target;
use quantscope::formats::safetensors::{agrees_with_the_crate, read_tensors};
use quantscope::model::load::read_safetensors_header;
use quantscope::model::ModelBytes;
use ranges::Ranges;

fuzz_target!(|data: &[u8]| {
    let whole = read_tensors(data, "fuzz.safetensors");
    let lazy = read_safetensors_header(&ModelBytes::lazy(Box::new(Ranges(data.to_vec()))), "fuzz.safetensors");
    assert_eq!(whole, lazy, "read whole and read a range at a time differ");
    if let Err(disagreement) = agrees_with_the_crate(data, &whole) {
        panic!("{disagreement}");
    }
});
