// Pad with mode constant, reflect, edge or wrap, one output element per invocation.
// Params: 0 count, 1 mode (0 constant, 1 reflect, 2 edge, 3 wrap), 2 constant value (f32),
// 4..10 output dims (rank 6, left-padded with 1), 10..16 input dims, 16..22 pads before (i32).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    let mode = pu(1u);
    var rem = i;
    var at = 0u;
    var stride = 1u;
    for (var d = 5u; d < 6u; d = d - 1u) {
        let n = i32(pu(10u + d));
        var c = i32(rem % pu(4u + d)) - pi(16u + d);
        rem = rem / pu(4u + d);
        if (c < 0 || c >= n) {
            switch mode {
                case 0u: { out[i] = pf(2u); return; }
                // Reflect without repeating the edge: pads are smaller than the axis (ONNX).
                case 1u: { if (c < 0) { c = -c; } else { c = 2 * (n - 1) - c; } }
                case 2u: { c = clamp(c, 0, n - 1); }
                default: { c = ((c % n) + n) % n; }
            }
        }
        at = at + u32(c) * stride;
        stride = stride * u32(n);
    }
    out[i] = x[at];
}
