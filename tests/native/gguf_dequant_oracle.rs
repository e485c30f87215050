//! Dequantization bit-exact against gguf-py (the `gguf` PyPI package), and our GGUF parser
//! cross-checked against gguf-py's reader and writer.
//!
//! Both tests run Python scripts from `tests/oracle/`: Python is `$QUANTSCOPE_PYTHON` if set, else
//! `<repo>/.venv/bin/python` (made by `scripts/test`, with `gguf numpy tokenizers`). Without it,
//! or without the default model, the tests FAIL with a message saying so; they never skip.
//!
//! 1. `default_model_matches_gguf_py`: every tensor of `models/SmolLM2-135M-Instruct.Q4_1.gguf`
//!    (Q8_0, Q4_1, F32), dequantized by `gguf.quants.dequantize` into `target/oracle/model.f32`
//!    and by [`GgufFile::dequantize_tensor`], compared bit pattern by bit pattern.
//! 2. `random_blocks_of_every_type_match_gguf_py`: a GGUF written by gguf-py's `GGUFWriter`
//!    (`tests/oracle/make_random_blocks.py`) holding random blocks of all 11 types we dequantize,
//!    with random finite f16 scales, and raw F32/F16/BF16 tensors including NaN payloads and
//!    infinities; parsed by us, dequantized by both, compared bit for bit. Its metadata has one
//!    value of every GGUF type, checked literally.
//!
//! Tolerance: none. Every f32 must have the same bits (`to_bits`), NaNs included.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use quantscope::formats::ggml::GgmlType;
use quantscope::formats::gguf::{GgufFile, MetadataValue};

const MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let path = match std::env::var_os("QUANTSCOPE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => manifest_dir().join(".venv/bin/python"),
    };
    assert!(
        path.exists(),
        "Python for the gguf-py oracle not found at {}: run `scripts/test` (it creates .venv with \
         gguf, numpy and tokenizers) or set QUANTSCOPE_PYTHON to a python that has them",
        path.display()
    );
    path
}

fn oracle_dir() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest_dir().join("target"));
    let target = if target.is_absolute() { target } else { manifest_dir().join(target) };
    let dir = target.join("oracle");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn run_script(script: &str, args: &[&Path]) {
    let script_path = manifest_dir().join("tests/oracle").join(script);
    let out = Command::new(python())
        .arg(&script_path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script_path.display()));
    assert!(
        out.status.success(),
        "{} {:?} failed ({}):\n{}{}",
        script,
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One line of the oracle's `.index` file.
#[derive(Debug)]
struct OracleTensor {
    name: String,
    ty: String,
    dims: Vec<u64>,
    count: u64,
}

fn read_index(path: &Path) -> Vec<OracleTensor> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "bad index line {line:?}");
            OracleTensor {
                name: f[0].to_string(),
                ty: f[1].to_string(),
                dims: f[2].split(',').map(|d| d.parse().unwrap()).collect(),
                count: f[3].parse().unwrap(),
            }
        })
        .collect()
}

/// Dequantize every tensor of `gguf_path` with gguf-py (into `prefix.f32` / `prefix.index`) and
/// with us, and compare. Returns the parsed file and the problems found (empty = all equal).
fn compare_with_gguf_py(gguf_path: &Path, prefix: &Path) -> (GgufFile, Vec<String>) {
    run_script("gguf_dequant.py", &[gguf_path, prefix]);
    let bytes = std::fs::read(gguf_path).unwrap_or_else(|e| panic!("cannot read {}: {e}", gguf_path.display()));
    let file = GgufFile::parse(&bytes, &gguf_path.display().to_string())
        .unwrap_or_else(|e| panic!("our parser rejects a file gguf-py reads: {e}"));
    let index = read_index(&prefix.with_extension("index"));
    let values_path = prefix.with_extension("f32");
    let mut values = BufReader::new(
        File::open(&values_path).unwrap_or_else(|e| panic!("cannot open {}: {e}", values_path.display())),
    );

    let mut problems = Vec::new();
    let names: Vec<&str> = file.tensors.iter().map(|t| t.name.as_str()).collect();
    let oracle_names: Vec<&str> = index.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, oracle_names, "tensor lists differ between our parser and gguf-py's");

    for (info, oracle) in file.tensors.iter().zip(&index) {
        // The parser, cross-checked against gguf-py's reader.
        if info.dtype.name() != oracle.ty || info.dims != oracle.dims || info.n_elements != oracle.count {
            problems.push(format!(
                "tensor {}: we read {} {:?} ({} elements), gguf-py {} {:?} ({})",
                info.name, info.dtype, info.dims, info.n_elements, oracle.ty, oracle.dims, oracle.count
            ));
        }
        let mut raw = vec![0u8; oracle.count as usize * 4];
        values
            .read_exact(&mut raw)
            .unwrap_or_else(|e| panic!("{}: short oracle file at tensor {}: {e}", values_path.display(), info.name));
        let expected: Vec<u32> = raw.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();

        let ours = match file.dequantize_tensor(&bytes, info) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("tensor {}: we fail to dequantize: {e}", info.name));
                continue;
            }
        };
        if ours.len() != expected.len() {
            problems.push(format!("tensor {}: we give {} values, gguf-py {}", info.name, ours.len(), expected.len()));
            continue;
        }
        let mismatches: Vec<usize> = (0..ours.len()).filter(|&i| ours[i].to_bits() != expected[i]).collect();
        if let Some(&i) = mismatches.first() {
            let theirs = f32::from_bits(expected[i]);
            problems.push(format!(
                "tensor {} ({}): {} of {} values differ; first at index {i}: ours {:e} (0x{:08x}), \
                 gguf-py {:e} (0x{:08x})",
                info.name,
                info.dtype,
                mismatches.len(),
                ours.len(),
                ours[i],
                ours[i].to_bits(),
                theirs,
                expected[i]
            ));
        }
    }
    let mut rest = Vec::new();
    values.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{} has {} bytes more than the index says", values_path.display(), rest.len());
    (file, problems)
}

#[test]
fn default_model_matches_gguf_py() {
    let model = manifest_dir().join(MODEL);
    assert!(model.exists(), "{} is missing: run `scripts/test` (it fetches the default model) first", model.display());
    let (file, problems) = compare_with_gguf_py(&model, &oracle_dir().join("model"));
    assert!(problems.is_empty(), "{} tensors differ from gguf-py:\n{}", problems.len(), problems.join("\n"));
    // The comparison above must have covered real work: the model's 272 tensors, in 3 types.
    assert_eq!(file.tensors.len(), 272);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::F32] {
        assert!(file.tensors.iter().any(|t| t.dtype == ty), "no {ty} tensor in the model");
    }
}

#[test]
fn random_blocks_of_every_type_match_gguf_py() {
    let dir = oracle_dir();
    let gguf_path = dir.join("random_blocks.gguf");
    run_script("make_random_blocks.py", &[&gguf_path]);
    let (file, problems) = compare_with_gguf_py(&gguf_path, &dir.join("random_blocks"));
    assert!(problems.is_empty(), "{} tensors differ from gguf-py:\n{}", problems.len(), problems.join("\n"));

    // Every type we can dequantize was in the file (so was compared above).
    for ty in GgmlType::ALL.iter().filter(|t| t.can_dequantize()) {
        assert!(file.tensors.iter().any(|t| t.dtype == *ty), "no {ty} tensor in the random file");
    }
    assert_eq!(GgmlType::ALL.iter().filter(|t| t.can_dequantize()).count(), 11);

    // Metadata written by gguf-py, one value of every type (values from make_random_blocks.py).
    use MetadataValue::*;
    let expected = [
        ("test.u8", U8(250)),
        ("test.i8", I8(-7)),
        ("test.u16", U16(65000)),
        ("test.i16", I16(-32000)),
        ("test.u32", U32(4_000_000_000)),
        ("test.i32", I32(-2_000_000_000)),
        ("test.f32", F32(0.25)),
        ("test.bool", Bool(true)),
        ("test.string", String("qüantscope".into())),
        ("test.u64", U64(u64::MAX - 1)),
        ("test.i64", I64(-(1 << 62))),
        ("test.f64", F64(-1.0e300)),
        ("test.array.i16", Array(vec![I16(1), I16(-2), I16(3)])),
        ("test.array.string", Array(vec![String("a".into()), String("".into()), String("bc".into())])),
        ("general.architecture", String("quantscope-test".into())),
    ];
    for (key, value) in expected {
        assert_eq!(file.get(key), Some(&value), "metadata {key}");
    }
    assert_eq!(file.version, 3);
    assert_eq!(file.alignment, 32);
}
