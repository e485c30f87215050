//! Measurements on top of the forward: how far a quantized model's outputs are from the model as
//! loaded (`metrics`, `eval`), where the activation, weight and attention outliers sit
//! (`outliers`), and what changes when they are removed (`intervene`).

pub mod eval;
pub mod intervene;
pub mod metrics;
pub mod outliers;
pub mod report;
