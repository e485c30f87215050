// Q5_0: blocks of 32, stored `d: f16, qh: u32, qs: [u8; 16]` (22 bytes); the low 4 bits of the
// codes as Q4_0's nibbles, bit j of qh the 5th bit of element j; x = d * (q - 16).
// The GGUF block layout is owned by src/formats/blocks/q5_0.rs (`Block`).
// Layout (src/gpu/weights.rs): block g = row·n_chunks + chunk has qh in word 5·g and its 16
// quant bytes in the 4 words after, its d at aux_h(g). Part p is quant word p: its low nibbles
// are elements 4p .. 4p + 4 (quad p), its high nibbles elements 16 + 4p .. (quad p + 4).
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(p, p + 4u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let g = row * params.n_chunks + chunk;
    let d = aux_h(g);
    let qh = w[5u * g];
    let word = w[5u * g + 1u + p];
    let low = (word & 0x0F0F0F0Fu) | fifth_bits(qh, 4u * p);
    let high = ((word >> 4u) & 0x0F0F0F0Fu) | fifth_bits(qh, 16u + 4u * p);
    return array(d * (u8x4(low) - 16.0), d * (u8x4(high) - 16.0));
}
