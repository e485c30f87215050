// Q5_1: blocks of 32, stored `d: f16, m: f16, qh: u32, qs: [u8; 16]` (24 bytes, already
// word-aligned); codes as Q5_0's; x = (d * q) + m.
// The GGUF block layout is owned by src/formats/blocks/q5_1.rs (`Block`).
// Layout (src/gpu/weights.rs): the GGUF blocks unchanged, block g = row·n_chunks + chunk in the
// 6 words from 6·g (word 0 = d | m << 16, word 1 = qh). Part p is quant word p, split as in
// Q5_0.
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(p, p + 4u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let base = 6u * (row * params.n_chunks + chunk);
    let dm = half2(w[base]);
    let qh = w[base + 1u];
    let word = w[base + 2u + p];
    let low = (word & 0x0F0F0F0Fu) | fifth_bits(qh, 4u * p);
    let high = ((word >> 4u) & 0x0F0F0F0Fu) | fifth_bits(qh, 16u + 4u * p);
    return array(dm.x * u8x4(low) + dm.y, dm.x * u8x4(high) + dm.y);
}
