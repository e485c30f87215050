//! (being written)
use super::{BlockScale, Granularity, MiniFloat, QuantizedTensor};
pub fn quantize_fp(
    _f: MiniFloat,
    _g: Granularity,
    _rows: usize,
    _cols: usize,
    _data: &[f32],
) -> Result<QuantizedTensor, String> {
    Err("not written yet".into())
}
pub fn quantize_mx(_f: MiniFloat, _rows: usize, _cols: usize, _data: &[f32]) -> Result<QuantizedTensor, String> {
    Err("not written yet".into())
}
pub fn quantize_nvfp4(_s: BlockScale, _rows: usize, _cols: usize, _data: &[f32]) -> Result<QuantizedTensor, String> {
    Err("not written yet".into())
}
pub fn quantize_llmfp(
    _f: MiniFloat,
    _search: bool,
    _rows: usize,
    _cols: usize,
    _data: &[f32],
) -> Result<QuantizedTensor, String> {
    Err("not written yet".into())
}
