//! The native integration tests, one binary (one link of wgpu and tokenizers, one GPU device and
//! one default model for all of them): the Python oracles, the CLI, the GPU kernels and forward
//! on lavapipe. The browser suite is tests/web.rs.
#![cfg(not(target_arch = "wasm32"))]

mod common;
mod gpu_common;

mod activation_quant;
mod architecture_checks;
mod calibrated_methods;
mod chat_template;
mod cli;
mod cli_quant;
mod float_formats_oracle;
mod gemma2;
mod gemma3;
mod gemma3_tokenizer;
mod gguf_bad_input;
mod gguf_dequant_oracle;
mod gpt2;
mod gguf_quantize_oracle;
mod gpu_attention;
mod gpu_bcq;
mod gpu_codebook;
mod gpu_elementwise;
mod gpu_embedding;
mod gpu_forward;
mod gpu_interventions;
mod gpu_matmul;
mod gpu_matmul_stacked;
mod gpu_norm_rope;
mod gpu_probes;
mod gpu_quantized_forward;
mod gpu_requant;
mod gpu_runtime_quant;
mod gpu_split_weights;
mod gpu_topk;
mod interventions;
mod lazy_safetensors;
mod llama3_rope;
mod mapped_weights;
mod model_synthetic;
mod outliers;
mod phi3;
mod pinned_reference;
mod quant_eval;
mod qwen3;
mod reference_forward;
mod sensitivity;
mod smoothquant;
mod spm_tokenizer_oracle;
mod study;
mod study_export;
mod tokenizer_oracle;
