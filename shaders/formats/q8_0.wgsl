// Q8_0: blocks of 32, stored `d: f16, qs: [i8; 32]` (34 bytes); x = q * d.
// The GGUF block layout is owned by src/formats/blocks/q8_0.rs (`Block`).
// Layout (src/gpu/weights.rs): block g = row·n_chunks + chunk has its 32 quants in the 8 words
// from 8·g, and its d at aux_h(g). Part p is words 2p and 2p + 1: elements 8p .. 8p + 8.
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(2u * p, 2u * p + 1u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let g = row * params.n_chunks + chunk;
    let d = aux_h(g);
    let at = 8u * g + 2u * p;
    return array(i8x4(w[at]) * d, i8x4(w[at + 1u]) * d);
}
