// What every kernel that reads weights (matmul.wgsl, embedding.wgsl, quantize.wgsl) shares with
// the weight-format snippets: the packed weight words `w` (binding 1; the kernel's own bindings
// start at 2, its params at binding 0: formats/params.wgsl or the kernel's own struct), byte/f16
// helpers, and `decode_chunk`, built on the format's `decode_part`.
//
// Each format snippet (shaders/formats/<fmt>.wgsl) defines
//
//     fn decode_part(row: u32, chunk: u32, p: u32) -> array<vec4<H>, 2>
//     fn part_quads(p: u32) -> vec2<u32>
//
// Part p (0..4) of a chunk is 8 of its 32 values, those one packed word of 4-bit quants holds
// (or the same count for wider formats), dequantized with the CPU's formula
// (src/formats/ggml.rs): quad 0 of the result is columns 4·part_quads(p).x .. + 4 of the chunk,
// quad 1 columns 4·part_quads(p).y .. + 4. Parts let a kernel spread one block over several
// threads (each one word load and 8 values, no 32-value private array), and quads let it read
// x as vec4. H is the value type: f32 (formats/value_f32.wgsl) or, for the f16 matmul variant,
// f16 (formats/value_f16.wgsl), so each format's arithmetic is written once.

const CHUNK: u32 = 32u;
const PARTS: u32 = 4u;  // parts per chunk

@group(0) @binding(1) var<storage, read> w: array<u32>;

// Byte `i` (0..4) of `word`, as an unsigned value.
fn byte_u(word: u32, i: u32) -> u32 {
    return extractBits(word, 8u * i, 8u);
}

// Byte `i` (0..4) of `word`, sign-extended (an i8).
fn byte_i(word: u32, i: u32) -> i32 {
    return extractBits(bitcast<i32>(word), 8u * i, 8u);
}

// Bits first .. first + 4 of `bits`, each moved to bit 4 of its own byte: the 5th bits of four
// codes (Q5_0, Q5_1), to OR onto their low nibbles.
fn fifth_bits(bits: u32, first: u32) -> u32 {
    let b = bits >> first;
    return ((b & 1u) << 4u) | ((b & 2u) << 11u) | ((b & 4u) << 18u) | ((b & 8u) << 25u);
}

// The f16 number `i` of the aux segment (f16 scales, two per word, low half first), as H.
fn aux_h(i: u32) -> H {
    let pair = half2(w[params.aux_offset + i / 2u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

// Elements [32·chunk, 32·chunk + 32) of weight row `row` in f32: the four parts put in place.
// For kernels that want a whole chunk per invocation (embedding, quantize).
fn decode_chunk(row: u32, chunk: u32) -> array<f32, 32> {
    var out: array<f32, 32>;
    for (var p = 0u; p < PARTS; p++) {
        var part = decode_part(row, chunk, p);
        let at = 4u * part_quads(p);
        for (var i = 0u; i < 4u; i++) {
            out[at.x + i] = f32(part[0][i]);
            out[at.y + i] = f32(part[1][i]);
        }
    }
    return out;
}
