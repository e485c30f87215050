//! Measurements on top of the forward: how far a quantized model's outputs are from the model as
//! loaded (`metrics`, `eval`), and where the activation, weight and attention outliers sit
//! (`outliers`).

pub mod eval;
pub mod metrics;
pub mod outliers;
