// F16 weights. Layout (src/gpu/weights.rs): each row padded with zeros to n_chunks·32 values;
// chunk g = row·n_chunks + chunk is the 16 words from 16·g, two f16 per word, low half first;
// part p is its words 4p .. 4p + 4.
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(2u * p, 2u * p + 1u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let at = 16u * (row * params.n_chunks + chunk) + 4u * p;
    return array(vec4<H>(half2(w[at]), half2(w[at + 1u])), vec4<H>(half2(w[at + 2u]), half2(w[at + 3u])));
}
