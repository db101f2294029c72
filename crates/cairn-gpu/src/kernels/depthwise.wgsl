// Depthwise convolution (groups == input channels), one output element per invocation, with
// the fused bias, residual and activation. Params: 0 count, 1 C, 2 H, 3 W, 4 OH, 5 OW, 6 KH,
// 7 KW, 8 sh, 9 sw, 10 pad top, 11 pad left, 12 dh, 13 dw, 14 multiplier (Cout / C),
// 15 has bias, 16 has residual, 17 act, 18 act a, 19 act b.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= pu(0u)) { return; }
    let c = pu(1u); let h = i32(pu(2u)); let w_ = i32(pu(3u)); let oh = pu(4u); let ow = pu(5u);
    let kh = pu(6u); let kw = pu(7u); let mult = pu(14u);
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let co = (i / (ow * oh)) % (c * mult);
    let img = i / (ow * oh * c * mult);
    let ci = co / mult;
    let base = (img * c + ci) * u32(h) * u32(w_);
    var acc = 0.0;
    for (var ky = 0u; ky < kh; ky = ky + 1u) {
        let iy = i32(oy * pu(8u) + ky * pu(12u)) - i32(pu(10u));
        if (iy < 0 || iy >= h) { continue; }
        for (var kx = 0u; kx < kw; kx = kx + 1u) {
            let ix = i32(ox * pu(9u) + kx * pu(13u)) - i32(pu(11u));
            if (ix < 0 || ix >= w_) { continue; }
            acc = fma(x[base + u32(iy) * u32(w_) + u32(ix)], w[(co * kh + ky) * kw + kx], acc);
        }
    }
    if (pu(15u) != 0u) { acc = acc + bias[co]; }
    if (pu(16u) != 0u) { acc = acc + res[i]; }
    out[i] = act(acc, pu(17u), pf(18u), pf(19u));
}
