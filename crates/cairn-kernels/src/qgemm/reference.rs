//! The naive int8 GEMM every fast kernel is tested against: i64 accumulation,
//! f64 epilogue, no packing.

use super::{QEpilogue, Q8};

/// `acc[i][j] = sum_k (a[i, k] - za[i]) * (b[k, j] - zb)`, row-major `m x n`.
#[allow(clippy::too_many_arguments)]
pub fn qgemm_reference_i32(m: usize, n: usize, k: usize, a: Q8, lda: usize, za: &[i32], b: Q8, ldb: usize, zb: i32) -> Vec<i32> {
    let mut out = vec![0i32; m * n];
    for i in 0..m {
        let z = if za.len() == 1 { za[0] } else { za[i] };
        for j in 0..n {
            let mut s = 0i64;
            for kk in 0..k {
                s += (a.at(i * lda + kk) - z) as i64 * (b.at(kk * ldb + j) - zb) as i64;
            }
            out[i * n + j] = s as i32;
        }
    }
    out
}

/// The epilogue in f64: the real value of each accumulator (plus its integer bias, in i64)
/// after scale, bias and activation.
pub fn real_reference(acc: &[i32], m: usize, n: usize, epi: &QEpilogue) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        let s = if epi.scale.len() == 1 { epi.scale[0] } else { epi.scale[i] } as f64;
        let b = epi.bias.map_or(0.0, |v| if v.len() == 1 { v[0] } else { v[i] }) as f64;
        let ib = epi.acc_bias.map_or(0, |v| if v.len() == 1 { v[0] } else { v[i] }) as i64;
        for j in 0..n {
            out[i * n + j] = epi.activation.apply_one(((acc[i * n + j] as i64 + ib) as f64 * s + b) as f32);
        }
    }
    out
}

/// Requantizes real values to `[lo, hi]` with round-half-even, the zero point added after
/// rounding (as the kernels' rule, `super::rule`, and the ONNX reference do).
pub fn requantize_reference(real: &[f32], out_scale: f32, zero: i32, lo: i32, hi: i32) -> Vec<i32> {
    real.iter()
        .map(|&v| ((v as f64 / out_scale as f64).round_ties_even() as i64 + zero as i64).clamp(lo as i64, hi as i64) as i32)
        .collect()
}
