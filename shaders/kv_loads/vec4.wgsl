// K/V cache loads for attention_split.wgsl when head_dim is a multiple of 4: every head row then
// starts on a vec4 (kv_stride and kv_head·head_dim are multiples of 4), so a quad is one 16-byte
// load. The other variant is scalar.wgsl; the wrapper prepends one of them.

@group(0) @binding(2) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v_cache: array<vec4<f32>>;

// Dims [4·quad, 4·quad + 4) of the head row that starts at element `row` (quad < ⌈head_dim/4⌉).
fn k_quad(row: u32, quad: u32) -> vec4<f32> {
    return k_cache[row / 4u + quad];
}

fn v_quad(row: u32, quad: u32) -> vec4<f32> {
    return v_cache[row / 4u + quad];
}
