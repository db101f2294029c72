// out = act(a (op) b) with NumPy broadcasting through per-input strides (0 on broadcast dims).
// Params: 0 count, 1 op, 2 act, 3 act a, 4 act b, 8..14 out dims (rank 6, left-padded with 1),
// 14..20 a strides, 20..26 b strides.
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn apply(x: f32, y: f32, op: u32) -> f32 {
    switch op {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return pow(x, y); }
        case 5u: { return max(x, y); }
        case 6u: { return min(x, y); }
        case 7u: { return select(x * y, x, x >= 0.0); }
        default: { return x; }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = 5u; d < 6u; d = d - 1u) {
        let dim = pu(8u + d);
        let c = rem % dim;
        rem = rem / dim;
        ia = ia + c * pu(14u + d);
        ib = ib + c * pu(20u + d);
    }
    out[i] = act(apply(a[ia], b[ib], pu(1u)), pu(2u), pf(3u), pf(4u));
}
