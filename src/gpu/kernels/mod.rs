//! One Rust wrapper per WGSL file in `shaders/`. Each wrapper owns its binding table (in the
//! order of the WGSL bindings), checks shapes and buffer sizes, and records its dispatches into
//! a caller's command encoder, so a whole forward is one encoder with no readback inside.

pub mod attention;
pub mod attention_split;
pub mod attention_summary;
pub mod bcq;
pub mod elementwise;
pub mod embedding;
pub mod intervene;
pub mod matmul;
pub mod norm;
pub mod probe;
pub mod rope;
pub mod runtime_quant;
pub mod topk;

use crate::error::GpuError;

/// Fails unless `buffer` holds at least `elements` 4-byte values.
pub(crate) fn require_len(
    kernel: &'static str,
    what: &str,
    buffer: &wgpu::Buffer,
    elements: u64,
) -> Result<(), GpuError> {
    if buffer.size() < elements * 4 {
        return Err(GpuError::Shape {
            kernel,
            message: format!("{what} holds {} values, needs {elements}", buffer.size() / 4),
        });
    }
    Ok(())
}

/// `shaders/soft_cap.wgsl` (name, text): the soft cap the attention kernels and the logits share.
pub(crate) const SOFT_CAP: (&str, &str) = ("soft_cap", include_str!("../../../shaders/soft_cap.wgsl"));
