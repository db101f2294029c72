//! Portable int8 micro-kernel, 4x8 over k-pairs: plain i32 arithmetic that LLVM
//! vectorizes for the target baseline; the twin of every SIMD kernel.

use crate::qgemm::{Layout, QKernel};

const MR: usize = 4;
const NR: usize = 8;

pub(crate) const KERNEL: QKernel = QKernel {
    name: "i8_gemm_4x8_generic",
    mr: MR,
    nr: NR,
    layout: Layout::Pairs,
    fallback: None,
    quads_weight_bound: 0,
    run: kernel_4x8,
    run_q8: None,
    run_gemv: gemv::<MR, false>,
};

/// # Safety
/// See [`QKernel::run`].
unsafe fn kernel_4x8(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    let mut acc: [[i32; NR]; MR] = std::array::from_fn(|i| [*init.add(i); NR]);
    let a = std::slice::from_raw_parts(a, kp * MR);
    let b = std::slice::from_raw_parts(b, kp * NR);
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &aw) in acc.iter_mut().zip(ap) {
            let (a0, a1) = (aw as i16 as i32, aw >> 16);
            for (v, &bw) in row.iter_mut().zip(bp) {
                *v = v.wrapping_add(a0 * (bw as i16 as i32) + a1 * (bw >> 16));
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        std::ptr::copy_nonoverlapping(row.as_ptr(), c.add(i * NR), NR);
    }
}

/// The matrix-vector product of one panel in plain integer arithmetic, for either layout
/// (see [`QKernel::run_gemv`]); the kernels without a SIMD one use it.
///
/// # Safety
/// `a` holds `kp * MR` words, `b` holds `kp`, `init` and `c` hold `MR` values.
// Inlined so that a wrapper compiled for an ISA (x86_64's AVX2 one) vectorizes it.
#[inline(always)]
pub(crate) unsafe fn gemv<const MR: usize, const QUADS: bool>(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    let mut acc: [i32; MR] = std::array::from_fn(|i| *init.add(i));
    let a = std::slice::from_raw_parts(a, kp * MR);
    let b = std::slice::from_raw_parts(b, kp);
    for (ap, &bw) in a.chunks_exact(MR).zip(b) {
        for (v, &aw) in acc.iter_mut().zip(ap) {
            *v = v.wrapping_add(if QUADS {
                let (x, y) = (aw.to_le_bytes(), bw.to_le_bytes());
                (0..4).map(|i| x[i] as i8 as i32 * y[i] as i32).sum::<i32>()
            } else {
                (aw as i16 as i32) * (bw as i16 as i32) + (aw >> 16) * (bw >> 16)
            });
        }
    }
    std::ptr::copy_nonoverlapping(acc.as_ptr(), c, MR);
}
