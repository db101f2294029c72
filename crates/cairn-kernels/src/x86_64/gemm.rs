//! AVX2+FMA micro-kernel, 6x16: twelve ymm accumulators, two for the B row,
//! one broadcast of A — 15 of the 16 ymm registers, the classic Haswell shape
//! (each k step issues 12 FMAs against 2 loads and 6 broadcasts).

use crate::gemm::MicroKernel;
use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;

pub(crate) const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: NR, run: kernel_6x16_entry };

/// # Safety
/// See [`MicroKernel::run`]; the CPU must support AVX2 and FMA (checked by `Isa::current`).
unsafe fn kernel_6x16_entry(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    kernel_6x16(kc, a, b, c, ldc, accumulate)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(kc: usize, mut a: *const f32, mut b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate() {
            row[0] = _mm256_loadu_ps(c.add(i * ldc));
            row[1] = _mm256_loadu_ps(c.add(i * ldc + 8));
        }
    }
    for _ in 0..kc {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(i));
            row[0] = _mm256_fmadd_ps(av, b0, row[0]);
            row[1] = _mm256_fmadd_ps(av, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    for (i, row) in acc.iter().enumerate() {
        _mm256_storeu_ps(c.add(i * ldc), row[0]);
        _mm256_storeu_ps(c.add(i * ldc + 8), row[1]);
    }
}
