// ReduceSum/Mean/Max/Min over any set of axes, one output element per invocation (the kept
// axes address the output, the reduced ones are walked in a loop). Params: 0 count, 1 mode
// (0 sum, 1 mean, 2 max, 3 min), 2 elements reduced per output, 4..10 kept dims (rank 6,
// left-padded with 1), 10..16 their input strides, 16..22 reduced dims, 22..28 their strides.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    var rem = i;
    var base = 0u;
    for (var d = 5u; d < 6u; d = d - 1u) {
        let dim = pu(4u + d);
        base = base + (rem % dim) * pu(10u + d);
        rem = rem / dim;
    }
    let mode = pu(1u);
    let n = pu(2u);
    // +-FLT_MAX written exactly: Tint (Chromium) rejects a literal that rounds past it.
    var acc = select(0.0, -3.4028234663852886e38, mode == 2u);
    if (mode == 3u) { acc = 3.4028234663852886e38; }
    for (var r = 0u; r < n; r = r + 1u) {
        var k = r;
        var at = base;
        for (var d = 5u; d < 6u; d = d - 1u) {
            let dim = pu(16u + d);
            at = at + (k % dim) * pu(22u + d);
            k = k / dim;
        }
        let v = x[at];
        switch mode {
            case 2u: { acc = max(acc, v); }
            case 3u: { acc = min(acc, v); }
            default: { acc = acc + v; }
        }
    }
    if (mode == 1u) { acc = acc / f32(n); }
    out[i] = acc;
}
