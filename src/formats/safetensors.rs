//! safetensors through the `safetensors` crate, which validates the header (offsets contiguous,
//! sizes matching dtype × shape, buffer length). We only map its tensor table onto our types.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};

use crate::error::FormatError;
use crate::formats::ggml::GgmlType;

#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsTensor {
    pub name: String,
    pub dtype: GgmlType,
    /// ggml order (reversed from safetensors' row-major shape): dims[0] is the contiguous length.
    pub dims: Vec<u64>,
    /// Byte range in the whole file.
    pub start: usize,
    pub len: usize,
}

/// The tensor table of a safetensors file, sorted by data offset.
pub fn read_tensors(bytes: &[u8], file: &str) -> Result<Vec<SafetensorsTensor>, FormatError> {
    let (header_len, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| FormatError::Invalid {
        file: file.into(),
        message: format!("not a valid safetensors file: {e}"),
    })?;
    let data_start = 8 + header_len;
    let mut tensors = Vec::new();
    for (name, info) in metadata.tensors() {
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
        let (start, end) = info.data_offsets;
        let mut dims: Vec<u64> = info.shape.iter().rev().map(|&d| d as u64).collect();
        if dims.is_empty() {
            dims.push(1);
        }
        tensors.push(SafetensorsTensor { name, dtype, dims, start: data_start + start, len: end - start });
    }
    tensors.sort_by_key(|t| t.start);
    Ok(tensors)
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
