//! Packing operands into the panel layout the micro-kernels stream through.
//!
//! Layout of a packed A (`m x k`): K is cut into blocks of `KC`; inside a block,
//! rows are grouped in panels of `mr`, each stored `p`-major (`kc` steps of `mr`
//! values), zero-padded to a whole panel. A block starting at `pc` begins at
//! `pc * m_padded`. Packed B is the same with columns in panels of `nr`.

use super::{MatRef, Transpose};
use crate::Isa;

/// K block size: an A panel (`mr x KC`) and a B panel (`KC x nr`) stay in L1.
pub(crate) const KC: usize = 256;

/// Packs `alpha * A[i0..i0+mc, p0..p0+kc]` into `mr`-row panels.
pub(crate) fn pack_a(a: &MatRef, alpha: f32, i0: usize, mc: usize, p0: usize, kc: usize, mr: usize, out: &mut [f32]) {
    for (panel, r0) in (0..mc).step_by(mr).enumerate() {
        let rows = mr.min(mc - r0);
        let dst = &mut out[panel * kc * mr..(panel + 1) * kc * mr];
        if a.trans == Transpose::No && rows == mr {
            // A whole panel of row-major A, the transformer case (tokens x features): a
            // transpose of `mr` rows, one const-sized loop per kernel shape so that it
            // unrolls (the generic loop below was a tenth of MiniLM's native time).
            let src = &a.data[(i0 + r0) * a.ld + p0..];
            match mr {
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                4 => simd128::row_major_panel_4(src, a.ld, kc, alpha, dst),
                #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
                4 => row_major_panel::<4>(src, a.ld, kc, alpha, dst),
                5 => row_major_panel::<5>(src, a.ld, kc, alpha, dst),
                6 => row_major_panel::<6>(src, a.ld, kc, alpha, dst),
                12 => row_major_panel::<12>(src, a.ld, kc, alpha, dst),
                _ => generic_panel(a, alpha, i0 + r0, rows, mr, p0, kc, dst),
            }
            continue;
        }
        generic_panel(a, alpha, i0 + r0, rows, mr, p0, kc, dst);
    }
}

/// One full panel of `MR` row-major rows (`ld` apart from `src`), `kc` columns each.
#[inline(always)]
fn row_major_panel<const MR: usize>(src: &[f32], ld: usize, kc: usize, alpha: f32, dst: &mut [f32]) {
    let rows: [&[f32]; MR] = std::array::from_fn(|i| &src[i * ld..][..kc]);
    let dst = &mut dst[..kc * MR];
    if alpha == 1.0 {
        for (p, out) in dst.chunks_exact_mut(MR).enumerate() {
            for i in 0..MR {
                out[i] = rows[i][p];
            }
        }
    } else {
        for (p, out) in dst.chunks_exact_mut(MR).enumerate() {
            for i in 0..MR {
                out[i] = alpha * rows[i][p];
            }
        }
    }
}

/// A panel of `rows <= mr` rows of A (either layout), zero-padded to `mr`.
#[allow(clippy::too_many_arguments)]
fn generic_panel(a: &MatRef, alpha: f32, r0: usize, rows: usize, mr: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    for i in 0..mr {
        if i >= rows {
            (0..kc).for_each(|p| dst[p * mr + i] = 0.0);
            continue;
        }
        let r = r0 + i;
        match a.trans {
            Transpose::No => {
                let src = &a.data[r * a.ld + p0..][..kc];
                for (p, v) in src.iter().enumerate() {
                    dst[p * mr + i] = alpha * v;
                }
            }
            Transpose::Yes => (0..kc).for_each(|p| dst[p * mr + i] = alpha * a.data[(p0 + p) * a.ld + r]),
        }
    }
}

/// Packs `B[p0..p0+kc, j0..j0+nc]` into `nr`-column panels.
pub(crate) fn pack_b(b: &MatRef, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, out: &mut [f32]) {
    for (panel, c0) in (0..nc).step_by(nr).enumerate() {
        let cols = nr.min(nc - c0);
        let dst = &mut out[panel * kc * nr..(panel + 1) * kc * nr];
        match b.trans {
            Transpose::No => {
                for p in 0..kc {
                    let row = &mut dst[p * nr..p * nr + nr];
                    let start = (p0 + p) * b.ld + j0 + c0;
                    copy_short(&mut row[..cols], &b.data[start..start + cols]);
                    row[cols..].fill(0.0);
                }
            }
            // simd128, a whole panel of a transposed B (attention's Kᵀ): four columns at a time.
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Transpose::Yes if cols == nr && nr.is_multiple_of(4) => {
                for j in (0..nr).step_by(4) {
                    let start = (j0 + c0 + j) * b.ld + p0;
                    simd128::transposed_columns_4(&b.data[start..], b.ld, kc, &mut dst[j..], nr);
                }
            }
            Transpose::Yes => {
                for j in 0..nr {
                    if j >= cols {
                        (0..kc).for_each(|p| dst[p * nr + j] = 0.0);
                        continue;
                    }
                    let src = &b.data[(j0 + c0 + j) * b.ld + p0..][..kc];
                    for (p, v) in src.iter().enumerate() {
                        dst[p * nr + j] = *v;
                    }
                }
            }
        }
    }
}

/// simd128 forms of the packing loops (LLVM leaves their scalar transposes scalar for wasm):
/// the same copies and products, four lanes and a 4x4 transpose at a time.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use crate::wasm32::transpose4;
    use core::arch::wasm32::*;

    /// Four rows of `kc` floats (`ld` apart from `src`), transposed into `dst[p * nr + i]`
    /// (`i < 4`, `p < kc`), times `alpha` unless it is 1 (as the scalar panel).
    #[inline(always)]
    fn transpose_rows_4(src: &[f32], ld: usize, kc: usize, alpha: f32, dst: &mut [f32], nr: usize) {
        let rows: [&[f32]; 4] = std::array::from_fn(|i| &src[i * ld..][..kc]);
        let last = (kc.max(1) - 1) * nr + 4;
        let dst = &mut dst[..last];
        let scale = f32x4_splat(alpha);
        let full = kc / 4 * 4;
        for p in (0..full).step_by(4) {
            // SAFETY: p + 4 <= kc, the length of each row.
            let r: [v128; 4] = std::array::from_fn(|i| unsafe { v128_load(rows[i].as_ptr().add(p) as *const v128) });
            for (q, mut v) in transpose4(r).into_iter().enumerate() {
                if alpha != 1.0 {
                    v = f32x4_mul(scale, v);
                }
                // SAFETY: (p + q) * nr + 4 <= (kc - 1) * nr + 4, the length of `dst`.
                unsafe { v128_store(dst.as_mut_ptr().add((p + q) * nr) as *mut v128, v) };
            }
        }
        for p in full..kc {
            for (i, row) in rows.iter().enumerate() {
                dst[p * nr + i] = if alpha != 1.0 { alpha * row[p] } else { row[p] };
            }
        }
    }

    /// [`super::row_major_panel`] for `MR = 4`.
    pub(super) fn row_major_panel_4(src: &[f32], ld: usize, kc: usize, alpha: f32, dst: &mut [f32]) {
        transpose_rows_4(src, ld, kc, alpha, dst, 4)
    }

    /// Columns `j .. j + 4` of a panel of a transposed B (each column `kc` floats, `ld` apart
    /// from `src`) into `dst[p * nr + i]`.
    pub(super) fn transposed_columns_4(src: &[f32], ld: usize, kc: usize, dst: &mut [f32], nr: usize) {
        transpose_rows_4(src, ld, kc, 1.0, dst, nr)
    }
}

/// A left operand packed once (convolution filters), for one ISA's micro-kernel.
#[derive(Clone, Debug)]
pub struct PackedA {
    pub(crate) isa: Isa,
    pub(crate) mr: usize,
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) data: Vec<f32>,
}

impl PackedA {
    /// Packs `alpha * op(A)` (`m x k`) for `isa`'s micro-kernel.
    pub fn new(isa: Isa, a: MatRef, m: usize, k: usize, alpha: f32) -> PackedA {
        let mr = isa.gemm_kernel().mr;
        let m_pad = m.div_ceil(mr) * mr;
        let mut data = vec![0.0f32; m_pad * k];
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            pack_a(&a, alpha, 0, m, pc, kc, mr, &mut data[pc * m_pad..]);
        }
        PackedA { isa, mr, m, k, data }
    }

    pub fn rows(&self) -> usize {
        self.m
    }
    pub fn cols(&self) -> usize {
        self.k
    }
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    /// The packed block for rows starting at `i0` (a multiple of `mr`) and K block `pc`.
    pub(crate) fn block(&self, i0: usize, pc: usize, kc: usize) -> &[f32] {
        let m_pad = self.m.div_ceil(self.mr) * self.mr;
        &self.data[pc * m_pad + i0 * kc..]
    }
}

/// A right operand packed once (MatMul/Gemm weights), for one ISA's micro-kernel.
#[derive(Clone, Debug)]
pub struct PackedB {
    pub(crate) isa: Isa,
    pub(crate) nr: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) data: Vec<f32>,
}

impl PackedB {
    /// Packs `op(B)` (`k x n`) for `isa`'s micro-kernel.
    pub fn new(isa: Isa, b: MatRef, k: usize, n: usize) -> PackedB {
        let nr = isa.gemm_kernel().nr;
        let n_pad = n.div_ceil(nr) * nr;
        let mut data = vec![0.0f32; n_pad * k];
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            pack_b(&b, pc, kc, 0, n, nr, &mut data[pc * n_pad..]);
        }
        PackedB { isa, nr, k, n, data }
    }

    pub fn rows(&self) -> usize {
        self.k
    }
    pub fn cols(&self) -> usize {
        self.n
    }
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    /// The packed block for columns starting at `j0` (a multiple of `nr`) and K block `pc`.
    pub(crate) fn block(&self, j0: usize, pc: usize, kc: usize) -> &[f32] {
        let n_pad = self.n.div_ceil(self.nr) * self.nr;
        &self.data[pc * n_pad + j0 * kc..]
    }
}

/// Copies a short run (a panel row, a plane row, an im2col row) with inline vector moves:
/// `copy_from_slice` of a runtime length becomes a `memcpy` call, which costs more
/// than the copy at these sizes. The tail is one more whole move that overlaps the
/// previous one (rows of 7, 14 or 28 floats need no scalar steps).
#[inline(always)]
pub fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    let src = &src[..n];
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            copy_n::<8>(dst, src, at);
            at += 8;
        }
        if at < n {
            copy_n::<8>(dst, src, n - 8);
        }
    } else if n >= 4 {
        copy_n::<4>(dst, src, 0);
        copy_n::<4>(dst, src, n - 4);
    } else {
        dst.copy_from_slice(src);
    }
}

#[inline(always)]
fn copy_n<const W: usize>(dst: &mut [f32], src: &[f32], at: usize) {
    let v: [f32; W] = src[at..at + W].try_into().expect("W wide");
    dst[at..at + W].copy_from_slice(&v);
}
