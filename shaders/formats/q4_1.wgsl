// Q4_1: blocks of 32, stored `d: f16, m: f16, qs: [u8; 16]` (20 bytes, already word-aligned);
// nibbles as Q4_0; x = (d * q) + m.
// The GGUF block layout is owned by src/formats/blocks/q4_1.rs (`Block`).
// Layout (src/gpu/weights.rs): the GGUF blocks unchanged, block g = row·n_chunks + chunk in the
// 5 words from 5·g (word 0 = d | m << 16). Part p is quant word p, split as in Q4_0.
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(p, p + 4u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let base = 5u * (row * params.n_chunks + chunk);
    let dm = half2(w[base]);
    let word = w[base + 1u + p];
    return array(dm.x * u8x4(word & 0x0F0F0F0Fu) + dm.y, dm.x * u8x4((word >> 4u) & 0x0F0F0F0Fu) + dm.y);
}
