// Q4_0: blocks of 32, stored `d: f16, qs: [u8; 16]` (18 bytes); byte j holds element j (low
// nibble) and element j + 16 (high nibble); x = d * (q - 8).
// Layout (src/gpu/weights.rs): block g = row·n_chunks + chunk has its 16 quant bytes in the 4
// words from 4·g, and its d at aux_f16(g).
fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    let g = row * params.n_chunks + chunk;
    let d = aux_f16(g);
    var out: array<f32, 32>;
    for (var i = 0u; i < 4u; i++) {
        let word = w[4u * g + i];
        for (var b = 0u; b < 4u; b++) {
            let q = byte_u(word, b);
            out[4u * i + b] = d * f32(i32(q & 15u) - 8);
            out[4u * i + b + 16u] = d * f32(i32(q >> 4u) - 8);
        }
    }
    return out;
}
