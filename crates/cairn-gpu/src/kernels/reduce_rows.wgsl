// Row reductions, one workgroup of 64 per row: global pooling, Softmax/LogSoftmax over an axis
// (rows = outer x inner, elements `inner` apart) and LayerNormalization over the last dims.
// Params: 0 rows, 1 row length, 2 inner (stride between a row's elements), 3 mode
// (0 mean, 1 max, 2 softmax, 3 log-softmax, 4 layer norm), 4 epsilon, 5 has bias.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> part: array<f32, 64>;

fn reduce(v: f32, lid: u32, is_max: bool) -> f32 {
    part[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            if (is_max) { part[lid] = max(part[lid], part[lid + s]); } else { part[lid] = part[lid] + part[lid + s]; }
        }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    let lid = lid3.x;
    // Uniform control flow: every invocation of a workgroup takes the same branch.
    if (row >= pu(0u)) { return; }
    let len = pu(1u);
    let inner = pu(2u);
    let mode = pu(3u);
    let base = (row / inner) * len * inner + row % inner;
    if (mode == 0u || mode == 4u) {
        var s = 0.0;
        for (var j = lid; j < len; j = j + 64u) { s = s + x[base + j * inner]; }
        let mean = reduce(s, lid, false) / f32(len);
        if (mode == 0u) {
            if (lid == 0u) { out[row] = mean; }
            return;
        }
        var q = 0.0;
        for (var j = lid; j < len; j = j + 64u) { let d = x[base + j * inner] - mean; q = q + d * d; }
        let inv = 1.0 / sqrt(reduce(q, lid, false) / f32(len) + pf(4u));
        for (var j = lid; j < len; j = j + 64u) {
            var y = (x[base + j * inner] - mean) * inv * scale[j];
            if (pu(5u) != 0u) { y = y + shift[j]; }
            out[base + j * inner] = y;
        }
        return;
    }
    // -FLT_MAX written exactly: Tint (Chromium) rejects a literal that rounds past it.
    var m = -3.4028234663852886e38;
    for (var j = lid; j < len; j = j + 64u) { m = max(m, x[base + j * inner]); }
    m = reduce(m, lid, true);
    if (mode == 1u) {
        if (lid == 0u) { out[row] = m; }
        return;
    }
    var s = 0.0;
    for (var j = lid; j < len; j = j + 64u) { s = s + exp(x[base + j * inner] - m); }
    s = reduce(s, lid, false);
    for (var j = lid; j < len; j = j + 64u) {
        let d = x[base + j * inner] - m;
        out[base + j * inner] = select(exp(d) / s, d - log(s), mode == 3u);
    }
}
