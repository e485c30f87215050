//! A weight quantization scheme as a small value object, and its name grammar. The same names are
//! used by the CLI (`--w int4-g128-asym`), the JS API and recipes; `Display` writes the canonical
//! name and `FromStr` reads it back (a round trip gives the same value).
//!
//! ```text
//! scheme      := base ["+hadamard" [N]]
//! base        := "f32" | "f16" | "bf16"
//!              | "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q4_k" | "q6_k"     GGUF blocks
//!              | "int" B [-gran] [-sym | -asym]          RTN, B = 2..8, default ch, sym
//!              | "nf4" [-g N] [-dq]                      NF4, block 64 by default, dq = double quant
//!              | "fp" B "-e" E "m" M [-gran]             small float, 1 + E + M = B, default ch
//!              | "mxfp4" | "mxfp6" [-e2m3|-e3m2] | "mxfp8" [-e4m3|-e5m2]    OCP MX, block 32, E8M0
//!              | "nvfp4" [-e4m3 | -ue5m3]                NVFP4, block 16, E4M3 (or UE5M3) block scale
//!              | "llmfp" B [-e E "m" M] [-search]        LLM-FP4 exponent bias per channel
//!              | "bcq" Q [-g N] [-r R]                   ShiftAddLLM BCQ, default g128, 10 rounds
//!              | "pbllm-" F                              PB-LLM, F = salient fraction in [0, 1]
//!              | "post" B [-base X]                      POST levels (√2)^-k, default base √2
//!              | "statsq" B                              OFQ StatsQ
//!              | "pot" B                                 powers of two
//!              | "split3-int" B                          SplitQuant: 3 k-means clusters, int B each
//! gran        := "t" (per tensor) | "ch" (per output channel) | "g" N (groups of N along the row)
//! ```

use std::fmt;
use std::str::FromStr;


use crate::error::QuantError;
use crate::formats::ggml::GgmlType;

/// Where one scale applies. Groups run along a row (the input dimension K); a row whose length is
/// not a multiple of the group size ends with a shorter group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Tensor,
    Channel,
    Group(usize),
}

/// A small floating-point element format: 1 sign bit, `exp_bits`, `man_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniFloat {
    pub exp_bits: u8,
    pub man_bits: u8,
}

impl MiniFloat {
    pub const E4M3: MiniFloat = MiniFloat { exp_bits: 4, man_bits: 3 };
    pub const E5M2: MiniFloat = MiniFloat { exp_bits: 5, man_bits: 2 };
    pub const E2M3: MiniFloat = MiniFloat { exp_bits: 2, man_bits: 3 };
    pub const E3M2: MiniFloat = MiniFloat { exp_bits: 3, man_bits: 2 };
    pub const E2M1: MiniFloat = MiniFloat { exp_bits: 2, man_bits: 1 };

    pub fn bits(self) -> u8 {
        1 + self.exp_bits + self.man_bits
    }
}

/// The format of an NVFP4-style block scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockScale {
    /// FP8 E4M3 used unsigned (NVIDIA's NVFP4).
    E4M3,
    /// Unsigned, 5 exponent bits (bias 15), 3 mantissa bits: the FP4-training paper's compromise.
    UE5M3,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SchemeKind {
    F32,
    F16,
    BF16,
    /// A GGUF block type, quantized bit-exactly like llama.cpp's reference quantizer.
    Gguf(GgmlType),
    Int {
        bits: u8,
        granularity: Granularity,
        symmetric: bool,
    },
    Nf4 {
        block: usize,
        double_quant: bool,
    },
    Fp {
        format: MiniFloat,
        granularity: Granularity,
    },
    Mx {
        format: MiniFloat,
    },
    NvFp4 {
        scale: BlockScale,
    },
    LlmFp {
        format: MiniFloat,
        search: bool,
    },
    Bcq {
        bits: u8,
        group: usize,
        rounds: u32,
    },
    PbLlm {
        salient_fraction: f32,
    },
    Post {
        bits: u8,
        base: f32,
    },
    StatsQ {
        bits: u8,
    },
    Pot {
        bits: u8,
    },
    Split {
        bits: u8,
    },
}

/// A scheme, optionally applied after a Walsh–Hadamard rotation of each row in blocks of
/// `hadamard` (0 = the largest power of two ≤ 128 that divides the row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheme {
    pub kind: SchemeKind,
    pub hadamard: Option<usize>,
}

pub const GGUF_TYPES: [GgmlType; 7] =
    [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q6_K];

pub const BCQ_DEFAULT_ROUNDS: u32 = 10;

impl Scheme {
    pub fn new(kind: SchemeKind) -> Scheme {
        Scheme { kind, hadamard: None }
    }

    /// One example of every family, in the order the CLI and the page list them.
    pub fn catalog() -> Vec<Scheme> {
        [
            "f16",
            "bf16",
            "q8_0",
            "q6_k",
            "q5_1",
            "q5_0",
            "q4_k",
            "q4_1",
            "q4_0",
            "int8-ch-sym",
            "int4-g128-asym",
            "int4-g32-sym",
            "int3-g64-asym",
            "int2-g32-asym",
            "nf4-g64",
            "nf4-g64-dq",
            "fp8-e4m3-ch",
            "fp8-e5m2-ch",
            "fp6-e2m3-g32",
            "fp6-e3m2-g32",
            "fp4-e2m1-g32",
            "mxfp8-e4m3",
            "mxfp6-e2m3",
            "mxfp4",
            "nvfp4",
            "nvfp4-ue5m3",
            "llmfp4-e2m1",
            "llmfp4-e2m1-search",
            "bcq3-g128-r10",
            "bcq2-g128-r10",
            "pbllm-0.1",
            "post4",
            "statsq2",
            "pot4",
            "split3-int2",
            "int4-g128-asym+hadamard",
        ]
        .iter()
        .map(|name| name.parse().expect("catalog names parse"))
        .collect()
    }

    /// Whether the result can be stored as this GGUF tensor type (for `quantscope export`).
    pub fn ggml_type(&self) -> Option<GgmlType> {
        if self.hadamard.is_some() {
            return None;
        }
        match self.kind {
            SchemeKind::F32 => Some(GgmlType::F32),
            SchemeKind::F16 => Some(GgmlType::F16),
            SchemeKind::BF16 => Some(GgmlType::BF16),
            SchemeKind::Gguf(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Granularity::Tensor => write!(f, "t"),
            Granularity::Channel => write!(f, "ch"),
            Granularity::Group(n) => write!(f, "g{n}"),
        }
    }
}

impl fmt::Display for MiniFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}m{}", self.exp_bits, self.man_bits)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SchemeKind::F32 => write!(f, "f32")?,
            SchemeKind::F16 => write!(f, "f16")?,
            SchemeKind::BF16 => write!(f, "bf16")?,
            SchemeKind::Gguf(t) => write!(f, "{}", t.name().to_ascii_lowercase())?,
            SchemeKind::Int { bits, granularity, symmetric } => {
                write!(f, "int{bits}-{granularity}-{}", if symmetric { "sym" } else { "asym" })?
            }
            SchemeKind::Nf4 { block, double_quant } => {
                write!(f, "nf4-g{block}{}", if double_quant { "-dq" } else { "" })?
            }
            SchemeKind::Fp { format, granularity } => write!(f, "fp{}-{format}-{granularity}", format.bits())?,
            SchemeKind::Mx { format } if format == MiniFloat::E2M1 => write!(f, "mxfp4")?,
            SchemeKind::Mx { format } => write!(f, "mxfp{}-{format}", format.bits())?,
            SchemeKind::NvFp4 { scale: BlockScale::E4M3 } => write!(f, "nvfp4")?,
            SchemeKind::NvFp4 { scale: BlockScale::UE5M3 } => write!(f, "nvfp4-ue5m3")?,
            SchemeKind::LlmFp { format, search } => {
                write!(f, "llmfp{}-{format}{}", format.bits(), if search { "-search" } else { "" })?
            }
            SchemeKind::Bcq { bits, group, rounds } => write!(f, "bcq{bits}-g{group}-r{rounds}")?,
            SchemeKind::PbLlm { salient_fraction } => write!(f, "pbllm-{salient_fraction}")?,
            SchemeKind::Post { bits, base } if base == std::f32::consts::SQRT_2 => write!(f, "post{bits}")?,
            SchemeKind::Post { bits, base } => write!(f, "post{bits}-base{base}")?,
            SchemeKind::StatsQ { bits } => write!(f, "statsq{bits}")?,
            SchemeKind::Pot { bits } => write!(f, "pot{bits}")?,
            SchemeKind::Split { bits } => write!(f, "split3-int{bits}")?,
        }
        match self.hadamard {
            None => Ok(()),
            Some(0) => write!(f, "+hadamard"),
            Some(n) => write!(f, "+hadamard{n}"),
        }
    }
}

/// Reads `name` as the word `family` followed by a decimal number (`int4` → 4).
fn number_after<T: FromStr>(word: &str, family: &str) -> Option<T> {
    word.strip_prefix(family).filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
}

fn parse_granularity(word: &str) -> Option<Granularity> {
    match word {
        "t" => Some(Granularity::Tensor),
        "ch" => Some(Granularity::Channel),
        _ => number_after::<usize>(word, "g").filter(|&n| n > 0).map(Granularity::Group),
    }
}

fn parse_minifloat(word: &str) -> Option<MiniFloat> {
    let rest = word.strip_prefix('e')?;
    let (e, m) = rest.split_once('m')?;
    let (exp_bits, man_bits) = (e.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
    (exp_bits >= 1 && exp_bits <= 5 && man_bits <= 6).then_some(MiniFloat { exp_bits, man_bits })
}

fn in_range(bits: u8, lo: u8, hi: u8, family: &str) -> Result<u8, String> {
    if (lo..=hi).contains(&bits) {
        Ok(bits)
    } else {
        Err(format!("{family} takes {lo} to {hi} bits, not {bits}"))
    }
}

impl FromStr for Scheme {
    type Err = QuantError;

    fn from_str(input: &str) -> Result<Scheme, QuantError> {
        parse(input).map_err(|message| QuantError::BadScheme { input: input.into(), message })
    }
}

fn parse(input: &str) -> Result<Scheme, String> {
    let lowered = input.trim().to_ascii_lowercase();
    let (base, hadamard) = match lowered.split_once('+') {
        None => (lowered.as_str(), None),
        Some((base, "hadamard")) => (base, Some(0)),
        Some((base, suffix)) => match number_after::<usize>(suffix, "hadamard") {
            Some(n) if n >= 2 && n.is_power_of_two() => (base, Some(n)),
            _ => return Err(format!("unknown suffix {suffix:?}: expected +hadamard or +hadamardN, N a power of two")),
        },
    };
    let words: Vec<&str> = base.split('-').collect();
    let (head, options) = (words[0], &words[1..]);
    let unexpected = |w: &str| format!("unexpected {w:?} after {head:?}");
    let kind = if let Some(t) = GGUF_TYPES.iter().copied().find(|t| t.name().eq_ignore_ascii_case(head)) {
        SchemeKind::Gguf(t)
    } else if options.is_empty() && ["f32", "f16", "bf16"].contains(&head) {
        match head {
            "f32" => SchemeKind::F32,
            "f16" => SchemeKind::F16,
            _ => SchemeKind::BF16,
        }
    } else if let Some(bits) = number_after::<u8>(head, "int") {
        let bits = in_range(bits, 2, 8, "int")?;
        let (mut granularity, mut symmetric) = (Granularity::Channel, true);
        for &w in options {
            match w {
                "sym" => symmetric = true,
                "asym" => symmetric = false,
                _ => granularity = parse_granularity(w).ok_or_else(|| unexpected(w))?,
            }
        }
        SchemeKind::Int { bits, granularity, symmetric }
    } else if head == "nf4" {
        let (mut block, mut double_quant) = (64, false);
        for &w in options {
            match (w, parse_granularity(w)) {
                ("dq", _) => double_quant = true,
                (_, Some(Granularity::Group(n))) => block = n,
                _ => return Err(unexpected(w)),
            }
        }
        SchemeKind::Nf4 { block, double_quant }
    } else if let Some(bits) = number_after::<u8>(head, "fp") {
        let format = options.first().and_then(|w| parse_minifloat(w)).ok_or_else(|| {
            format!("{head} needs an element format like fp{bits}-e{}m{}", bits.saturating_sub(2).min(4), 1)
        })?;
        if format.bits() != bits {
            return Err(format!("{format} has {} bits, not {bits}", format.bits()));
        }
        let granularity = match options.get(1) {
            None => Granularity::Channel,
            Some(w) => parse_granularity(w).ok_or_else(|| unexpected(w))?,
        };
        if let Some(w) = options.get(2) {
            return Err(unexpected(w));
        }
        SchemeKind::Fp { format, granularity }
    } else if let Some(bits) = number_after::<u8>(head, "mxfp") {
        let default = match bits {
            4 => MiniFloat::E2M1,
            6 => MiniFloat::E2M3,
            8 => MiniFloat::E4M3,
            _ => return Err(format!("MX formats are mxfp4, mxfp6 and mxfp8, not {head}")),
        };
        let format = match options {
            [] => default,
            [w] => parse_minifloat(w).filter(|f| f.bits() == bits).ok_or_else(|| unexpected(w))?,
            [_, w, ..] => return Err(unexpected(w)),
        };
        let allowed = [MiniFloat::E2M1, MiniFloat::E2M3, MiniFloat::E3M2, MiniFloat::E4M3, MiniFloat::E5M2];
        if !allowed.contains(&format) {
            return Err(format!("{format} is not an MX element format (e2m1, e2m3, e3m2, e4m3, e5m2)"));
        }
        SchemeKind::Mx { format }
    } else if head == "nvfp4" {
        let scale = match options {
            [] | ["e4m3"] => BlockScale::E4M3,
            ["ue5m3"] => BlockScale::UE5M3,
            [w, ..] => return Err(unexpected(w)),
        };
        SchemeKind::NvFp4 { scale }
    } else if let Some(bits) = number_after::<u8>(head, "llmfp") {
        let bits = in_range(bits, 3, 8, "llmfp")?;
        let mut format = None;
        let mut search = false;
        for &w in options {
            match w {
                "search" => search = true,
                _ => format = Some(parse_minifloat(w).ok_or_else(|| unexpected(w))?),
            }
        }
        let format = format.unwrap_or(match bits {
            4 => MiniFloat::E2M1,
            8 => MiniFloat::E4M3,
            b => MiniFloat { exp_bits: 2, man_bits: b - 3 },
        });
        if format.bits() != bits {
            return Err(format!("{format} has {} bits, not {bits}", format.bits()));
        }
        SchemeKind::LlmFp { format, search }
    } else if let Some(bits) = number_after::<u8>(head, "bcq") {
        let bits = in_range(bits, 1, 4, "bcq")?;
        let (mut group, mut rounds) = (128, BCQ_DEFAULT_ROUNDS);
        for &w in options {
            if let Some(r) = number_after::<u32>(w, "r") {
                rounds = r;
            } else if let Some(Granularity::Group(n)) = parse_granularity(w) {
                group = n;
            } else {
                return Err(unexpected(w));
            }
        }
        SchemeKind::Bcq { bits, group, rounds }
    } else if head == "pbllm" {
        let fraction = match options {
            [f] => f.parse::<f32>().map_err(|_| format!("pbllm needs a salient fraction like pbllm-0.1, not {f:?}"))?,
            _ => return Err("pbllm needs one salient fraction, like pbllm-0.1".into()),
        };
        if !(0.0..=1.0).contains(&fraction) {
            return Err(format!("the salient fraction {fraction} is not in [0, 1]"));
        }
        SchemeKind::PbLlm { salient_fraction: fraction }
    } else if let Some(bits) = number_after::<u8>(head, "post") {
        let bits = in_range(bits, 2, 8, "post")?;
        let base = match options {
            [] => std::f32::consts::SQRT_2,
            [w] => w
                .strip_prefix("base")
                .and_then(|b| b.parse::<f32>().ok())
                .filter(|b| *b > 1.0 && b.is_finite())
                .ok_or_else(|| format!("expected -baseX with X > 1, not {w:?}"))?,
            [_, w, ..] => return Err(unexpected(w)),
        };
        SchemeKind::Post { bits, base }
    } else if let Some(bits) = number_after::<u8>(head, "statsq").filter(|_| options.is_empty()) {
        SchemeKind::StatsQ { bits: in_range(bits, 1, 8, "statsq")? }
    } else if let Some(bits) = number_after::<u8>(head, "pot").filter(|_| options.is_empty()) {
        SchemeKind::Pot { bits: in_range(bits, 2, 8, "pot")? }
    } else if head == "split3" {
        match options {
            [w] => match number_after::<u8>(w, "int") {
                Some(bits) => SchemeKind::Split { bits: in_range(bits, 2, 8, "split3-int")? },
                None => return Err(format!("split3 needs an int width, like split3-int2, not {w:?}")),
            },
            _ => return Err("split3 needs an int width, like split3-int2".into()),
        }
    } else {
        return Err(format!(
            "unknown scheme {head:?}; known: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q6_k, intB[-t|-ch|-gN][-sym|-asym], \
             nf4[-gN][-dq], fpB-eEmM[-t|-ch|-gN], mxfp4, mxfp6[-e2m3|-e3m2], mxfp8[-e4m3|-e5m2], nvfp4[-ue5m3], \
             llmfpB[-eEmM][-search], bcqQ[-gN][-rR], pbllm-F, postB[-baseX], statsqB, potB, split3-intB, each with an optional +hadamard"
        ));
    };
    if let SchemeKind::Gguf(_) | SchemeKind::F32 | SchemeKind::F16 | SchemeKind::BF16 = kind {
        if !options.is_empty() {
            return Err(unexpected(options[0]));
        }
    }
    Ok(Scheme { kind, hadamard })
}

serde_by_name!(Scheme);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(s: &str) -> Scheme {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_name_of_the_issue_parses_and_round_trips_through_its_canonical_name() {
        for name in [
            "f16",
            "q4_0",
            "int4-g128-asym",
            "int8-ch",
            "nf4-g64",
            "mxfp4",
            "nvfp4",
            "fp4-e2m1-g32",
            "fp8-e4m3-ch",
            "bcq3-g128",
            "pbllm-0.1",
            "post4",
            "statsq2",
            "split3-int2",
            "int4-g128+hadamard",
            "Q4_K",
            "mxfp6",
            "mxfp8-e5m2",
            "nvfp4-ue5m3",
            "llmfp4",
            "llmfp4-e3m0-search",
            "post3-base2",
            "pot4",
            "nf4-dq",
            "int3-t-asym+hadamard64",
        ] {
            let scheme = parse_ok(name);
            let canonical = scheme.to_string();
            assert_eq!(parse_ok(&canonical), scheme, "{name} -> {canonical}");
        }
        for scheme in Scheme::catalog() {
            assert_eq!(parse_ok(&scheme.to_string()), scheme);
        }
    }

    #[test]
    fn names_mean_what_the_grammar_says() {
        assert_eq!(
            parse_ok("int4-g128-asym").kind,
            SchemeKind::Int { bits: 4, granularity: Granularity::Group(128), symmetric: false }
        );
        assert_eq!(
            parse_ok("int8-ch").kind,
            SchemeKind::Int { bits: 8, granularity: Granularity::Channel, symmetric: true }
        );
        assert_eq!(parse_ok("nf4").kind, SchemeKind::Nf4 { block: 64, double_quant: false });
        assert_eq!(parse_ok("mxfp6").kind, SchemeKind::Mx { format: MiniFloat::E2M3 });
        assert_eq!(parse_ok("bcq3-g128").kind, SchemeKind::Bcq { bits: 3, group: 128, rounds: BCQ_DEFAULT_ROUNDS });
        assert_eq!(parse_ok("q6_k").kind, SchemeKind::Gguf(GgmlType::Q6_K));
        assert_eq!(parse_ok("int4+hadamard").hadamard, Some(0));
        assert_eq!(parse_ok("q4_0").ggml_type(), Some(GgmlType::Q4_0));
        assert_eq!(parse_ok("nf4").ggml_type(), None);
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        for (name, expected) in [
            ("int9", "int takes 2 to 8 bits, not 9"),
            ("int4-g0", "unexpected \"g0\""),
            ("fp8-e2m1", "e2m1 has 4 bits, not 8"),
            ("fp8", "needs an element format"),
            ("mxfp5", "mxfp4, mxfp6 and mxfp8"),
            ("pbllm-2", "not in [0, 1]"),
            ("pbllm-x", "salient fraction"),
            ("q4_0-ch", "unexpected \"ch\""),
            ("int4+hadamard3", "power of two"),
            ("banana", "unknown scheme \"banana\""),
            ("post4-base0.5", "X > 1"),
        ] {
            let err = name.parse::<Scheme>().unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn serde_uses_the_canonical_name() {
        let scheme = parse_ok("int4-g128-asym");
        assert_eq!(serde_json::to_string(&scheme).unwrap(), "\"int4-g128-asym\"");
        let back: Scheme = serde_json::from_str("\"nf4\"").unwrap();
        assert_eq!(back.to_string(), "nf4-g64");
        assert!(serde_json::from_str::<Scheme>("\"int1\"").unwrap_err().to_string().contains("int takes 2 to 8"));
    }
}
