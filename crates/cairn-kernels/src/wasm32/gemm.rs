//! simd128 micro-kernels, 4x8 and (relaxed build) 5x8: a row of C is two v128
//! accumulators. V8 maps wasm values onto the 16 xmm registers of x86_64 (15 allocatable).
//! TurboFan keeps the wasm order of loads (each may trap) and sinks the pure arithmetic after
//! them, so every broadcast of A loaded as its own splat is live at once: 4x8 fits (4 splats +
//! 2 B + 8 accumulators), 6x8 does not (Node 20: 25% slower, ~1.35x on MobileNetV2; Chromium
//! 156 allocates it better, -8% on the text encoder). The 5x8 tile loads rows 0-3 of A as one
//! vector and broadcasts lanes with shuffles next to their use (2 A vectors + a shuffle + 2 B +
//! 10 accumulators): Chromium -5% on the encoder's products, Node 20 the same as 4x8. Without
//! relaxed-simd there is no fused multiply-add (each step is a mul and an add, one more live
//! temporary), so that build has 4x8 only; the relaxed build fuses them (`super::madd`).

use crate::gemm::{MicroKernel, TileEpilogue};
use core::arch::wasm32::*;

const NR: usize = 8;

pub(crate) const KERNEL: MicroKernel = MicroKernel { mr: 4, nr: NR, run: kernel_mx8::<4>, edge: None };

/// The tall tile, for products whose A is packed per call (activations) and has rows enough
/// for it ([`crate::gemm::driver`] decides); prepacked weights keep [`KERNEL`]'s panels.
#[cfg(target_feature = "relaxed-simd")]
pub(crate) const KERNEL_TALL: MicroKernel = MicroKernel { mr: 5, nr: NR, run: kernel_mx8::<5>, edge: None };

/// # Safety
/// See [`MicroKernel::run`].
#[inline(always)]
pub(crate) unsafe fn kernel_mx8<const MR: usize>(
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
        // The 5-row tile: rows 0-3 of A in one vector (see the module note).
        let a4 = if MR > 4 { v128_load(a as *const v128) } else { f32x4_splat(0.0) };
        for (i, row) in acc.iter_mut().enumerate() {
            let av = match i {
                _ if MR == 4 || i >= 4 => v128_load32_splat(a.add(i) as *const u32),
                0 => i32x4_shuffle::<0, 0, 0, 0>(a4, a4),
                1 => i32x4_shuffle::<1, 1, 1, 1>(a4, a4),
                2 => i32x4_shuffle::<2, 2, 2, 2>(a4, a4),
                _ => i32x4_shuffle::<3, 3, 3, 3>(a4, a4),
            };
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
