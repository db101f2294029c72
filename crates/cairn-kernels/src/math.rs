//! Scalar math shared by kernels and by the reference operators.

/// erf(x) to ~1e-7 relative: W. J. Cody's rational approximations
/// ("Rational Chebyshev approximations for the error function", Math. Comp. 1969),
/// evaluated in f64.
#[allow(clippy::excessive_precision)] // Cody's published coefficients, kept verbatim
pub fn erf(x: f32) -> f32 {
    let x = x as f64;
    let ax = x.abs();
    let r = if ax < 0.5 {
        const A: [f64; 5] = [3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03, 1.85777706184603153e-1];
        const B: [f64; 4] = [2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03];
        let z = x * x;
        let mut num = A[4] * z;
        let mut den = z;
        for i in 0..3 {
            num = (num + A[i]) * z;
            den = (den + B[i]) * z;
        }
        return (x * (num + A[3]) / (den + B[3])) as f32;
    } else if ax < 4.0 {
        const C: [f64; 9] = [5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8];
        const D: [f64; 8] = [1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03];
        let mut num = C[8] * ax;
        let mut den = ax;
        for i in 0..7 {
            num = (num + C[i]) * ax;
            den = (den + D[i]) * ax;
        }
        let erfc = (num + C[7]) / (den + D[7]) * (-ax * ax).exp();
        1.0 - erfc
    } else {
        1.0
    };
    (if x < 0.0 { -r } else { r }) as f32
}

/// exp(x) in f32 without branches or libm calls, so loops over it vectorize:
/// k = round(x / ln 2) by the 1.5 * 2^23 trick, a degree-6 polynomial on the
/// reduced argument (|r| <= ln 2 / 2, relative error ~2e-7), then 2^k through the
/// exponent bits. Saturates to 0 below -87.3 and to e^88 (finite) above 88; NaN stays NaN.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let xc = if x < -87.3 { -87.3 } else if x > 88.0 { 88.0 } else { x };
    let k = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    let y = p * scale;
    if x.is_nan() {
        x
    } else if x < -87.3 {
        0.0
    } else {
        y
    }
}

/// erf(x) in f32 without branches on the data path (Abramowitz & Stegun 7.1.26,
/// absolute error <= 1.5e-7 in exact arithmetic, <= 1e-6 in f32 near 0), for the GELU epilogue where `erf` would be the bottleneck.
#[inline(always)]
pub fn erf_fast(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let r = 1.0 - poly * exp_fast(-a * a);
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// Softmax of one contiguous run in place, with the max subtracted for range.
pub fn softmax_in_place(v: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (m, x) in lanes.iter_mut().zip(c) {
            *m = if *x > *m { *x } else { *m };
        }
    }
    let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for x in chunks.remainder() {
        max = max.max(*x);
    }
    let mut sums = [0.0f32; 8];
    let mut chunks = v.chunks_exact_mut(8);
    for c in &mut chunks {
        for (s, x) in sums.iter_mut().zip(c.iter_mut()) {
            *x = exp_fast(*x - max);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_fast(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    v.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_erf_are_accurate() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let (got, want) = (exp_fast(x), (x as f64).exp());
            assert!(((got as f64 - want) / want).abs() < 5e-7, "exp({x}) = {got}, want {want}");
            let (got, want) = (erf_fast(x), erf(x));
            assert!((got - want).abs() < 1e-6, "erf({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp_fast(-100.0), 0.0);
        assert!(exp_fast(f32::NAN).is_nan());
        assert!(exp_fast(100.0).is_finite());
    }

    #[test]
    fn softmax_sums_to_one_and_matches_definition() {
        let v: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
        let mut got = v.clone();
        softmax_in_place(&mut got);
        let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = v.iter().map(|&x| ((x - max) as f64).exp()).sum();
        for (g, x) in got.iter().zip(&v) {
            let want = ((x - max) as f64).exp() / sum;
            assert!((*g as f64 - want).abs() < 1e-6);
        }
    }
}
