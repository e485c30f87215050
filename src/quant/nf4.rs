//! (being written)
use super::QuantizedTensor;
pub fn quantize(
    _block: usize,
    _dq: bool,
    _rows: usize,
    _cols: usize,
    _data: &[f32],
) -> Result<QuantizedTensor, String> {
    Err("not written yet".into())
}
