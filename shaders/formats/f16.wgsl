// F16 weights. Layout (src/gpu/weights.rs): each row padded with zeros to n_chunks·32 values;
// chunk g = row·n_chunks + chunk is the 16 words from 16·g, two f16 per word, low half first.
fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    let base = 16u * (row * params.n_chunks + chunk);
    var out: array<f32, 32>;
    for (var i = 0u; i < 16u; i++) {
        let pair = unpack2x16float(w[base + i]);
        out[2u * i] = pair.x;
        out[2u * i + 1u] = pair.y;
    }
    return out;
}
