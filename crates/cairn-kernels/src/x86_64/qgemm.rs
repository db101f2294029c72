//! x86_64 int8 micro-kernels over k-pairs of i16 (see `qgemm` for why i16 pairs):
//! - AVX2 6x16: twelve ymm accumulators; each k-pair step is 12 `vpmaddwd` + 12
//!   `vpaddd` against 2 loads of B and 6 broadcasts of A (15 of 16 registers).
//! - AVX-512 VNNI 6x32: the same shape on zmm with `vpdpwssd`, which multiplies,
//!   adds the pair and accumulates in one instruction (4x the products per
//!   instruction of the AVX2 kernel).
//! - AVX-VNNI u8 x s8 6x16 (VEX-encoded `vpdpbusd` on ymm: AVX2-class CPUs with VNNI,
//!   Alder Lake and later, Zen 5): the AVX2 kernel's shape over k-quads.
//! - AVX2 u8 x s7 6x16 over k-quads of bytes, for weights of at most 64 in magnitude (7-bit,
//!   what `cairn optimize --weight-bits 7` writes): `vpmaddubsw` multiplies 32 byte pairs and
//!   adds neighbours into i16, which cannot saturate when |w| <= 64 (2 * 255 * 64 < 2^15),
//!   then `vpmaddwd` by ones widens to i32: two multiplies per 32 products, where the pairs
//!   kernel needs two per 16 and twice the bytes of packed operands.
//! - AVX-512 VNNI u8 x s8 8x32 over k-quads of bytes with `vpdpbusd` (four products
//!   per lane, twice the pairs kernel's), the A word broadcast from memory: sixteen
//!   accumulators, two B vectors.

use crate::qgemm::{rule, Layout, Q8Tile, QKernel};
use std::arch::x86_64::*;

const MR: usize = 6;
/// Rows of the byte-layout kernel.
const MR_Q: usize = 8;
/// Rows of the AVX2 u8 x s7 kernel: the pairs kernel's shape (twelve accumulators; the i16
/// ones of `vpmaddwd` then come from memory). Measured against 4 rows (eight accumulators, all
/// in registers) on the encoder's shapes (`qbench_encoder`): 2-4% faster.
const MR_S7: usize = 6;

pub(crate) const KERNEL_AVX2: QKernel = QKernel {
    name: "i8_gemm_6x16_avx2",
    mr: MR,
    nr: 16,
    layout: Layout::Pairs,
    fallback: None,
    quads_weight_bound: 0,
    run: avx2_entry,
    run_q8: Some(avx2_q8_entry),
    run_gemv: gemv_avx2,
};
pub(crate) const KERNEL_AVX_VNNI_U8S8: QKernel = QKernel {
    name: "u8s8_gemm_6x16_avxvnni",
    mr: MR,
    nr: 16,
    layout: Layout::Quads,
    fallback: Some(&KERNEL_AVX2),
    quads_weight_bound: 128,
    run: avxvnni_entry,
    run_q8: Some(avxvnni_q8_entry),
    run_gemv: gemv_quads_baseline::<MR>,
};
pub(crate) const KERNEL_AVX512_VNNI: QKernel = QKernel {
    name: "i8_gemm_6x32_avx512vnni",
    mr: MR,
    nr: 32,
    layout: Layout::Pairs,
    fallback: None,
    quads_weight_bound: 0,
    run: vnni_entry,
    run_q8: Some(vnni_q8_entry),
    run_gemv: gemv_avx2,
};
pub(crate) const KERNEL_AVX512_VNNI_U8S8: QKernel = QKernel {
    name: "u8s8_gemm_8x32_avx512vnni",
    mr: MR_Q,
    nr: 32,
    layout: Layout::Quads,
    fallback: Some(&KERNEL_AVX512_VNNI),
    quads_weight_bound: 128,
    run: vnni_u8s8_entry,
    run_q8: Some(vnni_u8s8_q8_entry),
    run_gemv: vnni_u8s8_gemv,
};
/// AVX2 without VNNI: the byte layout where the weights are 7-bit, else the pairs kernel.
pub(crate) const KERNEL_AVX2_U8S7: QKernel = QKernel {
    name: "u8s7_gemm_6x16_avx2",
    mr: MR_S7,
    nr: 16,
    layout: Layout::Quads,
    fallback: Some(&KERNEL_AVX2),
    quads_weight_bound: 64,
    run: avx2_u8s7_entry,
    run_q8: Some(avx2_u8s7_q8_entry),
    run_gemv: gemv_quads_baseline::<MR_S7>,
};

/// The portable matrix-vector product of a 6-row panel of quads (u8 x s8), compiled for the
/// x86_64 baseline, not for AVX2: the AVX2-compiled form (as `gemv_avx2` is) gave a wrong
/// row (always row 3 of the panel) in the suite's build (rustc wrapped by clippy-driver)
/// whenever unrelated code of this crate changed its code generation (the int8 driver's task
/// split, or `vmath`'s softmax row loop), while this form is right in every build tried.
/// The source has no unsafe access beyond the panel, so this looks like a code-generation
/// fault in the autovectorized AVX2 form; an explicit AVX-VNNI product would replace it.
/// Used only for products of one or two columns (classifier heads at batch 1).
///
/// # Safety
/// See [`QKernel::run_gemv`].
unsafe fn gemv_quads_baseline<const R: usize>(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    crate::generic::qgemm::gemv::<R, true>(kp, a, b, init, c)
}

/// The portable matrix-vector product of a 6-row panel of pairs (i16 x i16), compiled for AVX2.
///
/// # Safety
/// See [`QKernel::run_gemv`]; AVX2 must be present (checked when the kernel is chosen).
#[target_feature(enable = "avx2")]
unsafe fn gemv_avx2(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    crate::generic::qgemm::gemv::<MR, false>(kp, a, b, init, c)
}

/// # Safety
/// See [`QKernel::run`]; AVX2 must be present (checked when the kernel is chosen).
unsafe fn avx2_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    kernel_6x16_avx2(kp, a, b, init, c)
}

#[target_feature(enable = "avx2")]
unsafe fn kernel_6x16_avx2(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    store_i32_ymm(&tile_avx2(kp, a, b, init), c)
}

/// # Safety
/// See [`QKernel::run_q8`]; AVX2 must be present.
unsafe fn avx2_q8_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    kernel_6x16_avx2_q8(kp, a, b, init, t)
}

/// The tile requantized in registers (scale, bias, clamp, round half to even, zero point:
/// `qgemm::rule`) and narrowed with saturating packs to 16 bytes per row.
#[target_feature(enable = "avx2")]
unsafe fn kernel_6x16_avx2_q8(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    store_q8_ymm(&tile_avx2(kp, a, b, init), t)
}

/// The i32 tile of a 16-column ymm kernel, rows 16 words apart from `c` on.
#[inline(always)]
unsafe fn store_i32_ymm(acc: &[[__m256i; 2]; MR], c: *mut i32) {
    for (i, row) in acc.iter().enumerate() {
        _mm256_storeu_si256(c.add(i * 16) as *mut __m256i, row[0]);
        _mm256_storeu_si256(c.add(i * 16 + 8) as *mut __m256i, row[1]);
    }
}

#[inline(always)]
unsafe fn store_q8_ymm<const R: usize>(acc: &[[__m256i; 2]; R], t: &Q8Tile) {
    let (lo, hi) = (_mm256_set1_ps(t.qlo), _mm256_set1_ps(t.qhi));
    let (magic, zero_bits) = (_mm256_set1_ps(rule::MAGIC), _mm256_set1_epi32(t.zero_bits));
    for (i, row) in acc.iter().enumerate() {
        let (s, bias) = (_mm256_set1_ps(*t.si.add(i)), _mm256_set1_ps(*t.bi.add(i)));
        let q = |v: __m256i| {
            let f = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v), s), bias), lo), hi);
            // round_half_even(f) + zero (see `qgemm::rule`).
            _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(f, magic)), zero_bits)
        };
        // packs interleaves 128-bit lanes: [r0 0..4, r1 0..4, r0 4..8, r1 4..8]; restore order.
        let h = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q(row[0]), q(row[1])));
        let bytes = if t.signed { _mm256_packs_epi16(h, h) } else { _mm256_packus_epi16(h, h) };
        let bytes = _mm256_permute4x64_epi64::<0b00_00_10_00>(bytes);
        _mm_storeu_si128(t.out.add(i * t.ldc) as *mut __m128i, _mm256_castsi256_si128(bytes));
    }
}

/// # Safety
/// See [`QKernel::run`]; AVX2 and AVX-VNNI must be present (checked when chosen).
unsafe fn avxvnni_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    kernel_6x16_avxvnni(kp, a, b, init, c)
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn kernel_6x16_avxvnni(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    store_i32_ymm(&tile_avxvnni(kp, a, b, init), c)
}

/// # Safety
/// See [`QKernel::run_q8`]; AVX2 and AVX-VNNI must be present.
unsafe fn avxvnni_q8_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    kernel_6x16_avxvnni_q8(kp, a, b, init, t)
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn kernel_6x16_avxvnni_q8(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    store_q8_ymm(&tile_avxvnni(kp, a, b, init), t)
}

/// `vpdpbusd` on ymm: B bytes unsigned, the broadcast A quad signed.
#[inline(always)]
unsafe fn tile_avxvnni(kp: usize, mut a: *const i32, mut b: *const i32, init: *const i32) -> [[__m256i; 2]; MR] {
    let mut acc: [[__m256i; 2]; MR] = std::array::from_fn(|i| [_mm256_set1_epi32(*init.add(i)); 2]);
    for _ in 0..kp {
        let b0 = _mm256_loadu_si256(b as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(8) as *const __m256i);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(*a.add(i));
            row[0] = _mm256_dpbusd_avx_epi32(row[0], b0, av);
            row[1] = _mm256_dpbusd_avx_epi32(row[1], b1, av);
        }
        a = a.add(MR);
        b = b.add(16);
    }
    acc
}

/// # Safety
/// See [`QKernel::run`]; AVX2 must be present (checked when chosen), and every weight of
/// the panel at most 64 in magnitude (checked when packed: `QKernel::quads_weight_bound`).
unsafe fn avx2_u8s7_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    kernel_avx2_u8s7(kp, a, b, init, c)
}

#[target_feature(enable = "avx2")]
unsafe fn kernel_avx2_u8s7(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    store_i32_ymm(&tile_avx2_u8s7(kp, a, b, init), c)
}

/// # Safety
/// As for [`avx2_u8s7_entry`], and see [`QKernel::run_q8`].
unsafe fn avx2_u8s7_q8_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    kernel_avx2_u8s7_q8(kp, a, b, init, t)
}

#[target_feature(enable = "avx2")]
unsafe fn kernel_avx2_u8s7_q8(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    store_q8_ymm(&tile_avx2_u8s7(kp, a, b, init), t)
}

/// `vpmaddubsw` (B bytes unsigned, the broadcast A quad signed, |a| <= 64: the i16 sums of
/// two products stay below 2^15), then `vpmaddwd` by ones adds those into i32 lanes.
#[inline(always)]
unsafe fn tile_avx2_u8s7(kp: usize, mut a: *const i32, mut b: *const i32, init: *const i32) -> [[__m256i; 2]; MR_S7] {
    let mut acc: [[__m256i; 2]; MR_S7] = std::array::from_fn(|i| [_mm256_set1_epi32(*init.add(i)); 2]);
    let ones = _mm256_set1_epi16(1);
    for _ in 0..kp {
        let b0 = _mm256_loadu_si256(b as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(8) as *const __m256i);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(*a.add(i));
            row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(_mm256_maddubs_epi16(b0, av), ones));
            row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(_mm256_maddubs_epi16(b1, av), ones));
        }
        a = a.add(MR_S7);
        b = b.add(16);
    }
    acc
}

#[inline(always)]
unsafe fn tile_avx2(kp: usize, mut a: *const i32, mut b: *const i32, init: *const i32) -> [[__m256i; 2]; MR] {
    let mut acc: [[__m256i; 2]; MR] = std::array::from_fn(|i| [_mm256_set1_epi32(*init.add(i)); 2]);
    for _ in 0..kp {
        let b0 = _mm256_loadu_si256(b as *const __m256i);
        let b1 = _mm256_loadu_si256(b.add(8) as *const __m256i);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_epi32(*a.add(i));
            row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(av, b0));
            row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(av, b1));
        }
        a = a.add(MR);
        b = b.add(16);
    }
    acc
}

/// # Safety
/// See [`QKernel::run`]; AVX-512F/BW and VNNI must be present (checked when chosen).
unsafe fn vnni_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    vnni_i32::<MR, false>(kp, a, b, init, c)
}

/// # Safety
/// See [`QKernel::run_q8`]; AVX-512F/BW and VNNI must be present.
unsafe fn vnni_q8_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    vnni_q8::<MR, false>(kp, a, b, init, t)
}

/// # Safety
/// See [`QKernel::run`]; AVX-512F/BW and VNNI must be present (checked when chosen).
unsafe fn vnni_u8s8_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    vnni_i32::<MR_Q, true>(kp, a, b, init, c)
}

/// # Safety
/// See [`QKernel::run_q8`]; AVX-512F/BW and VNNI must be present.
unsafe fn vnni_u8s8_q8_entry(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    vnni_q8::<MR_Q, true>(kp, a, b, init, t)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_i32<const R: usize, const QUADS: bool>(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    let acc = tile_vnni::<R, QUADS>(kp, a, b, init);
    for (i, row) in acc.iter().enumerate() {
        _mm512_storeu_si512(c.add(i * 32) as *mut __m512i, row[0]);
        _mm512_storeu_si512(c.add(i * 32 + 16) as *mut __m512i, row[1]);
    }
}

/// The tile requantized in registers and narrowed with AVX-512's saturating converts.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_q8<const R: usize, const QUADS: bool>(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    let acc = tile_vnni::<R, QUADS>(kp, a, b, init);
    let (lo, hi) = (_mm512_set1_ps(t.qlo), _mm512_set1_ps(t.qhi));
    let (magic, zero_bits) = (_mm512_set1_ps(rule::MAGIC), _mm512_set1_epi32(t.zero_bits));
    for (i, row) in acc.iter().enumerate() {
        let (s, bias) = (_mm512_set1_ps(*t.si.add(i)), _mm512_set1_ps(*t.bi.add(i)));
        for (h, &v) in row.iter().enumerate() {
            let f = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), s), bias), lo), hi);
            // round_half_even(f) + zero (see `qgemm::rule`).
            let q = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(f, magic)), zero_bits);
            let bytes = if t.signed { _mm512_cvtsepi32_epi8(q) } else { _mm512_cvtusepi32_epi8(q) };
            _mm_storeu_si128(t.out.add(i * t.ldc + 16 * h) as *mut __m128i, bytes);
        }
    }
}

/// An `R x 32` tile: `vpdpbusd` (B bytes unsigned, A bytes signed) when `QUADS`, else
/// `vpdpwssd` on i16 pairs; row i starts from `init[i]`.
#[inline(always)]
unsafe fn tile_vnni<const R: usize, const QUADS: bool>(
    kp: usize,
    mut a: *const i32,
    mut b: *const i32,
    init: *const i32,
) -> [[__m512i; 2]; R] {
    let mut acc: [[__m512i; 2]; R] = std::array::from_fn(|i| [_mm512_set1_epi32(*init.add(i)); 2]);
    for _ in 0..kp {
        // A is the weights' panel (C = Wᵀ Xᵀ): read by a few column tiles per call, so the
        // first one finds it in L3; fetch 32 steps ahead (prefetcht0 never faults).
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(R * 32) as *const i8);
        let b0 = _mm512_loadu_si512(b as *const __m512i);
        let b1 = _mm512_loadu_si512(b.add(16) as *const __m512i);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(*a.add(i));
            if QUADS {
                row[0] = _mm512_dpbusd_epi32(row[0], b0, av);
                row[1] = _mm512_dpbusd_epi32(row[1], b1, av);
            } else {
                row[0] = _mm512_dpwssd_epi32(row[0], av, b0);
                row[1] = _mm512_dpwssd_epi32(row[1], av, b1);
            }
        }
        a = a.add(R);
        b = b.add(32);
    }
    acc
}

/// One column of eight rows per k-quad: `vpdpbusd` on ymm (AVX-512VL), the B quad
/// broadcast, four accumulators to hide latency.
///
/// # Safety
/// See [`QKernel::run_gemv`]; AVX-512VL and VNNI must be present (checked with the kernel).
#[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
unsafe fn vnni_u8s8_gemv(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    let mut s = [_mm256_loadu_si256(init as *const __m256i), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()];
    let step = |acc: __m256i, q: usize| {
        _mm256_dpbusd_epi32(acc, _mm256_set1_epi32(*b.add(q)), _mm256_loadu_si256(a.add(q * MR_Q) as *const __m256i))
    };
    let mut q = 0;
    while q + 4 <= kp {
        for (u, acc) in s.iter_mut().enumerate() {
            *acc = step(*acc, q + u);
        }
        q += 4;
    }
    while q < kp {
        s[0] = step(s[0], q);
        q += 1;
    }
    let sum = _mm256_add_epi32(_mm256_add_epi32(s[0], s[1]), _mm256_add_epi32(s[2], s[3]));
    _mm256_storeu_si256(c as *mut __m256i, sum);
}
