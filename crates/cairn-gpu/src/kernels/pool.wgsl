// Windowed 2-D pooling, one output per invocation. Params: 0 count, 1 C, 2 H, 3 W, 4 OH, 5 OW,
// 6 KH, 7 KW, 8 sh, 9 sw, 10 pad top, 11 pad left, 12 dh, 13 dw, 14 mode (0 average over the
// taps inside the input, 1 average counting padding, 2 max), 15 pad bottom, 16 pad right.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    let h = i32(pu(2u)); let w = i32(pu(3u)); let oh = pu(4u); let ow = pu(5u);
    let mode = pu(14u);
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let base = plane * u32(h) * u32(w);
    // -FLT_MAX written exactly: Tint (Chromium) rejects a literal that rounds past it.
    var acc = select(0.0, -3.4028234663852886e38, mode == 2u);
    var inside = 0u;
    var padded = 0u;
    for (var ky = 0u; ky < pu(6u); ky = ky + 1u) {
        let iy = i32(oy * pu(8u) + ky * pu(12u)) - i32(pu(10u));
        for (var kx = 0u; kx < pu(7u); kx = kx + 1u) {
            let ix = i32(ox * pu(9u) + kx * pu(13u)) - i32(pu(11u));
            if (iy < h + i32(pu(15u)) && ix < w + i32(pu(16u))) { padded = padded + 1u; }
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) { continue; }
            let v = x[base + u32(iy) * u32(w) + u32(ix)];
            inside = inside + 1u;
            if (mode == 2u) { acc = max(acc, v); } else { acc = acc + v; }
        }
    }
    if (mode == 0u) { acc = acc / f32(max(inside, 1u)); }
    if (mode == 1u) { acc = acc / f32(max(padded, 1u)); }
    out[i] = acc;
}
