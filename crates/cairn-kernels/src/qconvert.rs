//! The int8 glue loops between quantized kernels: `QuantizeLinear` and
//! `DequantizeLinear` per tensor, and the residual `QLinearAdd` of two u8 tensors.
//! Each is one pass over memory, written so that the portable loop and the SIMD one
//! give the same bytes: explicit simd128 on wasm, the portable loop compiled for AVX2
//! on x86_64 (LLVM vectorizes it 8-wide), plain Rust elsewhere.

use crate::qgemm::round_half_even;

/// 8-bit output range: `(lo, hi)` is `(0, 255)` for u8, `(-128, 127)` for i8 (stored as
/// its two's-complement bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q8Range {
    U8,
    I8,
}

impl Q8Range {
    fn bounds(self) -> (f32, f32) {
        match self {
            Q8Range::U8 => (0.0, 255.0),
            Q8Range::I8 => (-128.0, 127.0),
        }
    }
}

/// `out[i] = clamp(round_half_even(x[i] / scale) + zero)`; NaN maps to `zero`. Divides,
/// as ONNX does (a multiply by `1 / scale` rounds some ties the other way).
pub fn quantize(x: &[f32], scale: f32, zero: i32, range: Q8Range, out: &mut [u8]) {
    assert_eq!(x.len(), out.len(), "quantize: input and output lengths differ");
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let done = simd128::quantize(x, scale, zero, range, out);
        return quantize_portable(&x[done..], scale, zero, range, &mut out[done..]);
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected.
        return unsafe { quantize_avx2(x, scale, zero, range, out) };
    }
    #[allow(unreachable_code)]
    quantize_portable(x, scale, zero, range, out)
}

/// `(min(0, x), max(0, x))` over the finite values of `x`: the range DynamicQuantizeLinear
/// quantizes (non-finite values count as 0). Kept in eight lanes, so that the compares
/// vectorize without reassociating (`f32::min` is a libm call in wasm and does not).
pub fn finite_range(x: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected.
        return unsafe { finite_range_avx2(x) };
    }
    finite_range_portable(x)
}

#[inline(always)]
fn finite_range_portable(x: &[f32]) -> (f32, f32) {
    const LANES: usize = 8;
    let (mut lo, mut hi) = ([0f32; LANES], [0f32; LANES]);
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    // Widens lane `i`'s range to `v`; `abs < inf` is false for infinities and NaN: both count as 0.
    #[inline(always)]
    fn include(lo: &mut f32, hi: &mut f32, v: f32) {
        let v = if v.abs() < f32::INFINITY { v } else { 0.0 };
        *lo = if v < *lo { v } else { *lo };
        *hi = if v > *hi { v } else { *hi };
    }
    for c in chunks {
        for i in 0..LANES {
            include(&mut lo[i], &mut hi[i], c[i]);
        }
    }
    for (i, &v) in tail.iter().enumerate() {
        include(&mut lo[i], &mut hi[i], v);
    }
    (lo.iter().fold(0f32, |a, &b| a.min(b)), hi.iter().fold(0f32, |a, &b| a.max(b)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn finite_range_avx2(x: &[f32]) -> (f32, f32) {
    finite_range_portable(x)
}

/// `out[i] = (x[i] - zero) * scale`, `x` holding u8 or (two's-complement) i8 bytes.
pub fn dequantize(x: &[u8], range: Q8Range, zero: i32, scale: f32, out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "dequantize: input and output lengths differ");
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let done = simd128::dequantize(x, range, zero, scale, out);
        return dequantize_portable(&x[done..], range, zero, scale, &mut out[done..]);
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected.
        return unsafe { dequantize_avx2(x, range, zero, scale, out) };
    }
    #[allow(unreachable_code)]
    dequantize_portable(x, range, zero, scale, out)
}

/// The sum of two u8 tensors requantized to u8:
/// `out[i] = clamp(round_half_even(a[i] * ka + b[i] * kb + k0), 0, 255)`, where
/// `ka = sa / sc`, `kb = sb / sc`, `k0 = zc - za * ka - zb * kb` fold the scales and zero points.
pub fn add_u8(a: &[u8], b: &[u8], ka: f32, kb: f32, k0: f32, out: &mut [u8]) {
    assert!(a.len() == out.len() && b.len() == out.len(), "add_u8: lengths differ");
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let done = simd128::add_u8(a, b, ka, kb, k0, out);
        return add_u8_portable(&a[done..], &b[done..], ka, kb, k0, &mut out[done..]);
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected.
        return unsafe { add_u8_avx2(a, b, ka, kb, k0, out) };
    }
    #[allow(unreachable_code)]
    add_u8_portable(a, b, ka, kb, k0, out)
}

/// `out[i] = src[2 * i]`: one row of a stride-2 im2col (the first convolution of most
/// vision models), sixteen bytes per step.
pub fn gather_even(src: &[u8], out: &mut [u8]) {
    assert!(out.is_empty() || 2 * out.len() - 1 <= src.len(), "gather_even: source too short");
    // Whole 32-byte source blocks in SIMD, the rest here.
    let done = gather_even_blocks(src, out, (src.len() / 32).min(out.len() / 16));
    for (i, o) in out.iter_mut().enumerate().skip(done) {
        *o = src[2 * i];
    }
}

/// The first `blocks * 16` outputs of [`gather_even`]; returns how many it wrote.
#[cfg(target_arch = "x86_64")]
fn gather_even_blocks(src: &[u8], out: &mut [u8], blocks: usize) -> usize {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is x86_64's baseline; block b reads src[32b .. 32b + 32] and
    // writes out[16b .. 16b + 16], both in bounds.
    unsafe {
        let low = _mm_set1_epi16(0xff);
        for b in 0..blocks {
            let p = src.as_ptr().add(32 * b) as *const __m128i;
            let (x, y) = (_mm_and_si128(_mm_loadu_si128(p), low), _mm_and_si128(_mm_loadu_si128(p.add(1)), low));
            _mm_storeu_si128(out.as_mut_ptr().add(16 * b) as *mut __m128i, _mm_packus_epi16(x, y));
        }
    }
    blocks * 16
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn gather_even_blocks(src: &[u8], out: &mut [u8], blocks: usize) -> usize {
    use core::arch::wasm32::*;
    // SAFETY: as for x86_64.
    unsafe {
        for b in 0..blocks {
            let p = src.as_ptr().add(32 * b) as *const v128;
            let even = i8x16_shuffle::<0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30>(v128_load(p), v128_load(p.add(1)));
            v128_store(out.as_mut_ptr().add(16 * b) as *mut v128, even);
        }
    }
    blocks * 16
}

#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
fn gather_even_blocks(_: &[u8], _: &mut [u8], _: usize) -> usize {
    0
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    matches!(crate::Isa::current(), crate::Isa::Avx2Fma | crate::Isa::Avx512)
}

#[inline(always)]
fn quantize_portable(x: &[f32], scale: f32, zero: i32, range: Q8Range, out: &mut [u8]) {
    let (lo, hi) = range.bounds();
    let z = zero as f32;
    let (qlo, qhi) = (lo - z, hi - z);
    for (o, &v) in out.iter_mut().zip(x) {
        let q = v / scale;
        // Clamped before rounding, so the fast half-to-even rounding is exact.
        let q = if q.is_nan() { 0.0 } else { q.clamp(qlo, qhi) };
        // SAFETY: finite and within [-128, 255] after the clamp.
        *o = unsafe { (round_half_even(q) + z).to_int_unchecked::<i32>() } as u8;
    }
}

#[inline(always)]
fn dequantize_portable(x: &[u8], range: Q8Range, zero: i32, scale: f32, out: &mut [f32]) {
    match range {
        Q8Range::U8 => out.iter_mut().zip(x).for_each(|(o, &q)| *o = (q as i32 - zero) as f32 * scale),
        Q8Range::I8 => out.iter_mut().zip(x).for_each(|(o, &q)| *o = (q as i8 as i32 - zero) as f32 * scale),
    }
}

#[inline(always)]
fn add_u8_portable(a: &[u8], b: &[u8], ka: f32, kb: f32, k0: f32, out: &mut [u8]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let v = (x as f32 * ka + y as f32 * kb + k0).clamp(0.0, 255.0);
        // NaN (only from NaN scales) stores 0, as a saturating cast would.
        *o = if v.is_nan() { 0 } else { unsafe { round_half_even(v).to_int_unchecked::<i32>() as u8 } };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(x: &[f32], scale: f32, zero: i32, range: Q8Range, out: &mut [u8]) {
    quantize_portable(x, scale, zero, range, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dequantize_avx2(x: &[u8], range: Q8Range, zero: i32, scale: f32, out: &mut [f32]) {
    dequantize_portable(x, range, zero, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_u8_avx2(a: &[u8], b: &[u8], ka: f32, kb: f32, k0: f32, out: &mut [u8]) {
    add_u8_portable(a, b, ka, kb, k0, out)
}

/// simd128, sixteen values per step; each returns how many it did (the rest is the
/// portable loop's).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::Q8Range;
    use crate::wasm32::qgemm::round_clamped;
    use core::arch::wasm32::*;

    /// Four i32x4 of in-range integers to sixteen bytes.
    #[inline(always)]
    fn narrow(q: [v128; 4], range: Q8Range) -> v128 {
        let (h0, h1) = (i16x8_narrow_i32x4(q[0], q[1]), i16x8_narrow_i32x4(q[2], q[3]));
        match range {
            Q8Range::U8 => u8x16_narrow_i16x8(h0, h1),
            Q8Range::I8 => i8x16_narrow_i16x8(h0, h1),
        }
    }

    /// Sixteen bytes widened to four i32x4.
    #[inline(always)]
    fn widen(v: v128, range: Q8Range) -> [v128; 4] {
        match range {
            Q8Range::U8 => {
                let (l, h) = (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
                [u32x4_extend_low_u16x8(l), u32x4_extend_high_u16x8(l), u32x4_extend_low_u16x8(h), u32x4_extend_high_u16x8(h)]
            }
            Q8Range::I8 => {
                let (l, h) = (i16x8_extend_low_i8x16(v), i16x8_extend_high_i8x16(v));
                [i32x4_extend_low_i16x8(l), i32x4_extend_high_i16x8(l), i32x4_extend_low_i16x8(h), i32x4_extend_high_i16x8(h)]
            }
        }
    }

    pub(super) fn quantize(x: &[f32], scale: f32, zero: i32, range: Q8Range, out: &mut [u8]) -> usize {
        let (lo, hi) = range.bounds();
        let (s, z) = (f32x4_splat(scale), i32x4_splat(zero));
        let (qlo, qhi) = (f32x4_splat(lo - zero as f32), f32x4_splat(hi - zero as f32));
        let n = x.len() / 16 * 16;
        for (xs, o) in x[..n].chunks_exact(16).zip(out.chunks_exact_mut(16)) {
            let q: [v128; 4] = std::array::from_fn(|i| {
                // SAFETY: the chunk holds 16 floats.
                let q = f32x4_div(unsafe { v128_load(xs.as_ptr().add(4 * i) as *const v128) }, s);
                // NaN lanes to 0 (x == x is false only for NaN), then clamp and round half to even.
                let q = v128_and(q, f32x4_eq(q, q));
                i32x4_add(round_clamped(f32x4_pmin(f32x4_pmax(q, qlo), qhi)), z)
            });
            // SAFETY: the chunk holds 16 bytes.
            unsafe { v128_store(o.as_mut_ptr() as *mut v128, narrow(q, range)) };
        }
        n
    }

    pub(super) fn dequantize(x: &[u8], range: Q8Range, zero: i32, scale: f32, out: &mut [f32]) -> usize {
        let (s, z) = (f32x4_splat(scale), i32x4_splat(zero));
        let n = x.len() / 16 * 16;
        for (xs, o) in x[..n].chunks_exact(16).zip(out.chunks_exact_mut(16)) {
            // SAFETY: the chunks hold 16 bytes and 16 floats.
            unsafe {
                for (i, w) in widen(v128_load(xs.as_ptr() as *const v128), range).into_iter().enumerate() {
                    v128_store(o.as_mut_ptr().add(4 * i) as *mut v128, f32x4_mul(f32x4_convert_i32x4(i32x4_sub(w, z)), s));
                }
            }
        }
        n
    }

    pub(super) fn add_u8(a: &[u8], b: &[u8], ka: f32, kb: f32, k0: f32, out: &mut [u8]) -> usize {
        let (ka, kb, k0) = (f32x4_splat(ka), f32x4_splat(kb), f32x4_splat(k0));
        let (lo, hi) = (f32x4_splat(0.0), f32x4_splat(255.0));
        let n = out.len() / 16 * 16;
        for ((xa, xb), o) in a[..n].chunks_exact(16).zip(b[..n].chunks_exact(16)).zip(out.chunks_exact_mut(16)) {
            // SAFETY: the chunks hold 16 bytes.
            let (wa, wb) = unsafe {
                (widen(v128_load(xa.as_ptr() as *const v128), Q8Range::U8), widen(v128_load(xb.as_ptr() as *const v128), Q8Range::U8))
            };
            let q: [v128; 4] = std::array::from_fn(|i| {
                let v = f32x4_add(f32x4_add(f32x4_mul(f32x4_convert_i32x4(wa[i]), ka), f32x4_mul(f32x4_convert_i32x4(wb[i]), kb)), k0);
                // NaN lanes (NaN scales) to 0, as the scalar loop stores them.
                let v = v128_and(v, f32x4_eq(v, v));
                round_clamped(f32x4_pmin(f32x4_pmax(v, lo), hi))
            });
            // SAFETY: the chunk holds 16 bytes.
            unsafe { v128_store(o.as_mut_ptr() as *mut v128, narrow(q, Q8Range::U8)) };
        }
        n
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finite_range_ignores_non_finite_and_includes_zero() {
        assert_eq!(super::finite_range(&[]), (0.0, 0.0));
        assert_eq!(super::finite_range(&[3.0, 5.0]), (0.0, 5.0));
        let mut x: Vec<f32> = (0..37).map(|i| (i as f32 - 20.0) * 0.5).collect();
        x[3] = f32::INFINITY;
        x[11] = f32::NEG_INFINITY;
        x[36] = f32::NAN;
        x[35] = 99.0; // in the tail, past the last whole chunk of eight
        assert_eq!(super::finite_range(&x), (-10.0, 99.0));
    }

    use super::*;
    use crate::testutil::Rng;

    /// The scalar definitions, written out: what every path must reproduce exactly.
    fn quantize_one(v: f32, scale: f32, zero: i32, range: Q8Range) -> u8 {
        let (lo, hi) = range.bounds();
        let q = v / scale;
        if q.is_nan() {
            return zero as u8;
        }
        ((q.round_ties_even() + zero as f32).clamp(lo, hi)) as i32 as u8
    }

    #[test]
    fn quantize_matches_the_definition() {
        let mut rng = Rng(3);
        for (range, zero) in [(Q8Range::U8, 0), (Q8Range::U8, 131), (Q8Range::I8, -7), (Q8Range::I8, 0)] {
            let scale = 0.037;
            let mut x: Vec<f32> = (0..1000).map(|_| rng.f32() * 8.0).collect();
            // Ties, extremes and NaN, in the SIMD body and in the tail.
            x.extend([0.5 * scale, 1.5 * scale, -2.5 * scale, 1e9, -1e9, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]);
            let mut out = vec![0u8; x.len()];
            quantize(&x, scale, zero, range, &mut out);
            for (i, (&v, &o)) in x.iter().zip(&out).enumerate() {
                assert_eq!(o, quantize_one(v, scale, zero, range), "{range:?} zero {zero} element {i}: {v}");
            }
        }
    }

    #[test]
    fn dequantize_matches_the_definition() {
        let x: Vec<u8> = (0..=255).chain(0..37).collect();
        for (range, zero) in [(Q8Range::U8, 128), (Q8Range::I8, -3)] {
            let mut out = vec![0f32; x.len()];
            dequantize(&x, range, zero, 0.25, &mut out);
            for (&q, &o) in x.iter().zip(&out) {
                let v = if range == Q8Range::I8 { q as i8 as i32 } else { q as i32 };
                assert_eq!(o, (v - zero) as f32 * 0.25);
            }
        }
    }

    #[test]
    fn gather_even_takes_every_other_byte() {
        for (n, extra) in [(0, 0), (1, 0), (15, 1), (16, 0), (16, 1), (57, 0), (112, 1), (113, 0)] {
            let src: Vec<u8> = (0..(2 * n).max(1) - 1 + extra).map(|i| (i * 7 + 3) as u8).collect();
            let mut out = vec![0u8; n];
            gather_even(&src, &mut out);
            assert!(out.iter().enumerate().all(|(i, &o)| o == src[2 * i]), "{n} {extra}");
        }
    }

    #[test]
    fn add_matches_the_definition() {
        let mut rng = Rng(4);
        let a: Vec<u8> = (0..1003).map(|_| rng.next_u32() as u8).collect();
        let b: Vec<u8> = (0..1003).map(|_| rng.next_u32() as u8).collect();
        let (ka, kb, k0) = (0.5f32, 1.25f32, -40.0f32);
        let mut out = vec![0u8; a.len()];
        add_u8(&a, &b, ka, kb, k0, &mut out);
        for i in 0..a.len() {
            let want = (a[i] as f32 * ka + b[i] as f32 * kb + k0).clamp(0.0, 255.0).round_ties_even() as u8;
            assert_eq!(out[i], want, "element {i}");
        }
    }
}
