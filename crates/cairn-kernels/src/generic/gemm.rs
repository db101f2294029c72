//! Portable micro-kernel: plain Rust over fixed-size arrays, which LLVM keeps in
//! registers and vectorizes for whatever the target baseline offers (SSE2 on
//! x86_64; nothing on a wasm build without SIMD).

use crate::gemm::{MicroKernel, TileEpilogue};

const MR: usize = 4;
const NR: usize = 8;

pub(crate) const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: NR, run: kernel_4x8, edge: None };

/// # Safety
/// See [`MicroKernel::run`].
unsafe fn kernel_4x8(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    let a = std::slice::from_raw_parts(a, kc * MR);
    let mut acc = [[0.0f32; NR]; MR];
    for (p, ap) in a.chunks_exact(MR).enumerate() {
        let bp = std::slice::from_raw_parts(b.add(p * ldb), NR);
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] += ap[i] * bp[j];
            }
        }
    }
    for (i, row) in acc.iter_mut().enumerate() {
        let out = std::slice::from_raw_parts_mut(c.add(i * ldc), NR);
        if accumulate {
            row.iter_mut().zip(out.iter()).for_each(|(v, o)| *v += o);
        }
        if let Some(e) = epi {
            for (j, v) in row.iter_mut().enumerate() {
                let mut x = *v;
                if !e.row_bias.is_null() {
                    x += *e.row_bias.add(i);
                }
                if !e.col_bias.is_null() {
                    x += *e.col_bias.add(j);
                }
                if !e.residual.is_null() {
                    x += *e.residual.add(i * e.ld_residual + j);
                }
                *v = if e.clamp && x < e.lo {
                    e.lo
                } else if e.clamp && x > e.hi {
                    e.hi
                } else {
                    x
                };
            }
        }
        out.copy_from_slice(row);
    }
}
