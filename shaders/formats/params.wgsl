// The uniform params of a kernel that reads weights and has no parameters of its own
// (quantize.wgsl): the weight's layout fields, in the order GpuWeight::params uploads them. A
// kernel with parameters of its own (matmul.wgsl, embedding.wgsl) declares a Params of its own at
// binding 0 that starts with these fields, since the format snippets read `params.n_in`,
// `params.n_chunks` and `params.aux_offset` from whatever struct is bound there.

struct Params {
    n_in: u32,
    n_out: u32,
    n_tokens: u32,
    n_chunks: u32,    // ceil(n_in / 32)
    aux_offset: u32,  // word index of the aux (f16 scale) segment of w, for formats that have one
}

@group(0) @binding(0) var<uniform> params: Params;
