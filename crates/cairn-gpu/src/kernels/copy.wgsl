// Strided copy over a rank-6 region: Transpose, Concat (one dispatch per input), Slice.
// Params: 0 count, 1 in base, 2 out base, 4..10 region dims, 10..16 in strides (i32),
// 16..22 out strides (i32).
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    var rem = i;
    var si = pi(1u);
    var di = pi(2u);
    for (var d = 5u; d < 6u; d = d - 1u) {
        let dim = pu(4u + d);
        let c = i32(rem % dim);
        rem = rem / dim;
        si = si + c * pi(10u + d);
        di = di + c * pi(16u + d);
    }
    dst[u32(di)] = src[u32(si)];
}
