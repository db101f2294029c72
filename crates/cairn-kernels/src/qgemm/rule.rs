//! The one requantization rule of every 8-bit kernel (GEMM and depthwise, every ISA):
//! XNNPACK's "fp32" requantization, which the TFLite interpreter runs by default.
//!
//! For an i32 accumulator `acc` of output row (channel) `r`:
//! ```text
//! si  = scale[r] / out_scale            (f32 division, XNNPACK's input_scale * kernel_scale / output_scale)
//! f   = f32(acc) * si + bi[r]           (bi = 0 when the bias is an integer in `acc`)
//! f   = clamp(f, qmin - zero, qmax - zero)
//! q   = round_half_even(f) + zero       (the zero point added as an integer)
//! ```
//! `qmin`/`qmax` are the 8-bit range narrowed by a clamping activation, quantized as
//! XNNPACK does (`round(a / out_scale + zero)`, clamped to the type's range).
//!
//! Why this form: adding the zero point before rounding (`round(f + zero)`, Cairn's rule
//! before) rounds `f + zero` in f32, whose spacing near 128..255 is 2^-16: a value within
//! ~8e-6 of a half lands exactly on the half and goes to the even neighbour, while XNNPACK
//! rounds `f` itself. One such step anywhere in a network propagates (docs/adr/0032).
//!
//! Kernels round with the magic-number trick: `f + 1.5 * 2^23` (|f| < 2^22) rounds half to
//! even in the default FP mode and leaves the integer in the low mantissa bits, so
//! `bits(f + MAGIC) - (bits(MAGIC) - zero)` is `round_half_even(f) + zero` in one integer
//! subtraction: [`magic_minus_zero`] is that constant.

/// 1.5 * 2^23.
pub const MAGIC: f32 = 12_582_912.0;

/// The per-row multiplier: `scale / out_scale` in f32 (a division, as XNNPACK computes it;
/// `scale * (1 / out_scale)` differs in the last bit for some scales).
#[inline(always)]
pub fn row_scale(scale: f32, out_scale: f32) -> f32 {
    scale / out_scale
}

/// A real-valued bias (models whose bias is not an integer in accumulator units) in
/// output steps, without the zero point: `bias / out_scale`.
#[inline(always)]
pub fn row_bias(bias: f32, out_scale: f32) -> f32 {
    bias / out_scale
}

/// The quantized bounds of a clamping activation `[amin, amax]` (real units, infinite for
/// none) in an 8-bit type `[lo, hi]`: `round(a / out_scale + zero)` clamped to the type, as
/// XNNPACK quantizes a fused activation's range.
pub fn bounds(amin: f32, amax: f32, out_scale: f32, zero: i32, lo: i32, hi: i32) -> (i32, i32) {
    let q = |a: f32, default: i32| {
        let v = a / out_scale + zero as f32;
        // NaN (a broken scale) keeps the type's bound.
        if v.is_nan() {
            default
        } else {
            v.clamp(lo as f32, hi as f32).round_ties_even() as i32
        }
    };
    let (qlo, qhi) = (q(amin, lo), q(amax, hi));
    // An empty range (amin > amax) collapses to its lower end, as a clamp would.
    (qlo, qhi.max(qlo))
}

/// The clamp the kernels apply before rounding: the quantized bounds minus the zero point.
#[inline(always)]
pub fn shifted_bounds((qlo, qhi): (i32, i32), zero: i32) -> (f32, f32) {
    ((qlo - zero) as f32, (qhi - zero) as f32)
}

/// What a kernel subtracts from the bits of `f + MAGIC` to get `round_half_even(f) + zero`.
#[inline(always)]
pub fn magic_minus_zero(zero: i32) -> i32 {
    (MAGIC.to_bits() as i32).wrapping_sub(zero)
}

/// The rule for one accumulator (`acc` as f32: an i32 converted, or the exact integer of a
/// depthwise f32 accumulator), with `(flo, fhi)` from [`shifted_bounds`].
#[inline(always)]
pub fn requantize(acc: f32, si: f32, bi: f32, (flo, fhi): (f32, f32), zero: i32) -> i32 {
    let f = (acc * si + bi).clamp(flo, fhi);
    ((f + MAGIC).to_bits() as i32).wrapping_sub(magic_minus_zero(zero))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zero_point_is_added_after_rounding() {
        // 2.5000002 rounds to 3; 130.5000002 is not an f32 (it becomes 130.5, then 130).
        let f = 2.500_000_2f32;
        assert!(f > 2.5);
        assert_eq!(requantize(f, 1.0, 0.0, (-300.0, 300.0), 128), 131);
        assert_eq!(super::super::round_half_even(f + 128.0), 130.0, "the old rule rounds the sum");
        // Ties go to even before the zero point: 2.5 -> 2, -0.5 -> 0, 3.5 -> 4.
        assert_eq!(requantize(5.0, 0.5, 0.0, (-300.0, 300.0), 128), 130);
        assert_eq!(requantize(-1.0, 0.5, 0.0, (-300.0, 300.0), 7), 7);
        assert_eq!(requantize(7.0, 0.5, 0.0, (-300.0, 300.0), -3), 1);
        // The clamp is in the shifted domain.
        assert_eq!(requantize(1e6, 1.0, 0.0, shifted_bounds((0, 255), 200), 200), 255);
        assert_eq!(requantize(-1e6, 1.0, 0.0, shifted_bounds((-128, 127), -5), -5), -128);
    }

    #[test]
    fn activation_bounds_are_quantized_like_xnnpack() {
        // ReLU6 at scale 6/255 around zero point -128: the whole int8 range.
        assert_eq!(bounds(0.0, 6.0, 6.0 / 255.0, -128, -128, 127), (-128, 127));
        // ReLU with zero point 10: from the zero point on.
        assert_eq!(bounds(0.0, f32::INFINITY, 0.1, 10, 0, 255), (10, 255));
        assert_eq!(bounds(f32::NEG_INFINITY, f32::INFINITY, 0.1, 10, 0, 255), (0, 255));
        // 0.25 / 0.1 + 10 = 12.5 -> 12 (half to even).
        assert_eq!(bounds(0.25, 1.0, 0.1, 10, 0, 255).0, 12);
        assert_eq!(bounds(f32::NAN, f32::NAN, 0.1, 10, 0, 255), (0, 255));
    }
}
