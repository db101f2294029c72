//! simd128 micro-kernel, 4x8: eight v128 accumulators, two for the B row and one
//! splat of A. V8 maps wasm values onto the 16 xmm registers of x86_64; 6x8 (15 live
//! vectors) looked like a fit on paper but measured ~25% slower in Node 20 on
//! MobileNetV2 (min 43 ms vs 34 ms; 5x8: 48 ms): TurboFan's allocator spills it.
//! Without relaxed-simd there is no fused multiply-add: each step is a mul and an add;
//! the relaxed build fuses them (`super::madd`).

use crate::gemm::{MicroKernel, TileEpilogue};
use core::arch::wasm32::*;

const MR: usize = 4;
const NR: usize = 8;

pub(crate) const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: NR, run: kernel_4x8, edge: None };

/// # Safety
/// See [`MicroKernel::run`].
#[inline(always)]
pub(crate) unsafe fn kernel_4x8(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate() {
            row[0] = v128_load(c.add(i * ldc) as *const v128);
            row[1] = v128_load(c.add(i * ldc + 4) as *const v128);
        }
    }
    for _ in 0..kc {
        let b0 = v128_load(b as *const v128);
        let b1 = v128_load(b.add(4) as *const v128);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = v128_load32_splat(a.add(i) as *const u32);
            row[0] = super::madd(av, b0, row[0]);
            row[1] = super::madd(av, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(ldb);
    }
    if let Some(e) = epi {
        let (lo, hi) = (f32x4_splat(e.lo), f32x4_splat(e.hi));
        let col_bias = (!e.col_bias.is_null()).then(|| [v128_load(e.col_bias as *const v128), v128_load(e.col_bias.add(4) as *const v128)]);
        for (i, row) in acc.iter_mut().enumerate() {
            for (h, v) in row.iter_mut().enumerate() {
                if !e.row_bias.is_null() {
                    *v = f32x4_add(*v, v128_load32_splat(e.row_bias.add(i) as *const u32));
                }
                if let Some(cb) = col_bias {
                    *v = f32x4_add(*v, cb[h]);
                }
                if !e.residual.is_null() {
                    *v = f32x4_add(*v, v128_load(e.residual.add(i * e.ld_residual + 4 * h) as *const v128));
                }
                if e.clamp {
                    *v = f32x4_pmin(f32x4_pmax(*v, lo), hi);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        v128_store(c.add(i * ldc) as *mut v128, row[0]);
        v128_store(c.add(i * ldc + 4) as *mut v128, row[1]);
    }
}
