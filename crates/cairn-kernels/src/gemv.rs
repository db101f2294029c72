//! Matrix-vector products `y = A x` with `A` row-major: the recurrent step of LSTM, GRU
//! and RNN at batch 1, where a GEMM would pack the whole weight matrix (as large as the
//! product itself) to use it for a single row. Each output is a dot product of one
//! contiguous row with `x`, read once from memory: the loop is bandwidth-bound, and
//! eight independent accumulators keep it there rather than on the add latency.

use crate::vmath::per_isa;

/// Lanes summed independently: two AVX2 vectors, four simd128 vectors.
const LANES: usize = 8;

#[inline(always)]
fn dot(a: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_chunks, x_chunks) = (a.chunks_exact(LANES), x.chunks_exact(LANES));
    let (a_tail, x_tail) = (a_chunks.remainder(), x_chunks.remainder());
    for (ac, xc) in a_chunks.zip(x_chunks) {
        for l in 0..LANES {
            acc[l] += ac[l] * xc[l];
        }
    }
    let mut sum = 0.0;
    for (av, xv) in a_tail.iter().zip(x_tail) {
        sum += av * xv;
    }
    let half = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    sum + (half[0] + half[2]) + (half[1] + half[3])
}

per_isa! {
    /// `y[r] = dot(a[r * cols..][..cols], x)` for every row `r < y.len()`, added to `y`
    /// when `accumulate`. Panics if `a` holds fewer than `y.len() * cols` floats or `x`
    /// fewer than `cols`.
    pub fn gemv(a: &[f32], cols: usize, x: &[f32], y: &mut [f32], accumulate: bool) {
        assert!(a.len() >= y.len() * cols && x.len() >= cols, "gemv: operands too small");
        let x = &x[..cols];
        for (r, out) in y.iter_mut().enumerate() {
            let v = dot(&a[r * cols..][..cols], x);
            *out = if accumulate { *out + v } else { v };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_naive_product_on_odd_sizes() {
        for (rows, cols) in [(1usize, 1usize), (3, 7), (5, 8), (17, 33), (64, 512), (2, 0)] {
            let a: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let x: Vec<f32> = (0..cols).map(|i| ((i * 13 % 17) as f32 - 8.0) / 4.0).collect();
            let want: Vec<f64> = (0..rows).map(|r| (0..cols).map(|c| a[r * cols + c] as f64 * x[c] as f64).sum::<f64>() + 1.0).collect();
            let mut y = vec![1.0f32; rows];
            gemv(&a, cols, &x, &mut y, true);
            for (g, w) in y.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "{rows}x{cols}: {g} vs {w}");
            }
            gemv(&a, cols, &x, &mut y, false);
            assert!((y[0] as f64 - (want[0] - 1.0)).abs() <= 1e-4 * (1.0 + want[0].abs()));
        }
    }
}
