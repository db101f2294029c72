// Strided, batched GEMM: out[b] = act(alpha * A[b] B[b] + beta * bias + residual). Strides
// express transposes and broadcast batches (stride 0). Params: 0 M, 1 N, 2 K, 3 a row stride,
// 4 a col stride, 5 a batch stride, 6..9 the same for B, 9 out batch stride (rows are N
// apart), 10 bias row stride, 11 bias col stride, 12 bias batch stride, 13 has bias,
// 14 has residual, 15 act, 16 act a, 17 act b, 18 alpha, 19 beta.
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> res: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn load_a(batch: u32, m: u32, k: u32) -> f32 { return a[batch * pu(5u) + m * pu(3u) + k * pu(4u)]; }
fn load_b(batch: u32, k: u32, n: u32) -> f32 { return b[batch * pu(8u) + k * pu(6u) + n * pu(7u)]; }
fn store(batch: u32, m: u32, n: u32, v: f32) {
    let o = batch * pu(9u) + m * pu(1u) + n;
    var y = pf(18u) * v;
    if (pu(13u) != 0u) { y = y + pf(19u) * bias[batch * pu(12u) + m * pu(10u) + n * pu(11u)]; }
    if (pu(14u) != 0u) { y = y + res[o]; }
    out[o] = act(y, pu(15u), pf(16u), pf(17u));
}
