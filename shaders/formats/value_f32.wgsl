// The value type H of the format snippets (see common.wgsl) and of the matmul's tiles: f32, the
// default, in which every format decodes exactly as the CPU's formula does.
alias H = f32;

// The two f16 of `word` (low half first), as H.
fn half2(word: u32) -> vec2<H> {
    return unpack2x16float(word);
}

// The four bytes of `word` (byte 0 first) as unsigned values.
fn u8x4(word: u32) -> vec4<H> {
    return vec4<H>(unpack4xU8(word));
}

// The four bytes of `word` (byte 0 first) as i8 values.
fn i8x4(word: u32) -> vec4<H> {
    return vec4<H>(unpack4xI8(word));
}
