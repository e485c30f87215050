// Helpers shared by every weight-format snippet (included before the format's own snippet).
// They read the kernel's `w: array<u32>` (packed weight words) and `params` (layout fields).

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
