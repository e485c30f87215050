//! Measurements on top of the forward: how far a quantized model's outputs are from the model as
//! loaded (`metrics`, `eval`).

pub mod eval;
pub mod metrics;
pub mod outliers;
