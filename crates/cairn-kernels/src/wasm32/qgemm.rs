//! simd128 int8 micro-kernel, 4x8 over k-pairs of i16: `i32x4.dot_i16x8_s`
//! multiplies four columns' pairs by the splatted pair of one A row and adds each
//! pair into an i32 lane (8 products per instruction). Eight accumulators, two B
//! vectors and one splat: the 4x8 shape the f32 kernel found V8 keeps in registers.

use crate::qgemm::QKernel;
use core::arch::wasm32::*;

const MR: usize = 4;
const NR: usize = 8;

pub(crate) const KERNEL: QKernel = QKernel { name: "i8_gemm_4x8_simd128", mr: MR, nr: NR, run: kernel_4x8 };

/// # Safety
/// See [`QKernel::run`].
unsafe fn kernel_4x8(kp: usize, mut a: *const i32, mut b: *const i32, c: *mut i32) {
    let mut acc = [[i32x4_splat(0); 2]; MR];
    for _ in 0..kp {
        let b0 = v128_load(b as *const v128);
        let b1 = v128_load(b.add(4) as *const v128);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = v128_load32_splat(a.add(i) as *const u32);
            row[0] = i32x4_add(row[0], i32x4_dot_i16x8(av, b0));
            row[1] = i32x4_add(row[1], i32x4_dot_i16x8(av, b1));
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    for (i, row) in acc.iter().enumerate() {
        v128_store(c.add(i * NR) as *mut v128, row[0]);
        v128_store(c.add(i * NR + 4) as *mut v128, row[1]);
    }
}
