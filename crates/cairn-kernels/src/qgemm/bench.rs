//! Timing of the int8 kernels against the f32 ones on MobileNetV2-1.0's layer shapes
//! (224x224 input), one thread. Ignored by default; run natively with
//! `cargo test --release -p cairn-kernels qbench -- --ignored --nocapture`, or as wasm
//! in Node like the other kernel tests (scripts/test.sh step 2) with the same filter.

use super::*;
use crate::depthwise::{depthwise_conv2d, ConvGeometry};
use crate::qdepthwise::qdepthwise_conv2d;
use crate::testutil::Rng;
use crate::{gemm, Epilogue, LhsOperand, MatRef, PackedA, RhsOperand, Transpose};
use std::time::Instant;

/// The fastest of `reps` runs in ms (the machine is shared: the minimum is what repeats).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps * 3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore]
fn qbench_mobilenetv2_shapes() {
    let mut rng = Rng(1);
    let kernel = QKernel::current();
    let isa = crate::Isa::current();
    println!("kernels: {} / f32 {}", kernel.name, isa.name());
    let (mut tf, mut tq) = (0.0, 0.0);
    for &(m, k, n) in &[
        (32, 27, 12544),
        (96, 16, 12544),
        (24, 96, 3136),
        (144, 24, 3136),
        (32, 144, 784),
        (192, 32, 784),
        (64, 192, 196),
        (384, 64, 196),
        (160, 576, 49),
        (960, 160, 49),
        (1280, 320, 49),
        (1000, 1280, 1),
    ] {
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let mut c = vec![0f32; m * n];
        let pa = PackedA::new(isa, MatRef::new(&a, k, Transpose::No), m, k, 1.0);
        let f = time(10, || {
            gemm(
                m,
                n,
                k,
                LhsOperand::Packed(&pa),
                RhsOperand::Strided(MatRef::new(&b, n, Transpose::No)),
                &mut c,
                n,
                false,
                &Epilogue::default(),
            )
        });
        let qa: Vec<u8> = (0..m * k).map(|_| rng.next_u32() as u8).collect();
        let qb: Vec<u8> = (0..k * n).map(|_| rng.next_u32() as u8).collect();
        let mut qc = vec![0u8; m * n];
        let scale = vec![1e-4; m];
        let epi = QEpilogue {
            scale: &scale,
            bias: None,
            acc_bias: None,
            activation: crate::Activation::Clip { min: 0.0, max: 6.0 },
            out_scale: 0.05,
            out_zero: 0,
        };
        // Symmetric weights (the byte layout where there is one), then the pairs fallback.
        let mut timings = String::new();
        let mut q = 0.0;
        for kern in std::iter::once(kernel).chain(kernel.fallback.copied()) {
            let pq = PackedQA::new(kern, Q8::U8(&qa), m, k, k, 1, &[128]);
            let t = time(10, || {
                qgemm(m, n, k, &pq, QRhs { data: Q8::U8(&qb), zero: 3, k_stride: n, n_stride: 1 }, QOut::U8(&mut qc), n, 1, &epi)
            });
            if timings.is_empty() {
                q = t;
            }
            timings += &format!("  {} {t:7.3} ms", pq.kernel().name);
        }
        println!("gemm {m:>5}x{k:>4}x{n:>6}: f32 {f:7.3} ms  int8 {q:7.3} ms  ratio {:.2} ({timings})", q / f);
        tf += f;
        tq += q;
    }
    for &(c, hw, s) in &[(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (384, 14, 1), (576, 14, 2), (960, 7, 1)] {
        let o = (hw + 2 - 3) / s + 1;
        let g = ConvGeometry { ih: hw, iw: hw, kh: 3, kw: 3, sh: s, sw: s, dh: 1, dw: 1, pt: 1, pl: 1, oh: o, ow: o };
        let x = rng.vec(c * hw * hw);
        let w = rng.vec(c * 9);
        let mut y = vec![0f32; c * o * o];
        let f = time(10, || depthwise_conv2d(&g, c, &x, &w, None, crate::Activation::Clip { min: 0.0, max: 6.0 }, &mut y));
        let qx: Vec<u8> = (0..c * hw * hw).map(|_| rng.next_u32() as u8).collect();
        let qw: Vec<i16> = (0..c * 9).map(|_| (rng.next_u32() % 255) as i16 - 127).collect();
        let mut qy = vec![0u8; c * o * o];
        let scale = vec![1e-4; c];
        let epi = QEpilogue {
            scale: &scale,
            bias: None,
            acc_bias: None,
            activation: crate::Activation::Clip { min: 0.0, max: 6.0 },
            out_scale: 0.05,
            out_zero: 0,
        };
        let q = time(10, || qdepthwise_conv2d(&g, c, Q8::U8(&qx), 7, &qw, &epi, QOut::U8(&mut qy)));
        let mut fy = vec![0f32; c * o * o];
        let qf = time(10, || qdepthwise_conv2d(&g, c, Q8::U8(&qx), 7, &qw, &epi, QOut::F32(&mut fy)));
        let mut iy = vec![0i32; c * o * o];
        let qi = time(10, || qdepthwise_conv2d(&g, c, Q8::U8(&qx), 7, &qw, &epi, QOut::I32(&mut iy)));
        println!(
            "dw   {c:>4} x {hw:>3}^2 s{s}: f32 {f:7.3} ms  int8 {q:7.3} ms  ratio {:.2} (int8 in, f32 out {qf:.3} ms, i32 out {qi:.3} ms)",
            q / f
        );
        tf += f;
        tq += q;
    }
    println!("total: f32 {tf:.2} ms, int8 {tq:.2} ms, ratio {:.2}", tq / tf);
}

/// The dynamically quantized products of a MiniLM-class encoder at 128 tokens, as cairn-core
/// runs them: `Cᵀ = Wᵀ · Xᵀ`, the weights (s8, symmetric) prepacked as A, the u8 activations
/// read k-contiguous as B (each token's K values adjacent), f32 output stored by columns.
/// Ignored by default: `cargo test --release -p cairn-kernels qbench_encoder -- --ignored --nocapture`.
#[test]
#[ignore]
fn qbench_encoder_shapes() {
    let mut rng = Rng(2);
    let kernel = QKernel::current();
    println!("kernel: {} (fallback {:?})", kernel.name, kernel.fallback.map(|f| f.name));
    // Full-range s8 weights, and 7-bit ones (`cairn optimize --weight-bits 7`), which a
    // `vpmaddubsw` byte kernel takes where full-range ones fall back to the pairs.
    for (&(m, k, n), bits) in [(384, 384, 128), (1536, 384, 128), (384, 1536, 128)].iter().flat_map(|s| [(s, 8), (s, 7)]) {
        let w: Vec<i8> = (0..m * k).map(|_| if bits == 8 { rng.next_u32() as i8 } else { (rng.below(129) as i32 - 64) as i8 }).collect();
        let x: Vec<u8> = (0..k * n).map(|_| rng.next_u32() as u8).collect();
        let pa = PackedQA::new(kernel, Q8::I8(&w), m, k, k, 1, &[0]);
        let scale = vec![1e-4; m];
        let bias = vec![0.5; m];
        let epi = QEpilogue { scale: &scale, bias: Some(&bias), ..QEpilogue::default() };
        let mut c = vec![0f32; m * n];
        let rhs = QRhs { data: Q8::U8(&x), zero: 117, k_stride: 1, n_stride: k };
        let t = time(10, || qgemm(m, n, k, &pa, rhs, QOut::F32(&mut c), 1, m, &epi));
        println!(
            "{m:>5} x {k:>5} x {n:>4} {bits}-bit weights  {t:.3} ms  {:.1} GMAC/s  ({})",
            (m * k * n) as f64 / t / 1e6,
            pa.kernel().name
        );
    }
}
