// Q8_0: blocks of 32, stored `d: f16, qs: [i8; 32]` (34 bytes); x = q * d.
// Layout (src/gpu/weights.rs): block g = row·n_chunks + chunk has its 32 quants in the 8 words
// from 8·g, and its d at aux_f16(g).
fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    let g = row * params.n_chunks + chunk;
    let d = aux_f16(g);
    var out: array<f32, 32>;
    for (var i = 0u; i < 8u; i++) {
        let word = w[8u * g + i];
        for (var b = 0u; b < 4u; b++) {
            out[4u * i + b] = f32(byte_i(word, b)) * d;
        }
    }
    return out;
}
