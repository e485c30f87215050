// sin and cos of 2π·t for a turn fraction t in [-0.5, 0.5], to ~1e-7 absolute on any adapter.
// WebGPU only bounds the built-in sin/cos to 2^-11 absolute on [-π, π], and Chromium's
// SwiftShader is measured at ~2e-4: enough to push RoPE, and through it the logits, past the
// CPU reference's tolerance. Here k = round(4t) quarter turns come out exactly (t − k/4 is exact
// in f32), the rest r = 2π(t − k/4) lies in [-π/4, π/4], where Taylor series to degree 9 (sin)
// and 8 (cos) are within 3e-8, and the quarter turns swap and negate the results.
// Returns (sin, cos).

const SINCOS_TAU: f32 = 6.283185307179586;

fn sin_cos_turns(t: f32) -> vec2<f32> {
    let k = round(4.0 * t);
    let r = (t - 0.25 * k) * SINCOS_TAU;
    let r2 = r * r;
    let s = r * (1.0 + r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0)))));
    let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0))));
    let q = i32(k) & 3;
    if (q == 0) { return vec2<f32>(s, c); }
    if (q == 1) { return vec2<f32>(c, -s); }
    if (q == 2) { return vec2<f32>(-s, -c); }
    return vec2<f32>(-c, s);
}
