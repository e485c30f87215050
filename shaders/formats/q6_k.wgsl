// Q6_K: super-blocks of 256, stored `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`
// (210 bytes). Element e = 128·h + 32·s + l (h < 2, s < 4, l < 32) has low 4 bits
// ql[64·h + 32·(s%2) + l] >> 4·(s/2), high 2 bits qh[32·h + l] >> 2·s, and scale
// scales[e / 16]; x = (d * sc) * (q - 32).
// Layout (src/gpu/weights.rs): super-block b = g / 8 (g = row·n_chunks + chunk) has ql, qh and
// scales (208 bytes) in the 52 words from 52·b, and its d at aux_f16(b). Chunk j = g % 8 is
// elements 32·j .. 32·j + 32, i.e. h = j / 4, s = j % 4.
fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    let g = row * params.n_chunks + chunk;
    let base = 52u * (g / 8u);
    let j = g % 8u;
    let h = j / 4u;
    let s = j % 4u;
    let d = aux_f16(g / 8u);
    // The chunk's two scales: scales[2j] for l < 16, scales[2j + 1] for l >= 16.
    let scale_word = w[base + 48u + (2u * j) / 4u];
    let dl0 = d * f32(byte_i(scale_word, (2u * j) % 4u));
    let dl1 = d * f32(byte_i(scale_word, (2u * j) % 4u + 1u));
    let ql = base + (64u * h + 32u * (s % 2u)) / 4u;
    let qh = base + 32u + 8u * h;
    let low_shift = 4u * (s / 2u);
    let high_shift = 2u * s;
    var out: array<f32, 32>;
    for (var i = 0u; i < 8u; i++) {
        let lw = w[ql + i];
        let hw = w[qh + i];
        for (var b = 0u; b < 4u; b++) {
            let low = extractBits(lw, 8u * b + low_shift, 4u);
            let high = extractBits(hw, 8u * b + high_shift, 2u);
            let q = i32(low | (high << 4u)) - 32;
            let l = 4u * i + b;
            out[l] = select(dl0, dl1, l >= 16u) * f32(q);
        }
    }
    return out;
}
