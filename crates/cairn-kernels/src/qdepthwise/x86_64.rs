//! x86_64 taps:
//! - AVX2: pairs of bytes widened to i16 (`vpmovzxbw`) and multiplied by a pair of
//!   i16 weights with `vpmaddwd`, 8 outputs (16 multiply-adds) per instruction;
//! - AVX-512 VNNI: quads of raw bytes times four i8 weights with `vpdpbusd` (u8 x i8,
//!   exact: no i16 saturation as in `vpmaddubsw`), 16 outputs (64 multiply-adds) per
//!   instruction with the accumulation fused; a 3-tap filter row is one quad.

use super::tuples::{channels, Job, QConsts, Scratch, Taps};
use crate::qgemm::rule;
use std::arch::x86_64::*;

/// Whether this CPU has the instructions of the VNNI kernel (checked per call: cheap).
pub(super) fn has_vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vnni")
}

#[derive(Clone, Copy)]
pub(super) struct Avx2Pairs;

impl Taps for Avx2Pairs {
    const L: usize = 8;
    const T: usize = 2;
    type A = __m256i;
    type W = __m256i;
    type X = __m256i;
    type Q = ([__m256; 4], __m256i, bool, bool);

    #[inline(always)]
    unsafe fn splat_w(bits: i32) -> __m256i {
        _mm256_set1_epi32(bits)
    }
    #[inline(always)]
    unsafe fn splat(v: i32) -> __m256i {
        _mm256_set1_epi32(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        _mm256_cvtepu8_epi16(_mm_loadu_si128(p as *const __m128i))
    }
    #[inline(always)]
    unsafe fn madd(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
    }
    #[inline(always)]
    unsafe fn q_consts(c: &QConsts) -> Self::Q {
        let f = [_mm256_set1_ps(c.si), _mm256_set1_ps(c.bi), _mm256_set1_ps(c.qlo), _mm256_set1_ps(c.qhi)];
        (f, _mm256_set1_epi32(c.zero_bits), c.signed, c.clamp)
    }
    #[inline(always)]
    unsafe fn store_q8<const NV: usize>(
        acc: &[[__m256i; NV]; 2],
        _steps: usize,
        interleaved: bool,
        (q, zero_bits, signed, clamp): &Self::Q,
        out: *mut u8,
    ) {
        let acc = &acc[0];
        assert!(NV == 2, "AVX2 pairs store two accumulators");
        let (r0, r1) = (round_avx2(acc[0], q, *zero_bits, *clamp), round_avx2(acc[1], q, *zero_bits, *clamp));
        // Values are within [-128, 255] after the clamp: the packs do not saturate.
        let ordered = if interleaved {
            // Lanes (0..4 | 8..12) and (4..8 | 12..16): the packs put 0..8 | 8..16 in order.
            let h = _mm256_packs_epi32(_mm256_unpacklo_epi32(r0, r1), _mm256_unpackhi_epi32(r0, r1));
            _mm256_permute4x64_epi64::<0b1000>(bytes_avx2(h, *signed))
        } else {
            // Dwords of bytes 0..4, 8..12 (lane 0) and 4..8, 12..16 (lane 1).
            let b = bytes_avx2(_mm256_packs_epi32(r0, r1), *signed);
            _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0))
        };
        _mm_storeu_si128(out as *mut __m128i, _mm256_castsi256_si128(ordered));
    }
    #[inline(always)]
    unsafe fn store_i32(a: __m256i, out: *mut i32) {
        _mm256_storeu_si256(out as *mut __m256i, a)
    }
}

/// `round_half_even(clamp(acc * si + bi, qlo, qhi)) + zero` as i32 lanes (`qgemm::rule`; no
/// fused multiply-add, as in the scalar epilogue).
#[inline(always)]
unsafe fn round_avx2(a: __m256i, q: &[__m256; 4], zero_bits: __m256i, clamp: bool) -> __m256i {
    let v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), q[0]), q[1]);
    // Without the clamp the packs saturate to the same bounds (rounding is monotonic), and
    // |v| < 2^21 (checked with the constants), inside the rounding trick's range.
    let v = if clamp { _mm256_min_ps(_mm256_max_ps(v, q[2]), q[3]) } else { v };
    _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(rule::MAGIC))), zero_bits)
}

#[inline(always)]
unsafe fn bytes_avx2(h: __m256i, signed: bool) -> __m256i {
    if signed {
        _mm256_packs_epi16(h, h)
    } else {
        _mm256_packus_epi16(h, h)
    }
}

#[derive(Clone, Copy)]
pub(super) struct VnniQuads;

impl Taps for VnniQuads {
    const L: usize = 16;
    const T: usize = 4;
    type A = __m512i;
    type W = __m512i;
    type X = __m512i;
    type Q = ([__m512; 4], __m512i);

    #[inline(always)]
    unsafe fn splat_w(bits: i32) -> __m512i {
        _mm512_set1_epi32(bits)
    }
    #[inline(always)]
    unsafe fn splat(v: i32) -> __m512i {
        _mm512_set1_epi32(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        _mm512_loadu_si512(p as *const _)
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, x, w)
    }
    #[inline(always)]
    unsafe fn q_consts(c: &QConsts) -> Self::Q {
        ([_mm512_set1_ps(c.si), _mm512_set1_ps(c.bi), _mm512_set1_ps(c.qlo), _mm512_set1_ps(c.qhi)], _mm512_set1_epi32(c.zero_bits))
    }
    #[inline(always)]
    unsafe fn store_q8<const NV: usize>(
        acc: &[[__m512i; NV]; 2],
        _steps: usize,
        interleaved: bool,
        (q, zero_bits): &Self::Q,
        out: *mut u8,
    ) {
        let acc = &acc[0];
        assert!(interleaved && (NV == 2 || NV == 4), "VNNI quads store 2 or 4 interleaved accumulators");
        // Rounded to i32 within [-128, 255] with the zero point (`qgemm::rule`), then their
        // low bytes (the i8 or u8 value).
        let (mut b, magic) = ([_mm_setzero_si128(); NV], _mm512_set1_ps(rule::MAGIC));
        for (b, &a) in b.iter_mut().zip(acc) {
            let x = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a), q[0]), q[1]);
            let x = _mm512_min_ps(_mm512_max_ps(x, q[2]), q[3]);
            *b = _mm512_cvtepi32_epi8(_mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(x, magic)), *zero_bits));
        }
        let o = out as *mut __m128i;
        if NV == 2 {
            _mm_storeu_si128(o, _mm_unpacklo_epi8(b[0], b[1]));
            _mm_storeu_si128(o.add(1), _mm_unpackhi_epi8(b[0], b[1]));
        } else {
            // b[v][i] is output 4i + v: bytes pairs (0 1 | 4 5 ..) and (2 3 | 6 7 ..), then words.
            let (t0, t1) = (_mm_unpacklo_epi8(b[0], b[1]), _mm_unpackhi_epi8(b[0], b[1]));
            let (t2, t3) = (_mm_unpacklo_epi8(b[2], b[3]), _mm_unpackhi_epi8(b[2], b[3]));
            _mm_storeu_si128(o, _mm_unpacklo_epi16(t0, t2));
            _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(t0, t2));
            _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(t1, t3));
            _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(t1, t3));
        }
    }
    #[inline(always)]
    unsafe fn store_i32(a: __m512i, out: *mut i32) {
        _mm512_storeu_si512(out as *mut _, a)
    }
    fn has_masked_bytes() -> bool {
        std::arch::is_x86_feature_detected!("avx512vbmi2")
    }
    unsafe fn compress(src: *const u8, masks: &[u64], dst: *mut u8) {
        compress_vbmi2(src, masks, dst)
    }
    unsafe fn expand(src: *const u8, masks: &[u64], fill: u8, dst: *mut u8) {
        expand_vbmi2(src, masks, fill, dst)
    }
}

/// [`Taps::compress`] with `vpcompressb`: a channel's 7x7 outputs are 3 instructions,
/// not 7 row copies.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
unsafe fn compress_vbmi2(src: *const u8, masks: &[u64], mut dst: *mut u8) {
    for (c, &m) in masks.iter().enumerate() {
        let v = _mm512_maskz_compress_epi8(m, _mm512_loadu_si512(src.add(64 * c) as *const _));
        let n = m.count_ones();
        _mm512_mask_storeu_epi8(dst as *mut _, if n == 64 { !0 } else { (1u64 << n) - 1 }, v);
        dst = dst.add(n as usize);
    }
}

/// [`Taps::expand`] with `vpexpandb` from memory: reads exactly the input bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2")]
unsafe fn expand_vbmi2(mut src: *const u8, masks: &[u64], fill: u8, dst: *mut u8) {
    let pad = _mm512_set1_epi8(fill as i8);
    for (c, &m) in masks.iter().enumerate() {
        _mm512_storeu_si512(dst.add(64 * c) as *mut _, _mm512_mask_expandloadu_epi8(pad, m, src as *const _));
        src = src.add(m.count_ones() as usize);
    }
}

/// The AVX2 task body.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn channels_avx2(job: &Job, chans: std::ops::Range<usize>, s: &mut Scratch) {
    channels::<Avx2Pairs>(job, chans, s)
}

/// The AVX-512 VNNI task body.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
pub(super) unsafe fn channels_vnni(job: &Job, chans: std::ops::Range<usize>, s: &mut Scratch) {
    channels::<VnniQuads>(job, chans, s)
}
