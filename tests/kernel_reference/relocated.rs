//! Model files whose tensor data sits `gap` bytes further on than written, the file reading as
//! zeros in between. With a gap of several GiB such a file is larger than wasm32's address space
//! without taking that space anywhere: served a range at a time (as the page reads a `Blob`), it
//! checks that no offset is cut to 32 bits on the way from the header to the bytes.

use quantscope::formats::gguf::GgufFile;
use quantscope::model::bytes::ByteSource;

/// A file of `head`, then `gap` zero bytes, then `tail`; the gap is never in memory.
pub struct GappedFile {
    head: Vec<u8>,
    gap: u64,
    tail: Vec<u8>,
}

impl GappedFile {
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.gap + self.tail.len() as u64
    }

    /// The bytes `start..start + len` of the file (zeros in the gap).
    pub fn read(&self, start: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let tail_start = self.head.len() as u64 + self.gap;
        for (part, part_start) in [(&self.head, 0), (&self.tail, tail_start)] {
            let from = start.max(part_start);
            let to = (start + len as u64).min(part_start + part.len() as u64);
            if from < to {
                let (a, b) = ((from - part_start) as usize, (to - part_start) as usize);
                out[(from - start) as usize..(to - start) as usize].copy_from_slice(&part[a..b]);
            }
        }
        out
    }
}

impl ByteSource for GappedFile {
    fn len(&self) -> u64 {
        GappedFile::len(self)
    }

    fn read(&self, start: u64, len: usize) -> Result<Vec<u8>, String> {
        Ok(GappedFile::read(self, start, len))
    }
}

/// `gguf` with the header's tensor offsets moved by `gap` (a multiple of its alignment, so
/// offsets stay aligned) and its data section after the gap. `gguf` must parse.
pub fn relocated_gguf(gguf: &[u8], gap: u64) -> GappedFile {
    let file = GgufFile::parse(gguf, "relocated").expect("a GGUF that parses");
    assert_eq!(gap % file.alignment, 0, "the gap keeps every tensor aligned");
    let data_offset = file.data_offset as usize;
    let mut header = gguf[..data_offset].to_vec();
    // The tensor infos are consecutive: name (u64 length, bytes), n_dims (u32), dims (u64
    // each), type (u32), offset (u64). They start at the first tensor's name.
    let first = &file.tensors[0].name;
    let mut encoded = (first.len() as u64).to_le_bytes().to_vec();
    encoded.extend_from_slice(first.as_bytes());
    let mut at = header.windows(encoded.len()).position(|w| w == encoded).expect("the first tensor's name");
    for t in &file.tensors {
        at += 8 + t.name.len() + 4 + 8 * t.dims.len() + 4;
        let offset = u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
        assert_eq!(offset, t.offset, "walked to tensor {}'s offset field", t.name);
        header[at..at + 8].copy_from_slice(&(offset + gap).to_le_bytes());
        at += 8;
    }
    GappedFile { head: header, gap, tail: gguf[data_offset..].to_vec() }
}

/// A Hugging Face llama `safetensors` file with its tensors' data moved `gap` bytes on (a multiple
/// of 4). Safetensors data is contiguous from the header on, so the gap is filled by tensors
/// that the loader skips by name (`rotary_emb.inv_freq`, which it recomputes from rope_theta):
/// f32, each under 2^32 bytes, as a real shard's tensors are.
pub fn relocated_safetensors(file: &[u8], gap: u64) -> GappedFile {
    const PART: u64 = 5 << 29;
    assert_eq!(gap % 4, 0, "the gap is whole f32 values");
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&file[8..8 + n]).unwrap();
    for (name, info) in header.iter_mut().filter(|(name, _)| *name != "__metadata__") {
        let offsets = info["data_offsets"].as_array_mut().unwrap_or_else(|| panic!("{name}'s data_offsets"));
        for offset in offsets {
            *offset = (offset.as_u64().unwrap() + gap).into();
        }
    }
    for (i, start) in (0..gap).step_by(PART as usize).enumerate() {
        let len = PART.min(gap - start);
        let info = serde_json::json!({"dtype": "F32", "shape": [len / 4], "data_offsets": [start, start + len]});
        header.insert(format!("model.layers.{i}.self_attn.rotary_emb.inv_freq"), info);
    }
    let mut json = serde_json::to_string(&header).unwrap();
    // The crate pads its headers to 8 bytes, so data stays aligned; so does this one.
    json.push_str(&" ".repeat(json.len().next_multiple_of(8) - json.len()));
    let mut head = (json.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(json.as_bytes());
    GappedFile { head, gap, tail: file[8 + n..].to_vec() }
}
