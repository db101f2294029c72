use super::*;
use crate::qgemm::reference::{real_reference, requantize_reference};
use crate::testutil::Rng;
use crate::Activation;

/// A random geometry (odd sizes, tails, paddings up to the kernel size), or None when
/// the window does not fit.
fn geometry(rng: &mut Rng, case: usize) -> Option<ConvGeometry> {
    let (kh, kw) = [(3, 3), (5, 5), (3, 3), (1, 1), (3, 1), (1, 5), (7, 7), (9, 9), (17, 17)][case % 9];
    let (sh, sw) = [(1, 1), (2, 2), (1, 2), (2, 1), (3, 3), (1, 1), (2, 2)][rng.below(7)];
    let (dh, dw) = match case % 11 {
        0 => (2, 2),
        5 => (2, 1),
        _ => (1, 1),
    };
    // Every fourth case is wide (the 56- and 112-wide layers' path lengths).
    let (ih, iw) = (1 + rng.below(20), 1 + if case.is_multiple_of(4) { 40 + rng.below(80) } else { rng.below(37) });
    let (pt, pl) = (rng.below(kh), rng.below(kw));
    let (pb, pr) = (rng.below(kh), rng.below(kw));
    let (eh, ew) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
    if ih + pt + pb < eh || iw + pl + pr < ew {
        return None;
    }
    let (oh, ow) = ((ih + pt + pb - eh) / sh + 1, (iw + pl + pr - ew) / sw + 1);
    Some(ConvGeometry { ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow })
}

/// Weights with their zero point subtracted: mostly symmetric int8, sometimes the
/// full range of u8 weights with a zero point (the portable path's case).
fn weights(rng: &mut Rng, n: usize, case: usize) -> Vec<i16> {
    match case % 5 {
        4 => (0..n).map(|_| (rng.next_u32() % 511) as i16 - 255).collect(),
        3 => (0..n).map(|_| if rng.below(4) == 0 { -128 } else { 127 }).collect(),
        _ => (0..n).map(|_| (rng.next_u32() % 255) as i16 - 127).collect(),
    }
}

#[test]
fn every_isa_matches_reference_accumulators() {
    let mut rng = Rng(11);
    let mut ran = 0;
    for case in 0..400 {
        let Some(g) = geometry(&mut rng, case) else { continue };
        let channels = 1 + rng.below(37);
        let w = weights(&mut rng, channels * g.kh * g.kw, case);
        let (xu, xi): (Vec<u8>, Vec<i8>) = (0..channels * g.ih * g.iw).map(|_| rng.next_u32() as u8).map(|v| (v, v as i8)).unzip();
        let (zu, zi) = (rng.below(256) as i32, rng.below(256) as i32 - 128);
        for (x, zero) in [(Q8::U8(&xu), zu), (Q8::I8(&xi), zi)] {
            let want = qdepthwise_reference_i32(&g, channels, x, zero, &w);
            for isa in Isa::all_available() {
                let mut got = vec![i32::MIN; want.len()];
                qdepthwise_conv2d_on(isa, &g, channels, x, zero, &w, &QEpilogue::default(), QOut::I32(&mut got));
                assert_eq!(got, want, "case {case}: {g:?} x{channels} {isa:?} zero {zero}");
            }
        }
        ran += 1;
    }
    assert!(ran > 300, "only {ran} geometries fitted");
}

#[test]
fn every_isa_requantizes_to_the_same_bits() {
    let mut rng = Rng(23);
    for case in 0..300 {
        let Some(g) = geometry(&mut rng, case) else { continue };
        let channels = 1 + rng.below(37);
        let w = weights(&mut rng, channels * g.kh * g.kw, case);
        let xs: Vec<u8> = (0..channels * g.ih * g.iw).map(|_| rng.next_u32() as u8).collect();
        let xi: Vec<i8> = xs.iter().map(|&v| v as i8).collect();
        let zero = rng.below(256) as i32;
        let scale: Vec<f32> = (0..channels).map(|_| 1e-4 + rng.f32().abs() * 1e-3).collect();
        let bias: Vec<f32> = (0..channels).map(|_| rng.f32()).collect();
        let activation = [Activation::Clip { min: 0.0, max: 6.0 }, Activation::Identity, Activation::Relu, Activation::Sigmoid][case % 4];
        let out_zero = if case % 3 == 0 { 0 } else { rng.below(200) as i32 };
        let epi = QEpilogue { scale: &scale, bias: Some(&bias), acc_bias: None, activation, out_scale: 6.0 / 255.0, out_zero };
        let x = if case % 2 == 0 { Q8::U8(&xs) } else { Q8::I8(&xi) };
        let zero = if case % 2 == 0 { zero } else { zero - 128 };
        let n = channels * g.oh * g.ow;
        // The portable path is the reference for the bits (its epilogue is qgemm's).
        let (mut want_u8, mut want_i8, mut want_f32) = (vec![0u8; n], vec![0i8; n], vec![0f32; n]);
        qdepthwise_conv2d_on(Isa::Generic, &g, channels, x, zero, &w, &epi, QOut::U8(&mut want_u8));
        let epi_i8 = QEpilogue { out_zero: out_zero - 128, ..epi };
        qdepthwise_conv2d_on(Isa::Generic, &g, channels, x, zero, &w, &epi_i8, QOut::I8(&mut want_i8));
        qdepthwise_conv2d_on(Isa::Generic, &g, channels, x, zero, &w, &epi, QOut::F32(&mut want_f32));
        for isa in Isa::all_available() {
            let (mut got_u8, mut got_i8, mut got_f32) = (vec![7u8; n], vec![7i8; n], vec![f32::NAN; n]);
            qdepthwise_conv2d_on(isa, &g, channels, x, zero, &w, &epi, QOut::U8(&mut got_u8));
            qdepthwise_conv2d_on(isa, &g, channels, x, zero, &w, &epi_i8, QOut::I8(&mut got_i8));
            qdepthwise_conv2d_on(isa, &g, channels, x, zero, &w, &epi, QOut::F32(&mut got_f32));
            let what = format!("case {case}: {g:?} x{channels} {isa:?} {activation:?}");
            assert_eq!(got_u8, want_u8, "u8 {what}");
            assert_eq!(got_i8, want_i8, "i8 {what}");
            assert!(got_f32.iter().zip(&want_f32).all(|(a, b)| a.to_bits() == b.to_bits()), "f32 {what}");
        }
        // And the portable path within one step of the f64 epilogue.
        let acc = qdepthwise_reference_i32(&g, channels, x, zero, &w);
        let osz = g.oh * g.ow;
        for ch in 0..channels {
            let one = QEpilogue { scale: &scale[ch..ch + 1], bias: Some(&bias[ch..ch + 1]), ..epi };
            let real = real_reference(&acc[ch * osz..][..osz], 1, osz, &one);
            let wq = requantize_reference(&real, epi.out_scale, out_zero, 0, 255);
            for (i, (&a, &b)) in want_u8[ch * osz..][..osz].iter().zip(&wq).enumerate() {
                assert!((a as i32 - b).abs() <= 1, "case {case} channel {ch} element {i}: got {a}, want {b}");
            }
        }
    }
}

/// MobileNetV2's depthwise layers (ReLU6, u8 in and out) on every ISA.
#[test]
fn mobilenet_layers_match_on_every_isa() {
    let mut rng = Rng(3);
    for (channels, side, s) in [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (576, 14, 2), (960, 7, 1)] {
        let o = (side + 2 - 3) / s + 1;
        let g = ConvGeometry { ih: side, iw: side, kh: 3, kw: 3, sh: s, sw: s, dh: 1, dw: 1, pt: 1, pl: 1, oh: o, ow: o };
        let x: Vec<u8> = (0..channels * side * side).map(|_| rng.next_u32() as u8).collect();
        let w: Vec<i16> = (0..channels * 9).map(|_| (rng.next_u32() % 255) as i16 - 127).collect();
        let scale: Vec<f32> = (0..channels).map(|_| 1e-4 + rng.f32().abs() * 5e-4).collect();
        let bias: Vec<f32> = (0..channels).map(|_| rng.f32()).collect();
        let epi = QEpilogue {
            scale: &scale,
            bias: Some(&bias),
            acc_bias: None,
            activation: Activation::Clip { min: 0.0, max: 6.0 },
            out_scale: 6.0 / 255.0,
            out_zero: 0,
        };
        let mut want = vec![0u8; channels * o * o];
        qdepthwise_conv2d_on(Isa::Generic, &g, channels, Q8::U8(&x), 3, &w, &epi, QOut::U8(&mut want));
        for isa in Isa::all_available() {
            let mut got = vec![0u8; want.len()];
            qdepthwise_conv2d_on(isa, &g, channels, Q8::U8(&x), 3, &w, &epi, QOut::U8(&mut got));
            assert!(got == want, "{channels}x{side} stride {s} on {isa:?}");
        }
    }
}

/// XNNPACK's fp32 requantization, bit for bit, on every ISA and both paths (tap tuples:
/// 3x3 at strides 1 and 2; planes: dilated columns): an integer bias per channel in the
/// accumulator, `scale / out_scale`, the zero point added after rounding. Each channel's
/// plane is mostly one value (the padding is the zero point), so most inner outputs share
/// one accumulator, which its scale makes a near tie.
#[test]
fn every_isa_requantizes_like_xnnpack_on_near_ties() {
    use crate::qgemm::xnnpack_rule::{near_tie_scale, old_requantize, xnn_bounds, xnn_requantize};
    let mut rng = Rng(32);
    let (mut ties, mut flips) = (0, 0);
    for case in 0..24 {
        let (s, d) = [(1, 1), (2, 1), (1, 2)][case % 3];
        let (ih, iw) = (5 + rng.below(12), 5 + rng.below(30));
        let (eh, ew) = (3, 2 * d + 1);
        let (oh, ow) = ((ih + 2 - eh) / s + 1, (iw + 2 - ew) / s + 1);
        let g = ConvGeometry { ih, iw, kh: 3, kw: 3, sh: s, sw: s, dh: 1, dw: d, pt: 1, pl: 1, oh, ow };
        let channels = 1 + rng.below(40);
        let signed = case % 4 == 3;
        let activation = [Activation::Identity, Activation::Relu, Activation::Clip { min: 0.0, max: 6.0 }][case % 3];
        let z = if signed { -128 + rng.below(40) as i32 } else { 128 + rng.below(100) as i32 };
        let x_zero = 100 + rng.below(40) as i32;
        let w: Vec<i16> = (0..channels * 9).map(|_| rng.below(61) as i16 - 30).collect();
        let mut x = vec![0u8; channels * ih * iw];
        for ch in 0..channels {
            let v = (x_zero + 1 + rng.below(30) as i32) as u8;
            for p in &mut x[ch * ih * iw..][..ih * iw] {
                *p = if rng.below(8) == 0 { (x_zero + rng.below(21) as i32 - 10) as u8 } else { v };
            }
        }
        let acc = qdepthwise_reference_i32(&g, channels, Q8::U8(&x), x_zero, &w);
        let out_scale = 0.02 + rng.f32().abs() * 0.1;
        let bounds = xnn_bounds(activation, out_scale, z, signed);
        let osz = oh * ow;
        let (mut scale, mut bias) = (vec![0f32; channels], vec![0i32; channels]);
        // The most common accumulator of each channel is the one made a near tie.
        let mut common = vec![0i32; channels];
        for ch in 0..channels {
            let plane = &acc[ch * osz..][..osz];
            common[ch] = *plane.iter().max_by_key(|&&v| plane.iter().filter(|&&u| u == v).count()).unwrap();
            let t = 20_000 + rng.below(2_000_000) as i32;
            let neg = matches!(activation, Activation::Identity) && rng.below(2) == 0;
            scale[ch] = near_tie_scale(if neg { -t } else { t }, 1.5 + rng.below(20) as f64, out_scale);
            bias[ch] = if neg { -t } else { t } - common[ch];
        }
        let epi = QEpilogue { scale: &scale, bias: None, acc_bias: Some(&bias), activation, out_scale, out_zero: z };
        let want: Vec<i32> =
            (0..channels * osz).map(|i| xnn_requantize(acc[i], bias[i / osz], scale[i / osz], out_scale, z, bounds)).collect();
        for (i, &a) in acc.iter().enumerate() {
            if a == common[i / osz] {
                ties += 1;
                let ch = i / osz;
                flips += (old_requantize(a, bias[ch], scale[ch], out_scale, z, activation, signed) != want[i]) as usize;
            }
        }
        for isa in Isa::all_available() {
            let what = format!("case {case}: {g:?} x{channels} {isa:?} {activation:?} zero {z}");
            let got: Vec<i32> = if signed {
                let mut y = vec![0i8; want.len()];
                qdepthwise_conv2d_on(isa, &g, channels, Q8::U8(&x), x_zero, &w, &epi, QOut::I8(&mut y));
                y.iter().map(|&v| v as i32).collect()
            } else {
                let mut y = vec![0u8; want.len()];
                qdepthwise_conv2d_on(isa, &g, channels, Q8::U8(&x), x_zero, &w, &epi, QOut::U8(&mut y));
                y.iter().map(|&v| v as i32).collect()
            };
            if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
                panic!("{what}: output {i} is {}, XNNPACK's rule gives {}", got[i], want[i]);
            }
            // i32 output: the accumulator with its bias.
            let mut y32 = vec![0i32; want.len()];
            qdepthwise_conv2d_on(isa, &g, channels, Q8::U8(&x), x_zero, &w, &epi, QOut::I32(&mut y32));
            assert!(y32.iter().zip(&acc).enumerate().all(|(i, (&y, &a))| y == a + bias[i / osz]), "i32 {what}");
        }
    }
    assert!(flips * 10 > ties, "only {flips} of {ties} near ties differ from the old rule");
}
