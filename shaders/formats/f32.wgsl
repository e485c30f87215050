// F32 weights. Layout (src/gpu/weights.rs): each row padded with zeros to n_chunks·32 values;
// chunk g = row·n_chunks + chunk is the 32 words from 32·g.
fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    let base = 32u * (row * params.n_chunks + chunk);
    var out: array<f32, 32>;
    for (var i = 0u; i < 32u; i++) {
        out[i] = bitcast<f32>(w[base + i]);
    }
    return out;
}
