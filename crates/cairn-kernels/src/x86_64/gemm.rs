//! AVX2+FMA micro-kernel, 6x16: twelve ymm accumulators, two for the B row,
//! one broadcast of A — 15 of the 16 ymm registers, the classic Haswell shape
//! (each k step issues 12 FMAs against 2 loads and 6 broadcasts).

use crate::gemm::{MicroKernel, TileEpilogue};
use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;

pub(crate) const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: NR, run: kernel_6x16_entry, edge: None };

/// # Safety
/// See [`MicroKernel::run`]; the CPU must support AVX2 and FMA (checked by `Isa::current`).
unsafe fn kernel_6x16_entry(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    kernel_6x16(kc, a, b, ldb, c, ldc, accumulate, epi)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
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
        b = b.add(ldb);
    }
    if let Some(e) = epi {
        let (lo, hi) = (_mm256_set1_ps(e.lo), _mm256_set1_ps(e.hi));
        let col_bias = (!e.col_bias.is_null()).then(|| [_mm256_loadu_ps(e.col_bias), _mm256_loadu_ps(e.col_bias.add(8))]);
        for (i, row) in acc.iter_mut().enumerate() {
            for (h, v) in row.iter_mut().enumerate() {
                if !e.row_bias.is_null() {
                    *v = _mm256_add_ps(*v, _mm256_broadcast_ss(&*e.row_bias.add(i)));
                }
                if let Some(cb) = col_bias {
                    *v = _mm256_add_ps(*v, cb[h]);
                }
                if !e.residual.is_null() {
                    *v = _mm256_add_ps(*v, _mm256_loadu_ps(e.residual.add(i * e.ld_residual + 8 * h)));
                }
                if e.clamp {
                    *v = _mm256_min_ps(_mm256_max_ps(*v, lo), hi);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        _mm256_storeu_ps(c.add(i * ldc), row[0]);
        _mm256_storeu_ps(c.add(i * ldc + 8), row[1]);
    }
}
