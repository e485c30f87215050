//! Activation quantization schemes (docs/quantizers.md §1.1, §2.3–§2.5): what a linear layer's input
//! `[tokens × K]` goes through before the matmul, simulated as quantize-then-dequantize in f32
//! ("fake quantization"). Scales are dynamic: computed from the tensor at hand in every forward,
//! as an inference kernel that quantizes its input on the fly does.
//!
//! ```text
//! act-scheme := base ["-clip" P] ["+hadamard" [N]]
//!                                                 P in (0, 100]: percentile clipping of the amax;
//!                                                 +hadamard: online rotation (below)
//! base       := "int" B "-" gran                 symmetric RTN, B = 2..8
//!             | "fp8-e4m3-" gran | "fp8-e5m2-" gran      scale = amax / max finite (448 / 57344)
//!             | "mxfp4"                           OCP MX E2M1, blocks of 32 along K, E8M0 scales
//!             | "nvfp4"                           E2M1, blocks of 16 along K, E4M3 scales, f32 per tensor
//! gran       := "tensor" | "token" | "channel"   one scale for the tensor / per row / per column
//! ```
//!
//! Every format is one of the weight quantizers applied to the activation matrix, so the grids,
//! rounding (RNE) and saturation are exactly those of `int.rs` and `float.rs`: a token is a weight
//! "row" (the weight quantizers run their groups along a row, which is K here, as the MX and NVFP4
//! blocks of an activation must). Per channel means one scale per column of K: the matrix is
//! transposed, quantized per row, and transposed back, rather than duplicating the quantizer.
//!
//! Clipping (`-clipP`) sets each scale's amax to the P-th percentile of |x| over the elements that
//! share the scale (the tensor, a token, a channel; for MX/NVFP4 a token, whose blocks then scale
//! within the clipped values), numpy's linear interpolation. It is applied by clamping the values
//! to ±that percentile before quantizing: the quantizer's amax is then the percentile, and the
//! clamped values land on the top level, which is exactly what a clipped scale with saturation
//! gives.

pub mod forward;

use std::fmt;
use std::str::FromStr;


use crate::error::QuantError;
use crate::model::stats::abs_percentile;
use crate::quant::hadamard::{block_size, rotate_rows};
use crate::quant::{quantize, BlockScale, Granularity, MiniFloat, Scheme, SchemeKind};

/// Which elements of a `[tokens × K]` activation share one scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActGranularity {
    Tensor,
    /// One scale per token (a row of K values).
    Token,
    /// One scale per input channel (a column of `tokens` values).
    Channel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActFormat {
    /// Symmetric integer RTN of `bits`.
    Int { bits: u8, granularity: ActGranularity },
    /// FP8 (E4M3 or E5M2) scaled so that amax maps to the largest finite value.
    Fp8 { format: MiniFloat, granularity: ActGranularity },
    /// OCP MXFP4 blocks of 32 along K within each token.
    MxFp4,
    /// NVFP4 blocks of 16 along K within each token (per-tensor f32 second-level scale).
    NvFp4,
}

/// An activation scheme: a format and optional percentile clipping of the amax.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActScheme {
    pub format: ActFormat,
    /// Percentile in (0, 100] of |x| used as the amax of each scale group.
    pub clip: Option<f64>,
    /// Online Hadamard rotation along K in blocks of this size (0: the weight schemes' default
    /// block for the row), paired with weights rotated the same way.
    pub hadamard: Option<usize>,
}

/// Why an activation scheme name was not understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActSchemeParseError {
    #[error("unknown activation scheme {0:?} (intB-GRAN, fp8-e4m3-GRAN, fp8-e5m2-GRAN, mxfp4, nvfp4; GRAN = tensor, token or channel; optional -clipP)")]
    Unknown(String),
    #[error("{0:?}: int activations take 2 to 8 bits")]
    Bits(String),
    #[error("{0:?}: the granularity must be tensor, token or channel")]
    Granularity(String),
    #[error("{0:?}: the clip percentile must be a number in (0, 100], e.g. -clip99.9")]
    Clip(String),
    #[error("{0:?}: the suffix must be +hadamard or +hadamardN with N a power of two ≥ 2")]
    Hadamard(String),
}

impl fmt::Display for ActGranularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActGranularity::Tensor => "tensor",
            ActGranularity::Token => "token",
            ActGranularity::Channel => "channel",
        })
    }
}

impl fmt::Display for ActScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            ActFormat::Int { bits, granularity } => write!(f, "int{bits}-{granularity}")?,
            ActFormat::Fp8 { format, granularity } => write!(f, "fp8-{format}-{granularity}")?,
            ActFormat::MxFp4 => f.write_str("mxfp4")?,
            ActFormat::NvFp4 => f.write_str("nvfp4")?,
        }
        if let Some(p) = self.clip {
            write!(f, "-clip{p}")?;
        }
        match self.hadamard {
            None => Ok(()),
            Some(0) => f.write_str("+hadamard"),
            Some(n) => write!(f, "+hadamard{n}"),
        }
    }
}

fn parse_granularity(word: &str, input: &str) -> Result<ActGranularity, ActSchemeParseError> {
    match word {
        "tensor" => Ok(ActGranularity::Tensor),
        "token" => Ok(ActGranularity::Token),
        "channel" => Ok(ActGranularity::Channel),
        _ => Err(ActSchemeParseError::Granularity(input.into())),
    }
}

impl FromStr for ActScheme {
    type Err = ActSchemeParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let lowered = input.trim().to_ascii_lowercase();
        let (lowered, hadamard) = match lowered.split_once('+') {
            None => (lowered.as_str(), None),
            Some((base, suffix)) => {
                let n = suffix.strip_prefix("hadamard").ok_or_else(|| ActSchemeParseError::Hadamard(input.into()))?;
                let n = if n.is_empty() {
                    0
                } else {
                    n.parse::<usize>()
                        .ok()
                        .filter(|n| *n >= 2 && n.is_power_of_two())
                        .ok_or_else(|| ActSchemeParseError::Hadamard(input.into()))?
                };
                (base, Some(n))
            }
        };
        let mut words: Vec<&str> = lowered.split('-').collect();
        // "-clip99.9" is the last word; the percentile itself has no '-'.
        let clip = match words.last().and_then(|w| w.strip_prefix("clip")) {
            Some(p) => {
                let percentile: f64 = p.parse().map_err(|_| ActSchemeParseError::Clip(input.into()))?;
                // `!(0 < p ≤ 100)` also rejects NaN.
                if !(percentile > 0.0 && percentile <= 100.0) {
                    return Err(ActSchemeParseError::Clip(input.into()));
                }
                words.pop();
                Some(percentile)
            }
            None => None,
        };
        let format = match words.as_slice() {
            ["mxfp4"] => ActFormat::MxFp4,
            ["nvfp4"] => ActFormat::NvFp4,
            ["fp8", element, granularity] => {
                let format = match *element {
                    "e4m3" => MiniFloat::E4M3,
                    "e5m2" => MiniFloat::E5M2,
                    _ => return Err(ActSchemeParseError::Unknown(input.into())),
                };
                ActFormat::Fp8 { format, granularity: parse_granularity(granularity, input)? }
            }
            [int, granularity] if int.starts_with("int") => {
                let bits: u8 = int["int".len()..].parse().map_err(|_| ActSchemeParseError::Unknown(input.into()))?;
                if !(2..=8).contains(&bits) {
                    return Err(ActSchemeParseError::Bits(input.into()));
                }
                ActFormat::Int { bits, granularity: parse_granularity(granularity, input)? }
            }
            _ => return Err(ActSchemeParseError::Unknown(input.into())),
        };
        Ok(ActScheme { format, clip, hadamard })
    }
}

serde_by_name!(ActScheme);

impl ActScheme {
    /// The weight scheme that quantizes the activation matrix the same way (rows = tokens, or
    /// rows = channels after a transpose), and whether the matrix must be transposed for it.
    fn weight_scheme(&self) -> (Scheme, bool) {
        let per = |granularity: ActGranularity| match granularity {
            ActGranularity::Tensor => (Granularity::Tensor, false),
            ActGranularity::Token => (Granularity::Channel, false),
            ActGranularity::Channel => (Granularity::Channel, true),
        };
        let (kind, transposed) = match self.format {
            ActFormat::Int { bits, granularity } => {
                let (granularity, transposed) = per(granularity);
                (SchemeKind::Int { bits, granularity, symmetric: true }, transposed)
            }
            ActFormat::Fp8 { format, granularity } => {
                let (granularity, transposed) = per(granularity);
                (SchemeKind::Fp { format, granularity }, transposed)
            }
            ActFormat::MxFp4 => (SchemeKind::Mx { format: MiniFloat::E2M1 }, false),
            ActFormat::NvFp4 => (SchemeKind::NvFp4 { scale: BlockScale::E4M3 }, false),
        };
        (Scheme::new(kind), transposed)
    }

    /// The granularity of the clipping percentile: the scale's own group, or the token for the
    /// block formats.
    fn clip_granularity(&self) -> ActGranularity {
        match self.format {
            ActFormat::Int { granularity, .. } | ActFormat::Fp8 { granularity, .. } => granularity,
            ActFormat::MxFp4 | ActFormat::NvFp4 => ActGranularity::Token,
        }
    }
}

/// `[rows × cols]` row-major → `[cols × rows]`.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = x[r * cols + c];
        }
    }
    t
}

/// Clamps each row of `x` (`[rows × cols]`, or the whole of it with `whole`) to ±its
/// `percentile`-th percentile of |x|.
fn clip_rows(x: &mut [f32], cols: usize, whole: bool, percentile: f64) {
    let width = if whole { x.len() } else { cols };
    for row in x.chunks_exact_mut(width) {
        let limit = abs_percentile(row, percentile);
        for v in row.iter_mut() {
            *v = v.clamp(-limit, limit);
        }
    }
}

/// Quantizes and dequantizes `x` (`[tokens × k]`, row-major) in place under `scheme`.
///
/// With `+hadamard`, each token is rotated by the orthonormal, symmetric, self-inverse `H` along K
/// (blockwise) before quantizing and rotated back after. Deployed, the weights are stored rotated
/// (`Q(W·H)`) and the kernel multiplies them with `Q(H·x)`; the weight scheme's `+hadamard` keeps
/// `Q(W·H)·H` in the original basis, so `Q(W·H)·H · H·Q(H·x) = Q(W·H)·Q(H·x)`: the same product.
pub fn fake_quantize(scheme: &ActScheme, x: &mut [f32], tokens: usize, k: usize) -> Result<(), QuantError> {
    let Some(requested) = scheme.hadamard else { return fake_quantize_unrotated(scheme, x, tokens, k) };
    let block = block_size(requested, k).map_err(|reason| QuantError::Unsupported {
        scheme: scheme.to_string(),
        tensor: "activation".into(),
        rows: tokens,
        cols: k,
        reason,
    })?;
    let mut rotated = rotate_rows(block, k, x);
    fake_quantize_unrotated(scheme, &mut rotated, tokens, k)?;
    x.copy_from_slice(&rotate_rows(block, k, &rotated));
    Ok(())
}

fn fake_quantize_unrotated(scheme: &ActScheme, x: &mut [f32], tokens: usize, k: usize) -> Result<(), QuantError> {
    let (weight_scheme, transposed) = scheme.weight_scheme();
    let (rows, cols) = if transposed { (k, tokens) } else { (tokens, k) };
    let mut matrix = if transposed { transpose(x, tokens, k) } else { x.to_vec() };
    if let Some(percentile) = scheme.clip {
        // After the transpose a channel is a row, so "per row" is the scale group in every case.
        clip_rows(&mut matrix, cols, scheme.clip_granularity() == ActGranularity::Tensor, percentile);
    }
    let quantized = quantize(&weight_scheme, "activation", rows, cols, &matrix)?;
    if transposed {
        x.copy_from_slice(&transpose(&quantized.values, rows, cols));
    } else {
        x.copy_from_slice(&quantized.values);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> ActScheme {
        name.parse().unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn names_round_trip_and_serialize_as_the_name() {
        for name in [
            "int8-tensor",
            "int8-token",
            "int8-channel",
            "int6-token",
            "int4-token",
            "fp8-e4m3-token",
            "fp8-e5m2-token",
            "mxfp4",
            "nvfp4",
            "int8-token-clip99.9",
            "nvfp4-clip99",
            "int4-token+hadamard",
            "int4-token-clip99+hadamard64",
        ] {
            let scheme = parse(name);
            assert_eq!(scheme.to_string(), name);
            assert_eq!(parse(&scheme.to_string()), scheme);
            let json = serde_json::to_string(&scheme).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ActScheme>(&json).unwrap(), scheme);
        }
        assert_eq!(
            parse("int4-token-clip99.5"),
            ActScheme {
                format: ActFormat::Int { bits: 4, granularity: ActGranularity::Token },
                clip: Some(99.5),
                hadamard: None
            }
        );
    }

    #[test]
    fn bad_names_give_typed_errors() {
        use ActSchemeParseError::*;
        let err = |name: &str| name.parse::<ActScheme>().unwrap_err();
        assert!(matches!(err("int9-token"), Bits(_)));
        assert!(matches!(err("int4-token+hadamard3"), Hadamard(_)));
        assert!(matches!(err("int4-token+rotate"), Hadamard(_)));
        assert!(matches!(err("int1-token"), Bits(_)));
        assert!(matches!(err("int8-row"), Granularity(_)));
        assert!(matches!(err("int8-token-clip0"), Clip(_)));
        assert!(matches!(err("int8-token-clip101"), Clip(_)));
        assert!(matches!(err("int8-token-clipx"), Clip(_)));
        assert!(matches!(err("fp8-e3m4-token"), Unknown(_)));
        assert!(matches!(err("q8_0"), Unknown(_)));
        assert!(matches!(err("int8"), Unknown(_)));
    }

    #[test]
    fn int8_per_token_known_values() {
        // Row amax 127 → scale 1: integers stay, halves round to even. Row amax 1.27 → scale 0.01.
        let mut x = vec![127.0, 2.5, -3.5, 0.4, 1.27, 0.031, -0.5, 0.0];
        fake_quantize(&parse("int8-token"), &mut x, 2, 4).unwrap();
        let expected = [127.0, 2.0, -4.0, 0.0, 1.27, 0.03, -0.5, 0.0];
        for (a, e) in x.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn per_channel_scales_each_column() {
        // Column 0 amax 7 (int4: qmax 7, scale 1), column 1 amax 0.7 (scale 0.1).
        let mut x = vec![7.0, 0.7, 2.4, 0.24, -3.6, -0.36];
        fake_quantize(&parse("int4-channel"), &mut x, 3, 2).unwrap();
        let expected = [7.0, 0.7, 2.0, 0.2, -4.0, -0.4];
        for (a, e) in x.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{x:?}");
        }
    }

    /// 4 tokens × 64: token 0 carries a planted outlier of 10 000 (a massive activation).
    fn planted(k: usize) -> Vec<f32> {
        let mut x: Vec<f32> = (0..4 * k).map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0).collect();
        x[5] = 10_000.0;
        x
    }

    fn squared_error(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum()
    }

    #[test]
    fn per_token_keeps_the_precision_of_rows_without_the_outlier() {
        let k = 64;
        let original = planted(k);
        let (mut per_tensor, mut per_token) = (original.clone(), original.clone());
        fake_quantize(&parse("int8-tensor"), &mut per_tensor, 4, k).unwrap();
        fake_quantize(&parse("int8-token"), &mut per_token, 4, k).unwrap();
        let rest = k..4 * k;
        // Per tensor the step is 10 000/127 ≈ 79: every value of the other rows (|x| ≤ 1) rounds to 0.
        assert!(per_tensor[rest.clone()].iter().all(|&v| v == 0.0));
        // Per token those rows get steps of ~1/127: error at most half a step each.
        for (&q, &x) in per_token[rest.clone()].iter().zip(&original[rest]) {
            assert!((q - x).abs() <= 0.5 / 127.0 + 1e-6, "{q} vs {x}");
        }
        assert_eq!(per_token[5], 10_000.0, "the amax is a grid point");
        // Row 0 loses its small values under both (they share the outlier's step); the rest does not.
        let rest = k..4 * k;
        let token_error = squared_error(&per_token[rest.clone()], &original[rest.clone()]);
        assert!(token_error < squared_error(&per_tensor[rest.clone()], &original[rest]) / 1000.0);
    }

    #[test]
    fn round_trip_error_stays_within_half_a_step_or_the_format_precision() {
        let (tokens, k) = (3, 96);
        let original: Vec<f32> = (0..tokens * k).map(|i| ((i * 104729 % 997) as f32 / 498.5 - 1.0) * 3.0).collect();
        let row_amax: Vec<f32> = original.chunks(k).map(|r| r.iter().fold(0.0f32, |m, v| m.max(v.abs()))).collect();
        for (name, relative_bound) in [
            // Half a step of amax / qmax.
            ("int8-token", 0.5 / 127.0),
            ("int6-token", 0.5 / 31.0),
            ("int4-token", 0.5 / 7.0),
            // E4M3: 3 mantissa bits → relative error ≤ 2^-4 of |x| ≤ amax (normals).
            ("fp8-e4m3-token", 1.0 / 16.0),
            ("fp8-e5m2-token", 1.0 / 8.0),
            // E2M1 with a block scale: at most the widest step (2 of 6) halved, relative to the block amax,
            // plus MX's saturation of (6, 8)·X; bounded by a quarter of the token amax here.
            ("mxfp4", 0.25),
            ("nvfp4", 0.25),
        ] {
            let mut x = original.clone();
            fake_quantize(&parse(name), &mut x, tokens, k).unwrap();
            for (i, (&q, &v)) in x.iter().zip(&original).enumerate() {
                let bound = relative_bound * row_amax[i / k] + 1e-6;
                assert!((q - v).abs() <= bound, "{name}: element {i}: {q} vs {v} (bound {bound})");
            }
        }
    }

    #[test]
    fn clipping_caps_the_scale_at_the_percentile() {
        let k = 64;
        let original = planted(k);
        let mut clipped = original.clone();
        fake_quantize(&parse("int8-tensor-clip99"), &mut clipped, 4, k).unwrap();
        let limit = abs_percentile(&original, 99.0);
        assert!(limit < 1.0, "the outlier is above the 99th percentile");
        assert!((clipped[5] - limit).abs() < 1e-5, "the outlier saturates at the percentile");
        let others = (0..4 * k).filter(|&i| i != 5);
        for i in others {
            assert!((clipped[i] - original[i].clamp(-limit, limit)).abs() <= 0.5 * limit / 127.0 + 1e-6);
        }
    }

    /// A rotation spreads moderate outliers (8× the rest) over their block, so per-token int4
    /// loses less; a fine quantizer through the rotation comes back close to the input.
    #[test]
    fn hadamard_rotation_spreads_the_outlier_and_rotates_back() {
        let (tokens, k) = (3, 64);
        let mut x: Vec<f32> = (0..tokens * k).map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0).collect();
        for t in 0..tokens {
            x[t * k + 5] = 8.0;
            x[t * k + 40] = -7.5;
        }
        let (mut plain, mut rotated) = (x.clone(), x.clone());
        fake_quantize(&parse("int4-token"), &mut plain, tokens, k).unwrap();
        fake_quantize(&parse("int4-token+hadamard"), &mut rotated, tokens, k).unwrap();
        assert!(squared_error(&rotated, &x) < squared_error(&plain, &x) / 2.0);
        let mut fine = x.clone();
        fake_quantize(&parse("int8-token+hadamard16"), &mut fine, tokens, k).unwrap();
        assert!(squared_error(&fine, &x) < squared_error(&x, &vec![0.0; x.len()]) * 1e-3);
        let err = fake_quantize(&parse("int8-token+hadamard128"), &mut vec![0.0; 2 * 96], 2, 96).unwrap_err();
        assert!(err.to_string().contains("does not divide"), "{err}");
    }
}
