// Q4_1: blocks of 32, stored `d: f16, m: f16, qs: [u8; 16]` (20 bytes, already word-aligned);
// nibbles as Q4_0; x = (d * q) + m.
// Layout (src/gpu/weights.rs): the GGUF blocks unchanged, block g = row·n_chunks + chunk in the
// 5 words from 5·g (word 0 = d | m << 16).
fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    let base = 5u * (row * params.n_chunks + chunk);
    let dm = unpack2x16float(w[base]);
    var out: array<f32, 32>;
    for (var i = 0u; i < 4u; i++) {
        let word = w[base + 1u + i];
        for (var b = 0u; b < 4u; b++) {
            let q = byte_u(word, b);
            out[4u * i + b] = dm.x * f32(q & 15u) + dm.y;
            out[4u * i + b + 16u] = dm.x * f32(q >> 4u) + dm.y;
        }
    }
    return out;
}
