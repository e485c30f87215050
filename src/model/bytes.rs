//! Where a model's bytes live. Natively a model file is memory-mapped, not read: an 8B model's
//! 4.6 GB never has to fit in memory twice (once read, once in the GPU's buffers, which a software
//! GPU keeps in the same memory), and a page of it that has been checked or uploaded can be
//! handed back to the OS ([`ModelBytes::release`]) and is read again from the file if needed. In
//! the browser a large file stays where the browser keeps it (a `Blob`, on disk) and is read a
//! range at a time ([`ByteSource`]); bytes the program made itself are an owned buffer.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Mutex;

/// A file read a range at a time (the page's `Blob`, through a worker's synchronous reader).
pub trait ByteSource: Send + Sync {
    /// The file's length: a u64, since a file the page reads lazily may be larger than wasm32's
    /// 4 GiB address space (an 8B model's 4.6 GB); only the ranges read must fit in memory.
    fn len(&self) -> u64;
    /// Exactly the bytes `start..start + len`, or why they could not be read.
    fn read(&self, start: u64, len: usize) -> Result<Vec<u8>, String>;
}

/// Reads up to half this long are served from one cached chunk of this size, so walking a
/// matrix row by row (the CPU reference, the weight views) reads the file in large pieces.
const LAZY_CHUNK: usize = 4 << 20;

pub struct LazyBytes {
    source: Box<dyn ByteSource>,
    /// The last chunk read: (its start, its bytes).
    chunk: Mutex<Option<(u64, Vec<u8>)>>,
}

impl LazyBytes {
    fn read(&self, start: u64, len: usize) -> Result<Cow<'_, [u8]>, String> {
        let end = start.checked_add(len as u64).filter(|&end| end <= self.source.len());
        let Some(end) = end else {
            return Err(format!("bytes {start}..+{len} lie past the end ({} bytes)", self.source.len()));
        };
        if len * 2 > LAZY_CHUNK {
            return self.source.read(start, len).map(Cow::Owned);
        }
        let mut chunk = self.chunk.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let cached = chunk.as_ref().is_some_and(|(at, bytes)| *at <= start && end <= at + bytes.len() as u64);
        if !cached {
            // From `start` on: a walk forward through the file reads each byte once.
            let until = (start + LAZY_CHUNK as u64).min(self.source.len());
            *chunk = Some((start, self.source.read(start, (until - start) as usize)?));
        }
        let (at, bytes) = chunk.as_ref().expect("filled above");
        // Both ends lie inside the cached chunk, so their distances from its start fit a usize.
        let from = (start - at) as usize;
        Ok(Cow::Owned(bytes[from..from + len].to_vec()))
    }
}

pub enum ModelBytes {
    Owned(Vec<u8>),
    /// A read-only shared mapping of a file. Like every program that maps its input (llama.cpp
    /// included), it assumes the file is not truncated or rewritten while the model is open.
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
    Lazy(LazyBytes),
}

impl ModelBytes {
    /// Maps the file at `path` read-only.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn map(path: &std::path::Path) -> std::io::Result<ModelBytes> {
        let file = std::fs::File::open(path)?;
        // SAFETY: the mapping is read-only and shared; the file changing under it is the caveat
        // the type's documentation states.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(ModelBytes::Mapped(map))
    }

    /// A file read through `source` when its bytes are needed.
    pub fn lazy(source: Box<dyn ByteSource>) -> ModelBytes {
        ModelBytes::Lazy(LazyBytes { source, chunk: Mutex::new(None) })
    }

    pub fn len(&self) -> u64 {
        match self {
            ModelBytes::Lazy(lazy) => lazy.source.len(),
            _ => self.in_memory().map_or(0, <[u8]>::len) as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All the bytes, where they are addressable (owned or mapped); None for a lazy file.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            ModelBytes::Owned(v) => Some(v),
            #[cfg(not(target_arch = "wasm32"))]
            ModelBytes::Mapped(m) => Some(m),
            ModelBytes::Lazy(_) => None,
        }
    }

    /// The bytes `start..start + len`: borrowed where they are in memory, read where lazy.
    pub fn read(&self, start: u64, len: usize) -> Result<Cow<'_, [u8]>, String> {
        match self {
            ModelBytes::Lazy(lazy) => lazy.read(start, len),
            _ => {
                let bytes = self.in_memory().unwrap_or(&[]);
                usize::try_from(start)
                    .ok()
                    .and_then(|start| Some(start..start.checked_add(len)?))
                    .and_then(|range| bytes.get(range))
                    .map(Cow::Borrowed)
                    .ok_or_else(|| format!("bytes {start}..+{len} lie past the end ({} bytes)", bytes.len()))
            }
        }
    }

    /// Says `range` will not be read for a while. A mapped file's whole pages inside it leave
    /// the resident set at once and are read again from the file if touched; owned bytes and a
    /// lazy file's one cached chunk stay.
    pub fn release(&self, range: Range<u64>) {
        #[cfg(all(unix, not(target_arch = "wasm32")))]
        if let ModelBytes::Mapped(map) = self {
            const PAGE: u64 = 4096;
            // A mapping lies in the address space, so its offsets fit a usize.
            let start = range.start.next_multiple_of(PAGE) as usize;
            let end = ((range.end.min(map.len() as u64) / PAGE) * PAGE) as usize;
            if start < end {
                // SAFETY: DONTNEED on a read-only shared file mapping only drops page table
                // entries; the next read faults the same bytes back in from the file, so no
                // borrowed slice ever sees different contents. Failure only means the pages stay.
                let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
        let _ = range;
    }
}

impl From<Vec<u8>> for ModelBytes {
    fn from(bytes: Vec<u8>) -> Self {
        ModelBytes::Owned(bytes)
    }
}

/// Several buffers seen as one address space: a sharded checkpoint's files, or a file plus the
/// tensors the loader rewrote (Gemma's shifted norm gains), without copying any of them. A
/// tensor's `start` is an offset into the concatenation; it must lie within one buffer.
#[derive(Default)]
pub struct ByteSegments {
    buffers: Vec<ModelBytes>,
    /// Where each buffer starts in the concatenation.
    starts: Vec<u64>,
}

impl ByteSegments {
    pub fn new(first: impl Into<ModelBytes>) -> Self {
        let mut segments = ByteSegments::default();
        segments.push(first.into());
        segments
    }

    /// Appends `bytes`; returns the offset at which they start.
    pub fn push(&mut self, bytes: impl Into<ModelBytes>) -> u64 {
        let start = self.len();
        self.starts.push(start);
        self.buffers.push(bytes.into());
        start
    }

    pub fn len(&self) -> u64 {
        match (self.starts.last(), self.buffers.last()) {
            (Some(start), Some(last)) => start + last.len(),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first buffer: the file a single-file model was read from.
    pub fn first(&self) -> Option<&ModelBytes> {
        self.buffers.first()
    }

    /// The buffer holding offset `start` and `start` within it.
    fn locate(&self, start: u64) -> Option<(&ModelBytes, u64)> {
        let i = self.starts.partition_point(|&s| s <= start).checked_sub(1)?;
        Some((&self.buffers[i], start - self.starts[i]))
    }

    /// Whether `start..start + len` lies inside one buffer.
    pub fn contains(&self, start: u64, len: usize) -> bool {
        self.locate(start)
            .is_some_and(|(buffer, local)| local.checked_add(len as u64).is_some_and(|end| end <= buffer.len()))
    }

    /// `len` bytes from `start`; an error where they are out of bounds, cross from one buffer
    /// into the next, or could not be read.
    pub fn read(&self, start: u64, len: usize) -> Result<Cow<'_, [u8]>, String> {
        if !self.contains(start, len) {
            return Err(format!("bytes {start}..+{len} are not inside one of the buffers ({} bytes)", self.len()));
        }
        let (buffer, local) = self.locate(start).expect("checked by contains");
        buffer.read(local, len)
    }

    /// [`ModelBytes::release`] of the bytes `start..start + len`.
    pub fn release(&self, start: u64, len: usize) {
        if let Some((buffer, local)) = self.locate(start) {
            buffer.release(local..local.saturating_add(len as u64));
        }
    }
}

impl From<Vec<u8>> for ByteSegments {
    fn from(bytes: Vec<u8>) -> Self {
        ByteSegments::new(bytes)
    }
}

impl From<ModelBytes> for ByteSegments {
    fn from(bytes: ModelBytes) -> Self {
        ByteSegments::new(bytes)
    }
}
