// Q4_0: blocks of 32, stored `d: f16, qs: [u8; 16]` (18 bytes); byte j holds element j (low
// nibble) and element j + 16 (high nibble); x = d * (q - 8).
// The GGUF block layout is owned by src/formats/blocks/q4_0.rs (`Block`).
// Layout (src/gpu/weights.rs): block g = row·n_chunks + chunk has its 16 quant bytes in the 4
// words from 4·g, and its d at aux_h(g). Part p is word p: its low nibbles are elements
// 4p .. 4p + 4 (quad p), its high nibbles elements 16 + 4p .. (quad p + 4).
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(p, p + 4u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let g = row * params.n_chunks + chunk;
    let d = aux_h(g);
    let word = w[4u * g + p];
    return array(d * (u8x4(word & 0x0F0F0F0Fu) - 8.0), d * (u8x4((word >> 4u) & 0x0F0F0F0Fu) - 8.0));
}
