//! KL-divergence ("entropy") calibration, after TensorRT (S. Migacz, "8-bit Inference
//! with TensorRT", GTC 2017): among clipping ranges, pick the one whose quantized
//! distribution loses the least information about the observed one. For a candidate
//! range, the reference `P` is the histogram inside the range with the mass outside it
//! folded into the edge bins (clipped values land there), and the candidate `Q` is the
//! in-range histogram as the quantizer sees it: each level's mass spread evenly over
//! the bins it covers where `P` is non-zero. Clipping too much makes the edge bins of
//! `P` heavier than `Q` knows; clipping too little merges many bins per level and
//! flattens `Q`. The range minimizing `KL(P || Q)` wins.
//!
//! Cairn's activations are u8 asymmetric (256 levels over `[lo, hi]`, 0 exact), not
//! TensorRT's int8 symmetric on `|x|` (128 levels), so:
//! - both ends are searched (coordinate descent, each end by bins), and only an end
//!   that lies beyond 0: a tensor that is never negative (ReLU, ReLU6) keeps `lo = 0`;
//! - the levels are the real quantizer's grid (step `(hi - lo) / 255`, zero point
//!   rounded), so the bin -> level mapping is what the u8 kernels will do;
//! - exact zeros are left out of the histogram: the zero point represents them exactly
//!   whatever the range, and ReLU outputs are often half zeros, whose spike would
//!   otherwise dominate the divergence and reward ever narrower ranges;
//! - a saturation spike (ReLU6 outputs at 6) stays in: clipping below it folds the spike
//!   into the edge bin, which `Q` cannot follow, so the bound is kept.

use crate::calibrate::{Observed, Range};

/// Histogram bins over the observed range: 16 per u8 level at full range.
pub(crate) const BINS: usize = 4096;
const LEVELS: usize = 256;
/// The narrowest candidate spans this many bins: one per level (1/16 of the observed
/// range, as TensorRT's 128 of 2048); narrower, `Q` would copy `P` and KL say nothing.
const MIN_SPAN: usize = LEVELS;
/// Coarse scan step (bins), then every bin around the best coarse candidate.
const COARSE: usize = 16;
/// Probability floor for bins `Q` leaves empty while `P` has mass (outliers folded onto
/// an edge level that holds nothing in range), so their cost is large but finite.
const FLOOR: f64 = 1e-9;

/// The KL-optimal range of one observed tensor (before widening to contain 0).
pub(crate) fn range(o: &Observed) -> Range {
    let n = o.hist.len();
    let width = o.hi - o.lo;
    if n == 0 || width.is_nan() || width <= 0.0 {
        return Range { lo: o.lo, hi: o.hi };
    }
    let mut hist: Vec<f64> = o.hist.iter().map(|&c| c as f64).collect();
    if o.lo <= 0.0 && o.hi >= 0.0 {
        let z = (((0.0 - o.lo) / width) * n as f32) as usize;
        let z = z.min(n - 1);
        hist[z] = (hist[z] - o.zeros as f64).max(0.0);
    }
    if hist.iter().all(|&c| c == 0.0) {
        return Range { lo: o.lo, hi: o.hi };
    }
    let h = Histogram { hist, lo: o.lo, width: width / n as f32 };
    // Bins [a, b) are in range. The zero bin bounds what each end may clip to.
    let zero = ((-o.lo / width) * n as f32).clamp(0.0, n as f32) as usize;
    let (search_lo, search_hi) = (o.lo < 0.0, o.hi > 0.0);
    let (mut a, mut b) = (0usize, n);
    for _ in 0..3 {
        let before = (a, b);
        if search_hi {
            let lo_b = (a + MIN_SPAN).max(zero + 1).min(n);
            b = best(lo_b, n, |b| h.kl(a, b));
        }
        if search_lo {
            // Scanned as distance from the narrowest `a`, so ties go to the wider range.
            let hi_a = b.saturating_sub(MIN_SPAN).min(zero);
            a = hi_a - best(0, hi_a, |i| h.kl(hi_a - i, b));
        }
        if (a, b) == before {
            break;
        }
    }
    Range { lo: if search_lo { h.edge(a) } else { o.lo }, hi: if search_hi { h.edge(b) } else { o.hi } }
}

/// The argmin of `f` over `from..=to`: every `COARSE`-th candidate, then every one
/// around the best. Ties go to the larger candidate (the wider range).
fn best(from: usize, to: usize, f: impl Fn(usize) -> f64) -> usize {
    if from >= to {
        return to;
    }
    let pick = |cands: &mut dyn Iterator<Item = usize>, start: (usize, f64)| {
        cands.fold(start, |(bi, bk), i| {
            let k = f(i);
            if k < bk {
                (i, k)
            } else {
                (bi, bk)
            }
        })
    };
    let coarse = pick(&mut (from..=to).rev().step_by(COARSE).chain(std::iter::once(from)), (to, f(to)));
    let (lo, hi) = (coarse.0.saturating_sub(COARSE).max(from), (coarse.0 + COARSE).min(to));
    pick(&mut (lo..=hi).rev(), coarse).0
}

struct Histogram {
    hist: Vec<f64>,
    lo: f32,
    width: f32,
}

impl Histogram {
    fn edge(&self, i: usize) -> f32 {
        self.lo + self.width * i as f32
    }

    /// KL(P || Q) for the range `[edge(a), edge(b)]` quantized to u8 as Cairn does.
    fn kl(&self, a: usize, b: usize) -> f64 {
        let (lo, hi) = (self.edge(a).min(0.0), self.edge(b).max(0.0));
        let step = ((hi - lo) / (LEVELS - 1) as f32) as f64;
        if step.is_nan() || step <= 0.0 {
            return f64::INFINITY;
        }
        let zp = (-lo as f64 / step).round();
        let level = |j: usize| {
            let center = self.lo as f64 + self.width as f64 * (j as f64 + 0.5);
            ((center / step).round() + zp).clamp(0.0, (LEVELS - 1) as f64) as usize
        };
        let inside = &self.hist[a..b];
        let left: f64 = self.hist[..a].iter().sum();
        let right: f64 = self.hist[b..].iter().sum();
        let mut p = inside.to_vec();
        p[0] += left;
        *p.last_mut().expect("span >= 1") += right;
        let (mut mass, mut count) = ([0f64; LEVELS], [0u32; LEVELS]);
        for (j, (&h, &pj)) in inside.iter().zip(&p).enumerate() {
            let k = level(a + j);
            mass[k] += h;
            count[k] += (pj > 0.0) as u32;
        }
        let (p_total, q_total) = (p.iter().sum::<f64>(), inside.iter().sum::<f64>());
        if p_total <= 0.0 {
            return f64::INFINITY;
        }
        let mut kl = 0.0;
        for (j, &pj) in p.iter().enumerate() {
            if pj <= 0.0 {
                continue;
            }
            let k = level(a + j);
            let q = if q_total > 0.0 { mass[k] / count[k] as f64 / q_total } else { 0.0 };
            let pn = pj / p_total;
            kl += pn * (pn / q.max(FLOOR)).ln();
        }
        kl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic sample source (64-bit LCG), uniform in [0, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            (-2.0 * self.next().ln()).sqrt() * (std::f64::consts::TAU * self.next()).cos()
        }
    }

    pub(crate) fn observe(values: &[f32], bins: usize) -> Observed {
        let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let mut o = Observed { lo, hi, hist: Vec::new(), zeros: 0 };
        o.add(values, bins);
        o
    }

    fn kl_range(values: &[f32]) -> Range {
        range(&observe(values, BINS))
    }

    #[test]
    fn uniform_values_keep_their_range() {
        let mut r = Lcg(1);
        let v: Vec<f32> = (0..400_000).map(|_| r.next() as f32).collect();
        let got = kl_range(&v);
        assert!(got.lo == v.iter().cloned().fold(f32::INFINITY, f32::min), "{got:?}");
        assert!(got.hi > 0.97, "{got:?}");
        let s: Vec<f32> = (0..400_000).map(|_| (2.0 * r.next() - 1.0) as f32).collect();
        let got = kl_range(&s);
        assert!(got.lo < -0.97 && got.hi > 0.97, "{got:?}");
    }

    #[test]
    fn relu_zeros_do_not_narrow_the_range() {
        // ReLU(N(0, 1) - 1): 84% exact zeros, the rest a Gaussian tail up to ~4. Counted
        // in the histogram, the zero spike would pull the range down to ~0.7 (measured);
        // left out (the zero point holds them exactly), the tail is judged on its own.
        let mut r = Lcg(2);
        let v: Vec<f32> = (0..400_000).map(|_| (r.normal() - 1.0).max(0.0) as f32).collect();
        let got = kl_range(&v);
        assert_eq!(got.lo, 0.0);
        assert!(got.hi > 3.0, "{got:?}");
    }

    #[test]
    fn relu6_saturation_is_kept() {
        // ReLU6 of N(2, 2): 2.3% of the values sit exactly at 6; clipping below that
        // spike would move it, so the bound stays.
        let mut r = Lcg(3);
        let v: Vec<f32> = (0..400_000).map(|_| (2.0 + 2.0 * r.normal()).clamp(0.0, 6.0) as f32).collect();
        let got = kl_range(&v);
        assert_eq!(got.lo, 0.0);
        assert!(got.hi >= 5.99, "{got:?}");
    }

    #[test]
    fn heavy_tails_are_clipped() {
        // Laplace(1) with a few extreme outliers on one side: the range is clipped far
        // inside min-max, on the positive end where the outliers are, and the negative
        // end (no outliers, the Laplace tail only) is clipped by its own measure.
        let mut r = Lcg(4);
        let mut v: Vec<f32> = (0..400_000)
            .map(|_| {
                let u = r.next() - 0.5;
                (-u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
            })
            .collect();
        v.extend([60.0, 80.0, 100.0]);
        let o = observe(&v, BINS);
        let got = range(&o);
        assert!(got.hi < 0.25 * o.hi, "{got:?} of {}..{}", o.lo, o.hi);
        assert!(got.hi > 5.0, "{got:?}");
        assert!(got.lo < 0.0 && got.lo >= o.lo, "{got:?} of {}..{}", o.lo, o.hi);
        // What clipping buys: the 400,000 ordinary values are quantized with far less
        // error than in min-max's range (the 3 outliers pay for it).
        let bulk = &v[..400_000];
        let (e_kl, e_minmax) = (quantization_mse(bulk, got), quantization_mse(bulk, Range { lo: o.lo, hi: o.hi }));
        assert!(e_kl < 0.1 * e_minmax, "mean squared error {e_kl} vs min-max {e_minmax}");
    }

    /// Mean squared error of u8 quantization of `v` to `r` (as `quantize::activation_params`).
    fn quantization_mse(v: &[f32], r: Range) -> f64 {
        let (scale, zero) = crate::quantize::activation_params(Range { lo: r.lo.min(0.0), hi: r.hi.max(0.0) });
        v.iter()
            .map(|&x| {
                let q = ((x / scale).round() + zero as f32).clamp(0.0, 255.0);
                ((q - zero as f32) * scale - x) as f64
            })
            .map(|e| e * e)
            .sum::<f64>()
            / v.len() as f64
    }
}
