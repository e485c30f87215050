// K/V cache loads for attention_split.wgsl when head_dim is not a multiple of 4: head rows start
// anywhere, so a quad is four scalar loads, and the dims past head_dim (the last quad's tail,
// which belongs to the next head or row) read as 0. The other variant is vec4.wgsl; the wrapper
// prepends one of them.

@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;

// Dims [4·quad, 4·quad + 4) of the head row that starts at element `row`; 0 past head_dim.
fn k_quad(row: u32, quad: u32) -> vec4<f32> {
    var x = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (4u * quad + i < params.head_dim) {
            x[i] = k_cache[row + 4u * quad + i];
        }
    }
    return x;
}

fn v_quad(row: u32, quad: u32) -> vec4<f32> {
    var x = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (4u * quad + i < params.head_dim) {
            x[i] = v_cache[row + 4u * quad + i];
        }
    }
    return x;
}
