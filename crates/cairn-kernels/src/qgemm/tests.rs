//! Property tests: every int8 kernel available here against the naive reference, on
//! random shapes with odd sizes and tails, u8/i8 operands with zero points, strided
//! and transposed B, and every output kind of the epilogue.

use super::reference::{qgemm_reference_i32, real_reference, requantize_reference};
use super::*;
use crate::testutil::Rng;

fn bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u32() as u8).collect()
}

fn as_i8(v: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment, and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const i8, v.len()) }
}

#[test]
fn every_kernel_matches_reference_i32() {
    let mut rng = Rng(5);
    let shapes = [
        (1, 1, 1),
        (1, 1, 2),
        (3, 5, 7),
        (6, 16, 2),
        (7, 17, 33),
        (13, 33, 255),
        (32, 49, 960),
        (5, 300, 9),
        (70, 3, 1),
        (101, 1, 1283),
        (37, 2, 77),
        (9, 1, 5),
        (16, 1, 8),
    ];
    for kernel in QKernel::all_available() {
        for (case, &(m, n, k)) in shapes.iter().chain(&[(1 + rng.below(40), 1 + rng.below(200), 1 + rng.below(300))]).enumerate() {
            let a = bytes(&mut rng, m * k);
            let b = bytes(&mut rng, k * n);
            let signed_a = case % 2 == 0;
            let signed_b = case % 3 == 0;
            let qa = if signed_a { Q8::I8(as_i8(&a)) } else { Q8::U8(&a) };
            let qb = if signed_b { Q8::I8(as_i8(&b)) } else { Q8::U8(&b) };
            // Symmetric s8 and u8 with zero point 128 take the byte layout where there is one.
            let za: Vec<i32> = (0..m)
                .map(|_| {
                    if signed_a {
                        0
                    } else if case % 4 == 1 {
                        128
                    } else {
                        rng.below(256) as i32
                    }
                })
                .collect();
            let zb = if signed_b { rng.below(256) as i32 - 128 } else { rng.below(256) as i32 };
            let want = qgemm_reference_i32(m, n, k, qa, k, &za, qb, n, zb);
            let packed = PackedQA::new(kernel, qa, m, k, k, 1, &za);
            let mut got = vec![0i32; m * n];
            qgemm(
                m,
                n,
                k,
                &packed,
                QRhs { data: qb, zero: zb, k_stride: n, n_stride: 1 },
                QOut::I32(&mut got),
                n,
                1,
                &QEpilogue::default(),
            );
            assert_eq!(got, want, "{kernel:?} {m}x{n}x{k}");
            // B read transposed (an [n, k] matrix) and C stored transposed.
            let mut bt = vec![0u8; k * n];
            for kk in 0..k {
                for j in 0..n {
                    bt[j * k + kk] = b[kk * n + j];
                }
            }
            let qbt = if signed_b { Q8::I8(as_i8(&bt)) } else { Q8::U8(&bt) };
            let mut got_t = vec![0i32; m * n];
            qgemm(
                m,
                n,
                k,
                &packed,
                QRhs { data: qbt, zero: zb, k_stride: 1, n_stride: k },
                QOut::I32(&mut got_t),
                1,
                m,
                &QEpilogue::default(),
            );
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(got_t[j * m + i], want[i * n + j], "{kernel:?} transposed {m}x{n}x{k} at ({i}, {j})");
                }
            }
        }
    }
}

#[test]
fn byte_layout_takes_symmetric_weights_and_falls_back_otherwise() {
    for kernel in QKernel::all_available().into_iter().filter(|k| k.layout == Layout::Quads) {
        let w = [1u8, 2, 3, 4, 5, 6];
        assert_eq!(PackedQA::new(kernel, Q8::I8(as_i8(&w)), 2, 3, 3, 1, &[0]).kernel().layout, Layout::Quads);
        // (u8 around its zero point 128: s8 values 1 ..= 6 once flipped.)
        let around_128 = w.map(|v| v + 128);
        assert_eq!(PackedQA::new(kernel, Q8::U8(&around_128), 2, 3, 3, 1, &[128]).kernel().layout, Layout::Quads);
        assert_eq!(PackedQA::new(kernel, Q8::I8(as_i8(&w)), 2, 3, 3, 1, &[0, 3]).kernel().layout, Layout::Pairs);
        assert_eq!(PackedQA::new(kernel, Q8::U8(&w), 2, 3, 3, 1, &[0]).kernel().layout, Layout::Pairs);
        // A weight beyond the kernel's bound (65 for a `vpmaddubsw` kernel) takes the pairs.
        let wide = [1u8, 2, 3, 4, 5, 65];
        let layout = PackedQA::new(kernel, Q8::I8(as_i8(&wide)), 2, 3, 3, 1, &[0]).kernel().layout;
        assert_eq!(layout == Layout::Quads, kernel.quads_weight_bound >= 65, "{kernel:?}");
    }
}

/// Weights within the bound of every byte-layout kernel (|w| <= 64, 7-bit), activations at
/// 255 and 0: the sums that would saturate an i16 pair sum past the bound land exactly on
/// it, and the result must equal the reference on every byte kernel (no fallback).
#[test]
fn byte_layout_is_exact_for_7_bit_weights_at_the_saturation_edge() {
    let mut rng = Rng(11);
    for kernel in QKernel::all_available().into_iter().filter(|k| k.layout == Layout::Quads) {
        for &(m, n, k) in &[(4, 16, 64), (9, 37, 301), (6, 1, 33), (13, 2, 700)] {
            let w: Vec<u8> = (0..m * k)
                .map(|i| match i % 5 {
                    0 => 64u8,
                    1 => (-64i8) as u8,
                    _ => (rng.below(129) as i32 - 64) as i8 as u8,
                })
                .collect();
            let x: Vec<u8> = (0..k * n).map(|i| if i % 3 == 0 { rng.next_u32() as u8 } else { 255 }).collect();
            for zb in [0, 255, 113] {
                let want = qgemm_reference_i32(m, n, k, Q8::I8(as_i8(&w)), k, &[0], Q8::U8(&x), n, zb);
                let packed = PackedQA::new(kernel, Q8::I8(as_i8(&w)), m, k, k, 1, &[0]);
                assert_eq!(packed.kernel().name, kernel.name, "7-bit weights fit every byte kernel");
                let mut got = vec![0i32; m * n];
                let rhs = QRhs { data: Q8::U8(&x), zero: zb, k_stride: n, n_stride: 1 };
                qgemm(m, n, k, &packed, rhs, QOut::I32(&mut got), n, 1, &QEpilogue::default());
                assert_eq!(got, want, "{kernel:?} {m}x{n}x{k} zb {zb}");
            }
        }
    }
}

/// Extreme operands at the longest k: partial sums of the byte layout wrap, the result must not.
#[test]
fn every_kernel_is_exact_at_the_extremes() {
    let (m, n, k) = (3, 5, MAX_K);
    for kernel in QKernel::all_available() {
        for (av, bv, zb, signed_b) in [(0x80u8, 255u8, 0, false), (0x7f, 0, 255, false), (0x80, 0x80, 127, true), (0x80, 0x7f, -128, true)]
        {
            let a = vec![av; m * k];
            let b = vec![bv; k * n];
            let qb = if signed_b { Q8::I8(as_i8(&b)) } else { Q8::U8(&b) };
            let want = qgemm_reference_i32(m, n, k, Q8::I8(as_i8(&a)), k, &[0], qb, n, zb);
            let packed = PackedQA::new(kernel, Q8::I8(as_i8(&a)), m, k, k, 1, &[0]);
            let mut got = vec![0i32; m * n];
            qgemm(
                m,
                n,
                k,
                &packed,
                QRhs { data: qb, zero: zb, k_stride: n, n_stride: 1 },
                QOut::I32(&mut got),
                n,
                1,
                &QEpilogue::default(),
            );
            assert_eq!(got, want, "{kernel:?} a={av:#x} b={bv:#x} zb={zb}");
        }
    }
}

#[test]
fn every_kernel_requantizes_like_the_reference() {
    let mut rng = Rng(9);
    for kernel in QKernel::all_available() {
        for case in 0..40 {
            let (m, n, k) = (1 + rng.below(50), 1 + rng.below(150), 1 + rng.below(400));
            // Matrix-vector products (one or two columns) take their own path.
            let n = if case % 5 == 0 { 1 + case % 2 } else { n };
            let a = bytes(&mut rng, m * k);
            let b = bytes(&mut rng, k * n);
            let za = [0];
            let zb = rng.below(256) as i32;
            let acc = qgemm_reference_i32(m, n, k, Q8::I8(as_i8(&a)), k, &za, Q8::U8(&b), n, zb);
            let packed = PackedQA::new(kernel, Q8::I8(as_i8(&a)), m, k, k, 1, &za);
            let rhs = QRhs { data: Q8::U8(&b), zero: zb, k_stride: n, n_stride: 1 };
            let scale: Vec<f32> = (0..m).map(|_| 1e-5 + rng.f32().abs() * 1e-4).collect();
            let bias: Vec<f32> = (0..m).map(|_| rng.f32() * 4.0).collect();
            let activation =
                [Activation::Identity, Activation::Relu, Activation::Clip { min: 0.0, max: 6.0 }, Activation::HardSwish][case % 4];
            let out_zero = [0, 128, 17, -5][case % 4];
            let epi = QEpilogue { scale: &scale, bias: Some(&bias), acc_bias: None, activation, out_scale: 0.02, out_zero };
            let real = real_reference(&acc, m, n, &epi);
            // f32 output
            let mut f = vec![0f32; m * n];
            qgemm(m, n, k, &packed, rhs, QOut::F32(&mut f), n, 1, &epi);
            crate::testutil::assert_close(&f, &real, 1e-5, &format!("{kernel:?} f32 {m}x{n}x{k}"));
            // f32 output stored transposed (rows adjacent, as a dynamic-int8 MatMul writes
            // Cᵀ): the same values, bit for bit.
            let mut ft = vec![0f32; m * n];
            qgemm(m, n, k, &packed, rhs, QOut::F32(&mut ft), 1, m, &epi);
            for (i, &v) in f.iter().enumerate() {
                let t = ft[(i % n) * m + i / n];
                assert!(t.to_bits() == v.to_bits(), "{kernel:?} {activation:?} transposed f32 {m}x{n}x{k} element {i}: {t} vs {v}");
            }
            // u8 or i8 output: within one step of exact rounding (f32 vs f64 epilogue).
            let signed = case % 2 == 1;
            let (lo, hi) = if signed { (-128, 127) } else { (0, 255) };
            let z = if signed { out_zero.clamp(-128, 127) } else { out_zero.clamp(0, 255) };
            let epi = QEpilogue { out_zero: z, ..epi };
            let want = requantize_reference(&real, epi.out_scale, z, lo, hi);
            let mut q = vec![0u8; m * n];
            let mut qi = vec![0i8; m * n];
            let got: Vec<i32> = if signed {
                qgemm(m, n, k, &packed, rhs, QOut::I8(&mut qi), n, 1, &epi);
                qi.iter().map(|&v| v as i32).collect()
            } else {
                qgemm(m, n, k, &packed, rhs, QOut::U8(&mut q), n, 1, &epi);
                q.iter().map(|&v| v as i32).collect()
            };
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1, "{kernel:?} {activation:?} {m}x{n}x{k} element {i}: got {g}, want {w}");
            }
        }
    }
}

#[test]
fn rounding_is_half_to_even() {
    for (v, want) in [(0.5f32, 0.0f32), (1.5, 2.0), (2.5, 2.0), (-0.5, -0.0), (-1.5, -2.0), (3.4999, 3.0), (254.5, 254.0)] {
        assert_eq!(round_half_even(v), want, "{v}");
    }
    assert_eq!(quantize(f32::NAN, 1.0, 7, 0, 255), 7);
    assert_eq!(quantize(1e30, 1.0, 7, 0, 255), 255);
}

/// XNNPACK's fp32 requantization, bit for bit, on every kernel and every store path (fused
/// full tiles, partial tiles, matrix-vector columns): an integer bias in the accumulator,
/// `scale / out_scale`, the zero point added after rounding. Each row's scale makes column 0
/// (and every third column, a copy of it) a near tie, where adding the zero point before
/// rounding (Cairn's rule before) gives the other neighbour.
#[test]
fn every_kernel_requantizes_like_xnnpack_on_near_ties() {
    use super::xnnpack_rule::{near_tie_scale, old_requantize, xnn_bounds, xnn_requantize};
    let mut rng = Rng(14);
    let (mut ties, mut flips) = (0, 0);
    for kernel in QKernel::all_available() {
        for case in 0..24 {
            let (m, k) = (1 + rng.below(40), 1 + rng.below(40));
            let n = [1, 2, 37, 70, 16, 5][case % 6];
            let signed = case % 4 == 3;
            let activation = [Activation::Identity, Activation::Relu, Activation::Clip { min: 0.0, max: 6.0 }][case % 3];
            let z = if signed { -128 + rng.below(40) as i32 } else { 128 + rng.below(100) as i32 };
            // Small weights (symmetric s8) and activations near their zero point keep the
            // other columns near column 0, mostly inside the output range.
            let a: Vec<u8> = (0..m * k).map(|_| (rng.below(41) as i32 - 20) as i8 as u8).collect();
            let zb = 100 + rng.below(50) as i32;
            let mut b: Vec<u8> = (0..k * n).map(|_| (zb + rng.below(41) as i32 - 20) as u8).collect();
            for kk in 0..k {
                for j in (3..n).step_by(3) {
                    b[kk * n + j] = b[kk * n];
                }
            }
            let acc = qgemm_reference_i32(m, n, k, Q8::I8(as_i8(&a)), k, &[0], Q8::U8(&b), n, zb);
            let out_scale = 0.02 + rng.f32().abs() * 0.1;
            let bounds = xnn_bounds(activation, out_scale, z, signed);
            let (mut scale, mut bias) = (vec![0f32; m], vec![0i32; m]);
            for r in 0..m {
                // Column 0 lands at f = ±(n + 0.5) plus a few ulps, inside the bounds.
                let t = 20_000 + rng.below(2_000_000) as i32;
                let mag = 1.0 + rng.below(20) as f64 + 0.5;
                let neg = matches!(activation, Activation::Identity) && rng.below(2) == 0;
                scale[r] = near_tie_scale(if neg { -t } else { t }, mag, out_scale);
                bias[r] = t - acc[r * n];
                if neg {
                    // f = (-t) * s < 0: the accumulator with its bias is -t.
                    bias[r] = -t - acc[r * n];
                }
            }
            let packed = PackedQA::new(kernel, Q8::I8(as_i8(&a)), m, k, k, 1, &[0]);
            let rhs = QRhs { data: Q8::U8(&b), zero: zb, k_stride: n, n_stride: 1 };
            let epi = QEpilogue { scale: &scale, bias: None, acc_bias: Some(&bias), activation, out_scale, out_zero: z };
            let (mut qu, mut qi) = (vec![0u8; m * n], vec![0i8; m * n]);
            let got: Vec<i32> = if signed {
                qgemm(m, n, k, &packed, rhs, QOut::I8(&mut qi), n, 1, &epi);
                qi.iter().map(|&v| v as i32).collect()
            } else {
                qgemm(m, n, k, &packed, rhs, QOut::U8(&mut qu), n, 1, &epi);
                qu.iter().map(|&v| v as i32).collect()
            };
            for r in 0..m {
                for j in 0..n {
                    let i = r * n + j;
                    let want = xnn_requantize(acc[i], bias[r], scale[r], out_scale, z, bounds);
                    assert_eq!(got[i], want, "{kernel:?} case {case} {m}x{n}x{k} row {r} col {j} ({activation:?}, zero {z})");
                    if j % 3 == 0 {
                        ties += 1;
                        flips += (old_requantize(acc[i], bias[r], scale[r], out_scale, z, activation, signed) != want) as usize;
                    }
                }
            }
        }
    }
    // The cases must tell the rules apart, or this test could not fail on the old one.
    assert!(flips * 10 > ties, "only {flips} of {ties} near ties differ from the old rule");
}

/// An int32 bias that f32 cannot hold (2^24 + d), cancelled by the accumulator: exact in
/// integers (XNNPACK), lost by a real bias added in f32.
#[test]
fn an_integer_bias_is_added_exactly() {
    use super::xnnpack_rule::{old_requantize, xnn_bounds, xnn_requantize};
    let (m, n, k) = (12, 20, 520);
    // -128 * 255 * 520 = -16,972,800 in every accumulator.
    let a = vec![0x80u8; m * k];
    let b = vec![255u8; k * n];
    let acc = qgemm_reference_i32(m, n, k, Q8::I8(as_i8(&a)), k, &[0], Q8::U8(&b), n, 0);
    assert!(acc.iter().all(|&v| v == -16_972_800));
    let bias: Vec<i32> = (0..m as i32).map(|r| 16_972_800 + 3 * r - 15).collect();
    let scale: Vec<f32> = (0..m).map(|r| 0.05 + r as f32 * 0.013).collect();
    let (out_scale, z) = (0.1, 131);
    let bounds = xnn_bounds(Activation::Identity, out_scale, z, false);
    let mut differ = 0;
    for kernel in QKernel::all_available() {
        let packed = PackedQA::new(kernel, Q8::I8(as_i8(&a)), m, k, k, 1, &[0]);
        let rhs = QRhs { data: Q8::U8(&b), zero: 0, k_stride: n, n_stride: 1 };
        let epi = QEpilogue { scale: &scale, bias: None, acc_bias: Some(&bias), activation: Activation::Identity, out_scale, out_zero: z };
        let mut q = vec![0u8; m * n];
        qgemm(m, n, k, &packed, rhs, QOut::U8(&mut q), n, 1, &epi);
        for (i, &g) in q.iter().enumerate() {
            let r = i / n;
            let want = xnn_requantize(acc[i], bias[r], scale[r], out_scale, z, bounds);
            assert_eq!(g as i32, want, "{kernel:?} element {i}");
            differ += (old_requantize(acc[i], bias[r], scale[r], out_scale, z, Activation::Identity, false) != want) as usize;
        }
        // i32 output: the accumulator with its bias.
        let mut q32 = vec![0i32; m * n];
        qgemm(m, n, k, &packed, rhs, QOut::I32(&mut q32), n, 1, &epi);
        assert!(q32.iter().enumerate().all(|(i, &v)| v == 3 * (i / n) as i32 - 15), "{kernel:?} i32");
    }
    assert!(differ > 0, "the real-bias rule gave the same bytes");
}

/// The probe that admits the wasm byte-layout kernel says exactly whether that kernel is
/// exact on full-range operands in this engine (s8 weights at both ends, u8 activations at
/// 255: the sums a saturating or signed lowering gets wrong). Where it is (Chromium on an
/// AVX-VNNI CPU), `all_available` lists the kernel and every test above runs it; Node 20's
/// lowering saturates (and clobbers a register under pressure), so the kernel stays unused
/// there. tools/wasi-run-chromium.mjs runs these tests in Chromium.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
#[test]
fn the_relaxed_probe_predicts_the_byte_kernel_on_full_range_operands() {
    let (m, n, k) = (4, 8, 64);
    let a: Vec<u8> = (0..m * k).map(|i| if i % 3 == 0 { 0x7f } else { 0x80 }).collect();
    let b = vec![255u8; k * n];
    let want = qgemm_reference_i32(m, n, k, Q8::I8(as_i8(&a)), k, &[0], Q8::U8(&b), n, 0);
    let kernel = crate::wasm32::qgemm::KERNEL_RELAXED_U8S8;
    let packed = PackedQA::new(kernel, Q8::I8(as_i8(&a)), m, k, k, 1, &[0]);
    let mut got = vec![0i32; m * n];
    let rhs = QRhs { data: Q8::U8(&b), zero: 0, k_stride: n, n_stride: 1 };
    qgemm(m, n, k, &packed, rhs, QOut::I32(&mut got), n, 1, &QEpilogue::default());
    let exact = crate::wasm32::qgemm::relaxed_dot_is_exact_u8s8();
    assert_eq!(got == want, exact);
    assert_eq!(QKernel::all_available().iter().any(|k| k.name == kernel.name), exact);
    println!("relaxed dot exact for u8 x s8 here: {exact}");
}
