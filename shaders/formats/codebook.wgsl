// Codebook: the layout of every non-GGUF weight scheme (src/quant/codebook.rs):
//   value(r, c) = levels[table(r, c)][code(r, c)] · scale(r, c) + offset(r, c)
// Layout (src/gpu/weights.rs, `codebook_words`): a header of 12 words, then the codes, the level
// tables, the scales and the offsets, each f32 stored as its bits. Codes of chunk g = row·n_chunks
// + chunk take exactly `code_bits` words (32 codes × code_bits bits), LSB first; a code may span
// two words of its chunk. Which table and which scale an element uses is
// `row_factor · row + col / divisor` (row_factor 0 = one for the tensor, divisor 0xFFFFFFFF = one
// per row): the same rule as `Sharing::index` on the CPU.

const CB_CODE_BITS: u32 = 0u;
const CB_LEVELS_PER_TABLE: u32 = 1u;
const CB_TABLE_ROW_FACTOR: u32 = 2u;
const CB_TABLE_DIVISOR: u32 = 3u;
const CB_SCALE_ROW_FACTOR: u32 = 4u;
const CB_SCALE_DIVISOR: u32 = 5u;
const CB_HAS_OFFSETS: u32 = 6u;
const CB_CODES_AT: u32 = 7u;
const CB_LEVELS_AT: u32 = 8u;
const CB_SCALES_AT: u32 = 9u;
const CB_OFFSETS_AT: u32 = 10u;

// Part p is elements 8p .. 8p + 8 of the chunk: 8·code_bits bits from bit 8p·code_bits of its
// codes, each code looked up and scaled on its own (tables and scales may change within a part).
fn part_quads(p: u32) -> vec2<u32> {
    return vec2<u32>(2u * p, 2u * p + 1u);
}

fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2> {
    let bits = w[CB_CODE_BITS];
    let mask = (1u << bits) - 1u;
    let levels_per_table = w[CB_LEVELS_PER_TABLE];
    let base = w[CB_CODES_AT] + (row * params.n_chunks + chunk) * bits;
    let has_offsets = w[CB_HAS_OFFSETS] != 0u;
    var out: array<vec4<H>, 2>;
    for (var i = 8u * p; i < 8u * p + 8u; i++) {
        let col = chunk * CHUNK + i;
        let bit = i * bits;
        let word = base + bit / 32u;
        let shift = bit % 32u;
        var code = w[word] >> shift;
        if (shift + bits > 32u) {
            code |= w[word + 1u] << (32u - shift);
        }
        code &= mask;
        let table = w[CB_TABLE_ROW_FACTOR] * row + col / w[CB_TABLE_DIVISOR];
        let level = bitcast<f32>(w[w[CB_LEVELS_AT] + table * levels_per_table + code]);
        let s = w[CB_SCALE_ROW_FACTOR] * row + col / w[CB_SCALE_DIVISOR];
        var value = level * bitcast<f32>(w[w[CB_SCALES_AT] + s]);
        if (has_offsets) {
            value += bitcast<f32>(w[w[CB_OFFSETS_AT] + s]);
        }
        // Columns past the row (the padding of its last chunk) decode to 0, like zero-padded rows.
        out[(i / 4u) % 2u][i % 4u] = H(select(0.0, value, col < params.n_in));
    }
    return out;
}
