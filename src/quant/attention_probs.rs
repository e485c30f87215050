//! Quantizers of attention probabilities (docs/quantizers.md §4.6, §4.12): applied to each query's row of the
//! softmax output before it weights the values, with no renormalization afterwards (what an
//! integer P·V kernel sees).
//!
//! ```text
//! attn-scheme := "uint" B                  uniform on [0, 1]: x̂ = RNE(x·(2^B−1)) / (2^B−1)
//!              | "adalog" B "-q" Q         AdaLog (docs/quantizers.md §4.6), base 2^(Q/37), s = 1
//!              | "adalog" B "-search"      AdaLog with Q searched per layer on calibration text
//!              | "sab"                     BiViT's softmax-aware binarization: 1 where x ≥ ¼·row max
//! ```
//!
//! AdaLog, as `AdaLogQuantizer` computes it with r = 37: `k = RNE(−log2(x)·r/q)` (x clamped to
//! [1e-15, 1]); a code `k ≥ 2^B` is 0, else `x̂ = 2^−T1[k] · T2[k]` with the two hardware tables
//! `T1[k] = ⌊k·q/r⌋` and `T2[k] = RNE(2^(−((q·k) mod r)/r)·(2^(B+1)−2)) / (2^(B+1)−2)`. The
//! dequantized value of each code is precomputed once into a 2^B table ([`adalog_table`]) that the
//! CPU and the GPU both read, so both decode identically.
//!
//! The search (§4.6: q over 10..=138, objective MSE(A_q·V, A·V)) is [`search_adalog_q`]: it takes
//! each layer's float probabilities and values from a calibration forward and keeps, per layer,
//! the q with the lowest error. AdaLog alternates it with a search of V's quantizer scale; here V
//! is taken as the calibration forward computed it (float, or quantized by the KV scheme the
//! calibration ran with).

use std::fmt;
use std::str::FromStr;


/// AdaLog's fixed denominator of the base exponent.
pub const ADALOG_R: u32 = 37;
/// The q candidates of the search (AdaLog's `10..10+eq_n`, eq_n = 128).
pub const ADALOG_SEARCH: std::ops::RangeInclusive<u32> = 10..=138;
/// BiViT's threshold as a fraction of the row maximum.
pub const SAB_THRESHOLD: f32 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbScheme {
    Uniform { bits: u8 },
    /// `q: None` means searched per layer.
    AdaLog { bits: u8, q: Option<u32> },
    Sab,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbSchemeParseError {
    #[error("unknown attention-probability scheme {0:?} (uintB, adalogB-qQ, adalogB-search, sab)")]
    Unknown(String),
    #[error("{0:?}: attention probabilities take 1 to 8 bits")]
    Bits(String),
    #[error("{0:?}: AdaLog's q must be a whole number from 1 to 1000")]
    Q(String),
}

impl fmt::Display for ProbScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbScheme::Uniform { bits } => write!(f, "uint{bits}"),
            ProbScheme::AdaLog { bits, q: Some(q) } => write!(f, "adalog{bits}-q{q}"),
            ProbScheme::AdaLog { bits, q: None } => write!(f, "adalog{bits}-search"),
            ProbScheme::Sab => f.write_str("sab"),
        }
    }
}

impl FromStr for ProbScheme {
    type Err = ProbSchemeParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let lowered = input.trim().to_ascii_lowercase();
        let bits_of = |digits: &str| -> Result<u8, ProbSchemeParseError> {
            let bits: u8 = digits.parse().map_err(|_| ProbSchemeParseError::Unknown(input.into()))?;
            if (1..=8).contains(&bits) {
                Ok(bits)
            } else {
                Err(ProbSchemeParseError::Bits(input.into()))
            }
        };
        if lowered == "sab" {
            return Ok(ProbScheme::Sab);
        }
        if let Some(digits) = lowered.strip_prefix("uint") {
            return Ok(ProbScheme::Uniform { bits: bits_of(digits)? });
        }
        if let Some(rest) = lowered.strip_prefix("adalog") {
            let (digits, q) = rest.split_once('-').ok_or_else(|| ProbSchemeParseError::Unknown(input.into()))?;
            let bits = bits_of(digits)?;
            if q == "search" {
                return Ok(ProbScheme::AdaLog { bits, q: None });
            }
            let q: u32 = q
                .strip_prefix('q')
                .and_then(|q| q.parse().ok())
                .filter(|q| (1..=1000).contains(q))
                .ok_or_else(|| ProbSchemeParseError::Q(input.into()))?;
            return Ok(ProbScheme::AdaLog { bits, q: Some(q) });
        }
        Err(ProbSchemeParseError::Unknown(input.into()))
    }
}

serde_by_name!(ProbScheme);

impl ProbScheme {
    pub fn catalog() -> Vec<ProbScheme> {
        ["uint8", "uint4", "adalog4-q37", "adalog4-q18", "adalog4-search", "adalog3-search", "sab"]
            .iter()
            .map(|n| n.parse().expect("catalog names parse"))
            .collect()
    }
}

/// AdaLog's code of `x` (None: below the smallest level, decoded as 0).
pub fn adalog_code(x: f32, bits: u8, q: u32) -> Option<u32> {
    let u = (x as f64).clamp(1e-15, 1.0);
    let k = (-u.log2() * ADALOG_R as f64 / q as f64).round_ties_even();
    (k < (1u64 << bits) as f64).then_some(k as u32)
}

/// The dequantized value of every AdaLog code `0..2^bits` for base `2^(q/37)`.
pub fn adalog_table(bits: u8, q: u32) -> Vec<f32> {
    let grid = ((1u64 << (bits + 1)) - 2) as f64;
    (0..1u64 << bits)
        .map(|k| {
            let shift = (k * q as u64) / ADALOG_R as u64;
            let fraction = ((k * q as u64) % ADALOG_R as u64) as f64 / ADALOG_R as f64;
            let t2 = ((-fraction).exp2() * grid).round_ties_even() / grid;
            ((-(shift as f64)).exp2() * t2) as f32
        })
        .collect()
}

/// A probability quantizer ready to run: the scheme with its per-layer AdaLog q resolved and the
/// tables built.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbQuantizer {
    pub scheme: ProbScheme,
    /// AdaLog: the q of each layer (one value repeated when fixed).
    pub layer_q: Vec<u32>,
    /// AdaLog: the decode table of each layer.
    tables: Vec<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{scheme}: AdaLog's q is searched on calibration data; run the calibration (eval --calib, or the page's Calibrate) first")]
pub struct NeedsCalibration {
    pub scheme: String,
}

impl ProbQuantizer {
    /// The quantizer for a model of `n_layers`; a searched AdaLog needs [`ProbQuantizer::with_layer_q`].
    pub fn new(scheme: ProbScheme, n_layers: usize) -> Result<ProbQuantizer, NeedsCalibration> {
        match scheme {
            ProbScheme::AdaLog { bits, q: Some(q) } => Ok(Self::with_layer_q(bits, vec![q; n_layers])),
            ProbScheme::AdaLog { q: None, .. } => Err(NeedsCalibration { scheme: scheme.to_string() }),
            _ => Ok(ProbQuantizer { scheme, layer_q: Vec::new(), tables: Vec::new() }),
        }
    }

    /// AdaLog with a q per layer (a search's result).
    pub fn with_layer_q(bits: u8, layer_q: Vec<u32>) -> ProbQuantizer {
        let tables = layer_q.iter().map(|&q| adalog_table(bits, q)).collect();
        let scheme = if layer_q.windows(2).all(|w| w[0] == w[1]) && !layer_q.is_empty() {
            ProbScheme::AdaLog { bits, q: Some(layer_q[0]) }
        } else {
            ProbScheme::AdaLog { bits, q: None }
        };
        ProbQuantizer { scheme, layer_q, tables }
    }

    /// AdaLog's decode table of `layer` (what the GPU uploads); None for the other schemes.
    pub fn table(&self, layer: usize) -> Option<&[f32]> {
        self.tables.get(layer).map(Vec::as_slice)
    }

    /// Quantizes one query's probabilities (keys `0..=query`) in place.
    pub fn quantize_row(&self, layer: usize, row: &mut [f32]) {
        match self.scheme {
            ProbScheme::Uniform { bits } => {
                let top = ((1u32 << bits) - 1) as f32;
                for p in row.iter_mut() {
                    *p = (*p * top).round_ties_even().clamp(0.0, top) / top;
                }
            }
            ProbScheme::AdaLog { bits, .. } => {
                let (q, table) = (self.layer_q[layer.min(self.layer_q.len() - 1)], &self.tables[layer.min(self.tables.len() - 1)]);
                for p in row.iter_mut() {
                    *p = adalog_code(*p, bits, q).map_or(0.0, |k| table[k as usize]);
                }
            }
            ProbScheme::Sab => {
                let threshold = SAB_THRESHOLD * row.iter().copied().fold(0.0f32, f32::max);
                for p in row.iter_mut() {
                    *p = if *p >= threshold { 1.0 } else { 0.0 };
                }
            }
        }
    }
}

/// One layer's calibration data for the AdaLog search: the float probabilities
/// `[heads × n × n]` (zero above the diagonal) and the values `[n × kv_heads·head_dim]`.
pub struct AttentionSample<'a> {
    pub probs: &'a [f32],
    pub values: &'a [f32],
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub tokens: usize,
}

/// Σ over heads, queries and dims of (A_q·V − A·V)² for one layer's sample under AdaLog(bits, q).
pub fn adalog_output_error(sample: &AttentionSample, bits: u8, q: u32) -> f64 {
    let AttentionSample { probs, values, heads, kv_heads, head_dim, tokens: n } = *sample;
    let quantizer = ProbQuantizer::with_layer_q(bits, vec![q]);
    let kv_width = kv_heads * head_dim;
    let group = heads / kv_heads;
    let (mut row, mut error) = (vec![0.0f32; n], 0.0f64);
    let mut diff = vec![0.0f64; head_dim];
    for h in 0..heads {
        let kv_h = h / group;
        for i in 0..n {
            let p = &probs[(h * n + i) * n..][..=i];
            row[..=i].copy_from_slice(p);
            quantizer.quantize_row(0, &mut row[..=i]);
            diff.iter_mut().for_each(|d| *d = 0.0);
            for j in 0..=i {
                let delta = (row[j] - p[j]) as f64;
                if delta != 0.0 {
                    let v = &values[j * kv_width + kv_h * head_dim..][..head_dim];
                    for (d, &vd) in diff.iter_mut().zip(v) {
                        *d += delta * vd as f64;
                    }
                }
            }
            error += diff.iter().map(|d| d * d).sum::<f64>();
        }
    }
    error
}

/// Per layer, the q in [`ADALOG_SEARCH`] with the lowest [`adalog_output_error`] over the samples
/// (ties: the smaller q). `samples[layer]` holds that layer's samples (one per calibration window).
pub fn search_adalog_q(bits: u8, samples: &[Vec<AttentionSample>]) -> Vec<u32> {
    samples
        .iter()
        .map(|layer| {
            let mut best = (f64::INFINITY, *ADALOG_SEARCH.start());
            for q in ADALOG_SEARCH {
                let error: f64 = layer.iter().map(|s| adalog_output_error(s, bits, q)).sum();
                if error < best.0 {
                    best = (error, q);
                }
            }
            best.1
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_say_why() {
        for name in ["uint8", "uint4", "adalog4-q37", "adalog3-q18", "adalog4-search", "sab"] {
            assert_eq!(name.parse::<ProbScheme>().unwrap().to_string(), name);
        }
        assert!(matches!("uint9".parse::<ProbScheme>(), Err(ProbSchemeParseError::Bits(_))));
        assert!(matches!("adalog4-q0".parse::<ProbScheme>(), Err(ProbSchemeParseError::Q(_))));
        assert!(matches!("adalog4".parse::<ProbScheme>(), Err(ProbSchemeParseError::Unknown(_))));
        assert!(matches!("log2".parse::<ProbScheme>(), Err(ProbSchemeParseError::Unknown(_))));
    }

    /// docs/quantizers.md §6: 4-bit, q = 37 gives the powers 2^−k; q = 18 the listed levels.
    #[test]
    fn adalog_tables_match_the_known_answers() {
        let log2: Vec<f32> = (0..16).map(|k| (-(k as f32)).exp2()).collect();
        assert_eq!(adalog_table(4, 37), log2);
        let expected = [
            1.0, 0.7, 0.5, 0.36667, 0.26667, 0.18333, 0.13333, 0.09583, 0.06667, 0.04792, 0.03333, 0.025, 0.01771,
            0.0125, 0.00885, 0.00625,
        ];
        for (k, (&got, &want)) in adalog_table(4, 18).iter().zip(&expected).enumerate() {
            assert!((got - want).abs() < 6e-6, "k = {k}: {got} vs {want}");
        }
    }

    #[test]
    fn adalog_rounds_in_the_log_domain_and_flushes_below_the_last_level() {
        let quantizer = ProbQuantizer::new("adalog4-q37".parse().unwrap(), 2).unwrap();
        let mut row = [1.0, 0.3, 0.24, 1e-6, 0.0];
        quantizer.quantize_row(1, &mut row);
        // −log2(0.3) = 1.74 → 2; −log2(0.24) = 2.06 → 2; 1e-6 → k = 20 ≥ 16 → 0.
        assert_eq!(row, [1.0, 0.25, 0.25, 0.0, 0.0]);
        assert!(ProbQuantizer::new("adalog4-search".parse().unwrap(), 2).is_err());
    }

    #[test]
    fn uniform_and_sab_follow_their_formulas() {
        let uniform = ProbQuantizer::new(ProbScheme::Uniform { bits: 2 }, 1).unwrap();
        let mut row = [0.1, 0.2, 0.5, 0.9];
        uniform.quantize_row(0, &mut row);
        assert_eq!(row, [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        let sab = ProbQuantizer::new(ProbScheme::Sab, 1).unwrap();
        let mut row = [0.6, 0.15, 0.14, 0.11];
        sab.quantize_row(0, &mut row);
        assert_eq!(row, [1.0, 1.0, 0.0, 0.0]);
    }

    /// The search finds the q that a brute-force look at the error picks, and that q beats log2.
    #[test]
    fn the_search_minimizes_the_output_error() {
        let (heads, n, hd) = (2, 6, 4);
        let mut probs = vec![0.0f32; heads * n * n];
        for h in 0..heads {
            for i in 0..n {
                let logits: Vec<f32> = (0..=i).map(|j| ((h * 31 + i * 7 + j * 13) % 17) as f32 / 4.0).collect();
                let sum: f32 = logits.iter().map(|l| l.exp()).sum();
                for j in 0..=i {
                    probs[(h * n + i) * n + j] = logits[j].exp() / sum;
                }
            }
        }
        let values: Vec<f32> = (0..n * hd).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let sample = AttentionSample { probs: &probs, values: &values, heads, kv_heads: 1, head_dim: hd, tokens: n };
        let best = search_adalog_q(3, &[vec![sample]])[0];
        let sample = AttentionSample { probs: &probs, values: &values, heads, kv_heads: 1, head_dim: hd, tokens: n };
        let errors: Vec<f64> = ADALOG_SEARCH.map(|q| adalog_output_error(&sample, 3, q)).collect();
        let min = errors.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(adalog_output_error(&sample, 3, best), min);
        assert!(min <= adalog_output_error(&sample, 3, 37));
    }
}
