//! Test helpers: XNNPACK's fp32 requantization reimplemented independently of the kernels
//! (integer accumulation in i64 wrapped to i32, the f32 product taken exactly in f64 and
//! rounded once to f32, std's `round_ties_even`), near-tie cases built on purpose, and
//! Cairn's previous rule (zero point added before rounding, real bias) to show that the
//! cases tell the two apart.

use crate::Activation;

/// XNNPACK's output bounds for a clamping activation: `lrintf(clamp(a / scale + zero))`.
pub(crate) fn xnn_bounds(act: Activation, out_scale: f32, zero: i32, signed: bool) -> (i32, i32) {
    let (lo, hi) = if signed { (-128.0f32, 127.0f32) } else { (0.0, 255.0) };
    let (amin, amax) = match act {
        Activation::Identity => (f32::NEG_INFINITY, f32::INFINITY),
        Activation::Relu => (0.0, f32::INFINITY),
        Activation::Clip { min, max } => (min, max),
        other => panic!("not a clamping activation: {other:?}"),
    };
    let q = |a: f32| (a / out_scale + zero as f32).max(lo).min(hi).round_ties_even() as i32;
    (q(amin), q(amax))
}

/// One output: `round_half_even(clamp(f32(acc + bias) * (scale / out_scale))) + zero`.
pub(crate) fn xnn_requantize(acc: i32, bias: i32, scale: f32, out_scale: f32, zero: i32, (qmin, qmax): (i32, i32)) -> i32 {
    let total = (acc as i64 + bias as i64) as i32; // int32 lanes wrap
    let s = scale / out_scale;
    let f = ((total as f32) as f64 * s as f64) as f32; // one f32 rounding, as `mulps`
    let f = (f as f64).clamp((qmin - zero) as f64, (qmax - zero) as f64);
    (f.round_ties_even() as i64 + zero as i64) as i32
}

/// Cairn's rule before XNNPACK's: real bias, `round(acc * (s * (1 / out)) + (bias / out + zero))`
/// with non-integer activation bounds (only to count the cases where the two differ).
pub(crate) fn old_requantize(acc: i32, bias: i32, scale: f32, out_scale: f32, zero: i32, act: Activation, signed: bool) -> i32 {
    let inv = 1.0 / out_scale;
    let (lo, hi) = if signed { (-128.0f32, 127.0f32) } else { (0.0, 255.0) };
    let (amin, amax) = match act {
        Activation::Relu => (0.0, f32::INFINITY),
        Activation::Clip { min, max } => (min, max),
        _ => (f32::NEG_INFINITY, f32::INFINITY),
    };
    let z = zero as f32;
    let (qlo, qhi) = (((amin * inv).max(-1e9) + z).max(lo), ((amax * inv).min(1e9) + z).min(hi));
    let bi = bias as f32 * scale * inv + z;
    ((acc as f32 * (scale * inv) + bi).clamp(qlo, qhi) + 12_582_912.0 - 12_582_912.0) as i32
}

/// A scale `s` (f32, `s = x_scale * w_scale` in a model) for which `f32(t) * (s / out_scale)`
/// lies within 4e-6 of `target` (a value `n + 0.5`) but is not equal to it: a near tie that
/// rounds one way on its own and may round the other way once a zero point >= 128 is added
/// in f32 (spacing 2^-16 there).
pub(crate) fn near_tie_scale(t: i32, target: f64, out_scale: f32) -> f32 {
    let s0 = (target * out_scale as f64 / t as f64) as f32;
    for j in 0..400i32 {
        let step = if j % 2 == 0 { j / 2 } else { -(j / 2) - 1 };
        let s = f32::from_bits((s0.to_bits() as i32 + step) as u32);
        let f = ((t as f32) as f64 * (s / out_scale) as f64) as f32 as f64;
        if f != target && (f - target).abs() <= 4e-6 {
            return s;
        }
    }
    panic!("no near tie for t = {t}, target {target}");
}
