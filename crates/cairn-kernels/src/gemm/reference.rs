//! Naive GEMM in f64 accumulation: the ground truth the blocked kernels are tested against.

use super::{MatRef, Transpose};

/// `C = alpha * op(A) * op(B) + beta * C` by the definition.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_reference(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let a = MatRef::new(a, lda, trans_a);
    let b = MatRef::new(b, ldb, trans_b);
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += a.at(i, p) as f64 * b.at(p, j) as f64;
            }
            let prev = if beta == 0.0 { 0.0 } else { beta * c[i * ldc + j] };
            c[i * ldc + j] = alpha * s as f32 + prev;
        }
    }
}
