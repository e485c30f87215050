// F32 weights. Layout (src/gpu/weights.rs): each row padded with zeros to n_chunks·32 values;
// chunk g = row·n_chunks + chunk is the 32 words from 32·g, part p its words 8p .. 8p + 8.
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(2u * p, 2u * p + 1u);
}

fn f32_quad(at: u32) -> vec4<H> {
    return vec4<H>(bitcast<vec4<f32>>(vec4<u32>(w[at], w[at + 1u], w[at + 2u], w[at + 3u])));
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let at = 32u * (row * params.n_chunks + chunk) + 8u * p;
    return array(f32_quad(at), f32_quad(at + 4u));
}
