//! `shaders/bcq_lut_gemv.wgsl`: ShiftAddLLM's LUT GEMV (docs/quantizers.md §4.1) over binary-coded
//! weights, one token: `y = Ŵ·x` with `Ŵ[n][k] = Σ_i α_i(n, group of k)·b_i(n, k)`.
//!
//! What is and is not multiplication-free: per chunk of 8 inputs the kernel builds the 256 sums
//! `T[c] = Σ_t ±x_t` with adds only (each entry one add from an earlier one, `2·x` as `x + x`);
//! a row then adds one table entry per bit plane and byte of digits, so no weight ever
//! multiplies an input. What remains is one f32 multiply per (row, group, bit plane), `α` times
//! the sum of that group's look-ups. ShiftAddLLM turns that one into shifts and adds because its
//! `α` are sums of three powers of two; on a GPU a multiply costs what an add does, so the
//! kernel keeps it, and the scales are stored as f32 rather than as exponents. Integer index
//! arithmetic is not counted.

use crate::error::GpuError;
use crate::gpu::kernels::require_len;
use crate::gpu::{GpuContext, Recorder, ShaderSource};
use crate::quant::bcq::BcqPacked;

const KERNEL: &str = "bcq_lut_gemv";
/// Rows per workgroup: the WGSL's `ROWS` (256 invocations, two per row).
const ROWS_PER_WORKGROUP: u32 = 128;

fn source() -> ShaderSource {
    ShaderSource::new(KERNEL, include_str!("../../../shaders/bcq_lut_gemv.wgsl"))
}

fn shape_error(message: String) -> GpuError {
    GpuError::Shape { kernel: KERNEL, message }
}

/// `Params` of `shaders/bcq_lut_gemv.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BcqParams {
    rows: u32,
    cols: u32,
    words_per_row: u32,
    n_chunks: u32,
    chunks_per_group: u32,
}

/// A [`BcqPacked`] matrix on the GPU, transposed so that the words (and scales) of neighbouring
/// rows are neighbours, which is what the kernel's neighbouring invocations read at once
/// (ShiftAddLLM's `binaryWeight [K/32][q][N]`):
/// - planes: `(word·bits + plane)·rows + row` → the plane's digits of inputs `32·word..`, LSB
///   first, bit set ↔ `+1`, as in [`BcqPacked`];
/// - alphas: `(group·bits + plane)·rows + row` → f32 scale.
pub struct GpuBcqWeight {
    pub rows: u32,
    pub cols: u32,
    pub bits: u32,
    pub group: u32,
    pub words_per_row: u32,
    planes: wgpu::Buffer,
    alphas: wgpu::Buffer,
}

impl GpuBcqWeight {
    /// Checks `packed` against [`BcqPacked`]'s rules (1 to 4 bits, groups of a non-zero multiple
    /// of 8 inputs, consistent lengths) and uploads it.
    pub fn upload(ctx: &GpuContext, packed: &BcqPacked) -> Result<GpuBcqWeight, GpuError> {
        let (rows, cols, q) = (packed.rows, packed.cols, packed.bits as usize);
        if !(1..=4).contains(&q) {
            return Err(shape_error(format!("BCQ takes 1 to 4 bit planes, not {q}")));
        }
        if packed.group == 0 || !packed.group.is_multiple_of(8) {
            return Err(shape_error(format!(
                "the LUT layout needs groups of a non-zero multiple of 8 inputs, not {}",
                packed.group
            )));
        }
        let words_per_row = cols.div_ceil(32);
        if packed.words_per_row != words_per_row {
            return Err(shape_error(format!(
                "{} words per row for {cols} inputs, needs {words_per_row}",
                packed.words_per_row
            )));
        }
        let gpr = packed.groups_per_row();
        if packed.planes.len() != rows * q * words_per_row || packed.alphas.len() != rows * gpr * q {
            return Err(shape_error(format!(
                "{} plane words and {} scales, needs {} and {} for {rows}×{cols} at {q} bits, groups of {}",
                packed.planes.len(),
                packed.alphas.len(),
                rows * q * words_per_row,
                rows * gpr * q,
                packed.group
            )));
        }
        let as_u32 = |v: usize, what: &str| {
            u32::try_from(v).map_err(|_| shape_error(format!("{what} {v} does not fit the kernel's u32 indices")))
        };
        let mut planes = vec![0u32; packed.planes.len()];
        for row in 0..rows {
            for plane in 0..q {
                let words = &packed.planes[(row * q + plane) * words_per_row..][..words_per_row];
                for (word, &digits) in words.iter().enumerate() {
                    planes[(word * q + plane) * rows + row] = digits;
                }
            }
        }
        let mut alphas = vec![0f32; packed.alphas.len()];
        for row in 0..rows {
            for group in 0..gpr {
                for plane in 0..q {
                    alphas[(group * q + plane) * rows + row] = packed.alphas[(row * gpr + group) * q + plane];
                }
            }
        }
        Ok(GpuBcqWeight {
            rows: as_u32(rows, "rows")?,
            cols: as_u32(cols, "cols")?,
            bits: q as u32,
            group: as_u32(packed.group, "group")?,
            words_per_row: as_u32(words_per_row, "words per row")?,
            planes: ctx.upload_u32("bcq planes", &planes)?,
            alphas: ctx.upload_f32("bcq alphas", &alphas)?,
        })
    }

    /// Bytes the kernel reads for the weight: the packed digits and the f32 scales.
    pub fn gpu_bytes(&self) -> u64 {
        self.planes.size() + self.alphas.size()
    }
}

/// `y[n] = Σ_k Ŵ[n][k]·x[k]` for one token; `x` holds at least `cols` f32, `y` at least `rows`
/// (only the first `rows` are written). See the module comment for which operations are adds.
pub fn bcq_gemv(
    ctx: &GpuContext,
    encoder: &mut Recorder,
    w: &GpuBcqWeight,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<(), GpuError> {
    require_len(KERNEL, "x", x, w.cols as u64)?;
    require_len(KERNEL, "y", y, w.rows as u64)?;
    if w.rows == 0 {
        return Ok(());
    }
    let pipeline = ctx.pipeline(&source(), "bcq_gemv", &[("BITS", w.bits as f64)])?;
    let params = BcqParams {
        rows: w.rows,
        cols: w.cols,
        words_per_row: w.words_per_row,
        n_chunks: w.cols.div_ceil(8),
        chunks_per_group: w.group / 8,
    };
    ctx.dispatch(encoder, &pipeline, &params, &[&w.planes, &w.alphas, x, y], w.rows.div_ceil(ROWS_PER_WORKGROUP));
    Ok(())
}
