// Gemma 2's soft-capping, cap·tanh(x/cap), of attention scores (attention.wgsl,
// attention_split.wgsl) and of logits (elementwise.wgsl); the CPU reference's is
// model::config::soft_cap. tanh's argument is clamped to ±15, where tanh is ±1 in f32 already, so
// a tanh built from exponentials (WGSL allows it) cannot overflow to inf / inf.
fn soft_cap(x: f32, cap: f32) -> f32 {
    return cap * tanh(clamp(x / cap, -15.0, 15.0));
}
