//! A runnable model: architecture config, named weight tensors, tokenizer, and the CPU reference
//! forward that every GPU kernel is checked against.

pub mod bytes;
pub mod chat;
pub mod config;
pub mod fused;
pub mod generate;
pub mod intervene;
pub mod load;
pub mod massive;
pub mod reference;
pub mod sampling;
pub mod stats;
pub mod weights;
pub mod window;

pub use bytes::ModelBytes;
pub use config::{LlamaConfig, RopeLayout};
pub use load::{Model, ModelSummary, Prediction, Progress, TensorSummary, TopToken};
pub use weights::{WeightTensor, Weights};
