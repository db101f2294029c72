//! wasm32 kernels using the fixed-width SIMD proposal (`simd128`). Compiled only
//! into the SIMD build of the module; browsers without SIMD load the scalar build.
//! A third build adds `relaxed-simd` (Chromium 114+, not Node 20 without a flag): the
//! same kernels with a fused multiply-add, which halves the arithmetic of the inner
//! loops; the page picks it when the engine validates it.

pub(crate) mod gemm;
pub(crate) mod qgemm;

use core::arch::wasm32::*;

/// `a * b + c`: one relaxed (possibly fused) multiply-add in the relaxed build.
#[inline(always)]
pub(crate) fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    return f32x4_relaxed_madd(a, b, c);
    #[cfg(not(target_feature = "relaxed-simd"))]
    return f32x4_add(f32x4_mul(a, b), c);
}

/// The 4x4 transpose of 32-bit lanes: lane `j` of row `i` becomes lane `i` of row `j`.
#[inline(always)]
pub(crate) fn transpose4(r: [v128; 4]) -> [v128; 4] {
    let (t0, t1) = (i32x4_shuffle::<0, 4, 1, 5>(r[0], r[1]), i32x4_shuffle::<0, 4, 1, 5>(r[2], r[3]));
    let (t2, t3) = (i32x4_shuffle::<2, 6, 3, 7>(r[0], r[1]), i32x4_shuffle::<2, 6, 3, 7>(r[2], r[3]));
    [
        i32x4_shuffle::<0, 1, 4, 5>(t0, t1),
        i32x4_shuffle::<2, 3, 6, 7>(t0, t1),
        i32x4_shuffle::<0, 1, 4, 5>(t2, t3),
        i32x4_shuffle::<2, 3, 6, 7>(t2, t3),
    ]
}
