//! Row normalization (LayerNormalization's inner loop), vectorized.
//!
//! The statistics are summed in f32 over sixteen lanes (one zmm, two ymm), block by
//! block, and each block's total is added into an f64 sum: a row of a few hundred values
//! (a transformer's hidden size) then costs one vector pass per statistic, and a row of
//! millions keeps f64-grade accuracy (each f32 partial sums at most `BLOCK / LANES`
//! values). The f64 per element this replaces ran at ~1.6 ns an element natively, a
//! sixth of MiniLM's non-GEMM time. Compiled per ISA like [`crate::vmath`].

use crate::vmath::per_isa;

/// Partial sums per row pass: a multiple of every vector width.
const LANES: usize = 16;
/// Values summed in f32 before the running total moves to f64.
const BLOCK: usize = 1024;

/// The sum of `f(x)` over `x`: f32 lanes inside blocks of [`BLOCK`], f64 across blocks.
#[inline(always)]
fn blocked_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0f64;
    for block in x.chunks(BLOCK) {
        let mut lanes = [0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for c in &mut chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += f(v);
            }
        }
        let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
        // Pairwise, so no lane's sum waits on all the others.
        let mut w = LANES;
        while w > 1 {
            w /= 2;
            let (lo, hi) = lanes.split_at_mut(w);
            for (a, b) in lo.iter_mut().zip(&hi[..w]) {
                *a += *b;
            }
        }
        total += lanes[0] as f64 + tail as f64;
    }
    total
}

per_isa! {
    /// `y = (x - mean) / sqrt(var + eps) * scale + bias` over one row (population
    /// variance, computed around the mean in a second pass); writes `(mean, 1 / std)` to
    /// `stats`. `y`, `scale` and `bias` (if any) must be as long as `x`.
    pub fn layer_norm_row(x: &[f32], y: &mut [f32], scale: &[f32], bias: Option<&[f32]>, eps: f32, stats: &mut (f32, f32)) {
        assert!(y.len() == x.len() && scale.len() == x.len() && bias.is_none_or(|b| b.len() == x.len()), "layer_norm_row: lengths differ");
        let n = x.len().max(1) as f64;
        let mean = (blocked_sum(x, |v| v) / n) as f32;
        let var = blocked_sum(x, |v| (v - mean) * (v - mean)) / n;
        let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
        match bias {
            Some(bias) => {
                for (((o, &v), &s), &b) in y.iter_mut().zip(x).zip(scale).zip(bias) {
                    *o = (v - mean) * inv * s + b;
                }
            }
            None => {
                for ((o, &v), &s) in y.iter_mut().zip(x).zip(scale) {
                    *o = (v - mean) * inv * s;
                }
            }
        }
        *stats = (mean, inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f64 definition.
    fn reference(x: &[f32], scale: &[f32], bias: &[f32], eps: f32) -> (Vec<f32>, f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps as f64).sqrt();
        let y = x.iter().zip(scale).zip(bias).map(|((&v, &s), &b)| ((v as f64 - mean) * inv * s as f64 + b as f64) as f32).collect();
        (y, mean, inv)
    }

    #[test]
    fn rows_of_every_length_match_the_f64_definition() {
        // 1 and 15 are all tail, 384 a transformer row, 5000 several blocks with a tail.
        for len in [1usize, 15, 16, 17, 100, 384, 1024, 1025, 5000] {
            // An offset mean (like hidden states' ~1e1) tests that the variance is centred.
            let x: Vec<f32> = (0..len).map(|i| 20.0 + ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0).collect();
            let scale: Vec<f32> = (0..len).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
            let bias: Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
            let (want, mean, inv) = reference(&x, &scale, &bias, 1e-5);
            let mut y = vec![f32::NAN; len];
            let mut stats = (0.0, 0.0);
            layer_norm_row(&x, &mut y, &scale, Some(&bias), 1e-5, &mut stats);
            for (i, (&g, &w)) in y.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 2e-5 * (1.0 + w.abs()), "len {len}, [{i}]: {g} vs {w}");
            }
            assert!((stats.0 as f64 - mean).abs() <= 1e-6 * mean.abs());
            assert!((stats.1 as f64 - inv).abs() <= 1e-5 * inv, "len {len}: inv std {} vs {inv}", stats.1);
            let mut unbiased = vec![0.0; len];
            layer_norm_row(&x, &mut unbiased, &scale, None, 1e-5, &mut stats);
            for ((&u, &g), &b) in unbiased.iter().zip(&y).zip(&bias) {
                assert!((u + b - g).abs() <= 1e-5 * (1.0 + g.abs()));
            }
        }
    }

    #[test]
    fn a_constant_row_normalizes_to_the_bias() {
        let x = vec![3.25f32; 40];
        let (scale, bias) = (vec![2.0f32; 40], vec![0.5f32; 40]);
        let mut y = vec![0.0; 40];
        let mut stats = (0.0, 0.0);
        layer_norm_row(&x, &mut y, &scale, Some(&bias), 1e-5, &mut stats);
        assert!(y.iter().all(|&v| v == 0.5), "{y:?}");
        assert_eq!(stats.0, 3.25);
    }

    #[test]
    fn nan_propagates_and_empty_rows_are_fine() {
        let mut x = vec![1.0f32; 20];
        x[3] = f32::NAN;
        let ones = vec![1.0f32; 20];
        let mut y = vec![0.0; 20];
        let mut stats = (0.0, 0.0);
        layer_norm_row(&x, &mut y, &ones, None, 1e-5, &mut stats);
        assert!(y.iter().all(|v| v.is_nan()));
        layer_norm_row(&[], &mut [], &[], None, 1e-5, &mut stats);
    }
}
