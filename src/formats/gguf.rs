//! GGUF v2/v3 parser, and a small v3 writer (used by tests and the fuzz seeds).
//!
//! Layout (little-endian; ggml's `docs/gguf.md`):
//!
//! ```text
//! "GGUF" | version: u32 | tensor_count: u64 | kv_count: u64
//! kv_count x   { key: string | value_type: u32 | value }
//! tensor_count x { name: string | n_dims: u32 | dims: [u64; n_dims] | type: u32 | offset: u64 }
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor's offset is relative to the start of this section
//! string = len: u64 | UTF-8 bytes;  array value = item_type: u32 | len: u64 | items
//! ```
//!
//! The bytes are untrusted. Every count is checked against the bytes that remain before anything
//! is allocated for it (an array of n items needs at least n * smallest-item-size bytes left), all
//! arithmetic is checked, every loop consumes input, nested arrays have a depth limit, and every
//! failure is a typed [`FormatError`] that names the file, the byte offset and, where there is one,
//! the tensor. Nothing here panics (the fuzz target in `fuzz/` holds us to that).

use std::collections::HashSet;
use std::fmt;

use crate::formats::ggml::{self, GgmlType};
use crate::FormatError;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml tensors have at most 4 dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Nested arrays deeper than this are rejected (GGUF writers never nest at all; the limit keeps
/// the recursive reader's stack bounded on hostile input).
pub const MAX_ARRAY_DEPTH: u32 = 8;

/// More tensors than this in one file is taken for corruption ([`FormatError::Implausible`]).
pub const MAX_TENSORS: u64 = 1 << 20;
/// More metadata entries than this in one file is taken for corruption.
pub const MAX_METADATA_ENTRIES: u64 = 1 << 20;

/// Smallest possible encoding of one metadata entry: empty key (8) + value type (4) + 1 byte.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest possible encoding of one tensor info: empty name (8) + n_dims (4) + one dim (8) +
/// type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

/// One metadata value. Variant order = GGUF value type id (U8 = 0 ... F64 = 12).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Items all have the same type in a file; nested arrays carry their own item type.
    Array(Vec<MetadataValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetadataValue {
    /// The GGUF value type id (`gguf_type`).
    pub fn type_id(&self) -> u32 {
        match self {
            MetadataValue::U8(_) => 0,
            MetadataValue::I8(_) => 1,
            MetadataValue::U16(_) => 2,
            MetadataValue::I16(_) => 3,
            MetadataValue::U32(_) => 4,
            MetadataValue::I32(_) => 5,
            MetadataValue::F32(_) => 6,
            MetadataValue::Bool(_) => 7,
            MetadataValue::String(_) => 8,
            MetadataValue::Array(_) => 9,
            MetadataValue::U64(_) => 10,
            MetadataValue::I64(_) => 11,
            MetadataValue::F64(_) => 12,
        }
    }

    /// A short name of the value's type ("u32", "string", "array", ...), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "u8",
            MetadataValue::I8(_) => "i8",
            MetadataValue::U16(_) => "u16",
            MetadataValue::I16(_) => "i16",
            MetadataValue::U32(_) => "u32",
            MetadataValue::I32(_) => "i32",
            MetadataValue::F32(_) => "f32",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(_) => "array",
            MetadataValue::U64(_) => "u64",
            MetadataValue::I64(_) => "i64",
            MetadataValue::F64(_) => "f64",
        }
    }

    /// Any unsigned integer, or a signed one that is not negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v as u64),
            MetadataValue::U16(v) => Some(v as u64),
            MetadataValue::U32(v) => Some(v as u64),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any number (integers are converted; u64/i64 beyond 2^53 lose precision).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::U8(v) => Some(v as f64),
            MetadataValue::I8(v) => Some(v as f64),
            MetadataValue::U16(v) => Some(v as f64),
            MetadataValue::I16(v) => Some(v as f64),
            MetadataValue::U32(v) => Some(v as f64),
            MetadataValue::I32(v) => Some(v as f64),
            MetadataValue::F32(v) => Some(v as f64),
            MetadataValue::U64(v) => Some(v as f64),
            MetadataValue::I64(v) => Some(v as f64),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn is_integer(&self) -> bool {
        matches!(
            self,
            MetadataValue::U8(_)
                | MetadataValue::I8(_)
                | MetadataValue::U16(_)
                | MetadataValue::I16(_)
                | MetadataValue::U32(_)
                | MetadataValue::I32(_)
                | MetadataValue::U64(_)
                | MetadataValue::I64(_)
        )
    }
}

/// Human-readable form: numbers as numbers, strings quoted, long arrays shortened
/// (`[1, 2, 3, ... (49152 items)]`) so a tokenizer's vocabulary does not flood a terminal.
impl fmt::Display for MetadataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        match self {
            MetadataValue::U8(v) => write!(f, "{v}"),
            MetadataValue::I8(v) => write!(f, "{v}"),
            MetadataValue::U16(v) => write!(f, "{v}"),
            MetadataValue::I16(v) => write!(f, "{v}"),
            MetadataValue::U32(v) => write!(f, "{v}"),
            MetadataValue::I32(v) => write!(f, "{v}"),
            MetadataValue::F32(v) => write!(f, "{v}"),
            MetadataValue::Bool(v) => write!(f, "{v}"),
            MetadataValue::String(v) => write!(f, "{v:?}"),
            MetadataValue::U64(v) => write!(f, "{v}"),
            MetadataValue::I64(v) => write!(f, "{v}"),
            MetadataValue::F64(v) => write!(f, "{v}"),
            MetadataValue::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().take(SHOWN).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                if items.len() > SHOWN {
                    write!(f, ", ... ({} items)", items.len())?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One tensor as described in the file's tensor-info table.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (row) length. Never empty, no zero entries.
    pub dims: Vec<u64>,
    pub dtype: GgmlType,
    /// Relative to the data section ([`GgufFile::data_offset`]); a multiple of the alignment.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

/// A parsed GGUF file: everything but the tensor data, which stays in the caller's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    /// The name given to [`GgufFile::parse`], used in errors.
    pub file: String,
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// In file order.
    pub metadata: Vec<(String, MetadataValue)>,
    /// In file order.
    pub tensors: Vec<GgufTensorInfo>,
}

impl GgufFile {
    /// Parse header, metadata and tensor infos from the whole file's bytes, and check that every
    /// tensor lies inside `bytes`, is aligned, and overlaps no other. `file` names the source in
    /// errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<GgufFile, FormatError> {
        Parser { r: Reader { bytes, pos: 0, file }, file_len: bytes.len() as u64 }.parse()
    }

    /// Like [`GgufFile::parse`], from the first bytes of a file of `file_len` bytes that is not
    /// in memory (the page's `Blob`): tensors are checked against `file_len`. A `head` too short
    /// for the header gives [`FormatError::Truncated`]; read more and try again.
    pub fn parse_head(head: &[u8], file_len: u64, file: &str) -> Result<GgufFile, FormatError> {
        Parser { r: Reader { bytes: head, pos: 0, file }, file_len }.parse()
    }

    /// The value of metadata key `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensor's bytes inside `bytes` (the slice given to [`GgufFile::parse`], whose bounds
    /// were checked there). Given some other slice that is too short, this returns an empty slice
    /// rather than panicking; [`GgufFile::dequantize_tensor`] then reports the length mismatch.
    pub fn tensor_data<'a>(&self, bytes: &'a [u8], info: &GgufTensorInfo) -> &'a [u8] {
        let range = self
            .data_offset
            .checked_add(info.offset)
            .and_then(|start| Some((start, start.checked_add(info.n_bytes)?)))
            .and_then(|(start, end)| Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?));
        range.and_then(|r| bytes.get(r)).unwrap_or(&[])
    }

    /// Dequantize a whole tensor to f32, in ggml order (row after row of `dims[0]` elements).
    /// Unsupported types give [`FormatError::UnsupportedTensorType`]
    /// ("unsupported tensor type X in tensor Y").
    pub fn dequantize_tensor(&self, bytes: &[u8], info: &GgufTensorInfo) -> Result<Vec<f32>, FormatError> {
        if !info.dtype.can_dequantize() {
            return Err(FormatError::UnsupportedTensorType {
                file: self.file.clone(),
                tensor: info.name.clone(),
                ty: info.dtype.name().to_string(),
            });
        }
        let n = usize::try_from(info.n_elements).map_err(|_| FormatError::BadTensor {
            file: self.file.clone(),
            tensor: info.name.clone(),
            message: format!("{} elements do not fit in this platform's memory", info.n_elements),
        })?;
        ggml::dequantize(info.dtype, self.tensor_data(bytes, info), n, &self.file, &info.name)
    }
}

/// A cursor over untrusted bytes. `pos <= bytes.len()` always holds.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> u64 {
        self.bytes.len().saturating_sub(self.pos) as u64
    }

    /// The next `n` bytes; `what` describes them for the error (built only on failure).
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], FormatError> {
        let available = self.remaining();
        let slice = usize::try_from(n)
            .ok()
            .filter(|_| n <= available)
            .and_then(|n| self.bytes.get(self.pos..self.pos.checked_add(n)?));
        match slice {
            Some(s) => {
                self.pos += s.len();
                Ok(s)
            }
            None => Err(FormatError::Truncated {
                file: self.file.to_string(),
                offset: self.offset(),
                what: what(),
                needed: n,
                available,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N], FormatError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes.
    fn string(&mut self, what: impl Fn() -> String) -> Result<String, FormatError> {
        let len = self.u64(|| format!("length of {}", what()))?;
        let start = self.offset();
        let raw = self.take(len, &what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(FormatError::InvalidUtf8 { file: self.file.to_string(), offset: start, what: what() }),
        }
    }
}

/// The name [`MetadataValue::type_name`] gives values of GGUF type `type_id`.
fn value_type_name(type_id: u32) -> &'static str {
    const NAMES: [&str; 13] =
        ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
    NAMES.get(type_id as usize).copied().unwrap_or("unknown")
}

/// Smallest encoding of one value of GGUF type `type_id`; None for unknown types.
fn min_value_size(type_id: u32) -> Option<u64> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,     // string: its u64 length
        9 => 4 + 8, // array: item type + length
        10..=12 => 8,
        _ => return None,
    })
}

struct Parser<'a> {
    r: Reader<'a>,
    /// The whole file's length (the reader may hold only its head).
    file_len: u64,
}

impl<'a> Parser<'a> {
    fn file(&self) -> String {
        self.r.file.to_string()
    }

    fn implausible(&self, offset: u64, what: String, value: u64, limit: u64) -> FormatError {
        FormatError::Implausible { file: self.file(), offset, what, value, limit }
    }

    fn bad_tensor(&self, tensor: &str, message: String) -> FormatError {
        FormatError::BadTensor { file: self.file(), tensor: tensor.to_string(), message }
    }

    fn parse(mut self) -> Result<GgufFile, FormatError> {
        // --- header ---
        let bytes = self.r.bytes;
        if bytes.len() < 4 && !GGUF_MAGIC.starts_with(bytes) {
            return Err(FormatError::BadMagic { file: self.file(), found: bytes.to_vec() });
        }
        let magic = self.r.take(4, || "magic".to_string())?;
        if magic != GGUF_MAGIC {
            return Err(FormatError::BadMagic { file: self.file(), found: magic.to_vec() });
        }
        let version = self.r.u32(|| "version".to_string())?;
        if version != 2 && version != 3 {
            // v1 used 32-bit counts and lengths; nothing current writes it.
            return Err(FormatError::UnsupportedVersion { file: self.file(), version });
        }
        let tensor_count_offset = self.r.offset();
        let tensor_count = self.r.u64(|| "tensor count".to_string())?;
        let kv_count_offset = self.r.offset();
        let kv_count = self.r.u64(|| "metadata count".to_string())?;

        // Counts beyond these limits are corruption, not big models (the largest GGUF files have
        // a few thousand tensors and a few hundred keys). Counts below them that still exceed what
        // the file holds run into a Truncated error at the exact place the bytes run out.
        if tensor_count > MAX_TENSORS {
            return Err(self.implausible(tensor_count_offset, "tensor count".into(), tensor_count, MAX_TENSORS));
        }
        if kv_count > MAX_METADATA_ENTRIES {
            return Err(self.implausible(kv_count_offset, "metadata count".into(), kv_count, MAX_METADATA_ENTRIES));
        }

        // --- metadata ---
        // Capacities are capped by what the remaining bytes could hold, not by the counts.
        let kv_capacity = kv_count.min(self.r.remaining() / MIN_KV_BYTES) as usize;
        let mut metadata: Vec<(String, MetadataValue)> = Vec::with_capacity(kv_capacity);
        let mut keys: HashSet<String> = HashSet::with_capacity(kv_capacity);
        let mut alignment_at = None;
        for i in 0..kv_count {
            let key_offset = self.r.offset();
            let key = self.r.string(|| format!("key of metadata entry #{i}"))?;
            if !keys.insert(key.clone()) {
                return Err(FormatError::Duplicate {
                    file: self.file(),
                    what: format!("metadata key at offset {key_offset}"),
                    name: key,
                });
            }
            let type_offset = self.r.offset();
            let type_id = self.r.u32(|| format!("value type of metadata key {key:?}"))?;
            let value_offset = self.r.offset();
            let value = self.value(type_id, type_offset, &key, 0)?;
            if key == ALIGNMENT_KEY {
                alignment_at = Some(value_offset);
            }
            metadata.push((key, value));
        }

        let alignment = match (alignment_at, metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY)) {
            (Some(offset), Some((_, value))) => self.alignment(value, offset)?,
            _ => DEFAULT_ALIGNMENT,
        };

        // --- tensor infos ---
        let tensor_capacity = tensor_count.min(self.r.remaining() / MIN_TENSOR_INFO_BYTES) as usize;
        let mut tensors: Vec<GgufTensorInfo> = Vec::with_capacity(tensor_capacity);
        let mut names: HashSet<String> = HashSet::with_capacity(tensor_capacity);
        for i in 0..tensor_count {
            let info_offset = self.r.offset();
            let info = self.tensor_info(i, alignment)?;
            if !names.insert(info.name.clone()) {
                return Err(FormatError::Duplicate {
                    file: self.file(),
                    what: format!("tensor name (tensor info at offset {info_offset})"),
                    name: info.name,
                });
            }
            tensors.push(info);
        }

        // --- data section ---
        let end_of_infos = self.r.offset();
        let data_offset = end_of_infos
            .div_ceil(alignment)
            .checked_mul(alignment)
            .ok_or_else(|| self.implausible(end_of_infos, "data section offset".into(), u64::MAX, u64::MAX))?;
        let file_len = self.file_len;
        for t in &tensors {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes));
            match (start, end) {
                (Some(_), Some(end)) if end <= file_len => {}
                _ => {
                    return Err(FormatError::TensorOutOfBounds {
                        file: self.file(),
                        tensor: t.name.clone(),
                        start: start.unwrap_or(u64::MAX),
                        end: end.unwrap_or(u64::MAX),
                        file_len,
                    })
                }
            }
        }
        // In bounds (so no sum below overflows); now no two may share a byte.
        let mut order: Vec<&GgufTensorInfo> = tensors.iter().collect();
        order.sort_by_key(|t| (t.offset, t.n_bytes));
        for pair in order.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.offset < a.offset + a.n_bytes {
                return Err(FormatError::OverlappingTensors {
                    file: self.file(),
                    first: a.name.clone(),
                    second: b.name.clone(),
                    offset: b.offset,
                });
            }
        }

        Ok(GgufFile { file: self.file(), version, alignment, data_offset, metadata, tensors })
    }

    /// `general.alignment`: an integer, non-zero power of two.
    fn alignment(&self, value: &MetadataValue, offset: u64) -> Result<u64, FormatError> {
        if !value.is_integer() {
            return Err(FormatError::WrongMetadataType {
                file: self.file(),
                key: ALIGNMENT_KEY.to_string(),
                expected: "u32".to_string(),
                found: value.type_name().to_string(),
            });
        }
        match value.as_u64() {
            Some(a) if a.is_power_of_two() => Ok(a),
            _ => Err(FormatError::Invalid {
                file: self.file(),
                message: format!("{ALIGNMENT_KEY} = {value} at offset {offset} is not a non-zero power of two"),
            }),
        }
    }

    /// One metadata value of type `type_id` (whose u32 id was read at `type_offset`).
    fn value(&mut self, type_id: u32, type_offset: u64, key: &str, depth: u32) -> Result<MetadataValue, FormatError> {
        let what = || format!("value of metadata key {key:?}");
        let r = &mut self.r;
        Ok(match type_id {
            0 => MetadataValue::U8(u8::from_le_bytes(r.array(what)?)),
            1 => MetadataValue::I8(i8::from_le_bytes(r.array(what)?)),
            2 => MetadataValue::U16(u16::from_le_bytes(r.array(what)?)),
            3 => MetadataValue::I16(i16::from_le_bytes(r.array(what)?)),
            4 => MetadataValue::U32(u32::from_le_bytes(r.array(what)?)),
            5 => MetadataValue::I32(i32::from_le_bytes(r.array(what)?)),
            6 => MetadataValue::F32(f32::from_le_bytes(r.array(what)?)),
            7 => {
                let offset = r.offset();
                match u8::from_le_bytes(r.array(what)?) {
                    0 => MetadataValue::Bool(false),
                    1 => MetadataValue::Bool(true),
                    b => {
                        return Err(FormatError::Invalid {
                            file: self.file(),
                            message: format!(
                                "bool value of metadata key {key:?} at offset {offset} is {b}, not 0 or 1"
                            ),
                        })
                    }
                }
            }
            8 => MetadataValue::String(r.string(what)?),
            9 => return self.array(type_offset, key, depth),
            10 => MetadataValue::U64(u64::from_le_bytes(r.array(what)?)),
            11 => MetadataValue::I64(i64::from_le_bytes(r.array(what)?)),
            12 => MetadataValue::F64(f64::from_le_bytes(r.array(what)?)),
            _ => {
                return Err(FormatError::UnknownValueType {
                    file: self.file(),
                    offset: type_offset,
                    key: key.to_string(),
                    type_id,
                })
            }
        })
    }

    /// An array value: item type, length, items. `type_offset` is where its own type id was.
    fn array(&mut self, type_offset: u64, key: &str, depth: u32) -> Result<MetadataValue, FormatError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.implausible(
                type_offset,
                format!("array nesting depth of metadata key {key:?}"),
                u64::from(depth) + 1,
                u64::from(MAX_ARRAY_DEPTH),
            ));
        }
        let item_type_offset = self.r.offset();
        let item_type = self.r.u32(|| format!("array item type of metadata key {key:?}"))?;
        let Some(min_item) = min_value_size(item_type) else {
            return Err(FormatError::UnknownValueType {
                file: self.file(),
                offset: item_type_offset,
                key: key.to_string(),
                type_id: item_type,
            });
        };
        let len = self.r.u64(|| format!("array length of metadata key {key:?}"))?;
        // Each item takes at least `min_item` bytes: refuse before allocating for them.
        let available = self.r.remaining();
        if len > available / min_item {
            return Err(FormatError::Truncated {
                file: self.file(),
                offset: self.r.offset(),
                what: format!(
                    "array of {len} {} items ({min_item}+ bytes each) of metadata key {key:?}",
                    value_type_name(item_type)
                ),
                needed: len.saturating_mul(min_item),
                available,
            });
        }
        // len <= remaining bytes, so this allocation is bounded by the input's size.
        let mut items = Vec::with_capacity(len as usize);
        for _ in 0..len {
            items.push(self.value(item_type, item_type_offset, key, depth + 1)?);
        }
        Ok(MetadataValue::Array(items))
    }

    /// Tensor info number `index`.
    fn tensor_info(&mut self, index: u64, alignment: u64) -> Result<GgufTensorInfo, FormatError> {
        let info_offset = self.r.offset();
        let name = self.r.string(|| format!("name of tensor info #{index}"))?;
        let at = || format!("(tensor info at offset {info_offset})");

        let n_dims_offset = self.r.offset();
        let n_dims = self.r.u32(|| format!("n_dims of tensor {name:?}"))?;
        if n_dims == 0 {
            return Err(self.bad_tensor(&name, format!("n_dims is 0 {}", at())));
        }
        if n_dims > MAX_DIMS {
            return Err(self.implausible(
                n_dims_offset,
                format!("n_dims of tensor {name:?}"),
                n_dims.into(),
                MAX_DIMS.into(),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let dim_offset = self.r.offset();
            let dim = self.r.u64(|| format!("dimension {d} of tensor {name:?}"))?;
            if dim == 0 {
                return Err(self.bad_tensor(&name, format!("dimension {d} is 0 at offset {dim_offset}")));
            }
            if dim > i64::MAX as u64 {
                // ggml stores dims as int64_t.
                return Err(self.implausible(
                    dim_offset,
                    format!("dimension {d} of tensor {name:?}"),
                    dim,
                    i64::MAX as u64,
                ));
            }
            dims.push(dim);
        }
        let n_elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= i64::MAX as u64);
        let Some(n_elements) = n_elements else {
            return Err(self.implausible(
                n_dims_offset,
                format!("element count of tensor {name:?} (dims {dims:?})"),
                dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d)),
                i64::MAX as u64,
            ));
        };

        let type_id = self.r.u32(|| format!("type of tensor {name:?}"))?;
        let Some(dtype) = GgmlType::from_id(type_id) else {
            return Err(FormatError::UnknownTensorType {
                file: self.file(),
                offset: info_offset,
                tensor: name,
                type_id,
            });
        };
        let block = dtype.block_size() as u64;
        if dims[0] % block != 0 {
            return Err(self.bad_tensor(
                &name,
                format!("row length {} is not a multiple of the {} block size {block} {}", dims[0], dtype.name(), at()),
            ));
        }
        let Some(n_bytes) = dtype.bytes_for(n_elements) else {
            return Err(self
                .bad_tensor(&name, format!("byte size of {n_elements} {} elements overflows {}", dtype.name(), at())));
        };

        let offset_at = self.r.offset();
        let offset = self.r.u64(|| format!("data offset of tensor {name:?}"))?;
        if offset % alignment != 0 {
            return Err(self.bad_tensor(
                &name,
                format!("data offset {offset} (at offset {offset_at}) is not a multiple of the alignment {alignment}"),
            ));
        }
        Ok(GgufTensorInfo { name, dims, dtype, offset, n_elements, n_bytes })
    }
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// Write a GGUF v3 file. `tensors` are `(name, dims in ggml order, type, raw bytes)`; they are
/// laid out in the given order, each at the next multiple of `alignment`, with no padding after
/// the last one. If `alignment` is not the default 32 and `metadata` has no `general.alignment`,
/// one is appended (as u32). Nothing is validated: tests use this to build broken files too
/// (data shorter than the dims say, an alignment that is not a power of two, ...). Arrays are
/// written with the type of their first item (u8 when empty) and must be homogeneous.
pub fn write_gguf(
    metadata: &[(String, MetadataValue)],
    tensors: &[(String, Vec<u64>, GgmlType, Vec<u8>)],
    alignment: u64,
) -> Vec<u8> {
    let pad_to = alignment.max(1);
    let padding = |len: usize| -> usize {
        let rem = (len as u64 % pad_to) as usize;
        if rem == 0 {
            0
        } else {
            (pad_to as usize).saturating_sub(rem)
        }
    };
    let add_alignment = alignment != DEFAULT_ALIGNMENT && !metadata.iter().any(|(k, _)| k == ALIGNMENT_KEY);

    let mut out = Vec::new();
    out.extend_from_slice(&GGUF_MAGIC);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&((metadata.len() + add_alignment as usize) as u64).to_le_bytes());
    let alignment_value = match u32::try_from(alignment) {
        Ok(a) => MetadataValue::U32(a),
        Err(_) => MetadataValue::U64(alignment),
    };
    let extra = add_alignment.then(|| (ALIGNMENT_KEY.to_string(), alignment_value));
    for (key, value) in metadata.iter().chain(extra.as_ref()) {
        write_string(&mut out, key);
        out.extend_from_slice(&value.type_id().to_le_bytes());
        write_value(&mut out, value);
    }

    let mut offset = 0usize;
    for (name, dims, dtype, data) in tensors {
        write_string(&mut out, name);
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&dtype.id().to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += data.len();
        offset += padding(offset);
    }

    out.resize(out.len() + padding(out.len()), 0);
    for (i, (_, _, _, data)) in tensors.iter().enumerate() {
        out.extend_from_slice(data);
        if i + 1 < tensors.len() {
            out.resize(out.len() + padding(data.len()), 0);
        }
    }
    out
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The value's payload (without its type id).
fn write_value(out: &mut Vec<u8>, value: &MetadataValue) {
    match value {
        MetadataValue::U8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Bool(v) => out.push(*v as u8),
        MetadataValue::String(s) => write_string(out, s),
        MetadataValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Array(items) => {
            let item_type = items.first().map_or(0, MetadataValue::type_id);
            out.extend_from_slice(&item_type.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: MetadataValue) -> (String, MetadataValue) {
        (key.to_string(), value)
    }

    fn every_value_type() -> Vec<(String, MetadataValue)> {
        use MetadataValue::*;
        vec![
            kv("u8", U8(200)),
            kv("i8", I8(-100)),
            kv("u16", U16(60000)),
            kv("i16", I16(-30000)),
            kv("u32", U32(4_000_000_000)),
            kv("i32", I32(-2_000_000_000)),
            kv("f32", F32(1.5e-3)),
            kv("bool", Bool(true)),
            kv("string", String("héllo".into())),
            kv("u64", U64(u64::MAX)),
            kv("i64", I64(i64::MIN)),
            kv("f64", F64(-2.5e300)),
            kv("array.str", Array(vec![String("a".into()), String("".into()), String("ccc".into())])),
            kv("array.i32", Array(vec![I32(-1), I32(2), I32(3)])),
            kv("array.empty", Array(vec![])),
            kv("array.nested", Array(vec![Array(vec![U8(1), U8(2)]), Array(vec![]), Array(vec![U8(3)])])),
            kv("array.bool", Array(vec![Bool(false), Bool(true)])),
        ]
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn round_trip_every_value_type_and_tensors() {
        let metadata = every_value_type();
        let a: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        let b = vec![7u8; 2 * 18];
        let tensors = vec![
            ("a".to_string(), vec![3, 2], GgmlType::F32, f32_bytes(&a)),
            ("b".to_string(), vec![64], GgmlType::Q4_0, b.clone()),
        ];
        let bytes = write_gguf(&metadata, &tensors, DEFAULT_ALIGNMENT);
        let f = GgufFile::parse(&bytes, "rt.gguf").unwrap();
        assert_eq!(f.version, 3);
        assert_eq!(f.alignment, 32);
        assert_eq!(f.metadata, metadata);
        assert_eq!(f.data_offset % 32, 0);
        assert_eq!(f.tensors.len(), 2);
        let ta = f.tensor("a").unwrap();
        assert_eq!(ta.dims, vec![3, 2]);
        assert_eq!((ta.n_elements, ta.n_bytes, ta.offset), (6, 24, 0));
        let tb = f.tensor("b").unwrap();
        assert_eq!((tb.dtype, tb.n_elements, tb.n_bytes, tb.offset), (GgmlType::Q4_0, 64, 36, 32));
        assert_eq!(f.tensor_data(&bytes, tb), &b[..]);
        assert_eq!(f.dequantize_tensor(&bytes, ta).unwrap(), a);
        assert_eq!(f.get("string").and_then(MetadataValue::as_str), Some("héllo"));
        assert_eq!(f.get("u8").and_then(MetadataValue::as_u64), Some(200));
        assert_eq!(f.get("i8").and_then(MetadataValue::as_u64), None);
        assert_eq!(f.get("i8").and_then(MetadataValue::as_f64), Some(-100.0));
        assert_eq!(f.get("bool").and_then(MetadataValue::as_bool), Some(true));
        assert_eq!(f.get("array.str").and_then(MetadataValue::as_array).map(|a| a.len()), Some(3));
        assert!(f.get("missing").is_none());
        assert!(f.tensor("missing").is_none());
        // A slice that is not the parsed file gives an empty slice, not a panic.
        assert!(f.tensor_data(&bytes[..10], tb).is_empty());
        assert!(f.dequantize_tensor(&bytes[..10], ta).is_err());
    }

    #[test]
    fn type_names_agree() {
        for (_, v) in every_value_type() {
            assert_eq!(value_type_name(v.type_id()), v.type_name());
        }
        assert_eq!(value_type_name(13), "unknown");
    }

    #[test]
    fn version_2_parses_like_3() {
        let mut bytes = write_gguf(&every_value_type(), &[], DEFAULT_ALIGNMENT);
        bytes[4] = 2;
        let f = GgufFile::parse(&bytes, "v2.gguf").unwrap();
        assert_eq!(f.version, 2);
        assert_eq!(f.metadata, every_value_type());
    }

    #[test]
    fn custom_alignment_is_written_and_honoured() {
        let tensors = vec![
            ("x".to_string(), vec![3], GgmlType::F32, f32_bytes(&[1.0, 2.0, 3.0])),
            ("y".to_string(), vec![1], GgmlType::F32, f32_bytes(&[4.0])),
        ];
        let bytes = write_gguf(&[], &tensors, 64);
        let f = GgufFile::parse(&bytes, "a64.gguf").unwrap();
        assert_eq!(f.alignment, 64);
        assert_eq!(f.get(ALIGNMENT_KEY), Some(&MetadataValue::U32(64)));
        assert_eq!(f.data_offset % 64, 0);
        assert_eq!(f.tensor("y").unwrap().offset, 64);
        assert_eq!(f.dequantize_tensor(&bytes, f.tensor("y").unwrap()).unwrap(), vec![4.0]);
    }

    #[test]
    fn display_shortens_long_arrays() {
        let v = MetadataValue::Array((0..100u32).map(MetadataValue::U32).collect());
        assert_eq!(v.to_string(), "[0, 1, 2, 3, 4, 5, 6, 7, ... (100 items)]");
        assert_eq!(MetadataValue::String("a".into()).to_string(), "\"a\"");
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        // 10_000 nested single-item arrays would blow the stack of a naive recursive reader.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"GGUF");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        write_string(&mut bytes, "deep");
        bytes.extend_from_slice(&9u32.to_le_bytes());
        for _ in 0..10_000 {
            bytes.extend_from_slice(&9u32.to_le_bytes());
            bytes.extend_from_slice(&1u64.to_le_bytes());
        }
        let e = GgufFile::parse(&bytes, "deep.gguf").unwrap_err();
        assert!(matches!(e, FormatError::Implausible { ref what, .. } if what.contains("nesting depth")), "{e}");
    }
}
