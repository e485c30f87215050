//! ShiftAddLLM binary-coding quantization (docs/quantizers.md §4.1), data-free Lat.-style: each group
//! of `group` consecutive weights of a row (the last group of a row may be shorter) becomes
//! `ŵ = Σ_{i<q} α_i·b_i` with `b_i ∈ {−1, +1}^group` and `α_0 ≥ … ≥ α_{q−1} ≥ 0`.
//!
//! Fit per group: the greedy start (`b_i = sign(r)`, `α_i = mean|r|`, `r ← r − α_i·b_i`, with
//! `sign(0) = +1` so every weight gets a binary digit), then `rounds` alternations of
//! (a) the least-squares `α` for the current `B`, solved exactly from `(BᵀB)α = Bᵀw` in f64 (q ≤ 4,
//! so Gaussian elimination; a singular `BᵀB`, e.g. a group shorter than q, keeps the previous
//! `α`), then `α ← sort_desc(|α|)`; (b) each `α` rounded to APoT with 3 terms; (c) every weight
//! re-assigned to the nearest of the `2^q` sums `Σ ±α_i` (exact search over the sorted sums).
//!
//! Two views of the result. [`BcqFit`] keeps the scales and each weight's bit pattern (bit `i`
//! set ↔ `b_i = +1`): [`BcqPacked`] and [`lut_dot`] are built from it, the reference for a
//! multiplication-free LUT kernel. The [`Codebook`] has one table per (row, group) holding the
//! `2^q` sums in ascending order with scale 1; its codes are positions in that sorted table,
//! which no longer say which sum is which bit pattern, hence the separate fit.
//!
//! Storage (§1.3): `q` bits per weight and `q` 16-bit scales per group, as the checkpoint stores
//! them in f16 (an APoT scale is at most three powers of two, which f16 holds exactly unless
//! they span more than 11 octaves).

use super::codebook::{nearest_sorted, Codebook, Sharing};
use super::int::spans;
use super::QuantizedTensor;

/// Binary digits and scales, before they are turned into a codebook or packed.
#[derive(Debug, Clone, PartialEq)]
pub struct BcqFit {
    pub rows: usize,
    pub cols: usize,
    pub bits: u8,
    pub group: usize,
    /// `bits` scales per (row, group), descending: index `(row·groups_per_row + g)·bits + i`.
    pub alphas: Vec<f32>,
    /// One pattern per weight, row-major: bit `i` set means `b_i = +1`.
    pub patterns: Vec<u8>,
}

pub fn quantize(
    bits: u8,
    group: usize,
    rounds: u32,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<QuantizedTensor, String> {
    let fit = fit(bits, group, rounds, rows, cols, data)?;
    QuantizedTensor::from_codebook(fit.codebook(), fit.storage_bits())
}

pub fn fit(bits: u8, group: usize, rounds: u32, rows: usize, cols: usize, data: &[f32]) -> Result<BcqFit, String> {
    if !(1..=4).contains(&bits) {
        return Err(format!("bcq takes 1 to 4 bits, not {bits}"));
    }
    if group == 0 {
        return Err("a BCQ group of 0 elements".into());
    }
    let mut fit = BcqFit { rows, cols, bits, group, alphas: Vec::new(), patterns: Vec::with_capacity(data.len()) };
    for row in data.chunks(cols) {
        for span in spans(cols, group) {
            let (alphas, patterns) = fit_group(&row[span], bits as usize, rounds);
            fit.alphas.extend(alphas);
            fit.patterns.extend(patterns);
        }
    }
    Ok(fit)
}

impl BcqFit {
    pub fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(self.group)
    }

    pub fn storage_bits(&self) -> u64 {
        (self.rows * self.cols) as u64 * self.bits as u64 + self.alphas.len() as u64 * 16
    }

    /// Per (row, group) table of the `2^q` sums ascending; ties in value are ordered by pattern
    /// so the table is a function of the scales alone.
    pub fn codebook(&self) -> Codebook {
        let (q, gpr) = (self.bits as usize, self.groups_per_row());
        let mut levels = Vec::with_capacity(self.alphas.len() / q << q);
        let mut codes = Vec::with_capacity(self.patterns.len());
        for r in 0..self.rows {
            for (g, span) in spans(self.cols, self.group).enumerate() {
                let table = r * gpr + g;
                let sorted = sorted_codewords(&self.alphas[table * q..(table + 1) * q]);
                let mut position = vec![0u16; 1 << q];
                sorted.iter().enumerate().for_each(|(at, &(_, pattern))| position[pattern as usize] = at as u16);
                levels.extend(sorted.iter().map(|&(value, _)| value));
                codes.extend(span.map(|c| position[self.patterns[r * self.cols + c] as usize]));
            }
        }
        Codebook {
            rows: self.rows,
            cols: self.cols,
            codes,
            levels,
            levels_per_table: 1 << q,
            table_sharing: Sharing::Group(self.group),
            scales: vec![1.0],
            offsets: Vec::new(),
            scale_sharing: Sharing::Tensor,
        }
    }
}

/// `Σ_i α_i·(±1)` for the signs in `pattern`, summed in f64 and rounded once.
pub fn codeword(alphas: &[f32], pattern: u8) -> f32 {
    alphas.iter().enumerate().map(|(i, &a)| if pattern >> i & 1 == 1 { a as f64 } else { -(a as f64) }).sum::<f64>()
        as f32
}

/// All `(sum, pattern)` pairs of a group, ascending by sum, then by pattern.
fn sorted_codewords(alphas: &[f32]) -> Vec<(f32, u8)> {
    let mut words: Vec<(f32, u8)> = (0..1u8 << alphas.len()).map(|p| (codeword(alphas, p), p)).collect();
    words.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    words
}

fn fit_group(w: &[f32], q: usize, rounds: u32) -> (Vec<f32>, Vec<u8>) {
    let mut residual: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    let mut alphas = vec![0.0f64; q];
    let mut patterns = vec![0u8; w.len()];
    for (i, alpha) in alphas.iter_mut().enumerate() {
        *alpha = residual.iter().map(|r| r.abs()).sum::<f64>() / w.len() as f64;
        for (r, pattern) in residual.iter_mut().zip(&mut patterns) {
            if *r >= 0.0 {
                *pattern |= 1 << i;
                *r -= *alpha;
            } else {
                *r += *alpha;
            }
        }
    }
    let mut alphas: Vec<f32> = alphas.iter().map(|&a| a as f32).collect();
    for _ in 0..rounds {
        let mut next = least_squares(w, &patterns, q).unwrap_or_else(|| alphas.iter().map(|&a| a as f64).collect());
        next.iter_mut().for_each(|a| *a = a.abs());
        next.sort_by(|a, b| b.total_cmp(a));
        alphas = next.into_iter().map(|a| apot3(a) as f32).collect();
        let words = sorted_codewords(&alphas);
        let sums: Vec<f32> = words.iter().map(|&(v, _)| v).collect();
        patterns.iter_mut().zip(w).for_each(|(p, &x)| *p = words[nearest_sorted(&sums, x)].1);
    }
    (alphas, patterns)
}

/// The `α` minimizing `‖w − Bα‖²` for the signs in `patterns`, or `None` when `BᵀB` is singular.
fn least_squares(w: &[f32], patterns: &[u8], q: usize) -> Option<Vec<f64>> {
    let sign = |p: u8, i: usize| if p >> i & 1 == 1 { 1.0 } else { -1.0 };
    // The augmented system [BᵀB | Bᵀw], q rows of q + 1.
    let mut m = vec![vec![0.0f64; q + 1]; q];
    for (&p, &x) in patterns.iter().zip(w) {
        for i in 0..q {
            for k in 0..q {
                m[i][k] += sign(p, i) * sign(p, k);
            }
            m[i][q] += sign(p, i) * x as f64;
        }
    }
    // BᵀB has integer entries with `len` on the diagonal: a pivot this small is a zero.
    let tiny = 1e-9 * w.len() as f64;
    for col in 0..q {
        let pivot = (col..q).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() <= tiny {
            return None;
        }
        m.swap(col, pivot);
        for r in col + 1..q {
            let f = m[r][col] / m[col][col];
            for k in col..=q {
                m[r][k] -= f * m[col][k];
            }
        }
    }
    let mut alpha = vec![0.0f64; q];
    for i in (0..q).rev() {
        alpha[i] = (m[i][q] - (i + 1..q).map(|k| m[i][k] * alpha[k]).sum::<f64>()) / m[i][i];
    }
    Some(alpha)
}

/// `x` as a sum of at most three signed powers of two, chosen greedily:
/// `e = RNE(log2|residual|)`, term `sign(residual)·2^e`.
pub fn apot3(x: f64) -> f64 {
    let (mut approx, mut residual) = (0.0, x);
    for _ in 0..3 {
        if residual == 0.0 {
            break;
        }
        let term = residual.signum() * 2f64.powi(residual.abs().log2().round_ties_even() as i32);
        approx += term;
        residual -= term;
    }
    approx
}

/// The LUT kernel's layout (ShiftAddLLM's `binaryWeight`, per row): for row `n` and bit-plane
/// `i`, `words_per_row` u32 words, word `k` holding the plane's digits of inputs `32k..32k+32`,
/// LSB first, bit set ↔ `+1`; bits past the end of the row are 0. Scales as in [`BcqFit`].
#[derive(Debug, Clone, PartialEq)]
pub struct BcqPacked {
    pub rows: usize,
    pub cols: usize,
    pub bits: u8,
    pub group: usize,
    pub words_per_row: usize,
    /// Index `(row·bits + plane)·words_per_row + word`.
    pub planes: Vec<u32>,
    /// Index `(row·groups_per_row + g)·bits + plane`.
    pub alphas: Vec<f32>,
}

impl BcqPacked {
    /// Packs a fit. Groups must be whole bytes of inputs (a multiple of 8): each table look-up
    /// covers 8 inputs and is multiplied by one group's scale.
    pub fn new(fit: &BcqFit) -> Result<BcqPacked, String> {
        if fit.group % 8 != 0 {
            return Err(format!("the LUT layout needs groups of a multiple of 8 inputs, not {}", fit.group));
        }
        let (q, words_per_row) = (fit.bits as usize, fit.cols.div_ceil(32));
        let mut planes = vec![0u32; fit.rows * q * words_per_row];
        for (i, &pattern) in fit.patterns.iter().enumerate() {
            let (r, c) = (i / fit.cols, i % fit.cols);
            for plane in (0..q).filter(|&plane| pattern >> plane & 1 == 1) {
                planes[(r * q + plane) * words_per_row + c / 32] |= 1 << (c % 32);
            }
        }
        Ok(BcqPacked {
            rows: fit.rows,
            cols: fit.cols,
            bits: fit.bits,
            group: fit.group,
            words_per_row,
            planes,
            alphas: fit.alphas.clone(),
        })
    }

    /// Groups per row, the last one possibly shorter: the middle index of [`BcqPacked::alphas`].
    pub fn groups_per_row(&self) -> usize {
        self.cols.div_ceil(self.group)
    }
}

/// The tables of the LUT dot for input `x`: for each chunk of 8 inputs (the last padded with
/// zeros) 256 entries, `T[c] = Σ_t (bit t of c ? +x_t : −x_t)`, built with one add per entry:
/// `T[0] = −Σx`, `T[c + 2^s] = T[c] + 2·x_s`. Kept in f64 so that the reference has no
/// accumulation error of its own.
pub fn lut_tables(x: &[f32]) -> Vec<f64> {
    let mut tables = vec![0.0f64; x.len().div_ceil(8) * 256];
    for (table, chunk) in tables.chunks_mut(256).zip(x.chunks(8)) {
        table[0] = -chunk.iter().map(|&v| v as f64).sum::<f64>();
        for (s, &v) in chunk.iter().enumerate() {
            for c in 0..1 << s {
                table[c + (1 << s)] = table[c] + 2.0 * v as f64;
            }
        }
    }
    tables
}

/// `Σ_j x_j·ŵ(row, j)` without multiplying by a weight: per bit-plane and group, the table
/// entries that the plane's bytes select are summed, and the sum is scaled by that group's `α`
/// (a shift-add for APoT scales). `tables` from [`lut_tables`] of `x`, shared by every row.
pub fn lut_dot(packed: &BcqPacked, row: usize, tables: &[f64]) -> f32 {
    let (q, gpr) = (packed.bits as usize, packed.cols.div_ceil(packed.group));
    let mut dot = 0.0f64;
    for plane in 0..q {
        let words = &packed.planes[(row * q + plane) * packed.words_per_row..][..packed.words_per_row];
        for (g, span) in spans(packed.cols, packed.group).enumerate() {
            let selected: f64 = (span.start / 8..span.end.div_ceil(8))
                .map(|chunk| tables[chunk * 256 + (words[chunk / 4] >> (8 * (chunk % 4)) & 0xFF) as usize])
                .sum();
            dot += packed.alphas[(row * gpr + g) * q + plane] as f64 * selected;
        }
    }
    dot as f32
}

/// `W·x` by [`lut_dot`], the tables built once.
pub fn lut_gemv(packed: &BcqPacked, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), packed.cols, "input length");
    let tables = lut_tables(x);
    (0..packed.rows).map(|row| lut_dot(packed, row, &tables)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::int::tests::{gaussian, rmse};
    use crate::quant::Encoding;

    fn codebook(q: &QuantizedTensor) -> &Codebook {
        match &q.encoding {
            Encoding::Codebook(cb) => cb,
            other => panic!("not a codebook: {other:?}"),
        }
    }

    /// `Σ_j x_j·ŵ_j` per row, straight from the codebook's values.
    fn direct(values: &[f32], cols: usize, x: &[f32]) -> Vec<(f64, f64)> {
        values
            .chunks(cols)
            .map(|row| {
                let terms = row.iter().zip(x).map(|(&v, &x)| v as f64 * x as f64);
                (terms.clone().sum(), terms.map(f64::abs).sum())
            })
            .collect()
    }

    #[test]
    fn greedy_alphas_are_the_mean_residual_magnitudes_of_section_6() {
        // §6: 16 weights with σ = 0.02, 3 bits, greedy α. The published α came from an RNG we
        // cannot reproduce, so check the recurrence they obey, then the LUT dot.
        let w = gaussian(61, 16, 0.02);
        let fit = fit(3, 16, 0, 1, 16, &w).unwrap();
        let mut residual: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        for i in 0..3 {
            let alpha = residual.iter().map(|r| r.abs()).sum::<f64>() / 16.0;
            assert_eq!(fit.alphas[i], alpha as f32, "α_{i}");
            for (j, r) in residual.iter_mut().enumerate() {
                assert_eq!(fit.patterns[j] >> i & 1 == 1, *r >= 0.0, "b_{i} of weight {j}");
                *r -= if *r >= 0.0 { alpha } else { -alpha };
            }
        }
        assert!(fit.alphas[0] >= fit.alphas[1] && fit.alphas[1] >= fit.alphas[2], "{:?}", fit.alphas);
        let x = gaussian(62, 16, 1.0);
        let values = fit.codebook().dequantize();
        let (expected, _) = direct(&values, 16, &x)[0];
        let lut = lut_dot(&BcqPacked::new(&fit).unwrap(), 0, &lut_tables(&x)) as f64;
        assert!((lut - expected).abs() <= 1e-6 * expected.abs(), "LUT {lut} vs direct {expected}");
    }

    #[test]
    fn apot3_is_the_greedy_three_term_power_of_two_sum() {
        assert_eq!(apot3(0.75), 0.75); // 1 − 1/4
        assert_eq!(apot3(0.3), 0.25 + 0.0625 - 0.015625); // 2⁻² + 2⁻⁴ − 2⁻⁶
        assert_eq!(apot3(0.0), 0.0);
        assert_eq!(apot3(1.0 + 1.0 / 16.0 + 1.0 / 1024.0 + 1.0 / 65536.0), 1.0 + 1.0 / 16.0 + 1.0 / 1024.0);
    }

    /// The fewest signed powers of two that sum to `x` (the non-adjacent form of its mantissa).
    fn signed_digits(x: f32) -> u32 {
        let mut m = (x.to_bits() & 0x7F_FFFF | 0x80_0000) as i64;
        let mut digits = 0;
        while m != 0 {
            if m & 1 == 1 {
                m -= 2 - (m & 3); // digit +1 when m ≡ 1 (mod 4), −1 when m ≡ 3
                digits += 1;
            }
            m >>= 1;
        }
        digits
    }

    #[test]
    fn refined_scales_are_apot3_and_every_weight_takes_its_nearest_codeword() {
        let (rows, cols) = (7, 200);
        let w = gaussian(63, rows * cols, 0.02);
        for bits in 1..=4u8 {
            let fit = fit(bits, 64, 10, rows, cols, &w).unwrap();
            assert!(fit.alphas.iter().all(|&a| a == 0.0 || signed_digits(a) <= 3), "{:?}", fit.alphas);
            for scales in fit.alphas.chunks(bits as usize) {
                assert!(scales.windows(2).all(|p| p[0] >= p[1]), "{scales:?}");
            }
            let q = quantize(bits, 64, 10, rows, cols, &w).unwrap();
            let cb = codebook(&q);
            assert_eq!(
                (cb.table_sharing, cb.levels_per_table, cb.scales.as_slice()),
                (Sharing::Group(64), 1 << bits, &[1.0][..])
            );
            for (i, &x) in w.iter().enumerate() {
                let t = cb.table_sharing.index(cols, i / cols, i % cols);
                let table = &cb.levels[t << bits..(t + 1) << bits];
                assert!(table.windows(2).all(|p| p[0] <= p[1]), "table {t} not ascending");
                assert!(table.iter().all(|&l| (x - q.values[i]).abs() <= (x - l).abs()), "weight {i}");
                let pattern = fit.patterns[i];
                assert_eq!(q.values[i], codeword(&fit.alphas[t * bits as usize..][..bits as usize], pattern));
            }
        }
    }

    #[test]
    fn error_falls_with_bits_and_refinement_beats_greedy() {
        let (rows, cols) = (7, 200);
        let w = gaussian(64, rows * cols, 0.02);
        let error = |bits, rounds| rmse(&quantize(bits, 64, rounds, rows, cols, &w).unwrap().values, &w);
        let refined: Vec<f64> = (1..=4).map(|b| error(b, 10)).collect();
        assert!(refined.windows(2).all(|e| e[1] < 0.75 * e[0]), "{refined:?}");
        for bits in 2..=4 {
            assert!(error(bits, 10) < error(bits, 0), "bcq{bits}: refinement made it worse");
        }
    }

    #[test]
    fn lut_dot_equals_the_direct_dot_and_the_planes_hold_the_digits() {
        let (rows, cols) = (7, 200);
        let w = gaussian(65, rows * cols, 0.02);
        let x = gaussian(66, cols, 1.0);
        for bits in 1..=4u8 {
            let fit = fit(bits, 64, 10, rows, cols, &w).unwrap();
            let packed = BcqPacked::new(&fit).unwrap();
            assert_eq!(packed.words_per_row, 7);
            for (i, &pattern) in fit.patterns.iter().enumerate() {
                let (r, c) = (i / cols, i % cols);
                for plane in 0..bits as usize {
                    let word = packed.planes[(r * bits as usize + plane) * 7 + c / 32];
                    assert_eq!(word >> (c % 32) & 1, (pattern >> plane & 1) as u32, "({r},{c}) plane {plane}");
                }
            }
            for row in 0..rows {
                let last = packed.planes[(row * bits as usize + bits as usize - 1) * 7 + 6];
                assert_eq!(last >> 8, 0, "bits past the row end");
            }
            let lut = lut_gemv(&packed, &x);
            for (row, (expected, scale)) in direct(&fit.codebook().dequantize(), cols, &x).into_iter().enumerate() {
                assert!(
                    (lut[row] as f64 - expected).abs() <= 1e-6 * scale,
                    "bcq{bits} row {row}: {} vs {expected}",
                    lut[row]
                );
            }
        }
        assert!(BcqPacked::new(&fit(2, 12, 1, 1, 24, &w[..24]).unwrap()).unwrap_err().contains("multiple of 8"));
    }

    #[test]
    fn zero_groups_short_groups_and_storage() {
        let (rows, cols) = (4, 257);
        let mut w = gaussian(67, rows * cols, 0.02);
        w[..128].fill(0.0);
        let q = quantize(3, 128, 10, rows, cols, &w).unwrap();
        assert!(q.values[..128].iter().all(|&v| v == 0.0));
        // Each row ends in a group of one weight: BᵀB is singular there, and the weight comes back
        // up to its APoT rounding (at most 2.8% for three terms).
        for r in 0..rows {
            let (x, v) = (w[r * cols + 256], q.values[r * cols + 256]);
            assert!((x - v).abs() <= 0.03 * x.abs(), "row {r}: {x} -> {v}");
        }
        assert_eq!(q.storage_bits, (rows * cols * 3 + rows * 3 * 3 * 16) as u64);
        let q = quantize(3, 128, 10, 4, 256, &w[..1024]).unwrap();
        assert_eq!(q.bits_per_weight(), 3.0 + 48.0 / 128.0);
        assert!(quantize(5, 128, 1, 1, 4, &[1.0; 4]).is_err());
        assert!(quantize(2, 0, 1, 1, 4, &[1.0; 4]).is_err());
    }
}
