// Q6_K: super-blocks of 256, stored `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`
// (210 bytes). Element e = 128·h + 32·s + l (h < 2, s < 4, l < 32) has low 4 bits
// ql[64·h + 32·(s%2) + l] >> 4·(s/2), high 2 bits qh[32·h + l] >> 2·s, and scale
// scales[e / 16]; x = (d * sc) * (q - 32).
// The GGUF block layout is owned by src/formats/blocks/q6_k.rs (`Block`).
// Layout (src/gpu/weights.rs): super-block b = g / 8 (g = row·n_chunks + chunk) has ql, qh and
// scales (208 bytes) in the 52 words from 52·b, and its d at aux_h(b). Chunk j = g % 8 is
// elements 32·j .. 32·j + 32, i.e. h = j / 4, s = j % 4. Part p is l = 8p .. 8p + 8: words 2p and
// 2p + 1 of the chunk's ql and qh runs, all under one scale (scales[2j + p / 2]).
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(2u * p, 2u * p + 1u);
}

fn q6_k_quad(low_word: u32, high_word: u32, low_shift: u32, high_shift: u32) -> vec4<H> {
    let q = ((low_word >> low_shift) & 0x0F0F0F0Fu) | (((high_word >> high_shift) & 0x03030303u) << 4u);
    return u8x4(q) - 32.0;
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let g = row * params.n_chunks + chunk;
    let base = 52u * (g / 8u);
    let j = g % 8u;
    let h = j / 4u;
    let s = j % 4u;
    let scale = 2u * j + p / 2u;
    let dl = aux_h(g / 8u) * H(byte_i(w[base + 48u + scale / 4u], scale % 4u));
    let ql = base + (64u * h + 32u * (s % 2u)) / 4u + 2u * p;
    let qh = base + 32u + 8u * h + 2u * p;
    let low_shift = 4u * (s / 2u);
    let high_shift = 2u * s;
    return array(dl * q6_k_quad(w[ql], w[qh], low_shift, high_shift),
                 dl * q6_k_quad(w[ql + 1u], w[qh + 1u], low_shift, high_shift));
}
