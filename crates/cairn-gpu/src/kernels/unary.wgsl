// out[i] = act(x[i]). Params: 0 count, 1 activation code, 2 a, 3 b.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    out[i] = act(x[i], pu(1u), pf(2u), pf(3u));
}
