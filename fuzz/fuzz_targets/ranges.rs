//! The fuzz input served a range at a time, as the page's Blob is.

use quantscope::model::bytes::ByteSource;

pub struct Ranges(pub Vec<u8>);

impl ByteSource for Ranges {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&self, start: u64, len: usize) -> Result<Vec<u8>, String> {
        let start = usize::try_from(start).map_err(|_| "out of range")?;
        self.0.get(start..start + len).map(<[u8]>::to_vec).ok_or_else(|| "out of range".into())
    }
}
