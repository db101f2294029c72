// The tiled matrix product both GEMM and the implicit-GEMM convolution use: a 16x16 workgroup
// computes a 64x64 output tile, each invocation a 4x4 block held in registers, with 16-deep
// slices of A and B staged in workgroup memory. The variant (gemm_io.wgsl or conv_io.wgsl)
// supplies load_a, load_b and store; workgroup z is the batch (image x group for convolution).
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> sa: array<f32, 1024>; // [TK][TM]
var<workgroup> sb: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m_len = pu(0u);
    let n_len = pu(1u);
    let k_len = pu(2u);
    let batch = wid.z;
    let m0 = wid.y * TM;
    let n0 = wid.x * TN;
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < k_len; k0 = k0 + TK) {
        for (var r = 0u; r < 4u; r = r + 1u) {
            let e = t + r * 256u;
            let kk = e / 64u;
            let col = e % 64u;
            var av = 0.0;
            var bv = 0.0;
            if (k0 + kk < k_len) {
                if (m0 + col < m_len) { av = load_a(batch, m0 + col, k0 + kk); }
                if (n0 + col < n_len) { bv = load_b(batch, k0 + kk, n0 + col); }
            }
            sa[e] = av;
            sb[e] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                ar[i] = sa[kk * 64u + lid.y * 4u + i];
                br[i] = sb[kk * 64u + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = fma(ar[i], br[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = m0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = n0 + lid.x * 4u + j;
            if (m < m_len && n < n_len) { store(batch, m, n, acc[i * 4u + j]); }
        }
    }
}
