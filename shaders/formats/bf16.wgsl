// BF16 weights (how Hugging Face ships most checkpoints). Layout as F16's (src/gpu/weights.rs):
// each row padded with zeros to n_chunks·32 values; chunk g = row·n_chunks + chunk is the 16
// words from 16·g, two bf16 per word, low half first; part p is its words 4p .. 4p + 4. A bf16 is
// the high half of an f32, so widening it is a shift: exact.
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(2u * p, 2u * p + 1u);
}

fn bf16_pair(word: u32) -> vec2<H> {
    return vec2<H>(bitcast<vec2<f32>>(vec2<u32>(word << 16u, word & 0xffff0000u)));
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let at = 16u * (row * params.n_chunks + chunk) + 4u * p;
    return array(
        vec4<H>(bf16_pair(w[at]), bf16_pair(w[at + 1u])),
        vec4<H>(bf16_pair(w[at + 2u]), bf16_pair(w[at + 3u])),
    );
}
