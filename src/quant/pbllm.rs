//! (being written)
use super::QuantizedTensor;
pub fn quantize(_f: f32, _rows: usize, _cols: usize, _data: &[f32]) -> Result<QuantizedTensor, String> {
    Err("not written yet".into())
}
