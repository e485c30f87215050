//! Small-float weight quantizers: a scaled minifloat (per tensor, row or group), OCP MX, NVFP4 and
//! LLM-FP4's exponent-bias quantizer (docs/quantizers.md §2.3–§2.5, §4.2, §4.14).
//!
//! All four choose a scale, divide, and round to the nearest value of a float grid with RNE and
//! saturation ([`minifloat::Codec`]); the codebook stores the grid's values as one sorted table and
//! each element's code as an index into it, so the dequantized value is always `level · scale`.

use super::codebook::{Codebook, Sharing};
use super::minifloat::{self, Codec, LevelTable, Specials};
use super::{BlockScale, Granularity, MiniFloat, QuantizedTensor};

pub const MX_BLOCK: usize = 32;
pub const NVFP4_BLOCK: usize = 16;

/// max |x| over each scale group.
fn group_amax(sharing: Sharing, rows: usize, cols: usize, data: &[f32]) -> Vec<f32> {
    let mut amax = vec![0f32; sharing.count(rows, cols)];
    for r in 0..rows {
        for c in 0..cols {
            let g = sharing.index(cols, r, c);
            amax[g] = amax[g].max(data[r * cols + c].abs());
        }
    }
    amax
}

/// Codes for `data` on `table` after dividing each element by its group's scale; a zero scale
/// marks a group whose every element is 0.
fn codes_for(table: &LevelTable, sharing: Sharing, scales: &[f32], rows: usize, cols: usize, data: &[f32]) -> Vec<u16> {
    let zero = table.zero();
    (0..rows * cols)
        .map(|i| {
            let s = scales[sharing.index(cols, i / cols, i % cols)];
            if s == 0.0 {
                zero
            } else {
                table.code(data[i] / s)
            }
        })
        .collect()
}

fn codebook(
    table: LevelTable,
    codes: Vec<u16>,
    scales: Vec<f32>,
    sharing: Sharing,
    rows: usize,
    cols: usize,
) -> Codebook {
    Codebook {
        rows,
        cols,
        codes,
        levels_per_table: table.levels.len(),
        levels: table.levels,
        table_sharing: Sharing::Tensor,
        scales,
        offsets: vec![],
        scale_sharing: sharing,
    }
}

/// `fpB-eEmM-gran`: scale = amax / max_finite per tensor, row or group (f32), element =
/// RNE(x / scale) on the format's grid. A group of zeros gets scale 1 and codes for 0.
/// Bits: B per weight + 32 per scale.
pub fn quantize_fp(
    format: MiniFloat,
    granularity: Granularity,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<QuantizedTensor, String> {
    let table = LevelTable::new(Codec::element(format));
    let max = table.codec.max_finite();
    let sharing = super::int::sharing(granularity)?;
    let scales: Vec<f32> = group_amax(sharing, rows, cols, data)
        .into_iter()
        .map(|amax| match amax / max {
            s if s > 0.0 => s,
            // amax below max · 2^-150: the smallest f32 still keeps x / s finite.
            _ if amax > 0.0 => f32::from_bits(1),
            _ => 1.0,
        })
        .collect();
    let codes = codes_for(&table, sharing, &scales, rows, cols, data);
    let bits = format.bits() as u64 * (rows * cols) as u64 + 32 * scales.len() as u64;
    QuantizedTensor::from_codebook(codebook(table, codes, scales, sharing, rows, cols), bits)
}

/// OCP MX: blocks of 32 along the row (a shorter last block if the row is not a multiple), one
/// E8M0 scale X = 2^(floor(log2 amax) − emax_elem) each, elements RNE(x / X) saturated to the
/// element max (so values in (max, 2^(emax+1))·X clip). A zero block gets the smallest scale,
/// 2^−127. Bits: B per weight + 8 per block.
pub fn quantize_mx(format: MiniFloat, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    let table = LevelTable::new(Codec::element(format));
    let emax_elem = minifloat::exponent(table.codec.max_finite() as f64);
    let sharing = Sharing::Group(MX_BLOCK);
    let scales: Vec<f32> = group_amax(sharing, rows, cols, data)
        .into_iter()
        .map(|amax| {
            let shared_exp = if amax > 0.0 { minifloat::exponent(amax as f64) - emax_elem } else { -127 };
            Codec::E8M0.decode((shared_exp.clamp(-127, 127) + 127) as u16)
        })
        .collect();
    let codes = codes_for(&table, sharing, &scales, rows, cols, data);
    let bits = format.bits() as u64 * (rows * cols) as u64 + 8 * scales.len() as u64;
    QuantizedTensor::from_codebook(codebook(table, codes, scales, sharing, rows, cols), bits)
}

/// NVFP4 (NVIDIA's recipe, §2.5), or with UE5M3 block scales (§4.14): per-tensor f32
/// g = 6·max_scale / amax_tensor, per block of 16 s_b = Q_scale(amax_b / 6 · g), elements
/// P = E2M1(x · g / s_b), dequant P · (s_b / g) with s_b / g the codebook's f32 scale. A block whose
/// scale rounds to 0 is all zeros (as hardware decoding s_b = 0 gives). Bits: 4 per weight + 8 per
/// block + 32 for g.
pub fn quantize_nvfp4(scale: BlockScale, rows: usize, cols: usize, data: &[f32]) -> Result<QuantizedTensor, String> {
    let table = LevelTable::new(Codec::element(MiniFloat::E2M1));
    let scale_codec = Codec::block_scale(scale);
    let elem_max = table.codec.max_finite();
    let amax_tensor = data.iter().fold(0f32, |m, x| m.max(x.abs()));
    let g = if amax_tensor > 0.0 { (elem_max * scale_codec.max_finite() / amax_tensor).min(f32::MAX) } else { 1.0 };
    let sharing = Sharing::Group(NVFP4_BLOCK);
    let block_scales: Vec<f32> =
        group_amax(sharing, rows, cols, data).into_iter().map(|amax| scale_codec.round(amax / elem_max * g)).collect();
    let zero = table.zero();
    let codes = (0..rows * cols)
        .map(|i| match block_scales[sharing.index(cols, i / cols, i % cols)] {
            s if s > 0.0 => table.code(data[i] * g / s),
            _ => zero,
        })
        .collect();
    let scales = block_scales.iter().map(|s| s / g).collect();
    let bits = 4 * (rows * cols) as u64 + 8 * block_scales.len() as u64 + 32;
    QuantizedTensor::from_codebook(codebook(table, codes, scales, sharing, rows, cols), bits)
}

/// The bias search's multipliers, LLM-FP4's `--search_intervals 0.01 1.2 100`: k = α + i(β − α)/n,
/// i = 0..=n. (k = 1, the min-max bias itself, is not among them.)
pub fn llmfp_search_factors() -> Vec<f32> {
    let (alpha, beta, n) = (0.01f32, 1.2f32, 100);
    (0..=n).map(|i| alpha + i as f32 * (beta - alpha) / n as f32).collect()
}

/// LLM-FP4's min-max exponent bias b0 = 2^E − log2(amax) + log2(2 − 2^−M) − 1: the bias whose
/// largest value, (2 − 2^−M)·2^(2^E − 1 − b), is amax.
pub fn llmfp_minmax_bias(format: MiniFloat, amax: f32) -> f32 {
    let (e, m) = (format.exp_bits as i32, format.man_bits as i32);
    ((1 << e) as f64 - (amax as f64).log2() + (2.0 - 2f64.powi(-m)).log2() - 1.0) as f32
}

/// LLM-FP4's integer grid: with y = x·2^b, their quantizer is a float grid with the smallest normal
/// exponent 1 and steps 2^(1−M) below it, all 2^E exponent codes finite; times 2^(M−1) its values
/// are the integers K = n·2^(p−1) (n the rounded significand, p ≥ 1 the clamped exponent). That is
/// the E·M float with bias 1 − M.
pub(crate) fn llmfp_grid(format: MiniFloat) -> Codec {
    Codec { bias: 1 - format.man_bits as i32, specials: Specials::None, ..Codec::element(format) }
}

/// The row scale of LLM-FP4 at bias b: s = 2^(1 − M − b) (the step of its lowest binade), with b
/// kept where s is a normal f32.
pub(crate) fn llmfp_scale(format: MiniFloat, bias: f32) -> f32 {
    let m = format.man_bits as f32;
    let bias = bias.clamp(-126.0 - m, 127.0 - m);
    (1.0 - m - bias).exp2()
}

/// `llmfpB-eEmM[-search]`: LLM-FP4's FP quantizer with a real-valued exponent bias per output
/// channel (§4.2): x̂ = RNE(x_c / s)·s with x_c = clamp(x, ±maxval), s = 2^(p − M − b),
/// p = max(floor(log2|x_c| + b), 1). The bias is the row's min-max b0, or with `search` the
/// candidate k·b0 (k from [`llmfp_search_factors`]) with the least squared error of the row's
/// weights — a data-free stand-in for their search, which minimises the layer's output MSE on
/// calibration inputs.
///
/// Exact codebook: b is real, so the row's values are not a power-of-two multiple of a fixed grid,
/// but every step 2^(p − M − b) is 2^(p−1) times the row's step s₁ = 2^(1 − M − b). With s₁
/// rounded to f32 once per row, x̂ = K·s₁ for an integer K of one shared table
/// (see `llmfp_grid`), so the codebook is that table with a per-row scale s₁; clamping at maxval is
/// the grid's saturation (maxval = K_max·s₁). Bits: B per weight + 32 per row (the bias).
pub fn quantize_llmfp(
    format: MiniFloat,
    search: bool,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<QuantizedTensor, String> {
    let table = LevelTable::new(llmfp_grid(format));
    let factors = if search { llmfp_search_factors() } else { vec![1.0] };
    let mut codes = Vec::with_capacity(rows * cols);
    let mut scales = Vec::with_capacity(rows);
    for row in data.chunks(cols) {
        let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        if amax == 0.0 {
            codes.extend(std::iter::repeat_n(table.zero(), cols));
            scales.push(1.0);
            continue;
        }
        let b0 = llmfp_minmax_bias(format, amax);
        let mut best: Option<(f64, f32)> = None;
        for k in &factors {
            let s = llmfp_scale(format, k * b0);
            // The search only needs values (codec.round); codes are looked up once, for the winner.
            let error: f64 = row.iter().map(|&x| (x as f64 - (table.codec.round(x / s) * s) as f64).powi(2)).sum();
            // Strictly less keeps the first of equal candidates, as their argmax does.
            if error.is_finite() && best.is_none_or(|(e, _)| error < e) {
                best = Some((error, s));
            }
        }
        let (_, s) = best.ok_or("no exponent bias gives finite values")?;
        codes.extend(row.iter().map(|&x| table.code(x / s)));
        scales.push(s);
    }
    let bits = format.bits() as u64 * (rows * cols) as u64 + 32 * rows as u64;
    QuantizedTensor::from_codebook(codebook(table, codes, scales, Sharing::Row, rows, cols), bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Encoding;

    use crate::quant::known_answers::BLOCK;

    /// Gaussian-ish data (sum of uniforms) with a few outliers, deterministic.
    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed | 1;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|i| {
                let g = (0..4).map(|_| uniform()).sum::<f64>() - 2.0;
                (g * 0.05 * if i % 97 == 0 { 8.0 } else { 1.0 }) as f32
            })
            .collect()
    }

    fn codebook_of(q: &QuantizedTensor) -> &Codebook {
        match &q.encoding {
            Encoding::Codebook(cb) => cb,
            other => panic!("not a codebook: {other:?}"),
        }
    }

    fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
        (num / den).sqrt()
    }

    /// The largest error RNE onto `codec`'s grid scaled by `s` may make at x, before saturation:
    /// half a step of x's binade, or of the subnormals.
    fn half_step(codec: &Codec, s: f32, x: f32) -> f64 {
        let min_normal = 2f64.powi(1 - codec.bias);
        let y = (x / s).abs() as f64;
        let binade = if y < min_normal { min_normal } else { 2f64.powi(minifloat::exponent(y)) };
        0.5 * binade * 2f64.powi(-(codec.man_bits as i32)) * s as f64
    }

    #[test]
    fn fp_round_trip_is_within_half_a_step_for_every_format_and_granularity() {
        let (rows, cols) = (6, 100);
        let data = random(rows * cols, 7);
        for format in [MiniFloat::E4M3, MiniFloat::E5M2, MiniFloat::E2M3, MiniFloat::E3M2, MiniFloat::E2M1] {
            let codec = Codec::element(format);
            for granularity in [Granularity::Tensor, Granularity::Channel, Granularity::Group(32)] {
                let q = quantize_fp(format, granularity, rows, cols, &data).unwrap();
                let cb = codebook_of(&q);
                for r in 0..rows {
                    for c in 0..cols {
                        let (x, v) = (data[r * cols + c], q.values[r * cols + c]);
                        let s = cb.scales[cb.scale_sharing.index(cols, r, c)];
                        let bound = half_step(&codec, s, x) * (1.0 + 1e-6) + x.abs() as f64 * 1e-7;
                        assert!(
                            ((x - v) as f64).abs() <= bound,
                            "{format} {granularity}: ({r},{c}) {x} → {v}, bound {bound}"
                        );
                    }
                }
                // The group maximum is (nearly) exact: scale = amax / max.
                let amax = data.iter().fold(0f32, |m, x| m.max(x.abs()));
                let vmax = q.values.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!((amax - vmax).abs() <= amax * 1e-6, "{format} {granularity}: max {amax} → {vmax}");
                let groups = crate::quant::int::sharing(granularity).unwrap().count(rows, cols) as u64;
                assert_eq!(q.storage_bits, format.bits() as u64 * 600 + 32 * groups);
            }
        }
        // More mantissa bits, less error.
        let err = |f| rel_l2(&quantize_fp(f, Granularity::Channel, rows, cols, &data).unwrap().values, &data);
        assert!(err(MiniFloat::E4M3) < err(MiniFloat::E5M2));
        assert!(err(MiniFloat::E2M3) < err(MiniFloat::E3M2));
        assert!(err(MiniFloat::E3M2) < err(MiniFloat::E2M1));
        assert!(err(MiniFloat::E2M1) < 0.2, "{}", err(MiniFloat::E2M1));
    }

    #[test]
    fn fp_groups_with_a_short_last_group_and_zero_groups() {
        // 2 rows × 10, groups of 4: [4, 4, 2] per row; row 1's first group and last group are zero.
        let mut data = random(20, 3);
        for c in [10, 11, 12, 13, 18, 19] {
            data[c] = 0.0;
        }
        data[17] = -3.0; // alone in its group with data[16]
        let q = quantize_fp(MiniFloat::E2M1, Granularity::Group(4), 2, 10, &data).unwrap();
        let cb = codebook_of(&q);
        assert_eq!(cb.scales.len(), 6);
        assert_eq!(cb.scales[3], 1.0);
        assert_eq!(cb.scales[5], 1.0);
        assert_eq!(cb.scales[4], 0.5); // amax 3 / 6
        for c in [10, 11, 12, 13, 18, 19] {
            assert_eq!(q.values[c].to_bits(), 0, "element {c}");
        }
        assert_eq!(q.values[17], -3.0);
        // Each group's own amax is kept: the short group of row 0 too.
        for (g, range) in [(0, 0..4), (1, 4..8), (2, 8..10)] {
            let amax = data[range.clone()].iter().fold(0f32, |m, x| m.max(x.abs()));
            assert_eq!(cb.scales[g], amax / 6.0, "group {g}");
            let vmax = q.values[range].iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!((vmax - amax).abs() <= amax * 1e-6);
        }
        assert_eq!(q.storage_bits, 4 * 20 + 32 * 6);

        let zeros = quantize_fp(MiniFloat::E4M3, Granularity::Tensor, 3, 5, &[0.0; 15]).unwrap();
        assert!(zeros.values.iter().all(|v| v.to_bits() == 0));
    }

    #[test]
    fn mxfp4_of_the_spec_block() {
        let q = quantize_mx(MiniFloat::E2M1, 1, 32, &BLOCK).unwrap();
        let cb = codebook_of(&q);
        // §6 quotes e = 123 "in ggml's convention"; OCP's byte is the same, floor(log2 0.31) − 2 +
        // 127 = 123: ggml halves the scale (2^(e−128)) and doubles its E2M1 table to match.
        assert_eq!(Codec::E8M0.encode(cb.scales[0]), 123);
        assert_eq!(cb.scales[0], 0.0625);
        // §6's element codes are E2M1 bit patterns (sign in bit 3); no element of this block is
        // at a tie, where ggml (ties to the lower index) and RNE would differ.
        let fp4 = Codec::element(MiniFloat::E2M1);
        for (i, code) in [2u16, 10, 9, 1, 10, 14, 0, 9].into_iter().enumerate() {
            assert_eq!(q.values[i], fp4.decode(code) * 0.0625, "element {i}");
        }
        let max_err = BLOCK.iter().zip(&q.values).fold(0f32, |m, (x, v)| m.max((x - v).abs()));
        assert!((max_err - 6.0e-2).abs() < 5e-4, "{max_err}");
        assert_eq!(q.storage_bits, 4 * 32 + 8);
    }

    #[test]
    fn mx_scales_are_powers_of_two_and_clip_only_above_the_element_max() {
        let (rows, cols) = (4, 80); // 3 blocks per row, the last of 16
        let data = random(rows * cols, 11);
        for format in [MiniFloat::E2M1, MiniFloat::E2M3, MiniFloat::E3M2, MiniFloat::E4M3, MiniFloat::E5M2] {
            let codec = Codec::element(format);
            let q = quantize_mx(format, rows, cols, &data).unwrap();
            let cb = codebook_of(&q);
            assert_eq!(cb.scales.len(), rows * 3);
            let max = codec.max_finite();
            for r in 0..rows {
                for c in 0..cols {
                    let x = data[r * cols + c];
                    let g = cb.scale_sharing.index(cols, r, c);
                    let scale = cb.scales[g];
                    let block = &data[r * cols + (c / 32) * 32..r * cols + ((c / 32) * 32 + 32).min(cols)];
                    let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
                    // X = 2^(floor(log2 amax) − emax): amax / X in [2^emax, 2^(emax+1)).
                    let ratio = amax / scale;
                    let emax = 2f32.powi(minifloat::exponent(max as f64));
                    assert!(ratio >= emax && ratio < 2.0 * emax, "{format}: amax {amax}, X {scale}");
                    let v = q.values[r * cols + c];
                    let clip = ((x / scale).abs() - max).max(0.0) * scale;
                    let bound = half_step(&codec, scale, x).max(clip as f64) * (1.0 + 1e-6);
                    assert!(((x - v) as f64).abs() <= bound, "{format}: {x} → {v}, X {scale}");
                }
            }
            assert_eq!(q.storage_bits, format.bits() as u64 * 320 + 8 * 12);
        }
        let zeros = quantize_mx(MiniFloat::E2M1, 1, 40, &[0.0; 40]).unwrap();
        assert!(zeros.values.iter().all(|v| v.to_bits() == 0));
    }

    #[test]
    fn nvfp4_follows_the_two_level_recipe() {
        let (rows, cols) = (8, 64);
        let data = random(rows * cols, 5);
        let amax_t = data.iter().fold(0f32, |m, x| m.max(x.abs()));
        for (scale, smax) in [(BlockScale::E4M3, 448.0f32), (BlockScale::UE5M3, 122880.0)] {
            let q = quantize_nvfp4(scale, rows, cols, &data).unwrap();
            let cb = codebook_of(&q);
            let g = 6.0 * smax / amax_t;
            let scale_codec = Codec::block_scale(scale);
            assert_eq!(cb.scales.len(), rows * cols / 16);
            for (b, &s) in cb.scales.iter().enumerate() {
                // Each codebook scale is s_b / g for a representable block scale s_b near amax_b/6·g.
                let s_b = scale_codec.round(s * g);
                assert_eq!(s_b / g, s, "{scale:?} block {b}");
                let amax_b = data[b * 16..b * 16 + 16].iter().fold(0f32, |m, x| m.max(x.abs()));
                let ideal = amax_b / 6.0 * g;
                assert!((s_b - ideal).abs() <= ideal / 16.0 * 1.0001, "{scale:?} block {b}: {s_b} vs {ideal}");
            }
            // Elements: the E2M1 grid times the scale, each the nearest one (or 6 when beyond).
            let fp4 = Codec::element(MiniFloat::E2M1);
            for (i, (&x, &v)) in data.iter().zip(&q.values).enumerate() {
                let s = cb.scales[i / 16];
                let clip = ((x / s).abs() - 6.0).max(0.0) * s;
                let bound = half_step(&fp4, s, x).max(clip as f64) * (1.0 + 1e-5);
                assert!(((x - v) as f64).abs() <= bound, "{scale:?} {i}: {x} → {v}");
            }
            assert_eq!(q.storage_bits, 4 * 512 + 8 * 32 + 32);
            assert_eq!(q.bits_per_weight(), 4.5 + 32.0 / 512.0);
        }
        // Finer blocks and non-power-of-two scales beat MXFP4 on the same data.
        let nv = rel_l2(&quantize_nvfp4(BlockScale::E4M3, rows, cols, &data).unwrap().values, &data);
        let mx = rel_l2(&quantize_mx(MiniFloat::E2M1, rows, cols, &data).unwrap().values, &data);
        assert!(nv < mx, "nvfp4 {nv} vs mxfp4 {mx}");

        let zeros = quantize_nvfp4(BlockScale::E4M3, 2, 16, &[0.0; 32]).unwrap();
        assert!(zeros.values.iter().all(|v| v.to_bits() == 0));
        // A block far below the tensor max: its scale underflows E4M3 and it becomes zeros.
        let mut tiny = vec![1e-9f32; 32];
        tiny[0] = 100.0;
        let q = quantize_nvfp4(BlockScale::E4M3, 1, 32, &tiny).unwrap();
        assert!((q.values[0] - 100.0).abs() < 1e-4, "{}", q.values[0]);
        assert!(q.values[16..].iter().all(|v| v.to_bits() == 0));
    }

    /// LLM-FP4's formula evaluated directly in f64 (p from log2, the step per element), with
    /// 2^(1 − M − b) taken as the f32 step `s1` the quantizer reports.
    fn llmfp_formula(format: MiniFloat, bias: f32, s1: f32, x: f32) -> f32 {
        let (e, m) = (format.exp_bits as i32, format.man_bits as i32);
        let b = bias as f64;
        let maxval = (2.0 - 2f64.powi(-m)) * 2f64.powf(((1 << e) - 1) as f64 - b);
        let xc = (x as f64).clamp(-maxval, maxval);
        let p = ((xc.abs().log2() + b).floor()).max(1.0);
        let step = 2f64.powi(p as i32 - 1) * s1 as f64;
        ((xc / step).round_ties_even() * step) as f32
    }

    #[test]
    fn llmfp4_of_the_spec_block() {
        let format = MiniFloat::E2M1;
        let q = quantize_llmfp(format, false, 1, 32, &BLOCK).unwrap();
        let s1 = codebook_of(&q).scales[0];
        let b0 = 1.0 - format.man_bits as f32 - s1.log2();
        assert!((b0 - 5.2746).abs() < 5e-5, "{b0}");
        let expected = [0.051667, -0.0775, -0.025833, 0.025833, -0.051667, -0.31];
        for (i, e) in expected.iter().enumerate() {
            assert!((q.values[i] - e).abs() < 6e-7, "element {i}: {} vs {e}", q.values[i]);
        }
        assert_eq!(q.storage_bits, 4 * 32 + 32);
    }

    #[test]
    fn llmfp_codebook_equals_the_formula_for_every_format() {
        let (rows, cols) = (5, 64);
        let mut data = random(rows * cols, 13);
        data[64..128].iter_mut().for_each(|x| *x *= 300.0); // b0 < 0 for e2m1
        data[128..192].iter_mut().for_each(|x| *x *= 1e-6);
        data[192..256].iter_mut().for_each(|x| *x = 0.0);
        for format in [
            MiniFloat::E2M1,
            MiniFloat { exp_bits: 3, man_bits: 0 },
            MiniFloat { exp_bits: 1, man_bits: 2 },
            MiniFloat::E4M3,
            MiniFloat::E2M3,
            MiniFloat::E5M2,
        ] {
            let q = quantize_llmfp(format, false, rows, cols, &data).unwrap();
            let cb = codebook_of(&q);
            for r in 0..rows {
                let row = &data[r * cols..(r + 1) * cols];
                let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
                if amax == 0.0 {
                    assert!(q.values[r * cols..(r + 1) * cols].iter().all(|v| v.to_bits() == 0));
                    continue;
                }
                let b0 = llmfp_minmax_bias(format, amax);
                let s1 = cb.scales[r];
                assert_eq!(s1, (1.0 - format.man_bits as f32 - b0).exp2(), "{format} row {r}");
                for (c, &x) in row.iter().enumerate() {
                    let v = q.values[r * cols + c];
                    assert_eq!(v, llmfp_formula(format, b0, s1, x), "{format} row {r} col {c}: {x}");
                }
                // Min-max: the row's largest magnitude is (nearly) kept.
                let vmax = q.values[r * cols..(r + 1) * cols].iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!((vmax - amax).abs() <= amax * 1e-5, "{format} row {r}: {amax} → {vmax}");
            }
        }
    }

    #[test]
    fn llmfp_search_picks_the_best_candidate_bias() {
        let format = MiniFloat::E2M1;
        let (rows, cols) = (3, 128);
        let data = random(rows * cols, 17);
        let searched = quantize_llmfp(format, true, rows, cols, &data).unwrap();
        let minmax = quantize_llmfp(format, false, rows, cols, &data).unwrap();
        let sse = |v: &[f32], x: &[f32]| -> f64 { v.iter().zip(x).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum() };
        let factors = llmfp_search_factors();
        assert_eq!(factors.len(), 101);
        assert!((factors[100] - 1.2).abs() < 1e-6 && factors[0] == 0.01);
        for r in 0..rows {
            let (row, range) = (&data[r * cols..(r + 1) * cols], r * cols..(r + 1) * cols);
            let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            let b0 = llmfp_minmax_bias(format, amax);
            let s = codebook_of(&searched).scales[r];
            let chosen = factors.iter().position(|k| (1.0 - 1.0 - k * b0).exp2() == s);
            assert!(chosen.is_some(), "row {r}: scale {s} is no candidate's");
            let best = sse(&searched.values[range.clone()], row);
            // No candidate, evaluated with the formula, does better.
            for k in &factors {
                let b = k * b0;
                let s1 = (-b).exp2();
                let values: Vec<f32> = row.iter().map(|&x| llmfp_formula(format, b, s1, x)).collect();
                assert!(best <= sse(&values, row) * (1.0 + 1e-12), "row {r}: k = {k} beats the search");
            }
            // On Gaussian rows a bias other than min-max (some clipping) lowers the error.
            assert!(best < sse(&minmax.values[range], row), "row {r}");
        }
    }
}
