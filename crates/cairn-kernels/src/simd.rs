//! A minimal f32 vector abstraction so that one generic kernel body (depthwise
//! rows, elementwise loops) compiles to AVX2, wasm simd128, or scalar code.
//! Each implementation's methods are `#[inline(always)]`; the generic kernel is
//! instantiated inside a function compiled for the ISA (`#[target_feature]` on
//! x86_64, the build's target features on wasm), so intrinsics inline there.

pub(crate) trait F32Simd: Copy {
    const LANES: usize;
    type V: Copy;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c` (fused where the ISA has it).
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// The side of the square block [`F32Simd::transpose`] moves (divides `LANES`).
    const BLOCK: usize = Self::LANES;
    /// Output pixels the depthwise kernel accumulates at once (a multiple of `BLOCK`).
    const PIXELS: usize = Self::BLOCK;
    /// Transposes a `BLOCK x BLOCK` block: row `i` of `src` (at `src + i * lds`) becomes
    /// column `i` of `dst` (rows at `dst + j * ldd`). Turns channel planes into
    /// channel-interleaved pixels and back.
    unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize);
}

/// AVX-512F: sixteen lanes; transposes in 8x8 blocks with the AVX2 shuffles.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::F32Simd;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    impl F32Simd for Avx512 {
        const LANES: usize = 16;
        const BLOCK: usize = 8;
        type V = __m512;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            _mm512_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: __m512, b: __m512) -> __m512 {
            _mm512_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
            super::avx2::Avx2::transpose(src, lds, dst, ldd)
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    impl super::F32Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        // max/min(x, bound) with x first: if x is NaN the result is the second operand
        // on x86, so callers clamp with the bound first to keep ONNX's NaN-propagation moot.
        #[inline(always)]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            _mm256_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: __m256, b: __m256) -> __m256 {
            _mm256_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * lds)));
            // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves.
            let t: [__m256; 8] = std::array::from_fn(|i| {
                let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_ps(a, b)
                } else {
                    _mm256_unpackhi_ps(a, b)
                }
            });
            let u = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            for j in 0..4 {
                _mm256_storeu_ps(dst.add(j * ldd), _mm256_permute2f128_ps::<0x20>(u[j], u[j + 4]));
                _mm256_storeu_ps(dst.add((j + 4) * ldd), _mm256_permute2f128_ps::<0x31>(u[j], u[j + 4]));
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub(crate) struct Simd128;

    impl super::F32Simd for Simd128 {
        const LANES: usize = 4;
        type V = v128;
        #[inline(always)]
        unsafe fn splat(x: f32) -> v128 {
            f32x4_splat(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> v128 {
            v128_load(p as *const v128)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: v128) {
            v128_store(p as *mut v128, v)
        }
        #[inline(always)]
        unsafe fn mul_add(a: v128, b: v128, c: v128) -> v128 {
            crate::wasm32::madd(a, b, c)
        }
        // pmax/pmin are the cheap x86-style forms (one instruction in V8).
        #[inline(always)]
        unsafe fn max(a: v128, b: v128) -> v128 {
            f32x4_pmax(a, b)
        }
        #[inline(always)]
        unsafe fn min(a: v128, b: v128) -> v128 {
            f32x4_pmin(a, b)
        }
        #[inline(always)]
        unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
            let r: [v128; 4] = std::array::from_fn(|i| v128_load(src.add(i * lds) as *const v128));
            let t0 = i32x4_shuffle::<0, 4, 1, 5>(r[0], r[1]);
            let t1 = i32x4_shuffle::<2, 6, 3, 7>(r[0], r[1]);
            let t2 = i32x4_shuffle::<0, 4, 1, 5>(r[2], r[3]);
            let t3 = i32x4_shuffle::<2, 6, 3, 7>(r[2], r[3]);
            v128_store(dst as *mut v128, i32x4_shuffle::<0, 1, 4, 5>(t0, t2));
            v128_store(dst.add(ldd) as *mut v128, i32x4_shuffle::<2, 3, 6, 7>(t0, t2));
            v128_store(dst.add(2 * ldd) as *mut v128, i32x4_shuffle::<0, 1, 4, 5>(t1, t3));
            v128_store(dst.add(3 * ldd) as *mut v128, i32x4_shuffle::<2, 3, 6, 7>(t1, t3));
        }
    }
}

/// Portable four-lane arrays: LLVM vectorizes them where the target allows.
#[derive(Clone, Copy)]
pub(crate) struct Scalar4;

impl F32Simd for Scalar4 {
    const LANES: usize = 4;
    type V = [f32; 4];
    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 4] {
        [x; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 4] {
        std::ptr::read_unaligned(p as *const [f32; 4])
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 4]) {
        std::ptr::write_unaligned(p as *mut [f32; 4], v)
    }
    #[inline(always)]
    unsafe fn mul_add(a: [f32; 4], b: [f32; 4], c: [f32; 4]) -> [f32; 4] {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn max(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn min(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        std::array::from_fn(|i| if a[i] < b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn transpose(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
        let r: [[f32; 4]; 4] = std::array::from_fn(|i| Self::load(src.add(i * lds)));
        #[allow(clippy::needless_range_loop)] // j picks a column of r and a row of dst
        for j in 0..4 {
            Self::store(dst.add(j * ldd), std::array::from_fn(|i| r[i][j]));
        }
    }
}
