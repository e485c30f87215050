// Q4_K: super-blocks of 256, stored `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`
// (144 bytes, already word-aligned). Chunk j (0..8) of a super-block is its sub-block j: 6-bit
// scale and min from `scales` (ggml's get_scale_min_k4), quants in qs[32·(j/2) ..][..32], low
// nibbles for even j, high for odd j; x = (d * sc) * q - (dmin * m).
// Layout (src/gpu/weights.rs): the GGUF super-blocks unchanged, 36 words each; the chunk index
// g = row·n_chunks + chunk (n_chunks is a multiple of 8) is in super-block g / 8.
fn q4_k_scale_byte(base: u32, k: u32) -> u32 {
    return byte_u(w[base + 1u + k / 4u], k % 4u);
}

fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    let g = row * params.n_chunks + chunk;
    let base = 36u * (g / 8u);
    let j = g % 8u;
    let dm = unpack2x16float(w[base]);
    var sc: u32;
    var m: u32;
    if (j < 4u) {
        sc = q4_k_scale_byte(base, j) & 63u;
        m = q4_k_scale_byte(base, j + 4u) & 63u;
    } else {
        sc = (q4_k_scale_byte(base, j + 4u) & 15u) | ((q4_k_scale_byte(base, j - 4u) >> 6u) << 4u);
        m = (q4_k_scale_byte(base, j + 4u) >> 4u) | ((q4_k_scale_byte(base, j) >> 6u) << 4u);
    }
    let dl = dm.x * f32(sc);
    let ml = dm.y * f32(m);
    let quants = base + 4u + 8u * (j / 2u);
    let shift = 4u * (j % 2u);
    var out: array<f32, 32>;
    for (var i = 0u; i < 8u; i++) {
        let word = w[quants + i];
        for (var b = 0u; b < 4u; b++) {
            out[4u * i + b] = dl * f32(extractBits(word, 8u * b + shift, 4u)) - ml;
        }
    }
    return out;
}
