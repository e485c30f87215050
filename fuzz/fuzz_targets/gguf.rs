//! Fuzz the GGUF parser: any bytes must give Ok or a typed error, never a panic, an abort, a hang
//! or an allocation out of proportion to the input. On Ok, every tensor of a type we can
//! dequantize is dequantized (sizes are bounded by the input, since parse checked every tensor
//! lies inside it), and the result must have the advertised length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantscope::formats::gguf::GgufFile;

/// Don't dequantize more than this many elements per input (keeps each run fast; a valid
/// tensor has at most ~7 elements per byte of input anyway).
const MAX_ELEMENTS: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::parse(data, "fuzz.gguf") else {
        return;
    };
    let mut budget = MAX_ELEMENTS;
    for info in &file.tensors {
        assert!(!info.dims.is_empty() && info.dims.iter().all(|&d| d > 0));
        assert_eq!(file.tensor_data(data, info).len() as u64, info.n_bytes);
        if !info.dtype.can_dequantize() || info.n_elements > budget {
            continue;
        }
        budget -= info.n_elements;
        let values = file.dequantize_tensor(data, info).expect("a tensor that parse accepted must dequantize");
        assert_eq!(values.len() as u64, info.n_elements);
    }
    for (key, value) in &file.metadata {
        let _ = (key.len(), value.to_string().len());
    }
});
