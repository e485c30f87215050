// What every kernel that reads weights (matmul.wgsl, embedding.wgsl) shares with the
// weight-format snippets: the packed weight words `w`, the layout fields `params` (the kernel's
// bindings 0 and 1; its own bindings start at 2), and byte/f16 helpers. Included before the
// format's own snippet.

const CHUNK: u32 = 32u;

struct Params {
    n_in: u32,
    n_out: u32,
    n_tokens: u32,
    n_chunks: u32,    // ceil(n_in / 32)
    aux_offset: u32,  // word index of the aux (f16 scale) segment of w, for formats that have one
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;


// Byte `i` (0..4) of `word`, as an unsigned value.
fn byte_u(word: u32, i: u32) -> u32 {
    return extractBits(word, 8u * i, 8u);
}

// Byte `i` (0..4) of `word`, sign-extended (an i8).
fn byte_i(word: u32, i: u32) -> i32 {
    return extractBits(bitcast<i32>(word), 8u * i, 8u);
}

// The f16 number `i` of the aux segment (f16 scales, two per word, low half first), widened.
fn aux_f16(i: u32) -> f32 {
    let pair = unpack2x16float(w[params.aux_offset + i / 2u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}
