// Q4_K: super-blocks of 256, stored `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`
// (144 bytes, already word-aligned). Chunk j (0..8) of a super-block is its sub-block j: 6-bit
// scale and min from `scales` (ggml's get_scale_min_k4), quants in qs[32·(j/2) ..][..32], low
// nibbles for even j, high for odd j; x = (d * sc) * q - (dmin * m).
// The GGUF block layout is owned by src/formats/blocks/q4_k.rs (`Block`).
// Layout (src/gpu/weights.rs): the GGUF super-blocks unchanged, 36 words each; the chunk index
// g = row·n_chunks + chunk (n_chunks is a multiple of 8) is in super-block g / 8. Part p is the
// sub-block's quant words 2p and 2p + 1: elements 8p .. 8p + 8.
fn q4_k_scale_byte(base: u32, k: u32) -> u32 {
    return byte_u(w[base + 1u + k / 4u], k % 4u);
}

fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(2u * p, 2u * p + 1u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let g = row * params.n_chunks + chunk;
    let base = 36u * (g / 8u);
    let j = g % 8u;
    let dm = half2(w[base]);
    var sc: u32;
    var m: u32;
    if (j < 4u) {
        sc = q4_k_scale_byte(base, j) & 63u;
        m = q4_k_scale_byte(base, j + 4u) & 63u;
    } else {
        sc = (q4_k_scale_byte(base, j + 4u) & 15u) | ((q4_k_scale_byte(base, j - 4u) >> 6u) << 4u);
        m = (q4_k_scale_byte(base, j + 4u) >> 4u) | ((q4_k_scale_byte(base, j) >> 6u) << 4u);
    }
    let dl = dm.x * H(sc);
    let ml = dm.y * H(m);
    let at = base + 4u + 8u * (j / 2u) + 2u * p;
    let shift = 4u * (j % 2u);
    return array(dl * u8x4((w[at] >> shift) & 0x0F0F0F0Fu) - ml, dl * u8x4((w[at + 1u] >> shift) & 0x0F0F0F0Fu) - ml);
}
