//! x86_64 int8 micro-kernels over k-pairs of i16 (see `qgemm` for why i16 pairs):
//! - AVX2 6x16: twelve ymm accumulators; each k-pair step is 12 `vpmaddwd` + 12
//!   `vpaddd` against 2 loads of B and 6 broadcasts of A (15 of 16 registers).
//! - AVX-512 VNNI 6x32: the same shape on zmm with `vpdpwssd`, which multiplies,
//!   adds the pair and accumulates in one instruction (4x the products per
//!   instruction of the AVX2 kernel).

use crate::qgemm::QKernel;
use std::arch::x86_64::*;

const MR: usize = 6;

pub(crate) const KERNEL_AVX2: QKernel = QKernel { name: "i8_gemm_6x16_avx2", mr: MR, nr: 16, run: avx2_entry };
pub(crate) const KERNEL_AVX512_VNNI: QKernel = QKernel { name: "i8_gemm_6x32_avx512vnni", mr: MR, nr: 32, run: vnni_entry };

/// # Safety
/// See [`QKernel::run`]; AVX2 must be present (checked when the kernel is chosen).
unsafe fn avx2_entry(kp: usize, a: *const i32, b: *const i32, c: *mut i32) {
    kernel_6x16_avx2(kp, a, b, c)
}

#[target_feature(enable = "avx2")]
unsafe fn kernel_6x16_avx2(kp: usize, mut a: *const i32, mut b: *const i32, c: *mut i32) {
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
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
    for (i, row) in acc.iter().enumerate() {
        _mm256_storeu_si256(c.add(i * 16) as *mut __m256i, row[0]);
        _mm256_storeu_si256(c.add(i * 16 + 8) as *mut __m256i, row[1]);
    }
}

/// # Safety
/// See [`QKernel::run`]; AVX-512F/BW and VNNI must be present (checked when chosen).
unsafe fn vnni_entry(kp: usize, a: *const i32, b: *const i32, c: *mut i32) {
    kernel_6x32_vnni(kp, a, b, c)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel_6x32_vnni(kp: usize, mut a: *const i32, mut b: *const i32, c: *mut i32) {
    let mut acc = [[_mm512_setzero_si512(); 2]; MR];
    for _ in 0..kp {
        let b0 = _mm512_loadu_si512(b as *const __m512i);
        let b1 = _mm512_loadu_si512(b.add(16) as *const __m512i);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(*a.add(i));
            row[0] = _mm512_dpwssd_epi32(row[0], av, b0);
            row[1] = _mm512_dpwssd_epi32(row[1], av, b1);
        }
        a = a.add(MR);
        b = b.add(32);
    }
    for (i, row) in acc.iter().enumerate() {
        _mm512_storeu_si512(c.add(i * 32) as *mut __m512i, row[0]);
        _mm512_storeu_si512(c.add(i * 32 + 16) as *mut __m512i, row[1]);
    }
}
