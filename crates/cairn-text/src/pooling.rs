//! Token states `[batch, tokens, dim]` to one vector per text, as sentence-transformers'
//! `Pooling` and `Normalize` modules do.

pub use cairn_bundle::text_task::Pooling;

/// Pools `hidden` (`[batch, tokens, dim]`, row-major) under `mask` (`[batch, tokens]`).
/// A row whose mask is all zeros pools to zeros rather than dividing by zero.
pub fn pool(hidden: &[f32], mask: &[i64], batch: usize, tokens: usize, dim: usize, pooling: Pooling) -> Vec<f32> {
    debug_assert_eq!(hidden.len(), batch * tokens * dim);
    let mut out = vec![0f32; batch * dim];
    for (b, row) in out.chunks_exact_mut(dim).enumerate() {
        let states = &hidden[b * tokens * dim..(b + 1) * tokens * dim];
        let live = || states.chunks_exact(dim).zip(&mask[b * tokens..(b + 1) * tokens]).filter(|(_, &m)| m != 0).map(|(s, _)| s);
        match pooling {
            Pooling::Cls => row.copy_from_slice(&states[..dim]),
            Pooling::Mean => {
                let mut count = 0usize;
                for s in live() {
                    row.iter_mut().zip(s).for_each(|(o, &x)| *o += x);
                    count += 1;
                }
                // sentence-transformers clamps the token count at 1e-9; with count >= 1 it is the count.
                let scale = 1.0 / (count.max(1) as f32);
                row.iter_mut().for_each(|o| *o *= scale);
            }
            Pooling::Max => {
                let mut any = false;
                for s in live() {
                    if !any {
                        row.copy_from_slice(s);
                        any = true;
                    } else {
                        row.iter_mut().zip(s).for_each(|(o, &x)| *o = o.max(x));
                    }
                }
            }
        }
    }
    out
}

/// Scales each `dim`-long row to unit L2 norm (rows of zeros stay zeros).
pub fn normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two texts, three tokens, dim 2; the second text's last token is padding.
    const HIDDEN: [f32; 12] = [1., 2., 3., 4., 5., 6., 10., 0., 20., 2., 99., 99.];
    const MASK: [i64; 6] = [1, 1, 1, 1, 1, 0];

    #[test]
    fn mean_ignores_padding() {
        assert_eq!(pool(&HIDDEN, &MASK, 2, 3, 2, Pooling::Mean), [3., 4., 15., 1.]);
    }

    #[test]
    fn cls_takes_the_first_token_and_max_ignores_padding() {
        assert_eq!(pool(&HIDDEN, &MASK, 2, 3, 2, Pooling::Cls), [1., 2., 10., 0.]);
        assert_eq!(pool(&HIDDEN, &MASK, 2, 3, 2, Pooling::Max), [5., 6., 20., 2.]);
    }

    #[test]
    fn an_all_padding_row_pools_to_zeros() {
        assert_eq!(pool(&HIDDEN, &[1, 1, 1, 0, 0, 0], 2, 3, 2, Pooling::Mean)[2..], [0., 0.]);
    }

    #[test]
    fn normalized_rows_have_unit_norm() {
        let mut v = vec![3., 4., 0., 0.];
        normalize_rows(&mut v, 2);
        assert_eq!(v, [0.6, 0.8, 0., 0.]);
    }
}
