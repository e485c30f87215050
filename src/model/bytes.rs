//! Where a model's bytes live. Natively a model file is memory-mapped, not read: an 8B model's
//! 4.6 GB never has to fit in memory twice (once read, once in the GPU's buffers, which a software
//! GPU keeps in the same memory), and a page of it that has been checked or uploaded can be
//! handed back to the OS ([`ModelBytes::release`]) and is read again from the file if needed. In
//! the browser, and for bytes the program made itself, they are an owned buffer.

use std::ops::{Deref, Range};

pub enum ModelBytes {
    Owned(Vec<u8>),
    /// A read-only shared mapping of a file. Like every program that maps its input (llama.cpp
    /// included), it assumes the file is not truncated or rewritten while the model is open.
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
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

    /// Says `range` will not be read for a while. A mapped file's whole pages inside it leave
    /// the resident set at once and are read again from the file if touched; owned bytes stay.
    pub fn release(&self, range: Range<usize>) {
        #[cfg(all(unix, not(target_arch = "wasm32")))]
        if let ModelBytes::Mapped(map) = self {
            const PAGE: usize = 4096;
            let start = range.start.next_multiple_of(PAGE);
            let end = (range.end.min(map.len()) / PAGE) * PAGE;
            if start < end {
                // SAFETY: DONTNEED on a read-only shared file mapping only drops page table
                // entries; the next read faults the same bytes back in from the file, so no
                // borrowed slice ever sees different contents. Failure only means the pages stay.
                let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
        #[cfg(not(all(unix, not(target_arch = "wasm32"))))]
        let _ = range;
    }
}

impl Deref for ModelBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ModelBytes::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            ModelBytes::Mapped(m) => m,
        }
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
    starts: Vec<usize>,
}

impl ByteSegments {
    pub fn new(first: impl Into<ModelBytes>) -> Self {
        let mut segments = ByteSegments::default();
        segments.push(first.into());
        segments
    }

    /// Appends `bytes`; returns the offset at which they start.
    pub fn push(&mut self, bytes: impl Into<ModelBytes>) -> usize {
        let start = self.len();
        self.starts.push(start);
        self.buffers.push(bytes.into());
        start
    }

    pub fn len(&self) -> usize {
        match (self.starts.last(), self.buffers.last()) {
            (Some(start), Some(last)) => start + last.len(),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first buffer whole: the file a single-file model was read from.
    pub fn first(&self) -> &[u8] {
        self.buffers.first().map(|b| &b[..]).unwrap_or(&[])
    }

    /// The buffer holding offset `start` and `start` within it.
    fn locate(&self, start: usize) -> Option<(&ModelBytes, usize)> {
        let i = self.starts.partition_point(|&s| s <= start).checked_sub(1)?;
        Some((&self.buffers[i], start - self.starts[i]))
    }

    /// `len` bytes from `start`, or None where they are out of bounds or cross from one buffer
    /// into the next.
    pub fn get(&self, start: usize, len: usize) -> Option<&[u8]> {
        let (buffer, local) = self.locate(start)?;
        buffer.get(local..local.checked_add(len)?)
    }

    /// [`ModelBytes::release`] of the bytes `start..start + len`.
    pub fn release(&self, start: usize, len: usize) {
        if let Some((buffer, local)) = self.locate(start) {
            buffer.release(local..local.saturating_add(len));
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
