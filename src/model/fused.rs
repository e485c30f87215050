//! Fused projections. Phi-3 stores each block's query, key and value projections as one matrix
//! (`attn_qkv`, HF `qkv_proj`) and its gate and up projections as one (`ffn_up` with 2·d_ff rows,
//! HF `gate_up_proj`, the gate first). Their parts are row ranges of the fused matrix, and a row
//! is whole GGUF blocks, so each part is a view into the same bytes: the loader replaces a fused
//! tensor by its parts and everything downstream (the CPU reference, the GPU upload, the
//! quantizers, the probes, the page) sees the llama layout. The GGUF export joins them again.
//! GPT-2 fuses q|k|v the same way (`attn_qkv`, HF `c_attn`), and their biases too: a fused
//! bias (one dimension) is split into element ranges.

use crate::error::ModelError;
use crate::model::config::LlamaConfig;
use crate::model::weights::WeightTensor;

/// One fused tensor of one block: its name, and its parts in row order with their row counts.
pub struct Fusion {
    pub fused: String,
    pub parts: Vec<(String, usize)>,
}

/// The fused tensors `config`'s architecture stores, block by block (none for the llama layout).
pub fn fusions(config: &LlamaConfig) -> Vec<Fusion> {
    let (q, kv, ff) = (config.q_dim(), config.kv_dim(), config.d_ff);
    if config.architecture == "gpt2" {
        return (0..config.n_layers)
            .flat_map(|l| {
                ["weight", "bias"].map(|kind| {
                    let name = |s: &str| format!("blk.{l}.{s}.{kind}");
                    Fusion {
                        fused: name("attn_qkv"),
                        parts: vec![(name("attn_q"), q), (name("attn_k"), kv), (name("attn_v"), kv)],
                    }
                })
            })
            .collect();
    }
    if config.architecture != "phi3" {
        return Vec::new();
    }
    (0..config.n_layers)
        .flat_map(|l| {
            let name = |s: &str| format!("blk.{l}.{s}.weight");
            [
                Fusion {
                    fused: name("attn_qkv"),
                    parts: vec![(name("attn_q"), q), (name("attn_k"), kv), (name("attn_v"), kv)],
                },
                Fusion { fused: name("ffn_up"), parts: vec![(name("ffn_gate"), ff), (name("ffn_up"), ff)] },
            ]
        })
        .collect()
}

/// Replaces every fused tensor of `config`'s architecture by views of its parts, in place of the
/// fused one. A fused tensor that is missing or whose rows are not the parts' sum is an error
/// naming it; its row length is left to the shape check of the parts.
pub fn split_fused(
    config: &LlamaConfig,
    tensors: Vec<WeightTensor>,
    source: &str,
) -> Result<Vec<WeightTensor>, ModelError> {
    let fusions = fusions(config);
    if fusions.is_empty() {
        return Ok(tensors);
    }
    let mut out = Vec::with_capacity(tensors.len() + fusions.len() * 2);
    for t in tensors {
        let Some(fusion) = fusions.iter().find(|f| f.fused == t.name) else {
            out.push(t);
            continue;
        };
        let rows: usize = fusion.parts.iter().map(|(_, r)| r).sum();
        // A fused vector (a bias) is split into element ranges, which must be whole blocks.
        let vector = t.dims.len() == 1;
        let (expected, found_rows) = match vector {
            true => (vec![rows as u64], t.row_len()),
            false => (vec![t.row_len() as u64, rows as u64], t.n_rows()),
        };
        let whole_blocks = !vector || fusion.parts.iter().all(|(_, n)| n % t.dtype.block_size() == 0);
        if !(vector || t.dims.len() == 2) || found_rows != rows || !whole_blocks {
            return Err(ModelError::WrongShape {
                file: source.into(),
                tensor: t.name.clone(),
                found: t.dims.clone(),
                expected,
            });
        }
        // Whole rows (or, of a vector, whole blocks), so the byte counts are exact.
        let row_elements = if vector { 1 } else { t.row_len() };
        let bytes = |rows: usize| t.dtype.bytes_for((rows * row_elements) as u64).unwrap_or(0) as usize;
        let mut first_row = 0;
        for (name, n) in &fusion.parts {
            out.push(WeightTensor {
                name: name.clone(),
                dtype: t.dtype,
                dims: if vector { vec![*n as u64] } else { vec![t.dims[0], *n as u64] },
                start: t.start + bytes(first_row) as u64,
                len: bytes(*n),
            });
            first_row += n;
        }
    }
    // A file may also store the parts apart (llama.cpp reads Phi-3's q, k, v either way); the
    // shape check names any part still missing. With neither, the fused tensor is the one to name.
    if let Some(missing) = fusions.iter().find(|f| !out.iter().any(|t| t.name == f.parts[0].0)) {
        return Err(ModelError::MissingTensor { file: source.into(), tensor: missing.fused.clone() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ggml::GgmlType;

    fn phi3() -> LlamaConfig {
        let json = r#"{"architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
            "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 128, "vocab_size": 10, "rope_scaling": null}"#;
        LlamaConfig::from_hf_json(json.as_bytes(), "config.json").unwrap()
    }

    fn tensor(name: &str, dtype: GgmlType, cols: u64, rows: u64, start: u64) -> WeightTensor {
        let len = dtype.bytes_for(cols * rows).unwrap() as usize;
        WeightTensor { name: name.into(), dtype, dims: vec![cols, rows], start, len }
    }

    /// The parts are consecutive row ranges of the fused bytes, the gate before the up rows.
    #[test]
    fn parts_are_row_ranges_of_the_fused_bytes() {
        let c = phi3();
        assert_eq!((c.q_dim(), c.kv_dim(), c.d_ff), (64, 32, 96));
        let qkv = tensor("blk.0.attn_qkv.weight", GgmlType::Q8_0, 64, 128, 1000);
        let up = tensor("blk.0.ffn_up.weight", GgmlType::F32, 64, 192, 50_000);
        let row_q8: usize = 2 * 34;
        let out = split_fused(&c, vec![qkv, up], "m").unwrap();
        let at = |n: &str| out.iter().find(|t| t.name == n).unwrap();
        let ranges: Vec<(u64, usize, u64)> = ["attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"]
            .iter()
            .map(|s| at(&format!("blk.0.{s}.weight")))
            .map(|t| (t.start, t.len, t.dims[1]))
            .collect();
        assert_eq!(
            ranges,
            [
                (1000, 64 * row_q8, 64),
                (1000 + 64 * row_q8 as u64, 32 * row_q8, 32),
                (1000 + 96 * row_q8 as u64, 32 * row_q8, 32),
                (50_000, 96 * 256, 96),
                (50_000 + 96 * 256, 96 * 256, 96)
            ]
        );
        assert!(out.iter().all(|t| t.name != "blk.0.attn_qkv.weight"));
    }

    #[test]
    fn a_fused_tensor_of_the_wrong_height_or_missing_is_named() {
        let c = phi3();
        let up = tensor("blk.0.ffn_up.weight", GgmlType::F32, 64, 192, 0);
        let short = tensor("blk.0.attn_qkv.weight", GgmlType::F32, 64, 127, 0);
        let err = split_fused(&c, vec![short, up.clone()], "m").unwrap_err().to_string();
        assert!(err.contains("blk.0.attn_qkv.weight") && err.contains("128"), "{err}");
        let err = split_fused(&c, vec![up], "m").unwrap_err().to_string();
        assert!(err.contains("blk.0.attn_qkv.weight"), "{err}");
    }
}
