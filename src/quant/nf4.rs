//! NF4 (QLoRA / bitsandbytes, docs/quantizers.md §2.2): each block of `block` consecutive elements of a
//! row (the last block of a row may be shorter) is divided by its absmax and rounded to the nearest
//! of the 16 NF4 values; `x̂ = NF4[code]·absmax`.
//!
//! With double quantization the block absmax values themselves are stored in 8 bits, as
//! bitsandbytes does: their tensor mean is subtracted, and the centered values, flattened in
//! row-major block order, are quantized in chunks of 256 with one f32 per chunk. The 8-bit code
//! here is linear (symmetric int8, the chunk's largest deviation over 127) rather than
//! bitsandbytes' dynamic tree map: the dynamic map pays off for values that span decades, while
//! block absmaxes minus their mean sit in one narrow range, and a linear code is one multiply-add
//! to decode on the GPU. The elements are then coded against the double-quantized absmax, the
//! scale the decoder actually has, so the codebook holds exactly what is stored. Such a scale may
//! fall a little short of the block's true absmax (the edge elements then take the ±1 levels) and,
//! for a block far smaller than its neighbours, may even come out negative; coding against it
//! still picks the nearest representable value.
//!
//! Storage (§1.3): 4 bits per weight plus an f32 absmax per block (4.5 bpw for blocks of 64); with
//! double quantization 8 bits per block, 32 per chunk of 256 blocks and 32 for the mean
//! (≈ 4.127 bpw).

use super::codebook::{nearest_sorted, Codebook, Sharing};
use super::int::Symmetric;
use super::QuantizedTensor;

/// The NF4 code values of §2.2 (bitsandbytes' table), ascending.
pub const NF4: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

const ZERO_CODE: u16 = 7;

/// Absmaxes per chunk of the second-level quantization.
pub const DOUBLE_QUANT_CHUNK: usize = 256;

pub fn quantize(
    block: usize,
    double_quant: bool,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<QuantizedTensor, String> {
    if block == 0 {
        return Err("an NF4 block of 0 elements".into());
    }
    let sharing = Sharing::Group(block);
    let blocks = sharing.count(rows, cols);
    let block_of = |i: usize| sharing.index(cols, i / cols, i % cols);
    let mut absmax = vec![0.0f32; blocks];
    for (i, &x) in data.iter().enumerate() {
        absmax[block_of(i)] = absmax[block_of(i)].max(x.abs());
    }
    let scales = if double_quant { double_quantize(&absmax) } else { absmax };
    let codes = data
        .iter()
        .enumerate()
        .map(|(i, &x)| match scales[block_of(i)] {
            // Only an all-zero block has a zero scale: every element is the exact zero.
            0.0 => ZERO_CODE,
            s => nearest_sorted(&NF4, x / s) as u16,
        })
        .collect();
    let n = (rows * cols) as u64;
    let blocks = blocks as u64;
    let storage_bits = if double_quant {
        n * 4 + blocks * 8 + blocks.div_ceil(DOUBLE_QUANT_CHUNK as u64) * 32 + 32
    } else {
        n * 4 + blocks * 32
    };
    let codebook = Codebook {
        rows,
        cols,
        codes,
        levels: NF4.to_vec(),
        levels_per_table: NF4.len(),
        table_sharing: Sharing::Tensor,
        scales,
        offsets: Vec::new(),
        scale_sharing: sharing,
    };
    QuantizedTensor::from_codebook(codebook, storage_bits)
}

/// The absmaxes as the decoder reconstructs them from their 8-bit codes:
/// `level·step + mean`, with one `step` per chunk of 256.
pub fn double_quantize(absmax: &[f32]) -> Vec<f32> {
    let mean = (absmax.iter().map(|&a| a as f64).sum::<f64>() / absmax.len().max(1) as f64) as f32;
    absmax
        .chunks(DOUBLE_QUANT_CHUNK)
        .flat_map(|chunk| {
            let centered: Vec<f32> = chunk.iter().map(|&a| a - mean).collect();
            let grid = Symmetric::fit(centered.iter().fold(0.0, |m, c| m.max(c.abs())), 8);
            centered.into_iter().map(move |c| grid.level(c) as f32 * grid.scale + mean)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int::tests::{gaussian, rmse};
    use crate::quant::Encoding;

    use crate::quant::known_answers::BLOCK;

    fn codebook(q: &QuantizedTensor) -> &Codebook {
        match &q.encoding {
            Encoding::Codebook(cb) => cb,
            other => panic!("not a codebook: {other:?}"),
        }
    }

    #[test]
    fn the_known_answer_block_of_section_6() {
        // One row of 32: a single, short block of the default 64.
        let q = quantize(64, false, 1, 32, &BLOCK).unwrap();
        let cb = codebook(&q);
        assert_eq!(cb.scales, [0.31]);
        assert_eq!(cb.codes[..8], [9, 5, 6, 8, 5, 0, 7, 6]);
        let max_err = BLOCK.iter().zip(&q.values).map(|(x, v)| (x - v).abs()).fold(0.0, f32::max);
        assert!((max_err - 1.545e-2).abs() < 5e-6, "max error {max_err}");
    }

    #[test]
    fn every_code_is_the_nearest_nf4_value_of_x_over_the_block_absmax() {
        let (rows, cols) = (7, 200);
        let w = gaussian(21, rows * cols, 0.02);
        let q = quantize(64, false, rows, cols, &w).unwrap();
        let cb = codebook(&q);
        assert_eq!(cb.scales.len(), rows * 4, "blocks of 64, 64, 64 and 8 per row");
        for r in 0..rows {
            for (b, block) in w[r * cols..(r + 1) * cols].chunks(64).enumerate() {
                let absmax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert_eq!(cb.scales[r * 4 + b], absmax);
                for (j, &x) in block.iter().enumerate() {
                    let i = r * cols + b * 64 + j;
                    let code = cb.codes[i] as usize;
                    let u = x / absmax;
                    assert!(NF4.iter().all(|&l| (u - NF4[code]).abs() <= (u - l).abs()), "element {i}");
                    assert_eq!(q.values[i], NF4[code] * absmax);
                }
                // The absmax element lands on ±1 and comes back exactly.
                let top = block.iter().copied().fold(0.0f32, |m, x| if x.abs() > m.abs() { x } else { m });
                assert_eq!(q.values[r * cols + b * 64 + block.iter().position(|&x| x == top).unwrap()], top);
            }
        }
    }

    #[test]
    fn zeros_stay_exact_zeros() {
        let mut w = gaussian(22, 3 * 96, 0.02);
        w[64..96].fill(0.0); // the whole short block of row 0
        w[100] = 0.0;
        let q = quantize(64, false, 3, 96, &w).unwrap();
        assert!(q.values[64..96].iter().all(|&v| v == 0.0));
        assert_eq!(q.values[100], 0.0);
        let all_zero = quantize(64, true, 2, 64, &[0.0; 128]).unwrap();
        assert!(all_zero.values.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn double_quantized_absmaxes_are_within_half_an_8_bit_step_and_cost_little_accuracy() {
        let (rows, cols) = (64, 1024);
        let w = gaussian(23, rows * cols, 0.02);
        let plain = quantize(64, false, rows, cols, &w).unwrap();
        let dq = quantize(64, true, rows, cols, &w).unwrap();
        let (exact, approx) = (&codebook(&plain).scales, &codebook(&dq).scales);
        let mean = exact.iter().map(|&a| a as f64).sum::<f64>() as f32 / exact.len() as f32;
        for (chunk, dq_chunk) in exact.chunks(DOUBLE_QUANT_CHUNK).zip(approx.chunks(DOUBLE_QUANT_CHUNK)) {
            let step = chunk.iter().fold(0.0f32, |m, a| m.max((a - mean).abs())) / 127.0;
            for (a, d) in chunk.iter().zip(dq_chunk) {
                assert!((a - d).abs() <= 0.5001 * step + 1e-7, "{a} -> {d}, step {step}");
            }
            assert!(chunk != dq_chunk, "the 8-bit code changed nothing");
        }
        let (e_plain, e_dq) = (rmse(&plain.values, &w), rmse(&dq.values, &w));
        assert!(e_dq < 1.02 * e_plain, "dq error {e_dq} vs {e_plain}");
    }

    #[test]
    fn storage_is_4_5_and_about_4_127_bits_per_weight() {
        let (rows, cols) = (64, 1024);
        let w = gaussian(24, rows * cols, 0.02);
        assert_eq!(quantize(64, false, rows, cols, &w).unwrap().bits_per_weight(), 4.5);
        let dq = quantize(64, true, rows, cols, &w).unwrap();
        let blocks = (rows * cols / 64) as u64;
        assert_eq!(dq.storage_bits, (rows * cols) as u64 * 4 + blocks * 8 + (blocks / 256) * 32 + 32);
        assert!((dq.bits_per_weight() - 4.127).abs() < 1e-3, "{}", dq.bits_per_weight());
    }

    #[test]
    fn error_grows_with_the_block() {
        let (rows, cols) = (8, 512);
        let w = gaussian(25, rows * cols, 0.02);
        let errors: Vec<f64> =
            [16, 64, 256].iter().map(|&b| rmse(&quantize(b, false, rows, cols, &w).unwrap().values, &w)).collect();
        assert!(errors[0] < errors[1] && errors[1] < errors[2], "{errors:?}");
        assert!(quantize(0, false, 1, 4, &[1.0; 4]).is_err());
    }
}
