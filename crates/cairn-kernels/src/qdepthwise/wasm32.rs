//! simd128 taps: pairs of bytes widened by `v128.load8x8_u` and multiplied by a pair of
//! i16 weights with `i32x4.dot_i16x8_s` (one `pmaddwd` in V8 on x86), 4 outputs
//! (8 multiply-adds) per instruction. Node 20 has no relaxed SIMD, so no byte dot.

use super::tuples::{channels, Job, QConsts, Scratch, Taps};
use core::arch::wasm32::*;

#[derive(Clone, Copy)]
pub(super) struct Simd128Pairs;

impl Taps for Simd128Pairs {
    const L: usize = 4;
    const T: usize = 2;
    const STEPS: usize = 2;
    type A = v128;
    type W = v128;
    type X = v128;
    type Q = ([v128; 4], v128, bool, bool);

    #[inline(always)]
    unsafe fn splat_w(bits: i32) -> v128 {
        i32x4_splat(bits)
    }
    #[inline(always)]
    unsafe fn splat(v: i32) -> v128 {
        i32x4_splat(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> v128 {
        u16x8_load_extend_u8x8(p)
    }
    #[inline(always)]
    unsafe fn madd(acc: v128, x: v128, w: v128) -> v128 {
        i32x4_add(acc, i32x4_dot_i16x8(x, w))
    }
    #[inline(always)]
    unsafe fn q_consts(c: &QConsts) -> Self::Q {
        ([f32x4_splat(c.si), f32x4_splat(c.bi), f32x4_splat(c.qlo), f32x4_splat(c.qhi)], i32x4_splat(c.zero_bits), c.signed, c.clamp)
    }
    #[inline(always)]
    unsafe fn store_q8<const NV: usize>(
        acc: &[[v128; NV]; 2],
        steps: usize,
        interleaved: bool,
        (q, zero_bits, signed, clamp): &Self::Q,
        out: *mut u8,
    ) {
        assert!(NV == 2, "simd128 pairs store two accumulators per step");
        let r = |s: usize, v: usize| round(acc[s][v], q, *zero_bits, *clamp);
        if steps == 1 {
            let (r0, r1) = (r(0, 0), r(0, 1));
            let (a, b) = if interleaved { (i32x4_shuffle::<0, 4, 1, 5>(r0, r1), i32x4_shuffle::<2, 6, 3, 7>(r0, r1)) } else { (r0, r1) };
            let h = i16x8_narrow_i32x4(a, b);
            let bytes = if *signed { i8x16_narrow_i16x8(h, h) } else { u8x16_narrow_i16x8(h, h) };
            return v128_store64_lane::<0>(bytes, out as *mut u64);
        }
        // Two steps of 8 outputs: with the clamp (or the saturation, see `round`) the
        // narrows give the bytes; interleaved lanes hold outputs 0 2 4 6 | 1 3 5 7.
        let (h0, h1) = (i16x8_narrow_i32x4(r(0, 0), r(0, 1)), i16x8_narrow_i32x4(r(1, 0), r(1, 1)));
        let b = if *signed { i8x16_narrow_i16x8(h0, h1) } else { u8x16_narrow_i16x8(h0, h1) };
        let b = if interleaved { i8x16_shuffle::<0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15>(b, b) } else { b };
        v128_store(out as *mut v128, b);
    }
    #[inline(always)]
    unsafe fn store_i32(a: v128, out: *mut i32) {
        v128_store(out as *mut v128, a)
    }
}

/// `round_half_even(clamp(acc * si + bi, qlo, qhi)) + zero` as i32 lanes (`qgemm::rule`; no
/// fused multiply-add, as in the scalar epilogue).
#[inline(always)]
unsafe fn round(acc: v128, q: &[v128; 4], zero_bits: v128, clamp: bool) -> v128 {
    let mut v = f32x4_add(f32x4_mul(f32x4_convert_i32x4(acc), q[0]), q[1]);
    // pmax/pmin are single instructions in V8 (the clamp bounds are never NaN). Without
    // the clamp, the narrows saturate to the same bounds (rounding is monotonic).
    if clamp {
        v = f32x4_pmin(f32x4_pmax(v, q[2]), q[3]);
    }
    crate::wasm32::qgemm::round_plus_zero(v, zero_bits)
}

/// The simd128 task body.
pub(super) unsafe fn channels_simd128(job: &Job, chans: std::ops::Range<usize>, s: &mut Scratch) {
    channels::<Simd128Pairs>(job, chans, s)
}
