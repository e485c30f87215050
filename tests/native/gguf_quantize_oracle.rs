//! Our GGUF quantizers (`quantscope::quant::gguf_blocks`) byte for byte against references.
//!
//! * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: against gguf-py (`gguf.quants.quantize`, gguf 0.19, whose numpy
//!   code is a bit-exact port of llama.cpp's `quantize_row_*_ref`).
//! * Q4_K, Q6_K: gguf-py 0.19 cannot quantize them (NotImplementedError), so against
//!   `tests/oracle/kquants_ref.py`, an independent plain-Python mirror of llama.cpp's reference
//!   K-quant code in numpy float32 scalars; and gguf-py must *decode* our bytes to values close to
//!   the input (and bit-identical to our own decoder).
//!
//! Inputs are awkward on purpose (a deterministic xorshift, so failures reproduce): all-zero rows,
//! a huge outlier, an f16-overflowing outlier, negative-dominant and all-positive rows, values whose
//! scales are f16 subnormals, exact rounding ties, and rows made of constant, zero and tiny
//! sub-blocks (the degenerate branches of the K-quant searches). Plus the "done means":
//! `blk.0.ffn_down.weight` of the default model (576 × 1536), dequantized as loaded, quantized to
//! Q4_0, Q8_0 and Q4_1.
//!
//! Python is `$QUANTSCOPE_PYTHON` or `.venv/bin/python` (scripts/setup); without it, or without
//! the default model, the tests FAIL, never skip. Tolerance for the bytes: none, all must be equal.
use crate::common;

use std::path::Path;

use quantscope::formats::ggml::{self, GgmlType};
use quantscope::quant::gguf_blocks;

/// The types we quantize, and which of them gguf-py itself must have checked.
const TYPES: [GgmlType; 7] =
    [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q6_K];
const GGUF_PY_TYPES: [GgmlType; 5] = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1];
const K_TYPES: [GgmlType; 2] = [GgmlType::Q4_K, GgmlType::Q6_K];

/// xorshift64*: a fixed-seed generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A row of N(0, sigma²) values.
    fn gaussians(&mut self, sigma: f64) -> Vec<f32> {
        (0..COLS).map(|_| (sigma * self.gaussian()) as f32).collect()
    }
}

/// One row of the awkward test tensor: a name for messages, and whether its scales are well
/// inside the f16 range (rows whose scales are f16 subnormals or overflow have no meaningful
/// error bound; they are only compared byte for byte).
struct Row {
    name: &'static str,
    well_scaled: bool,
    values: Vec<f32>,
}

const COLS: usize = 1024;

#[rustfmt::skip]
const LAST_CANDIDATE_WINS: [f32; 96] = [
    1.1835102, 0.40642533, 0.98941535, 1.9855953, 0.6925096, 0.94289666, 0.59599787, 0.6067696, 1.345754,
    0.88012314, 1.7926003, 0.90209085, 2.3771393, 0.64213717, 1.689543, 1.0163982, 0.71936685, 0.57499576,
    0.16826364, 0.19864774, 1.0026387, 0.65097785, 1.4357296, 0.9074163, 0.2516702, 0.53413904, 0.24972402,
    1.7854218, 0.1816206, 0.3569199, 0.16350079, 1.7605858,
    0.29957753, 1.2009646, 0.21171412, 1.0541078, 0.6247458, 1.0554569, 1.0625714, 1.0028919, 0.5501404,
    0.9928955, 0.68419486, 0.13461281, 1.5810626, 1.1120577, 1.378848, 0.9914952, 0.24114154, 0.47167343,
    1.3584411, 0.9199688, 0.34784207, 0.6835958, 1.5222722, 1.0420192, 2.8477929, 0.15094867, 1.927147,
    1.9469204, 0.28443024, 0.22089055, 0.88218987, 0.8442589,
    0.49744436, 1.4130051, 1.4488561, 1.3321415, 1.5500859, 0.6247245, 0.7168688, 1.0851902, 1.6128873,
    0.5161989, 0.27825478, 1.5652409, 0.77450037, 0.3941446, 0.8431707, 0.37401667, 0.5488655, 0.4210504,
    0.49253693, 1.3263595, 0.59103465, 2.5294461, 0.36572164, 0.8955486, 1.211005, 0.8996624, 0.57731134,
    0.34742984, 3.6837616, 0.93320316, 1.2771645, 1.3844136,
];

fn awkward_rows() -> Vec<Row> {
    let mut rng = Rng(0x005E_ED0F_0A7A);
    let normal = rng.gaussians(0.02);
    let mut outlier = rng.gaussians(0.02);
    outlier[100] = 3.0e4;
    let mut overflow = rng.gaussians(1.0);
    // Q8_0's d = 1e7 / 127, Q4_0's d = 1e7 / 8 and Q4_K's dmin = 1e7 / 63 overflow f16 to inf.
    overflow[300] = -1.0e7;
    let negative: Vec<f32> =
        rng.gaussians(0.5).iter().enumerate().map(|(i, v)| if i % 37 == 5 { 0.1 } else { -v.abs() - 0.05 }).collect();
    let positive: Vec<f32> = rng.gaussians(0.1).iter().map(|v| 1.0 + v.abs()).collect();
    // Scales of ~1e-6 and below: f16 subnormals (smallest 2^-24 ≈ 6e-8) in every type.
    let tiny = rng.gaussians(2.0e-5);
    // Exact ties for the legacy roundings. Multiples of 1/32 in [-0.5, 0.4375] with both ends in
    // every block: Q4_0's d is exactly 1/16 and Q4_1's d exactly 1/16 from the minimum, so x / d
    // hits every half-integer. Multiples of 1/128 with 127/64 in every block: Q8_0's d is 1/64.
    let ties_4bit: Vec<f32> = rng
        .gaussians(1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 32 {
            3 => -0.5,
            20 => 0.4375,
            _ => (v * 6.0).round().clamp(-16.0, 14.0) / 32.0,
        })
        .collect();
    let ties_8bit: Vec<f32> = rng
        .gaussians(1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 32 == 9 { 127.0 / 64.0 } else { (v * 60.0).round().clamp(-254.0, 254.0) / 128.0 })
        .collect();
    // Sub-blocks of 16 cycling through: zeros, tiny next to large, constant ±0.7, normal data.
    let big = rng.gaussians(1.0);
    let structured: Vec<f32> = (0..COLS)
        .map(|i| match (i / 16) % 6 {
            0 => 0.0,
            1 => big[i] * 1e-6,
            2 => 0.7,
            3 => -0.7,
            4 => big[i] * 3.0,
            _ => big[i],
        })
        .collect();
    let mut rows = vec![
        Row { name: "gaussian", well_scaled: true, values: normal },
        Row { name: "zeros", well_scaled: true, values: vec![0.0; COLS] },
        Row { name: "outlier 3e4", well_scaled: true, values: outlier },
        Row { name: "outlier -1e7 (f16 overflow)", well_scaled: false, values: overflow },
        Row { name: "negative-dominant", well_scaled: true, values: negative },
        Row { name: "all positive", well_scaled: true, values: positive },
        Row { name: "tiny (f16 subnormal scales)", well_scaled: false, values: tiny },
        Row { name: "ties for Q4_0 and Q4_1", well_scaled: true, values: ties_4bit },
        Row { name: "ties for Q8_0", well_scaled: true, values: ties_8bit },
        Row { name: "zero/tiny/constant sub-blocks", well_scaled: true, values: structured },
    ];
    // Bulk: heavy-tailed rows (a Gaussian over the square root of a uniform, so |x| has no
    // bounded variance), rows with sparse spikes, uniform rows, and positive half-normal rows (the
    // ones where Q4_K's scan most often picks its last, densest candidate), so that the K-quant
    // searches pick every candidate of their scans somewhere.
    // Sub-blocks on which Q4_K's scan picks its last candidate (`is` = 20, about 1 in 800
    // sub-blocks of such data), found by a random search; the rest of the row is similar data.
    let mut last_candidate: Vec<f32> = (0..COLS).map(|_| (rng.gaussian().abs() + 0.3 * rng.uniform()) as f32).collect();
    last_candidate[..96].copy_from_slice(&LAST_CANDIDATE_WINS);
    rows.push(Row { name: "Q4_K last-candidate sub-blocks", well_scaled: true, values: last_candidate });
    const BULK: [&str; 4] = ["heavy-tailed", "sparse spikes", "uniform", "positive half-normal"];
    for k in 0..16 {
        let values: Vec<f32> = (0..COLS)
            .map(|_| match k % 4 {
                0 => (0.01 * rng.gaussian() / rng.uniform().sqrt()) as f32,
                1 => (0.01 * rng.gaussian() * if rng.uniform() < 0.02 { 40.0 } else { 1.0 }) as f32,
                2 => (0.05 * (2.0 * rng.uniform() - 1.0)) as f32,
                _ => (0.02 * (rng.gaussian().abs() + 0.3 * rng.uniform())) as f32,
            })
            .collect();
        rows.push(Row { name: BULK[k % 4], well_scaled: true, values });
    }
    rows
}

/// Writes `data` as raw f32 into `dir` and runs the quantize oracle for `types`; returns, per
/// type, the oracles that produced bytes and their bytes.
fn oracle_quantize(
    dir: &Path,
    rows: usize,
    cols: usize,
    data: &[f32],
    types: &[GgmlType],
) -> Vec<(GgmlType, String, Vec<u8>)> {
    let input = dir.join("input.f32");
    std::fs::write(&input, data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let (rows, cols) = (rows.to_string(), cols.to_string());
    let mut args = vec!["quantize", input.to_str().unwrap(), &rows, &cols, dir.to_str().unwrap()];
    args.extend(types.iter().map(|t| t.name()));
    let listing = common::run_oracle("gguf_quantize.py", &args, "");
    listing
        .lines()
        .map(|line| {
            let (name, oracle) = line.split_once('\t').unwrap_or_else(|| panic!("bad oracle line {line:?}"));
            let ty = *types.iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("oracle wrote type {name}"));
            let bytes = std::fs::read(dir.join(format!("{name}.{oracle}.bin"))).unwrap();
            (ty, oracle.to_string(), bytes)
        })
        .collect()
}

/// None if equal; else which blocks differ, with the first differing block of both in hex.
fn byte_mismatch(
    ty: GgmlType,
    ours: &[u8],
    theirs: &[u8],
    row_names: &[&str],
    blocks_per_row: usize,
) -> Option<String> {
    if ours.len() != theirs.len() {
        return Some(format!("{ty}: we write {} bytes, the oracle {}", ours.len(), theirs.len()));
    }
    let size = ty.type_size();
    let differing: Vec<usize> = (0..ours.len() / size)
        .filter(|&b| ours[b * size..(b + 1) * size] != theirs[b * size..(b + 1) * size])
        .collect();
    let &first = differing.first()?;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let row = first / blocks_per_row;
    Some(format!(
        "{ty}: {} of {} blocks differ; first: block {first} (row {row} \"{}\", block {} of the row)\n  ours   {}\n  oracle {}",
        differing.len(),
        ours.len() / size,
        row_names.get(row).unwrap_or(&"?"),
        first % blocks_per_row,
        hex(&ours[first * size..(first + 1) * size]),
        hex(&theirs[first * size..(first + 1) * size]),
    ))
}

#[test]
fn awkward_tensors_match_gguf_py_and_the_k_quant_mirror() {
    let rows = awkward_rows();
    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    let data: Vec<f32> = rows.iter().flat_map(|r| r.values.iter().copied()).collect();
    let dir = common::scratch("gguf_quantize/awkward");
    let references = oracle_quantize(&dir, rows.len(), COLS, &data, &TYPES);

    let mut problems = Vec::new();
    for (ty, oracle, theirs) in &references {
        let ours = gguf_blocks::quantize(*ty, &data).unwrap();
        if let Some(problem) = byte_mismatch(*ty, &ours, theirs, &names, COLS / ty.block_size()) {
            problems.push(format!("vs {oracle}: {problem}"));
        }
    }
    assert!(problems.is_empty(), "{} comparisons differ:\n{}", problems.len(), problems.join("\n"));

    // The comparisons above covered what they claim: gguf-py for the legacy types, the mirror for
    // the K-quants.
    let checked = |ty: GgmlType, oracle: &str| references.iter().any(|(t, o, _)| *t == ty && o == oracle);
    for ty in GGUF_PY_TYPES {
        assert!(checked(ty, "gguf-py"), "{ty} was not checked against gguf-py");
    }
    for ty in K_TYPES {
        assert!(checked(ty, "mirror"), "{ty} was not checked against the mirror");
    }
}

/// gguf-py decodes our K-quant bytes (exactly as we do) to values close to the input: relative L2
/// error per row under 0.13 for Q4_K and 0.045 for Q6_K on the well-scaled rows, exact zeros for
/// the zero row. (Gaussian rows give about 0.074 and 0.018, heavy-tailed and spiky ones up to 0.10
/// and 0.034; a packing or layout bug gives errors of order 1.)
#[test]
fn gguf_py_decodes_our_k_quants_close_to_the_input() {
    let rows = awkward_rows();
    let data: Vec<f32> = rows.iter().flat_map(|r| r.values.iter().copied()).collect();
    let dir = common::scratch("gguf_quantize/decode");
    let mut problems = Vec::new();
    for (ty, bound) in [(GgmlType::Q4_K, 0.13), (GgmlType::Q6_K, 0.045)] {
        let bytes = gguf_blocks::quantize(ty, &data).unwrap();
        let (input, output) = (dir.join(format!("{}.bin", ty.name())), dir.join(format!("{}.f32", ty.name())));
        std::fs::write(&input, &bytes).unwrap();
        let n = data.len().to_string();
        common::run_oracle(
            "gguf_quantize.py",
            &["dequantize", ty.name(), input.to_str().unwrap(), &n, output.to_str().unwrap()],
            "",
        );
        let decoded: Vec<f32> = std::fs::read(&output)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let ours = ggml::dequantize(ty, &bytes, data.len(), "test", ty.name()).unwrap();
        let same_bits =
            decoded.len() == ours.len() && decoded.iter().zip(&ours).all(|(a, b)| a.to_bits() == b.to_bits());
        if !same_bits {
            problems.push(format!("{ty}: gguf-py and our decoder disagree on our bytes"));
        }
        for (row, (values, decoded)) in rows.iter().zip(decoded.chunks_exact(COLS)).enumerate() {
            if row == 1 {
                if decoded.iter().any(|&v| v != 0.0) {
                    problems.push(format!("{ty}: the zero row decodes to nonzero values"));
                }
                continue;
            }
            let input: Vec<f64> = values.values.iter().map(|&v| v as f64).collect();
            let error = common::relative_l2(decoded, &input);
            if values.well_scaled && (error.is_nan() || error >= bound) {
                problems.push(format!("{ty}: row {row} ({}): relative L2 error {error:.4} >= {bound}", values.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `blk.0.ffn_down.weight` of the default model (576 × 1536), dequantized as the model is loaded.
fn default_model_ffn_down() -> (usize, usize, Vec<f32>) {
    let model = common::default_model();
    let tensor = model.weights.get("blk.0.ffn_down.weight").expect("blk.0.ffn_down.weight in the default model");
    let (rows, cols) = (tensor.n_rows(), tensor.row_len());
    assert_eq!((rows, cols), (576, 1536));
    (rows, cols, model.weights.dequantize(tensor).unwrap())
}

/// Compares our bytes for each of `types` with those of `oracle`; returns the problems.
fn compare_with(
    oracle: &str,
    references: &[(GgmlType, String, Vec<u8>)],
    types: &[GgmlType],
    data: &[f32],
    rows: usize,
    cols: usize,
) -> Vec<String> {
    let row_names = vec!["blk.0.ffn_down.weight"; rows];
    let mut problems = Vec::new();
    for &ty in types {
        let Some((_, _, theirs)) = references.iter().find(|(t, o, _)| *t == ty && o == oracle) else {
            problems.push(format!("{oracle} did not quantize {ty}"));
            continue;
        };
        let ours = gguf_blocks::quantize(ty, data).unwrap();
        problems.extend(byte_mismatch(ty, &ours, theirs, &row_names, cols / ty.block_size()));
    }
    problems
}

/// The "done means": the default model's `blk.0.ffn_down.weight`, quantized to Q4_0, Q8_0
/// and Q4_1 (and Q5_0, Q5_1), gives gguf-py's bytes exactly.
#[test]
fn default_model_ffn_down_matches_gguf_py() {
    let (rows, cols, data) = default_model_ffn_down();
    let dir = common::scratch("gguf_quantize/ffn_down");
    let types = [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1];
    let references = oracle_quantize(&dir, rows, cols, &data, &types);
    let problems = compare_with("gguf-py", &references, &types, &data, rows, cols);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Real weights through the K-quants: the first 16 rows of the same tensor (96 super-blocks; the
/// Python mirror is too slow for all 576) against the mirror.
#[test]
fn default_model_ffn_down_k_quants_match_the_mirror() {
    let (_, cols, data) = default_model_ffn_down();
    let rows = 16;
    let data = &data[..rows * cols];
    let dir = common::scratch("gguf_quantize/ffn_down_k");
    let references = oracle_quantize(&dir, rows, cols, data, &K_TYPES);
    let problems = compare_with("mirror", &references, &K_TYPES, data, rows, cols);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
