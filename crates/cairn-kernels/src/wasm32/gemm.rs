//! simd128 micro-kernel, 6x8: twelve v128 accumulators, two for the B row and one
//! splat of A. V8 maps wasm values onto the 16 xmm registers of x86_64 (and 32 on
//! arm64), so 15 live vectors fit without spills. Without relaxed-simd there is no
//! fused multiply-add: each step is a mul and an add.

use crate::gemm::MicroKernel;
use core::arch::wasm32::*;

const MR: usize = 6;
const NR: usize = 8;

pub(crate) const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: NR, run: kernel_6x8 };

/// # Safety
/// See [`MicroKernel::run`].
unsafe fn kernel_6x8(kc: usize, mut a: *const f32, mut b: *const f32, c: *mut f32, ldc: usize, accumulate: bool) {
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
            row[0] = f32x4_add(row[0], f32x4_mul(av, b0));
            row[1] = f32x4_add(row[1], f32x4_mul(av, b1));
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    for (i, row) in acc.iter().enumerate() {
        v128_store(c.add(i * ldc) as *mut v128, row[0]);
        v128_store(c.add(i * ldc + 4) as *mut v128, row[1]);
    }
}
