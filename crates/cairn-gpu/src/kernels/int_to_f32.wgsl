// Cast of an integer value (i32 on the GPU, int64 narrowed at upload) to f32: the attention
// mask's Cast in BERT-style encoders. Params: 0 count.
@group(0) @binding(1) var<storage, read> x: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    out[i] = f32(x[i]);
}
