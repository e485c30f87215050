//! Writing a quantized model as a GGUF file that llama.cpp can read: the source file's metadata,
//! and every tensor either as loaded or re-quantized by the recipe into a GGUF type. Only schemes
//! that are GGUF types (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q6_k) can be written;
//! any other scheme is refused with the tensor that asked for it, since llama.cpp could not read
//! the result.

use crate::error::QuantError;
use crate::formats::ggml::GgmlType;
use crate::formats::gguf::write_gguf;
use crate::model::fused::{fusions, Fusion};
use crate::model::load::parse_gguf_head;
use crate::model::{Model, Progress};
use crate::quant::apply::quantize_model;
use crate::quant::recipe::Assignment;
use crate::quant::Recipe;

pub fn export_gguf(model: &Model, recipe: &Recipe, progress: &mut dyn FnMut(Progress)) -> Result<Vec<u8>, QuantError> {
    let bad = |message: String| QuantError::BadRecipe { file: model.source.clone(), message };
    let file = model.weights.file().ok_or_else(|| bad("the model has no weights file".into()))?;
    let source = parse_gguf_head(file, &model.source)
        .map_err(|e| bad(format!("export needs a model loaded from a GGUF file (its metadata is copied): {e}")))?;
    for t in model.weights.tensors() {
        if let Assignment::Quantize(scheme) = recipe.assignment(&t.name, t.dims.len()) {
            if scheme.ggml_type().is_none() {
                return Err(bad(format!(
                    "tensor {:?} would be {scheme}, which has no GGUF type; exportable schemes: f32, f16, bf16, \
                     q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q6_k",
                    t.name
                )));
            }
        }
    }
    let quantized = quantize_model(model, recipe, progress)?;
    let w = &quantized.model.weights;
    let mut tensors = Vec::with_capacity(w.tensors().len());
    for t in w.tensors() {
        tensors.push((t.name.clone(), t.dims.clone(), t.dtype, w.data(t)?.into_owned()));
    }
    for fusion in fusions(&model.config) {
        join_parts(&mut tensors, &fusion).map_err(bad)?;
    }
    Ok(write_gguf(&source.metadata, &tensors, source.alignment))
}

type Tensor = (String, Vec<u64>, GgmlType, Vec<u8>);

/// Joins the parts of a fused tensor (split at load) back into it, where its first part was, so
/// the file has the layout its architecture's readers expect. The parts must share one type.
fn join_parts(tensors: &mut Vec<Tensor>, fusion: &Fusion) -> Result<(), String> {
    let position = |name: &str| tensors.iter().position(|t| t.0 == name);
    let first = position(&fusion.parts[0].0).ok_or_else(|| format!("tensor {:?} is missing", fusion.parts[0].0))?;
    let (cols, dtype) = (tensors[first].1[0], tensors[first].2);
    let mut bytes = Vec::new();
    let mut rows = 0;
    for (name, _) in &fusion.parts {
        let i = position(name).ok_or_else(|| format!("tensor {name:?} is missing"))?;
        if tensors[i].2 != dtype {
            let parts: Vec<&str> = fusion.parts.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "{:?} is stored as one tensor of {}, so they need one scheme; the recipe gives {:?} {} and {name:?} {}",
                fusion.fused,
                parts.join(", "),
                fusion.parts[0].0,
                dtype.name().to_lowercase(),
                tensors[i].2.name().to_lowercase()
            ));
        }
        bytes.extend_from_slice(&tensors[i].3);
        // A vector's (a fused bias's) parts are element ranges.
        rows += tensors[i].1.get(1).unwrap_or(&tensors[i].1[0]);
    }
    let dims = if tensors[first].1.len() == 1 { vec![rows] } else { vec![cols, rows] };
    let fused = (fusion.fused.clone(), dims, dtype, bytes);
    tensors.retain(|t| !fusion.parts.iter().any(|(name, _)| *name == t.0));
    tensors.insert(first.min(tensors.len()), fused);
    Ok(())
}
