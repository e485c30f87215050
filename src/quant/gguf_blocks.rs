//! llama.cpp's reference GGUF quantizers (`quantize_row_*_ref` in `ggml-quants.c`, the path taken
//! without an importance matrix), bit-exact: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K.
//!
//! "Bit-exact" means the same IEEE f32 operations in the same order as the C code, so every
//! intermediate rounds the same way. Three habits of that code matter and are kept on purpose:
//!
//! * Each legacy type has its own rounding: Q8_0 uses C `roundf` (ties away from zero, Rust's
//!   [`f32::round`]); Q4_0/Q5_0 add `8.5` / `16.5` and truncate, Q4_1/Q5_1 add `0.5` and truncate
//!   (on the always-positive argument that is floor(x + 0.5), ties up); the K-quants use
//!   [`nearest_int`], ties to even through the float "magic number" trick.
//! * Scales are searched and applied in f32 and only *stored* as f16: Q8_0 and the legacy types
//!   quantize with the f32 `1/d`, while the K-quants re-quantize every element against the f16
//!   super-block scales read back, as a decoder will see them.
//! * Rust never contracts `a * b + c` into an FMA. C compilers may (GCC's default
//!   `-ffp-contract=fast` on FMA targets, e.g. aarch64); our output is that of the uncontracted C
//!   code, which is also what gguf-py's numpy port computes.
//!
//! Inputs are expected finite (the caller, [`super::quantize`], rejects NaN and ±∞).
//! `tests/native/gguf_quantize_oracle.rs` checks every byte against gguf-py (legacy types) and against an
//! independent Python mirror of the K-quant reference code.

use half::f16;

use crate::formats::blocks::{
    pack_legacy_fifth_bits, pack_legacy_nibbles, pack_scale_min_k4, pack_sub_block_nibbles, q4_0, q4_1, q4_k, q5_0,
    q5_1, q6_k, q8_0, F16Le, QK, QK_K,
};
use crate::formats::ggml::GgmlType;

/// Quantizes `data` (row-major, a whole number of blocks of `ty`) into GGUF block bytes.
/// Blocks never straddle rows when rows are multiples of the block size, so the row structure
/// does not matter here; the caller checks it.
pub fn quantize(ty: GgmlType, data: &[f32]) -> Result<Vec<u8>, String> {
    let quantize_block: fn(&[f32], &mut Vec<u8>) = match ty {
        GgmlType::Q8_0 => quantize_q8_0_block,
        GgmlType::Q4_0 => |x, out| {
            let (d, codes) = symmetric_codes(4, x);
            push_block(out, &q4_0::Block { d, qs: pack_legacy_nibbles(&codes) })
        },
        GgmlType::Q5_0 => |x, out| {
            let (d, codes) = symmetric_codes(5, x);
            push_block(out, &q5_0::Block { d, qh: pack_legacy_fifth_bits(&codes), qs: pack_legacy_nibbles(&codes) })
        },
        GgmlType::Q4_1 => |x, out| {
            let (d, m, codes) = min_offset_codes(4, x);
            push_block(out, &q4_1::Block { d, m, qs: pack_legacy_nibbles(&codes) })
        },
        GgmlType::Q5_1 => |x, out| {
            let (d, m, codes) = min_offset_codes(5, x);
            let (qh, qs) = (pack_legacy_fifth_bits(&codes), pack_legacy_nibbles(&codes));
            push_block(out, &q5_1::Block { d, m, qh, qs })
        },
        GgmlType::Q4_K => quantize_q4_k_block,
        GgmlType::Q6_K => quantize_q6_k_block,
        _ => {
            return Err(format!(
                "no quantizer for GGUF type {ty} (we quantize Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K)"
            ))
        }
    };
    let block_size = ty.block_size();
    if !data.len().is_multiple_of(block_size) {
        return Err(format!("{} values are not a whole number of {ty} blocks of {block_size}", data.len()));
    }
    let mut out = Vec::with_capacity(data.len() / block_size * ty.type_size());
    for block in data.chunks_exact(block_size) {
        quantize_block(block, &mut out);
    }
    debug_assert_eq!(out.len(), data.len() / block_size * ty.type_size());
    Ok(out)
}

/// Appends the bytes of `block`, a block struct of `crate::formats::blocks`, which is its GGUF
/// layout.
fn push_block<B: bytemuck::Pod>(out: &mut Vec<u8>, block: &B) {
    out.extend_from_slice(bytemuck::bytes_of(block));
}

// ---------------------------------------------------------------------------------------------
// Q8_0 and the legacy 32-element types (Q4_0, Q4_1, Q5_0, Q5_1)
// ---------------------------------------------------------------------------------------------

/// Q8_0: `d = max|x| / 127`, `q = roundf(x / d)`. The codes come from the f32 reciprocal of the f32
/// `d`; only the stored `d` is rounded to f16.
fn quantize_q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |amax, v| amax.max(v.abs()));
    let d = amax / 127.0;
    let inverse_d = if d != 0.0 { 1.0 / d } else { 0.0 };
    // |x * inverse_d| <= 127 up to an ulp, so `round` lands in i8 range.
    let qs = std::array::from_fn(|j| (x[j] * inverse_d).round() as i8);
    push_block(out, &q8_0::Block { d: F16Le::from_f32(d), qs });
}

/// Q4_0 (`bits` = 4) and Q5_0 (`bits` = 5): `d = max / -2^(bits-1)` where `max` is the element
/// of largest magnitude *with its sign* (the first one on ties), so that element lands exactly on
/// code 0 (`-2^(bits-1) * d`) and the grid's extra negative level is spent on the larger side.
/// Codes are `min(2^bits - 1, trunc(x · (1/d) + 2^(bits-1) + 0.5))`; the argument is never below
/// 0.5, so truncation rounds half up. Returns the stored `d` and the codes.
fn symmetric_codes(bits: u32, x: &[f32]) -> (F16Le, [u8; QK]) {
    let half_range = (1u32 << (bits - 1)) as f32;
    let max_code = (1i32 << bits) - 1;
    // The strict comparison keeps the first extreme, and leaves `max` = +0.0 for an all-zero
    // block (so d = -0.0, as in ggml).
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -half_range;
    let inverse_d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let offset = half_range + 0.5;
    let codes = std::array::from_fn(|j| ((x[j] * inverse_d + offset) as i32).min(max_code) as u8);
    (F16Le::from_f32(d), codes)
}

/// Q4_1 (`bits` = 4) and Q5_1 (`bits` = 5): `d = (max - min) / (2^bits - 1)`, offset `m = min`,
/// codes `min(2^bits - 1, trunc((x - min) · (1/d) + 0.5))`, i.e. round half up. Returns the stored
/// `d` and `m` and the codes.
fn min_offset_codes(bits: u32, x: &[f32]) -> (F16Le, F16Le, [u8; QK]) {
    let max_code = (1i32 << bits) - 1;
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / max_code as f32;
    let inverse_d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let codes = std::array::from_fn(|j| (((x[j] - min) * inverse_d + 0.5) as i32).min(max_code) as u8);
    (F16Le::from_f32(d), F16Le::from_f32(min), codes)
}

// ---------------------------------------------------------------------------------------------
// K-quants
// ---------------------------------------------------------------------------------------------

/// ggml's `nearest_int`: adding 1.5·2^23 puts the integer part of `v` in the low mantissa bits,
/// and the addition itself rounds to nearest, ties to even. Valid for |v| <= 2^22 - 1; outside that
/// (ggml only asserts it in debug builds) the bits are garbage, and we return the same garbage as
/// the C code does, so even degenerate blocks stay bit-exact.
fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits() as i32;
    (bits & 0x007F_FFFF) - 0x0040_0000
}

/// ggml's `make_qkx2_quants` with squared-error weighting (`use_mad = false`): fits
/// `x ≈ scale · L + min` with codes `L` in `0..=nmax` and `min <= 0`, minimizing the weighted
/// squared error. Starts from the min-max grid, then tries `nstep + 1` grid densities
/// `(nmax + rmin + rdelta·is) / (max - min)`, each with a weighted least-squares refit of
/// `(scale, min)` (`min` clamped to 0 and `scale` refit if the fit wants it positive), keeping the
/// best. Note, as in ggml, that once a candidate wins, the later candidates are laid on the grid
/// of the *winning* `min`, not the block's minimum. Writes the codes to `levels` and returns
/// `(scale, -min)`.
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let weighted_squared_error = |scale: f32, min: f32, levels: &[u8]| {
        let mut error = 0.0f32;
        for i in 0..n {
            let diff = scale * levels[i] as f32 + min - x[i];
            error += weights[i] * (diff * diff);
        }
        error
    };
    let code = |iscale: f32, min: f32, v: f32| nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;

    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    for i in 0..n {
        levels[i] = code(iscale, min, x[i]);
    }
    let mut best_error = weighted_squared_error(scale, min, levels);

    let mut candidate = vec![0u8; n];
    for is in 0..=nstep {
        let iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = code(iscale, min, x[i]);
            candidate[i] = l;
            let wl = weights[i] * l as f32;
            sum_l += wl;
            sum_l2 += wl * l as f32;
            sum_xl += wl * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let error = weighted_squared_error(this_scale, this_min, &candidate);
            if error < best_error {
                levels.copy_from_slice(&candidate);
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` (weights `x²`, no early return): a symmetric fit
/// `x ≈ scale · l`, `l` in `-nmax..nmax-1`. Starts from `iscale = -nmax / max` (`max` the signed
/// extreme, so it lands on `-nmax`, the grid's longer side), refits the scale by weighted least
/// squares, then tries `iscale = -(nmax + 0.1·is) / max` for `is` in `-9..=9`, `is != 0`, keeping
/// the one with the largest `sumlx² / suml2` (the smallest error after the refit). Writes
/// `l + nmax` to `levels` and returns the scale; an all-(near-)zero block gives scale 0 and codes 0
/// (not `nmax`, as in ggml).
fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [u8]) -> f32 {
    /// ggml's GROUP_MAX_EPS: blocks with no element above this are "all zero".
    const GROUP_MAX_EPS: f32 = 1e-15;
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let code = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // Weighted sums of l·x and l², weights x² (rmse_type 1).
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = code(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let set_levels = |iscale: f32, levels: &mut [u8]| {
        for (level, &v) in levels.iter_mut().zip(x) {
            *level = (code(iscale, v) + nmax) as u8;
        }
    };

    let iscale = -(nmax as f32) / max;
    set_levels(iscale, levels);
    let (sumlx, suml2) = fit(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            set_levels(iscale, levels);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q4_K ([`q4_k::Block`]): each sub-block of 32 gets a (scale, min) from [`make_qkx2_quants`] (weights `rms(x) + |x|`,
/// `nmax` 15, 21 candidates from `rmin` -1 in steps of 0.1); those are quantized to 6 bits against
/// the largest of each (`d = max_scale / 63`, `dmin = max_min / 63`), and every element is then
/// re-quantized against the stored f16 scales. A sub-block whose 6-bit scale came out 0 keeps the
/// codes of its own fit, as in ggml (they decode to `-dmin·m` all the same).
fn quantize_q4_k_block(x: &[f32], out: &mut Vec<u8>) {
    const SUB: usize = q4_k::SUB_BLOCK_WEIGHTS;
    let mut levels = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / SUB];
    let mut mins = [0.0f32; QK_K / SUB];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (j, (sub, sub_levels)) in x.chunks_exact(SUB).zip(levels.chunks_exact_mut(SUB)).enumerate() {
        let mut sum_x2 = 0.0f32;
        for &v in sub {
            sum_x2 += v * v;
        }
        let rms = (sum_x2 / SUB as f32).sqrt();
        let weights: Vec<f32> = sub.iter().map(|v| rms + v.abs()).collect();
        (scales[j], mins[j]) = make_qkx2_quants(15, sub, &weights, sub_levels, -1.0, 0.1, 20);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }

    let inverse_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inverse_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // ggml stores nearest_int into a uint8_t before clamping to 63: the cast wraps, kept here.
    let six_bit = |v: f32| (nearest_int(v) as u8).min(63);
    let scale_codes = scales.map(|s| six_bit(inverse_scale * s));
    let min_codes = mins.map(|m| six_bit(inverse_min * m));

    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    let sub_blocks = x.chunks_exact(SUB).zip(levels.chunks_exact_mut(SUB)).zip(scale_codes.iter().zip(&min_codes));
    for ((sub, sub_levels), (&scale_code, &min_code)) in sub_blocks {
        let sub_d = d.to_f32() * scale_code as f32;
        if sub_d == 0.0 {
            continue;
        }
        let sub_min = dmin.to_f32() * min_code as f32;
        for (level, &v) in sub_levels.iter_mut().zip(sub) {
            *level = nearest_int((v + sub_min) / sub_d).clamp(0, 15) as u8;
        }
    }

    let block = q4_k::Block {
        d: F16Le::new(d),
        dmin: F16Le::new(dmin),
        scales: pack_scale_min_k4(&scale_codes, &min_codes),
        qs: pack_sub_block_nibbles(&levels),
    };
    push_block(out, &block);
}

/// Q6_K ([`q6_k::Block`]): each sub-block of 16 gets a signed scale from [`make_qx_quants`] (`nmax` 32); the super-block
/// scale is `d = 1 / iscale` with `iscale = -128 / max_scale` (`max_scale` the scale of largest
/// magnitude, with its sign, so it lands on -128, the int8 side with one more level), the 8-bit
/// scales are `min(127, nearest_int(iscale · scale))`, and every element is re-quantized against
/// the stored f16 `d`. A sub-block whose 8-bit scale came out 0 keeps the codes of its own fit.
/// A super-block whose scales are all (near) zero is stored as all zero bytes.
fn quantize_q6_k_block(x: &[f32], out: &mut Vec<u8>) {
    const SUB: usize = q6_k::SUB_BLOCK_WEIGHTS;
    const GROUP_MAX_EPS: f32 = 1e-15;
    let mut levels = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / SUB];
    let (mut max_abs_scale, mut max_scale) = (0.0f32, 0.0f32);
    for (j, (sub, sub_levels)) in x.chunks_exact(SUB).zip(levels.chunks_exact_mut(SUB)).enumerate() {
        scales[j] = make_qx_quants(32, sub, sub_levels);
        if scales[j].abs() > max_abs_scale {
            max_abs_scale = scales[j].abs();
            max_scale = scales[j];
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        out.extend_from_slice(&[0u8; q6_k::BLOCK_BYTES]);
        return;
    }

    let iscale = -128.0 / max_scale;
    let d = f16::from_f32(1.0 / iscale);
    // ggml assigns the int result to an int8_t: values are in -128..=127 after the min.
    let scale_codes = scales.map(|s| nearest_int(iscale * s).min(127) as i8);
    for ((sub, sub_levels), &scale_code) in x.chunks_exact(SUB).zip(levels.chunks_exact_mut(SUB)).zip(&scale_codes) {
        let sub_d = d.to_f32() * scale_code as f32;
        if sub_d == 0.0 {
            continue;
        }
        for (level, &v) in sub_levels.iter_mut().zip(sub) {
            *level = (nearest_int(v / sub_d).clamp(-32, 31) + 32) as u8;
        }
    }

    let (ql, qh) = q6_k::pack_codes(&levels);
    push_block(out, &q6_k::Block { ql, qh, scales: scale_codes, d: F16Le::new(d) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ggml::dequantize;

    use crate::quant::known_answers::BLOCK as KNOWN_BLOCK;

    fn f16_le(bytes: &[u8]) -> f32 {
        f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
    }

    /// `value` agrees with `printed`, a figure given to 4 significant digits in the spec.
    fn assert_printed(value: f32, printed: f32) {
        assert!((value - printed).abs() <= 5e-4 * printed, "{value} is not {printed} to 4 digits");
    }

    fn max_abs_error(ty: GgmlType, x: &[f32]) -> f32 {
        let bytes = quantize(ty, x).unwrap();
        let y = dequantize(ty, &bytes, x.len(), "test", "block").unwrap();
        x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    // The spec's f16 scales are written out exactly (they are dyadic), more digits than f32 shows.
    #[allow(clippy::excessive_precision)]
    #[test]
    fn q8_0_known_answer() {
        let bytes = quantize(GgmlType::Q8_0, &KNOWN_BLOCK).unwrap();
        assert_eq!(bytes.len(), 34);
        assert_eq!(f16_le(&bytes[0..2]), 0.00244140625);
        let codes: Vec<i8> = bytes[2..10].iter().map(|&b| b as i8).collect();
        assert_eq!(codes, [19, -29, -14, 8, -21, -127, 4, -17]);
        let err = max_abs_error(GgmlType::Q8_0, &KNOWN_BLOCK);
        assert_printed(err, 1.147e-3);
    }

    #[allow(clippy::excessive_precision)]
    #[test]
    fn q4_0_known_answer() {
        let bytes = quantize(GgmlType::Q4_0, &KNOWN_BLOCK).unwrap();
        assert_eq!(bytes.len(), 18);
        assert_eq!(f16_le(&bytes[0..2]), 0.03875732421875);
        let qs = &bytes[2..18];
        let codes: Vec<u8> = qs[0..8].iter().map(|b| b & 0x0F).collect();
        assert_eq!(codes, [9, 6, 7, 8, 7, 0, 8, 7]);
        assert_eq!(qs[0..4], [0xb9, 0x66, 0x97, 0x58]);
        let err = max_abs_error(GgmlType::Q4_0, &KNOWN_BLOCK);
        assert_printed(err, 1.852e-2);
    }

    #[allow(clippy::excessive_precision)]
    #[test]
    fn q4_1_known_answer() {
        let bytes = quantize(GgmlType::Q4_1, &KNOWN_BLOCK).unwrap();
        assert_eq!(bytes.len(), 20);
        assert_eq!(f16_le(&bytes[0..2]), 0.0286865234375);
        assert_eq!(f16_le(&bytes[2..4]), -0.31005859375);
        let codes: Vec<u8> = bytes[4..12].iter().map(|b| b & 0x0F).collect();
        assert_eq!(codes, [12, 8, 10, 11, 9, 0, 11, 9]);
        let err = max_abs_error(GgmlType::Q4_1, &KNOWN_BLOCK);
        assert_printed(err, 1.357e-2);
    }

    /// Deterministic N(0, σ²) values: xorshift64* and Box–Muller, so the test needs no rand crate.
    fn gaussian(seed: u64, n: usize, sigma: f64) -> Vec<f32> {
        let mut state = seed;
        let mut uniform = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                (sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    }

    /// The worst-case error of the legacy types follows from their grids: half a step (a whole step
    /// at the short end of Q4_0/Q5_0's grid, which has one more level on the side of the extreme),
    /// plus the error of storing `d` and `m` as f16 (relative 2^-11, times the largest code).
    #[test]
    fn legacy_types_round_trip_within_their_grid_step() {
        let data = gaussian(7, 32 * 64, 0.05);
        for (ty, steps) in [
            (GgmlType::Q8_0, 127.0f32),
            (GgmlType::Q4_0, 8.0),
            (GgmlType::Q5_0, 16.0),
            (GgmlType::Q4_1, 15.0),
            (GgmlType::Q5_1, 31.0),
        ] {
            let bytes = quantize(ty, &data).unwrap();
            assert_eq!(bytes.len(), data.len() / 32 * ty.type_size());
            let y = dequantize(ty, &bytes, data.len(), "test", "random").unwrap();
            for (b, (x, y)) in data.chunks_exact(32).zip(y.chunks_exact(32)).enumerate() {
                let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let (lo, hi) = x.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                let bound = match ty {
                    // Symmetric: step amax/steps; half a step, a full one at the grid's short end.
                    GgmlType::Q8_0 => 0.5 * amax / steps,
                    GgmlType::Q4_0 | GgmlType::Q5_0 => amax / steps,
                    _ => 0.5 * (hi - lo) / steps,
                } + amax * 2.0f32.powi(-10)
                    + 1e-7;
                let worst = x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst <= bound, "{ty} block {b}: max error {worst} > bound {bound}");
            }
        }
    }

    /// The K-quants have no simple per-element bound (a small sub-block scale can round to a
    /// coarse 6-bit code), so they are held to relative L2 error on Gaussian data: this data gives
    /// 0.071 for Q4_K and 0.018 for Q6_K (about 2^-bits times a small factor); a layout or packing
    /// bug gives errors of order 1.
    #[test]
    fn k_quants_round_trip_with_small_relative_error() {
        let data = gaussian(11, QK_K * 32, 0.02);
        for (ty, bound) in [(GgmlType::Q4_K, 0.08), (GgmlType::Q6_K, 0.02)] {
            let bytes = quantize(ty, &data).unwrap();
            assert_eq!(bytes.len(), data.len() / QK_K * ty.type_size());
            let y = dequantize(ty, &bytes, data.len(), "test", "random").unwrap();
            let num: f64 = data.iter().zip(&y).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
            let den: f64 = data.iter().map(|&a| (a as f64).powi(2)).sum();
            let relative = (num / den).sqrt();
            assert!(relative < bound, "{ty}: relative L2 error {relative} >= {bound}");
        }
    }

    #[test]
    fn all_zero_blocks_are_all_zero_bytes() {
        // Q4_0/Q5_0 store d = 0 / -8 = -0.0 (sign bit set), exactly as ggml does.
        for ty in [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q6_K] {
            let bytes = quantize(ty, &vec![0.0; ty.block_size()]).unwrap();
            let nonzero: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != 0).collect();
            // Q4_1/Q5_1 codes: (0 - 0) * 0 + 0.5 truncates to 0 as well.
            assert!(nonzero.is_empty(), "{ty}: nonzero bytes at {nonzero:?}");
        }
        let bytes = quantize(GgmlType::Q4_0, &[0.0; 32]).unwrap();
        assert_eq!(bytes[0..2], [0x00, 0x80], "d = -0.0");
        assert!(bytes[2..].iter().all(|&b| b == 0x88), "codes 8 (x = 0)");
    }

    #[test]
    fn q4_k_scale_packing_round_trips_through_the_decoder() {
        // Sub-block j: a ramp of height j + 1 starting at -(j as f32) / 4, so scales and mins
        // differ per sub-block and the 6-bit codes use their top bits.
        let x: Vec<f32> =
            (0..QK_K).map(|i| (i / 32) as f32 * -0.25 + (i % 32) as f32 / 31.0 * ((i / 32) + 1) as f32).collect();
        let bytes = quantize(GgmlType::Q4_K, &x).unwrap();
        let y = dequantize(GgmlType::Q4_K, &bytes, QK_K, "test", "ramp").unwrap();
        for (j, (xs, ys)) in x.chunks_exact(32).zip(y.chunks_exact(32)).enumerate() {
            // Step of sub-block j is about (j + 1) / 15; allow half a step plus scale rounding.
            let bound = 0.6 * (j + 1) as f32 / 15.0 + 0.05;
            let worst = xs.iter().zip(ys).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst <= bound, "sub-block {j}: max error {worst} > {bound}");
        }
    }

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999998, -3.7].map(nearest_int), [0, 2, 2, 0, -2, 2, -4]);
    }

    #[test]
    fn rejects_other_types_and_partial_blocks() {
        assert!(quantize(GgmlType::Q5_K, &[0.0; 256]).unwrap_err().contains("Q5_K"));
        assert!(quantize(GgmlType::F16, &[0.0; 4]).is_err());
        assert!(quantize(GgmlType::Q4_0, &[0.0; 33]).unwrap_err().contains("whole number"));
        assert_eq!(quantize(GgmlType::Q6_K, &[]).unwrap(), Vec::<u8>::new());
    }
}
