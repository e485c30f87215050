//! safetensors headers, read from the file's first bytes and its length, so that a file the page
//! reads a range at a time needs only its head in memory. The JSON is the `safetensors` crate's
//! format with its own `Dtype`, validated as the crate's `SafeTensors::read_metadata` validates it
//! (this file's unit tests and the fuzz target `safetensors` hold the two to the same verdicts and
//! tables), but in u64: the crate's `Metadata` holds offsets and sizes as `usize`, and on wasm32
//! it can neither describe a shard past 4 GiB (Hugging Face ships 5 GB shards) nor size a tensor
//! over 512 MiB (its size in bits overflows: a 3B model's embeddings are 788 MB), which are
//! exactly the files the page must read lazily.

use std::collections::{BTreeMap, HashMap};

use safetensors::Dtype;

use crate::error::FormatError;
use crate::formats::ggml::GgmlType;

/// The 8-byte little-endian length of the JSON header that starts every file.
pub const HEADER_LEN_BYTES: usize = 8;

/// The largest JSON header read, the `safetensors` crate's own limit (`MAX_HEADER_SIZE`, private
/// there): a header is a few hundred bytes per tensor, so a longer one is a corrupt length.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsTensor {
    pub name: String,
    pub dtype: GgmlType,
    /// ggml order (reversed from safetensors' row-major shape): dims[0] is the contiguous length.
    pub dims: Vec<u64>,
    /// Byte range in the whole file.
    pub start: u64,
    pub len: usize,
}

/// The header as the crate writes it: tensors by name, and an optional `__metadata__` of
/// strings (read only so that a malformed one is refused as the crate refuses it).
#[derive(serde::Deserialize)]
struct Header {
    #[serde(rename = "__metadata__")]
    _metadata: Option<HashMap<String, String>>,
    #[serde(flatten)]
    tensors: HashMap<String, TensorInfo>,
}

/// `safetensors::tensor::TensorInfo` with u64 offsets and shape (see the module's comment).
#[derive(serde::Deserialize)]
struct TensorInfo {
    dtype: Dtype,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The length N of the JSON header, from the file's first 8 bytes (`first`; more are ignored),
/// checked against the crate's limit and against `file_len`: the header must fit in the file.
pub fn header_len(first: &[u8], file_len: u64, file: &str) -> Result<usize, FormatError> {
    let Some(n) = first.get(..HEADER_LEN_BYTES) else {
        return Err(FormatError::Truncated {
            file: file.into(),
            offset: 0,
            what: "the safetensors header's length".into(),
            needed: HEADER_LEN_BYTES as u64,
            available: file_len.min(first.len() as u64),
        });
    };
    let n = u64::from_le_bytes(n.try_into().expect("8 bytes"));
    if n > MAX_HEADER_LEN {
        return Err(FormatError::Implausible {
            file: file.into(),
            offset: 0,
            what: "safetensors header length".into(),
            value: n,
            limit: MAX_HEADER_LEN,
        });
    }
    let available = file_len.saturating_sub(HEADER_LEN_BYTES as u64);
    if n > available {
        return Err(FormatError::Truncated {
            file: file.into(),
            offset: HEADER_LEN_BYTES as u64,
            what: "the safetensors JSON header".into(),
            needed: n,
            available,
        });
    }
    Ok(n as usize)
}

/// The tensor table of a safetensors file of `file_len` bytes from its head: at least its first
/// 8 + N bytes (N from [`header_len`]; more are ignored). Sorted by data offset. Every check of
/// the crate's `read_metadata` holds: offsets contiguous from 0, each tensor's bytes exactly its
/// dtype × shape, and the data ending where the file ends. Then every tensor must be F32, F16 or
/// BF16 and fit in this platform's memory.
pub fn read_header(head: &[u8], file_len: u64, file: &str) -> Result<Vec<SafetensorsTensor>, FormatError> {
    let n = header_len(head, file_len, file)?;
    let data_start = (HEADER_LEN_BYTES + n) as u64;
    let Some(json) = head.get(HEADER_LEN_BYTES..HEADER_LEN_BYTES + n) else {
        return Err(FormatError::Truncated {
            file: file.into(),
            offset: HEADER_LEN_BYTES as u64,
            what: "the safetensors JSON header (of the bytes given)".into(),
            needed: n as u64,
            available: head.len().saturating_sub(HEADER_LEN_BYTES) as u64,
        });
    };
    let json = std::str::from_utf8(json).map_err(|e| FormatError::InvalidUtf8 {
        file: file.into(),
        offset: (HEADER_LEN_BYTES + e.valid_up_to()) as u64,
        what: "the safetensors JSON header".into(),
    })?;
    let header: Header = serde_json::from_str(json).map_err(|e| FormatError::Invalid {
        file: file.into(),
        message: format!("the safetensors header (bytes 8..{data_start}) is not valid: {e}"),
    })?;
    let mut infos: Vec<(String, TensorInfo)> = header.tensors.into_iter().collect();
    infos.sort_by(|(a_name, a), (b_name, b)| (a.data_offsets, a_name).cmp(&(b.data_offsets, b_name)));
    let data_len = check_layout(&infos, file)?;
    // The crate refuses extra bytes after the data as well as missing ones.
    let file_data = file_len - data_start;
    if data_len > file_data {
        return Err(FormatError::Truncated {
            file: file.into(),
            offset: data_start,
            what: "the tensor data the safetensors header describes".into(),
            needed: data_len,
            available: file_data,
        });
    }
    if data_len < file_data {
        let message = format!("{file_data} bytes follow the header, but its tensors describe only {data_len}");
        return Err(FormatError::Invalid { file: file.into(), message });
    }
    infos.into_iter().map(|(name, info)| tensor(name, info, data_start, file)).collect()
}

/// The tensor table of a whole safetensors file in memory.
pub fn read_tensors(bytes: &[u8], file: &str) -> Result<Vec<SafetensorsTensor>, FormatError> {
    read_header(bytes, bytes.len() as u64, file)
}

/// What the `safetensors` crate's own reader makes of a whole file: each tensor's (name, start in
/// the file, length) in offset order, or its error. The oracle that [`read_tensors`] is held to
/// (the unit tests, the fuzz target `safetensors`): the same verdict, the same table, except that
/// a dtype we do not read is refused.
pub fn crate_table(bytes: &[u8]) -> Result<Vec<(String, u64, usize)>, String> {
    let (n, metadata) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let data_start = (HEADER_LEN_BYTES + n) as u64;
    let place = |name: String| {
        let (start, end) = metadata.info(&name).expect("a name the crate listed").data_offsets;
        (name, data_start + start as u64, end - start)
    };
    Ok(metadata.offset_keys().into_iter().map(place).collect())
}

/// Whether [`read_tensors`]' answer on a whole file agrees with the crate's ([`crate_table`]).
pub fn agrees_with_the_crate(bytes: &[u8], ours: &Result<Vec<SafetensorsTensor>, FormatError>) -> Result<(), String> {
    match (crate_table(bytes), ours) {
        (Ok(theirs), Ok(table)) => {
            let ours: Vec<(String, u64, usize)> = table.iter().map(|t| (t.name.clone(), t.start, t.len)).collect();
            if ours == theirs {
                Ok(())
            } else {
                Err(format!("the crate reads {theirs:?}, we read {ours:?}"))
            }
        }
        (Ok(_), Err(FormatError::UnsupportedTensorType { .. })) | (Err(_), Err(_)) => Ok(()),
        (Ok(_), Err(e)) => Err(format!("the crate reads the file, we refuse it: {e}")),
        (Err(e), Ok(_)) => Err(format!("the crate refuses the file ({e}), we read it")),
    }
}

/// Checks the crate's `Metadata::validate` makes, in u64, over tensors sorted by offset: each
/// starts where the one before ended (the first at 0) and spans exactly its dtype × shape.
/// Returns the data section's length.
fn check_layout(infos: &[(String, TensorInfo)], file: &str) -> Result<u64, FormatError> {
    let bad = |name: &str, message: String| FormatError::BadTensor { file: file.into(), tensor: name.into(), message };
    let mut end = 0u64;
    for (name, info) in infos {
        let (start, stop) = info.data_offsets;
        if start != end {
            let after = if end == 0 {
                "the data's start (0)".to_string()
            } else {
                format!("the previous tensor's end ({end})")
            };
            return Err(bad(name, format!("data offsets [{start}, {stop}) do not follow {after}")));
        }
        if stop < start {
            return Err(bad(name, format!("data offsets [{start}, {stop}) end before they start")));
        }
        let bits = info
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_mul(info.dtype.bitsize() as u64))
            .ok_or_else(|| bad(name, format!("shape {:?} of {:?} overflows", info.shape, info.dtype)))?;
        if bits % 8 != 0 {
            return Err(bad(
                name,
                format!("shape {:?} of {:?} is not a whole number of bytes", info.shape, info.dtype),
            ));
        }
        if stop - start != bits / 8 {
            let message = format!(
                "data offsets [{start}, {stop}) hold {} bytes, but shape {:?} of {:?} is {} bytes",
                stop - start,
                info.shape,
                info.dtype,
                bits / 8
            );
            return Err(bad(name, message));
        }
        end = stop;
    }
    Ok(end)
}

/// One validated tensor as ours: its type, ggml-order dims and place in the whole file.
fn tensor(name: String, info: TensorInfo, data_start: u64, file: &str) -> Result<SafetensorsTensor, FormatError> {
    let dtype = match info.dtype {
        Dtype::F32 => GgmlType::F32,
        Dtype::F16 => GgmlType::F16,
        Dtype::BF16 => GgmlType::BF16,
        other => {
            return Err(FormatError::UnsupportedTensorType {
                file: file.into(),
                tensor: name,
                ty: format!("{other:?}"),
            })
        }
    };
    let (start, stop) = info.data_offsets;
    // The file may be larger than this platform's memory (it is read a range at a time), but
    // each tensor is read whole.
    let Ok(len) = usize::try_from(stop - start) else {
        return Err(FormatError::BadTensor {
            file: file.into(),
            tensor: name,
            message: format!("{} bytes do not fit in this platform's memory", stop - start),
        });
    };
    let mut dims: Vec<u64> = info.shape.iter().rev().copied().collect();
    if dims.is_empty() {
        dims.push(1);
    }
    Ok(SafetensorsTensor { name, dtype, dims, start: data_start + start, len })
}

/// `model.safetensors.index.json`: which shard holds each tensor (Hugging Face's `weight_map`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct IndexFile {
    weight_map: BTreeMap<String, String>,
}

/// Reads a shard index; `file` names it in errors.
pub fn read_index(bytes: &[u8], file: &str) -> Result<ShardIndex, FormatError> {
    let index: IndexFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid {
        file: file.into(),
        message: format!("not a safetensors shard index (a JSON object with a weight_map): {e}"),
    })?;
    if index.weight_map.is_empty() {
        return Err(FormatError::Invalid { file: file.into(), message: "the weight_map names no tensor".into() });
    }
    Ok(ShardIndex { weight_map: index.weight_map })
}

impl ShardIndex {
    /// The shard files, each once, in name order (`model-00001-of-00002.safetensors`, ...).
    pub fn shards(&self) -> Vec<&str> {
        let mut shards: Vec<&str> = self.weight_map.values().map(String::as_str).collect();
        shards.sort_unstable();
        shards.dedup();
        shards
    }

    pub fn shard_of(&self, tensor: &str) -> Option<&str> {
        self.weight_map.get(tensor).map(String::as_str)
    }

    pub fn tensors(&self) -> impl Iterator<Item = &String> {
        self.weight_map.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use safetensors::SafeTensors;

    /// A file of `header` (as given, unvalidated) followed by `data_len` zero bytes.
    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data_len, 0);
        bytes
    }

    /// A valid file written by the crate: every supported dtype, a scalar and metadata.
    fn written() -> Vec<u8> {
        let data = [vec![1u8; 4 * 6], vec![2u8; 2 * 3], vec![3u8; 2 * 4], vec![4u8; 4]];
        let views = [
            ("w", Dtype::F32, vec![2, 3]),
            ("h", Dtype::F16, vec![3]),
            ("b", Dtype::BF16, vec![2, 2]),
            ("s", Dtype::F32, vec![]),
        ]
        .into_iter()
        .zip(&data)
        .map(|((name, dtype, shape), bytes)| (name, TensorView::new(dtype, shape, bytes).unwrap()));
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize(views, Some(metadata)).unwrap()
    }

    #[test]
    fn a_header_read_from_the_head_alone_is_the_whole_files_table() {
        let bytes = written();
        let n = header_len(&bytes[..8], bytes.len() as u64, "w.safetensors").unwrap();
        let from_head = read_header(&bytes[..8 + n], bytes.len() as u64, "w.safetensors").unwrap();
        let whole = read_tensors(&bytes, "w.safetensors").unwrap();
        assert_eq!(from_head, whole);
        let crate_view = SafeTensors::deserialize(&bytes).unwrap();
        for t in &whole {
            let view = crate_view.tensor(&t.name).unwrap();
            let start = t.start as usize;
            assert_eq!(&bytes[start..start + t.len], view.data(), "{}", t.name);
        }
        let mut dims: Vec<(&str, &[u64])> = whole.iter().map(|t| (t.name.as_str(), &t.dims[..])).collect();
        dims.sort();
        assert_eq!(dims, [("b", &[2, 2][..]), ("h", &[3]), ("s", &[1]), ("w", &[3, 2])]);
        let head = read_header(&bytes[..8 + n - 1], bytes.len() as u64, "w.safetensors").unwrap_err().to_string();
        assert!(head.contains("w.safetensors") && head.contains("of the bytes given"), "{head}");
    }

    /// Our checks are the crate's `read_metadata`'s: for each file it refuses we refuse, and
    /// each it reads we read to the same table, or refuse its dtype by name.
    #[test]
    fn every_file_the_crate_refuses_is_refused_and_every_one_it_reads_is_read_alike() {
        let good = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}}"#;
        let mut huge = file(good, 14);
        huge[..8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
        let mut past_the_end = file(good, 14);
        past_the_end[..8].copy_from_slice(&1000u64.to_le_bytes());
        let mut not_utf8 = file(good, 14);
        not_utf8[10] = 0xff;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("valid", file(good, 14)),
            ("crate-written", written()),
            ("no tensors", file("{}", 0)),
            ("no tensors, padded", file("{}      ", 0)),
            ("shorter than its length", written()[..5].to_vec()),
            ("header length over the limit", huge),
            ("header length past the end", past_the_end),
            ("not UTF-8", not_utf8),
            ("not JSON", file("{\"a\":", 0)),
            ("not an object", file("[1, 2]", 0)),
            ("a field missing", file(r#"{"a":{"dtype":"F32","shape":[2]}}"#, 8)),
            ("an unknown dtype", file(r#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#, 8)),
            (
                "metadata not strings",
                file(r#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8),
            ),
            (
                "a gap",
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#,
                    16,
                ),
            ),
            ("not from 0", file(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8)),
            (
                "overlapping",
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    12,
                ),
            ),
            ("backwards", file(r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, 8)),
            ("size not the shape's", file(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8)),
            (
                "shape overflows",
                file(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, 8),
            ),
            ("not whole bytes", file(r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, 2)),
            ("data one byte short", file(good, 13)),
            ("data one byte long", file(good, 15)),
            ("an unsupported dtype", file(r#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, 8)),
        ];
        for (what, bytes) in cases {
            let ours = read_tensors(&bytes, "case.safetensors");
            if let Err(e) = &ours {
                assert!(e.to_string().starts_with("case.safetensors: "), "{what}: {e}");
            }
            let unsupported = matches!(ours, Err(FormatError::UnsupportedTensorType { .. }));
            assert_eq!(unsupported, what == "an unsupported dtype", "{what}: {ours:?}");
            agrees_with_the_crate(&bytes, &ours).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}
