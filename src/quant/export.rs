//! Writing a quantized model as a GGUF file that llama.cpp can read: the source file's metadata,
//! and every tensor either as loaded or re-quantized by the recipe into a GGUF type. Only schemes
//! that are GGUF types (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q6_k) can be written;
//! any other scheme is refused with the tensor that asked for it, since llama.cpp could not read
//! the result.

use crate::error::QuantError;
use crate::formats::gguf::{write_gguf, GgufFile};
use crate::model::{Model, Progress};
use crate::quant::apply::quantize_model;
use crate::quant::recipe::Assignment;
use crate::quant::Recipe;

pub fn export_gguf(model: &Model, recipe: &Recipe, progress: &mut dyn FnMut(Progress)) -> Result<Vec<u8>, QuantError> {
    let bad = |message: String| QuantError::BadRecipe { file: model.source.clone(), message };
    let source = GgufFile::parse(&model.weights.bytes, &model.source)
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
    let tensors: Vec<_> =
        w.tensors().iter().map(|t| (t.name.clone(), t.dims.clone(), t.dtype, w.data(t).to_vec())).collect();
    Ok(write_gguf(&source.metadata, &tensors, source.alignment))
}
