//! The GGUF parser on bad input: every corruption gives the exact typed error, and the message
//! names the file, the byte offset and (where there is one) the tensor. Nothing panics.
//!
//! Small valid files are built with `write_gguf`, checked to parse, then corrupted one field at a
//! time at offsets found in the bytes. Also: the real model cut to 1 MiB, 1 MiB of random bytes,
//! every truncation of a small file, and a few thousand random byte mutations.
use quantscope::formats::ggml::GgmlType;
use quantscope::formats::gguf::{write_gguf, GgufFile, MetadataValue, MAX_METADATA_ENTRIES, MAX_TENSORS};
use quantscope::FormatError;

const FILE: &str = "corrupt-test.gguf";
const MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

fn parse(bytes: &[u8]) -> Result<GgufFile, FormatError> {
    GgufFile::parse(bytes, FILE)
}

fn err(bytes: &[u8]) -> FormatError {
    match parse(bytes) {
        Ok(f) => panic!("a corrupt file parsed: {} tensors, {} keys", f.tensors.len(), f.metadata.len()),
        Err(e) => e,
    }
}

/// The message names the file and each of `parts` (offsets, tensor names, ...).
fn assert_mentions(e: &FormatError, parts: &[&str]) {
    let msg = e.to_string();
    assert!(msg.contains(FILE), "{msg:?} does not name the file");
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not mention {p:?}");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in file", String::from_utf8_lossy(needle)))
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn kv(key: &str, value: MetadataValue) -> (String, MetadataValue) {
    (key.to_string(), value)
}

fn tensor(name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> (String, Vec<u64>, GgmlType, Vec<u8>) {
    (name.to_string(), dims.to_vec(), ty, data)
}

fn f32_data(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32 * 0.5 - 3.0).to_le_bytes()).collect()
}

fn q8_0_data(blocks: usize) -> Vec<u8> {
    let mut data = Vec::new();
    for b in 0..blocks {
        data.extend_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
        data.extend((0..32).map(|i| (i as i8 - 16 + b as i8) as u8));
    }
    data
}

/// Metadata: a string, an array of 3 u32, a bool. Tensors: "tensor.alpha" F32 [32, 2] at data
/// offset 0 (256 bytes), "tensor.beta" Q8_0 [64] at 256 (68 bytes, ends the file).
fn base() -> Vec<u8> {
    write_gguf(
        &[
            kv("general.architecture", MetadataValue::String("llama".into())),
            kv(
                "test.array",
                MetadataValue::Array(vec![MetadataValue::U32(1), MetadataValue::U32(2), MetadataValue::U32(3)]),
            ),
            kv("test.flag", MetadataValue::Bool(true)),
        ],
        &[
            tensor("tensor.alpha", &[32, 2], GgmlType::F32, f32_data(64)),
            tensor("tensor.beta", &[64], GgmlType::Q8_0, q8_0_data(2)),
        ],
        32,
    )
}

/// Byte positions of fields in [`base`].
struct Layout {
    arch_key: usize,
    array_key: usize,
    flag_key: usize,
    alpha: usize,
    beta: usize,
}

fn layout(bytes: &[u8]) -> Layout {
    Layout {
        arch_key: find(bytes, b"general.architecture"),
        array_key: find(bytes, b"test.array"),
        flag_key: find(bytes, b"test.flag"),
        alpha: find(bytes, b"tensor.alpha"),
        beta: find(bytes, b"tensor.beta"),
    }
}

#[test]
fn base_file_is_valid() {
    let bytes = base();
    let f = parse(&bytes).unwrap();
    assert_eq!(f.tensors.len(), 2);
    assert_eq!(f.tensor("tensor.alpha").unwrap().offset, 0);
    assert_eq!(f.tensor("tensor.beta").unwrap().offset, 256);
    assert_eq!(f.data_offset + 256 + 68, bytes.len() as u64, "beta must end the file");
    assert_eq!(f.dequantize_tensor(&bytes, f.tensor("tensor.alpha").unwrap()).unwrap()[3], -1.5);
    assert_eq!(f.get("test.flag"), Some(&MetadataValue::Bool(true)));
}

#[test]
fn wrong_magic() {
    let mut bytes = base();
    bytes[3] = b'X';
    let e = err(&bytes);
    assert_eq!(e, FormatError::BadMagic { file: FILE.into(), found: b"GGUX".to_vec() });
    assert_mentions(&e, &["offset 0"]);
    // Short files that can't be GGUF say so too; short prefixes of "GGUF" are truncated.
    assert!(matches!(err(b"PK"), FormatError::BadMagic { .. }));
    assert!(matches!(err(b"GG"), FormatError::Truncated { offset: 0, .. }));
}

#[test]
fn unsupported_versions() {
    for version in [0u32, 1, 4, 0x0300_0000] {
        let mut bytes = base();
        put_u32(&mut bytes, 4, version);
        let e = err(&bytes);
        assert_eq!(e, FormatError::UnsupportedVersion { file: FILE.into(), version });
        assert_mentions(&e, &[&format!("version {version}")]);
    }
}

#[test]
fn absurd_tensor_count() {
    let mut bytes = base();
    put_u64(&mut bytes, 8, 1 << 40);
    let e = err(&bytes);
    assert_eq!(
        e,
        FormatError::Implausible {
            file: FILE.into(),
            offset: 8,
            what: "tensor count".into(),
            value: 1 << 40,
            limit: MAX_TENSORS
        }
    );
    assert_mentions(&e, &["offset 8", "1099511627776"]);
}

#[test]
fn absurd_metadata_count() {
    let mut bytes = base();
    put_u64(&mut bytes, 16, 1 << 40);
    let e = err(&bytes);
    assert_eq!(
        e,
        FormatError::Implausible {
            file: FILE.into(),
            offset: 16,
            what: "metadata count".into(),
            value: 1 << 40,
            limit: MAX_METADATA_ENTRIES
        }
    );
    assert_mentions(&e, &["offset 16"]);
}

#[test]
fn counts_larger_than_the_file() {
    // Plausible counts that the bytes can't hold: the parse runs out of bytes (without having
    // allocated for the counts) and says where.
    let mut header = base()[..24].to_vec();
    put_u64(&mut header, 8, 100_000);
    put_u64(&mut header, 16, 0);
    let e = err(&header);
    assert_eq!(
        e,
        FormatError::Truncated {
            file: FILE.into(),
            offset: 24,
            what: "length of name of tensor info #0".into(),
            needed: 8,
            available: 0
        }
    );
    put_u64(&mut header, 16, MAX_METADATA_ENTRIES);
    let e = err(&header);
    assert!(
        matches!(e, FormatError::Truncated { offset: 24, ref what, .. } if what.contains("metadata entry #0")),
        "{e:?}"
    );
}

#[test]
fn string_length_past_the_end() {
    // A key length.
    let mut bytes = base();
    let at = layout(&bytes).arch_key - 8;
    put_u64(&mut bytes, at, u64::MAX / 2);
    let e = err(&bytes);
    assert!(
        matches!(e, FormatError::Truncated { offset, needed, .. } if offset == at as u64 + 8 && needed == u64::MAX / 2),
        "{e:?}"
    );
    assert_mentions(&e, &[&format!("offset {}", at + 8), "metadata entry #0"]);

    // A string value's length: one byte more than the file has.
    let mut bytes = base();
    let at = layout(&bytes).arch_key + 20 + 4;
    let left = (bytes.len() - (at + 8)) as u64;
    put_u64(&mut bytes, at, left + 1);
    let e = err(&bytes);
    assert!(
        matches!(e, FormatError::Truncated { offset, needed, available, .. }
            if offset == at as u64 + 8 && needed == left + 1 && available == left),
        "{e:?}"
    );
    assert_mentions(&e, &[&format!("offset {}", at + 8), "general.architecture"]);

    // A tensor name's length.
    let mut bytes = base();
    let at = layout(&bytes).alpha - 8;
    put_u64(&mut bytes, at, u64::MAX);
    let e = err(&bytes);
    assert!(matches!(e, FormatError::Truncated { .. }), "{e:?}");
    assert_mentions(&e, &[&format!("offset {}", at + 8), "tensor info #0"]);
}

#[test]
fn array_length_past_the_end() {
    let mut bytes = base();
    let at = layout(&bytes).array_key + 10 + 4 + 4;
    put_u64(&mut bytes, at, 1 << 40);
    let e = err(&bytes);
    let available = (bytes.len() - at - 8) as u64;
    assert!(
        matches!(e, FormatError::Truncated { offset, ref what, needed, available: a, .. }
            if offset == at as u64 + 8 && what.contains("test.array")
            && needed == 4 << 40 && a == available),
        "{e:?}"
    );
    assert_mentions(&e, &[&format!("offset {}", at + 8), "test.array", "1099511627776 u32 items"]);

    // u64::MAX items: the byte count saturates instead of overflowing.
    put_u64(&mut bytes, at, u64::MAX);
    assert!(matches!(err(&bytes), FormatError::Truncated { needed: u64::MAX, .. }));
}

#[test]
fn unknown_value_types() {
    // The value type of a key.
    let mut bytes = base();
    let at = layout(&bytes).flag_key + 9;
    put_u32(&mut bytes, at, 13);
    let e = err(&bytes);
    assert_eq!(
        e,
        FormatError::UnknownValueType { file: FILE.into(), offset: at as u64, key: "test.flag".into(), type_id: 13 }
    );
    assert_mentions(&e, &[&format!("offset {at}"), "test.flag", "13"]);

    // The item type of an array.
    let mut bytes = base();
    let at = layout(&bytes).array_key + 14;
    put_u32(&mut bytes, at, 0xDEAD);
    let e = err(&bytes);
    assert_eq!(
        e,
        FormatError::UnknownValueType {
            file: FILE.into(),
            offset: at as u64,
            key: "test.array".into(),
            type_id: 0xDEAD
        }
    );
}

#[test]
fn invalid_utf8_and_bool() {
    let mut bytes = base();
    let at = layout(&bytes).arch_key + 32; // "llama"
    bytes[at] = 0xFF;
    let e = err(&bytes);
    assert!(matches!(e, FormatError::InvalidUtf8 { offset, .. } if offset == at as u64), "{e:?}");
    assert_mentions(&e, &[&format!("offset {at}"), "general.architecture"]);

    let mut bytes = base();
    let at = layout(&bytes).flag_key + 13;
    bytes[at] = 2;
    let e = err(&bytes);
    assert!(matches!(e, FormatError::Invalid { .. }), "{e:?}");
    assert_mentions(&e, &[&format!("offset {at}"), "test.flag"]);
}

#[test]
fn bad_n_dims() {
    let mut bytes = base();
    let at = layout(&bytes).alpha + 12;
    put_u32(&mut bytes, at, 5);
    let e = err(&bytes);
    assert!(
        matches!(e, FormatError::Implausible { offset, value: 5, limit: 4, ref what, .. }
            if offset == at as u64 && what.contains("tensor.alpha")),
        "{e:?}"
    );
    assert_mentions(&e, &[&format!("offset {at}"), "tensor.alpha"]);

    let mut bytes = base();
    put_u32(&mut bytes, at, 0);
    let e = err(&bytes);
    assert!(matches!(e, FormatError::BadTensor { ref tensor, .. } if tensor == "tensor.alpha"), "{e:?}");
    assert_mentions(&e, &[&format!("offset {}", at - 12 - 8), "n_dims is 0"]);
}

#[test]
fn zero_size_dimension() {
    let mut bytes = base();
    let at = layout(&bytes).alpha + 16 + 8; // second dim of alpha
    put_u64(&mut bytes, at, 0);
    let e = err(&bytes);
    assert!(matches!(e, FormatError::BadTensor { ref tensor, .. } if tensor == "tensor.alpha"), "{e:?}");
    assert_mentions(&e, &[&format!("offset {at}"), "dimension 1 is 0"]);
}

#[test]
fn element_count_overflow() {
    // 2^32 * 2^32 overflows u64.
    let bytes = write_gguf(&[], &[tensor("huge", &[1 << 32, 1 << 32], GgmlType::F32, vec![])], 32);
    let e = err(&bytes);
    assert!(
        matches!(e, FormatError::Implausible { ref what, value: u64::MAX, .. } if what.contains("element count") && what.contains("huge")),
        "{e:?}"
    );
    assert_mentions(&e, &["offset", "huge"]);
    // 2^31 * 2^31 * 4 = 2^64 overflows too; 2^62 * 2 = 2^63 exceeds ggml's int64.
    for dims in [vec![1u64 << 31, 1 << 31, 4], vec![1 << 62, 2]] {
        let bytes = write_gguf(&[], &[tensor("huge", &dims, GgmlType::F32, vec![])], 32);
        assert!(matches!(err(&bytes), FormatError::Implausible { .. }), "{dims:?}");
    }
    // A single dimension past int64.
    let bytes = write_gguf(&[], &[tensor("huge", &[1 << 63], GgmlType::F32, vec![])], 32);
    assert!(matches!(err(&bytes), FormatError::Implausible { value, .. } if value == 1 << 63));
    // Fits int64 in elements, but not u64 in bytes (F64: 8 bytes each).
    let bytes = write_gguf(&[], &[tensor("huge", &[1 << 62], GgmlType::F64, vec![])], 32);
    let e = err(&bytes);
    assert!(matches!(e, FormatError::BadTensor { ref message, .. } if message.contains("overflows")), "{e:?}");
    // Large but representable: in bounds check says out of bounds, not overflow.
    let bytes = write_gguf(&[], &[tensor("big", &[1 << 40], GgmlType::F32, vec![])], 32);
    assert!(matches!(err(&bytes), FormatError::TensorOutOfBounds { ref tensor, .. } if tensor == "big"));
}

#[test]
fn unknown_tensor_type() {
    for type_id in [4u32, 31, 40, 9999, u32::MAX] {
        let mut bytes = base();
        let lay = layout(&bytes);
        put_u32(&mut bytes, lay.beta + 23, type_id);
        let e = err(&bytes);
        assert_eq!(
            e,
            FormatError::UnknownTensorType {
                file: FILE.into(),
                offset: (lay.beta - 8) as u64,
                tensor: "tensor.beta".into(),
                type_id
            }
        );
        assert_mentions(&e, &[&format!("offset {}", lay.beta - 8), "tensor.beta", &type_id.to_string()]);
    }
}

#[test]
fn row_not_a_multiple_of_the_block() {
    let bytes = write_gguf(&[], &[tensor("odd", &[33, 2], GgmlType::Q8_0, vec![0; 68])], 32);
    let e = err(&bytes);
    assert!(matches!(e, FormatError::BadTensor { ref tensor, .. } if tensor == "odd"), "{e:?}");
    assert_mentions(&e, &["odd", "offset", "block size 32"]);
}

#[test]
fn tensor_past_the_end_of_file() {
    // The last tensor's data is one byte short.
    let mut bytes = base();
    bytes.pop();
    let len = bytes.len() as u64;
    let e = err(&bytes);
    let f_data = len + 1 - 68; // where beta starts
    assert_eq!(
        e,
        FormatError::TensorOutOfBounds {
            file: FILE.into(),
            tensor: "tensor.beta".into(),
            start: f_data,
            end: len + 1,
            file_len: len
        }
    );
    assert_mentions(&e, &["tensor.beta", &f_data.to_string(), &len.to_string()]);

    // An offset so large that start + size overflows.
    let mut bytes = base();
    let at = layout(&bytes).beta + 27;
    put_u64(&mut bytes, at, u64::MAX - 31);
    let e = err(&bytes);
    assert!(
        matches!(e, FormatError::TensorOutOfBounds { ref tensor, end: u64::MAX, .. } if tensor == "tensor.beta"),
        "{e:?}"
    );
}

#[test]
fn misaligned_tensor_offset() {
    let mut bytes = base();
    let at = layout(&bytes).beta + 27;
    put_u64(&mut bytes, at, 250);
    let e = err(&bytes);
    assert!(matches!(e, FormatError::BadTensor { ref tensor, .. } if tensor == "tensor.beta"), "{e:?}");
    assert_mentions(&e, &["tensor.beta", &format!("offset {at}"), "250", "alignment 32"]);
}

#[test]
fn overlapping_tensors() {
    // beta moved onto alpha's second half: alpha spans 0..256, beta 224..292.
    let mut bytes = base();
    let at = layout(&bytes).beta + 27;
    put_u64(&mut bytes, at, 224);
    let e = err(&bytes);
    assert_eq!(
        e,
        FormatError::OverlappingTensors {
            file: FILE.into(),
            first: "tensor.alpha".into(),
            second: "tensor.beta".into(),
            offset: 224
        }
    );
    assert_mentions(&e, &["tensor.alpha", "tensor.beta", "offset 224"]);

    // Both at offset 0.
    put_u64(&mut bytes, at, 0);
    assert!(matches!(err(&bytes), FormatError::OverlappingTensors { offset: 0, .. }));
}

#[test]
fn duplicate_names() {
    let bytes = write_gguf(
        &[],
        &[tensor("same", &[4], GgmlType::F32, f32_data(4)), tensor("same", &[4], GgmlType::F32, f32_data(4))],
        32,
    );
    let second_info = 24 + (8 + 4 + 4 + 8 + 4 + 8);
    let e = err(&bytes);
    assert_eq!(
        e,
        FormatError::Duplicate {
            file: FILE.into(),
            what: format!("tensor name (tensor info at offset {second_info})"),
            name: "same".into()
        }
    );
    assert_mentions(&e, &["same", &format!("offset {second_info}")]);

    let bytes = write_gguf(&[kv("k", MetadataValue::U8(1)), kv("k", MetadataValue::U8(2))], &[], 32);
    let e = err(&bytes);
    assert!(
        matches!(e, FormatError::Duplicate { ref name, ref what, .. } if name == "k" && what.contains("metadata key")),
        "{e:?}"
    );
    assert_mentions(&e, &[&format!("offset {}", 24 + 8 + 1 + 4 + 1)]);
}

#[test]
fn bad_alignment() {
    for (value, ok) in [
        (MetadataValue::U32(64), true),
        (MetadataValue::U64(1), true),
        (MetadataValue::U32(0), false),
        (MetadataValue::U32(48), false),
        (MetadataValue::I32(-32), false),
    ] {
        let bytes =
            write_gguf(&[kv("general.alignment", value.clone())], &[tensor("t", &[8], GgmlType::F32, f32_data(8))], 64);
        match (ok, parse(&bytes)) {
            (true, Ok(f)) => assert_eq!(Some(f.alignment), value.as_u64()),
            (false, Err(e)) => {
                assert!(matches!(e, FormatError::Invalid { .. }), "{value:?}: {e:?}");
                assert_mentions(&e, &["general.alignment", "offset 53", "power of two"]);
            }
            (ok, r) => panic!("alignment {value:?}: expected ok={ok}, got {r:?}"),
        }
    }
    let bytes = write_gguf(&[kv("general.alignment", MetadataValue::String("32".into()))], &[], 32);
    let e = err(&bytes);
    assert!(matches!(e, FormatError::WrongMetadataType { ref found, .. } if found == "string"), "{e:?}");
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = base();
    parse(&bytes).unwrap();
    for len in 0..bytes.len() {
        match parse(&bytes[..len]) {
            Ok(_) => panic!("truncated to {len} of {} bytes, still parsed", bytes.len()),
            Err(FormatError::Truncated { offset, .. }) => {
                assert!(offset <= len as u64, "len {len}")
            }
            Err(FormatError::TensorOutOfBounds { file_len, .. }) => {
                assert_eq!(file_len, len as u64)
            }
            Err(e) => panic!("truncated to {len}: unexpected {e:?}"),
        }
    }
}

#[test]
fn real_model_cut_to_one_mib() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}. The default model is missing: run `scripts/test` (it fetches it) first", path.display())
    });
    let whole = GgufFile::parse(&bytes, MODEL).expect("the whole model parses");
    assert_eq!(whole.tensors.len(), 272);
    let cut = &bytes[..1 << 20];
    match GgufFile::parse(cut, MODEL) {
        Err(e @ (FormatError::Truncated { .. } | FormatError::TensorOutOfBounds { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains(MODEL), "{msg}");
        }
        other => panic!("expected Truncated/TensorOutOfBounds, got {other:?}"),
    }
}

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn one_mib_of_random_bytes() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut bytes: Vec<u8> = (0..1 << 20).map(|_| rng.next() as u8).collect();
    let e = err(&bytes);
    assert!(matches!(e, FormatError::BadMagic { ref found, .. } if found == &bytes[..4]), "{e:?}");
    // With a valid header in front, the rest is still garbage: some error, no panic, quickly.
    bytes[..8].copy_from_slice(b"GGUF\x03\0\0\0");
    for seed in 0..64u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for b in &mut bytes[8..] {
            *b = rng.next() as u8;
        }
        // Small counts, so parsing goes on into the garbage.
        put_u64(&mut bytes, 8, seed % 4);
        put_u64(&mut bytes, 16, 1 + seed % 7);
        assert!(parse(&bytes).is_err(), "seed {seed}");
    }
}

#[test]
fn random_mutations_never_panic() {
    // A cheap, deterministic stand-in for the fuzz target: flip bytes and write interesting
    // values into a valid file; every outcome must be Ok or a typed error.
    let base = base();
    let mut rng = XorShift(42);
    let specials = [0u64, 1, 4, 5, 13, 31, 32, 255, 1 << 31, 1 << 32, 1 << 40, u64::MAX / 2, u64::MAX];
    let (mut ok, mut errors) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.next() % 3 {
            if bytes.is_empty() {
                break;
            }
            let at = (rng.next() % bytes.len() as u64) as usize;
            match rng.next() % 3 {
                0 => bytes[at] = rng.next() as u8,
                1 if at + 8 <= bytes.len() => {
                    put_u64(&mut bytes, at, specials[(rng.next() % specials.len() as u64) as usize])
                }
                _ => bytes.truncate(at),
            }
        }
        match parse(&bytes) {
            Ok(f) => {
                ok += 1;
                for t in &f.tensors {
                    if t.dtype.can_dequantize() {
                        let v = f.dequantize_tensor(&bytes, t).unwrap();
                        assert_eq!(v.len() as u64, t.n_elements);
                    }
                }
            }
            Err(_) => errors += 1,
        }
    }
    // Both outcomes happen, so the mutations neither always break nor never touch the file.
    assert!(ok > 100 && errors > 100, "ok {ok}, errors {errors}");
}
