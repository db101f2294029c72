//! Vector-matrix products `y = x B` with `B` prepacked for the GEMM ([`PackedB`]): the
//! recurrent step of LSTM, GRU and RNN at batch 1, where the GEMM's micro-kernel would
//! spend `mr` rows of arithmetic on the one row there is.
//!
//! The product is bound by the bandwidth at which `B` streams in (an LSTM's `R` is
//! 2048x512 per direction, read from L3 at every step), so the packed layout is kept:
//! each `nr`-wide panel is one contiguous run per K block. Several panels are summed at
//! once (8 of AVX-512's 32 columns, 4 of the narrower ones: 16 or 8 vector accumulators,
//! within each ISA's register file), each into its own accumulators, which gives
//! independent chains of adds and several sequential streams for the prefetcher. Sums stay lane-wise (one output
//! per lane), so no horizontal reduction is needed and the order of the adds is fixed.

use crate::gemm::PackedB;
use crate::vmath::per_isa;

per_isa! {
    /// `y[j] = sum_p x[p] * B[p, j]` for every column `j < b.cols()`, added to `y` when
    /// `accumulate`. Panics if `x` holds fewer than `b.rows()` floats or `y` fewer than
    /// `b.cols()`.
    pub fn gemv_packed(b: &PackedB, x: &[f32], y: &mut [f32], accumulate: bool) {
        assert!(x.len() >= b.k && y.len() >= b.n, "gemv_packed: operands too small");
        match b.nr {
            32 => panels::<32>(b, x, y, accumulate),
            16 => panels::<16>(b, x, y, accumulate),
            8 => panels::<8>(b, x, y, accumulate),
            _ => panels_any(b, x, y, accumulate),
        }
    }
}

/// The kernel for a panel width known at compile time (the widths of the crate's ISAs).
#[inline(always)]
fn panels<const NR: usize>(b: &PackedB, x: &[f32], y: &mut [f32], accumulate: bool) {
    if NR >= 32 {
        panels_by::<NR, 8>(b, x, y, accumulate)
    } else {
        panels_by::<NR, 4>(b, x, y, accumulate)
    }
}

/// `P` panels at a time; the accumulators are locals by value so that they live in
/// registers (through `&mut acc` LLVM kept them on the stack: a store and a load per add).
#[inline(always)]
fn panels_by<const NR: usize, const P: usize>(b: &PackedB, x: &[f32], y: &mut [f32], accumulate: bool) {
    let (k, n) = (b.k, b.n);
    let n_panels = n.div_ceil(NR);
    for first in (0..n_panels).step_by(P) {
        let count = P.min(n_panels - first);
        let mut acc = [[0.0f32; NR]; P];
        for pc in (0..k).step_by(crate::gemm::KC) {
            let kc = crate::gemm::KC.min(k - pc);
            let block = b.block(first * NR, pc, kc);
            let xs = &x[pc..pc + kc];
            if count == P {
                let block = &block[..P * kc * NR];
                let mut a = acc;
                for (p, &xv) in xs.iter().enumerate() {
                    for (i, ai) in a.iter_mut().enumerate() {
                        let r = &block[(i * kc + p) * NR..][..NR];
                        for l in 0..NR {
                            ai[l] += xv * r[l];
                        }
                    }
                }
                acc = a;
            } else {
                for (i, a) in acc.iter_mut().enumerate().take(count) {
                    for (&xv, r) in xs.iter().zip(block[i * kc * NR..(i + 1) * kc * NR].chunks_exact(NR)) {
                        for l in 0..NR {
                            a[l] += xv * r[l];
                        }
                    }
                }
            }
        }
        for (i, a) in acc.iter().enumerate().take(count) {
            let j0 = (first + i) * NR;
            let out = &mut y[j0..n.min(j0 + NR)];
            store(out, &a[..out.len()], accumulate);
        }
    }
}

/// Any other panel width (no ISA of the crate packs one; kept so a new kernel stays correct).
fn panels_any(b: &PackedB, x: &[f32], y: &mut [f32], accumulate: bool) {
    let (k, n, nr) = (b.k, b.n, b.nr);
    for j0 in (0..n).step_by(nr) {
        let mut acc = vec![0.0f32; nr];
        for pc in (0..k).step_by(crate::gemm::KC) {
            let kc = crate::gemm::KC.min(k - pc);
            let panel = &b.block(j0, pc, kc)[..kc * nr];
            for (&xv, r) in x[pc..pc + kc].iter().zip(panel.chunks_exact(nr)) {
                acc.iter_mut().zip(r).for_each(|(a, v)| *a += xv * v);
            }
        }
        let out = &mut y[j0..n.min(j0 + nr)];
        store(out, &acc[..out.len()], accumulate);
    }
}

#[inline(always)]
fn store(out: &mut [f32], acc: &[f32], accumulate: bool) {
    if accumulate {
        out.iter_mut().zip(acc).for_each(|(o, a)| *o += a);
    } else {
        out.copy_from_slice(acc);
    }
}

per_isa! {
    /// `acc[j] += sum_k a[k] * w[k * acc.len() + j]` in exact i32 arithmetic, skipping rows
    /// whose `a[k]` is 0: the integer products of a dynamically quantized LSTM (uint8
    /// activations minus their zero point, times int8/uint8 weights stored `[K, N]`), each
    /// weight row read once. Compiled per ISA: baseline x86_64 has no 32-bit vector multiply.
    /// The caller keeps `|a[k]| * |w| * K` within i32 (255 * 255 * K for 8-bit operands).
    /// Panics if `w` holds fewer than `a.len() * acc.len()` values.
    pub fn gemv_i32_accumulate(a: &[i32], w: &[i32], acc: &mut [i32]) {
        let cols = acc.len();
        assert!(w.len() >= a.len() * cols, "gemv_i32_accumulate: weights too small");
        for (&av, row) in a.iter().zip(w.chunks_exact(cols.max(1))) {
            if av != 0 {
                acc.iter_mut().zip(row).for_each(|(x, &wv)| *x = x.wrapping_add(av.wrapping_mul(wv)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Isa, MatRef, Transpose};

    #[test]
    fn integer_product_is_exact() {
        let (k, n) = (37usize, 70usize);
        let a: Vec<i32> = (0..k).map(|i| (i as i32 * 53 % 511) - 255).map(|v| if v % 7 == 0 { 0 } else { v }).collect();
        let w: Vec<i32> = (0..k * n).map(|i| (i as i32 * 31 % 256) - 128).collect();
        let mut acc = vec![5i32; n];
        gemv_i32_accumulate(&a, &w, &mut acc);
        for (j, got) in acc.iter().enumerate() {
            let want: i32 = 5 + (0..k).map(|p| a[p] * w[p * n + j]).sum::<i32>();
            assert_eq!(*got, want, "column {j}");
        }
    }

    /// Every ISA's panel width, K across several blocks and partial panels and groups.
    #[test]
    fn matches_the_naive_product_on_odd_sizes() {
        let isas = [Isa::current(), Isa::Generic];
        for isa in isas {
            for (k, n) in [(1usize, 1usize), (7, 3), (8, 5), (33, 17), (512, 64), (300, 200), (600, 129), (0, 4), (5, 0)] {
                // B stored as `[n, k]` (an LSTM's R) and read transposed, as the recurrent op packs it.
                let bt: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
                let x: Vec<f32> = (0..k).map(|i| ((i * 13 % 17) as f32 - 8.0) / 4.0).collect();
                let want: Vec<f64> = (0..n).map(|j| (0..k).map(|p| bt[j * k + p] as f64 * x[p] as f64).sum::<f64>() + 1.0).collect();
                let packed = PackedB::new(isa, MatRef::new(&bt, k.max(1), Transpose::Yes), k, n);
                let mut y = vec![1.0f32; n];
                gemv_packed(&packed, &x, &mut y, true);
                for (g, w) in y.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "{isa:?} {k}x{n}: {g} vs {w}");
                }
                gemv_packed(&packed, &x, &mut y, false);
                for (g, w) in y.iter().zip(&want) {
                    assert!((*g as f64 - (w - 1.0)).abs() <= 1e-4 * (1.0 + w.abs()), "{isa:?} {k}x{n} (store): {g} vs {w}");
                }
            }
        }
    }
}
