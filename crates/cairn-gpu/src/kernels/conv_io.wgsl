// Convolution as an implicit GEMM per (image, group): A = the group's filters [M, K],
// B = the input patches [K = C/g * KH * KW, N = OH * OW] gathered on the fly (zero padding),
// with the fused bias, residual and activation. Params: 0 M (out channels per group), 1 N,
// 2 K, 3 groups, 4 Cin, 5 H, 6 W, 7 KH, 8 KW, 9 sh, 10 sw, 11 pad top, 12 pad left, 13 dh,
// 14 dw, 15 OW, 16 Cout, 17 has bias, 18 has residual, 19 act, 20 act a, 21 act b.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn load_a(batch: u32, m: u32, k: u32) -> f32 {
    let g = batch % pu(3u);
    return w[(g * pu(0u) + m) * pu(2u) + k];
}
fn load_b(batch: u32, k: u32, n: u32) -> f32 {
    let groups = pu(3u);
    let g = batch % groups;
    let img = batch / groups;
    let kh = pu(7u); let kw = pu(8u); let ow = pu(15u);
    let c = k / (kh * kw);
    let r = k % (kh * kw);
    let iy = i32((n / ow) * pu(9u) + (r / kw) * pu(13u)) - i32(pu(11u));
    let ix = i32((n % ow) * pu(10u) + (r % kw) * pu(14u)) - i32(pu(12u));
    let h = i32(pu(5u)); let wd = i32(pu(6u));
    if (iy < 0 || iy >= h || ix < 0 || ix >= wd) { return 0.0; }
    let cin_g = pu(4u) / groups;
    return x[((img * pu(4u) + g * cin_g + c) * u32(h) + u32(iy)) * u32(wd) + u32(ix)];
}
fn store(batch: u32, m: u32, n: u32, v: f32) {
    let groups = pu(3u);
    let co = (batch % groups) * pu(0u) + m;
    let o = ((batch / groups) * pu(16u) + co) * pu(1u) + n;
    var y = v;
    if (pu(17u) != 0u) { y = y + bias[co]; }
    if (pu(18u) != 0u) { y = y + res[o]; }
    out[o] = act(y, pu(19u), pf(20u), pf(21u));
}
