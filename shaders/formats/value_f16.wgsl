// The value type H of the format snippets (see common.wgsl) and of the matmul's tiles: f16, for
// the f16 matmul variant (composed with `enable f16;`). Small integers (quants) are exact in
// f16; a scale times a quant is rounded to f16 (11 significant bits), which is part of that
// variant's stated error.
//
// (The bit trick that makes f16 dequantization cheap, bitcast<vec2<f16>>(byte | 0x6400) − 1024,
// is out of reach: naga in wgpu 30 rejects bitcast from u32 to vec2<f16>. So bytes are converted
// as integers and f16 pairs through f32, both exact.)
alias H = f16;

fn half2(word: u32) -> vec2<H> {
    return vec2<f16>(unpack2x16float(word));
}

fn u8x4(word: u32) -> vec4<H> {
    return vec4<f16>(unpack4xU8(word));
}

fn i8x4(word: u32) -> vec4<H> {
    return vec4<f16>(unpack4xI8(word));
}
