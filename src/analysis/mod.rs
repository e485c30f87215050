//! Measurements on top of the forward: how far a quantized model's outputs are from the model as
//! loaded (`metrics`, `eval`), where the activation, weight and attention outliers sit
//! (`outliers`), and what a weight view shows of a quantized tensor (`weight_grid`). What runs the forward (windows,
//! interventions, the massive rule) sits below, in `model`, so `quant` and `gpu` can use it.

pub mod eval;
pub mod metrics;
pub mod outliers;
pub mod weight_grid;
