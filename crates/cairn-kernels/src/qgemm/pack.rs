//! Packing into k-pair panels: one i32 word holds the i16 values (zero point
//! already subtracted) of two consecutive k, low half first, so a 32-bit splat of
//! an A word against a vector of B words is exactly what a dot-i16-pairs
//! instruction multiplies.

use super::{QKernel, Q8};

#[inline(always)]
pub(crate) fn pair(lo: i32, hi: i32) -> i32 {
    ((lo as u32 & 0xffff) | ((hi as u32) << 16)) as i32
}

/// The prepacked left operand (weights): `m x k`, in panels of the kernel's `mr`
/// rows; rows past `m` and the odd k tail are zeros.
#[derive(Clone, Debug)]
pub struct PackedQA {
    pub(crate) kernel: QKernel,
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) kp: usize,
    pub(crate) data: Vec<i32>,
}

impl PackedQA {
    /// Packs `m x k` values given by `at(row, col)` (already zero-point adjusted,
    /// within i16) for `kernel`.
    pub fn from_fn(kernel: QKernel, m: usize, k: usize, at: impl Fn(usize, usize) -> i32) -> PackedQA {
        let (mr, kp) = (kernel.mr, k.div_ceil(2));
        let panels = m.div_ceil(mr);
        let mut data = vec![0i32; panels * kp * mr];
        for p in 0..panels {
            let panel = &mut data[p * kp * mr..][..kp * mr];
            for r in 0..mr.min(m - p * mr) {
                let row = p * mr + r;
                for q in 0..kp {
                    let lo = at(row, 2 * q);
                    let hi = if 2 * q + 1 < k { at(row, 2 * q + 1) } else { 0 };
                    panel[q * mr + r] = pair(lo, hi);
                }
            }
        }
        PackedQA { kernel, m, k, kp, data }
    }

    /// Packs 8-bit values: element (r, c) at `w[r * row_stride + c * col_stride]`,
    /// with one zero point per row (or one for all rows).
    pub fn new(kernel: QKernel, w: Q8, m: usize, k: usize, row_stride: usize, col_stride: usize, zero: &[i32]) -> PackedQA {
        assert!(zero.len() == 1 || zero.len() == m, "PackedQA: zero points must be 1 or m");
        if m > 0 && k > 0 {
            assert!((m - 1) * row_stride + (k - 1) * col_stride < w.len(), "PackedQA: weights too short");
        }
        let z = |r: usize| if zero.len() == 1 { zero[0] } else { zero[r] };
        PackedQA::from_fn(kernel, m, k, |r, c| w.at(r * row_stride + c * col_stride) - z(r))
    }

    pub fn rows(&self) -> usize {
        self.m
    }
    pub fn depth(&self) -> usize {
        self.k
    }
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
    pub fn kernel(&self) -> QKernel {
        self.kernel
    }
}

/// The right operand (activations), packed per call: element (kk, j) of the
/// logical `k x n` matrix is `data[kk * k_stride + j * n_stride]`, minus `zero`.
#[derive(Clone, Copy, Debug)]
pub struct QRhs<'a> {
    pub data: Q8<'a>,
    pub zero: i32,
    pub k_stride: usize,
    pub n_stride: usize,
}

/// Packs columns `j0 .. j0 + cols` of B into panels of `nr` words per k-pair.
pub(crate) fn pack_b(b: &QRhs, k: usize, j0: usize, cols: usize, nr: usize, out: &mut Vec<i32>) {
    let kp = k.div_ceil(2);
    let panels = cols.div_ceil(nr);
    out.clear();
    out.resize(panels * kp * nr, 0);
    match b.data {
        Q8::U8(d) => pack_b_typed(d, b, k, j0, cols, nr, out),
        Q8::I8(d) => pack_b_typed(d, b, k, j0, cols, nr, out),
    }
}

fn pack_b_typed<T: Copy + Into<i32>>(d: &[T], b: &QRhs, k: usize, j0: usize, cols: usize, nr: usize, out: &mut [i32]) {
    let kp = k.div_ceil(2);
    let z = b.zero;
    for (p, panel) in out.chunks_exact_mut(kp * nr).enumerate() {
        let c0 = j0 + p * nr;
        let w = nr.min(j0 + cols - c0);
        for q in 0..kp {
            let dst = &mut panel[q * nr..][..w];
            let r0 = 2 * q * b.k_stride + c0 * b.n_stride;
            if 2 * q + 1 < k {
                let r1 = r0 + b.k_stride;
                if b.n_stride == 1 {
                    let (s0, s1) = (&d[r0..r0 + w], &d[r1..r1 + w]);
                    for ((o, &x0), &x1) in dst.iter_mut().zip(s0).zip(s1) {
                        *o = pair(x0.into() - z, x1.into() - z);
                    }
                } else {
                    for (c, o) in dst.iter_mut().enumerate() {
                        let i = c * b.n_stride;
                        *o = pair(d[r0 + i].into() - z, d[r1 + i].into() - z);
                    }
                }
            } else {
                for (c, o) in dst.iter_mut().enumerate() {
                    *o = pair(d[r0 + c * b.n_stride].into() - z, 0);
                }
            }
        }
    }
}
