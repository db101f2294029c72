//! Scalar math shared by kernels and by the reference operators.

/// erf(x) to ~1e-7 relative: W. J. Cody's rational approximations
/// ("Rational Chebyshev approximations for the error function", Math. Comp. 1969),
/// evaluated in f64.
#[allow(clippy::excessive_precision)] // Cody's published coefficients, kept verbatim
pub fn erf(x: f32) -> f32 {
    let x = x as f64;
    let ax = x.abs();
    let r = if ax < 0.5 {
        const A: [f64; 5] =
            [3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03, 1.85777706184603153e-1];
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
        const C: [f64; 9] = [
            5.64188496988670089e-1,
            8.88314979438837594e00,
            6.61191906371416295e01,
            2.98635138197400131e02,
            8.81952221241769090e02,
            1.71204761263407058e03,
            2.05107837782607147e03,
            1.23033935479799725e03,
            2.15311535474403846e-8,
        ];
        const D: [f64; 8] = [
            1.57449261107098347e01,
            1.17693950891312499e02,
            5.37181101862009858e02,
            1.62138957456669019e03,
            3.29079923573345963e03,
            4.36261909014324716e03,
            3.43936767414372164e03,
            1.23033935480374942e03,
        ];
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
/// Every condition is a select on computed values (no early return), which is what
/// lets LLVM vectorize loops over it (see [`crate::vmath`]).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
                                     // Clamp with comparisons, not `f32::max`/`min`: those are IEEE minNum/maxNum, which wasm
                                     // lacks (a libm call per element, no vectorization); `a > b ? a : b` is `f32x4.pmax`.
                                     // NaN fails the first comparison and becomes -87.3, so `k` below is always a small
                                     // integer; NaN is restored at the end.
    let xc = if x > -87.3 { x } else { -87.3 };
    let xc = if xc < 88.0 { xc } else { 88.0 };
    let k = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // SAFETY: k is an integer in [-126, 127] (xc * log2 e lies in [-125.9, 127.0]).
    let scale = f32::from_bits(((unsafe { k.to_int_unchecked::<i32>() } + 127) as u32) << 23);
    let y = if x < -87.3 { 0.0 } else { p * scale };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// Numerator coefficients of [`erf_fast`]'s rational form, highest power of x² first.
pub(crate) const ERF_P: [f32; 7] =
    [-2.726_142_4e-10, 2.770_681_5e-8, -2.101_024e-6, -5.692_506_2e-5, -7.349_906_4e-4, -2.954_6e-3, -1.609_603_3e-2];
/// Denominator coefficients, highest power first.
pub(crate) const ERF_Q: [f32; 5] = [-1.456_607_15e-5, -2.133_740_5e-4, -1.682_827e-3, -7.373_329_3e-3, -1.426_473_9e-2];

/// erf(x) in f32 without branches: `x * P(x²) / Q(x²)` on x clamped to [-4, 4] (the
/// rational approximation of Eigen's fast float erf; at 4 it rounds to exactly 1). Measured
/// against libm over [-6, 6] in steps of 6e-6: within 4.5e-7 relative everywhere, odd
/// (so 0, -0 and tiny values keep their sign and size), NaN stays NaN. Half the work of
/// a series-plus-exp form: no exp, one division, which GELU in transformers spends on
/// every element of the feed-forward layer.
#[inline(always)]
pub fn erf_fast(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let z = x * x;
    let mut p = ERF_P[0];
    for c in &ERF_P[1..] {
        p = p * z + c;
    }
    let mut q = ERF_Q[0];
    for c in &ERF_Q[1..] {
        q = q * z + c;
    }
    x * p / q
}

/// The logistic function 1 / (1 + e^-x) through [`exp_fast`] (relative error ~3e-7);
/// branch-free, so loops over it vectorize. Saturates to 0 and 1; NaN stays NaN.
#[inline(always)]
pub fn sigmoid_fast(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

/// tanh(x) without branches on the data path, to ~1e-6 relative: the odd Maclaurin series
/// (5 terms) for |x| < 0.3, where `1 - 2 / (e^2x + 1)` would cancel, and that form through
/// [`exp_fast`] beyond (it saturates to 1 as e^2x saturates). Both are computed, one selected.
#[inline(always)]
pub fn tanh_fast(x: f32) -> f32 {
    let a = x.abs();
    let far = 1.0 - 2.0 / (exp_fast(2.0 * a) + 1.0);
    let z = a * a;
    let series = a * (1.0 + z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0)))));
    let r = if a < 0.3 { series } else { far };
    if x < 0.0 {
        -r
    } else if x > 0.0 {
        r
    } else {
        x // 0, -0 and NaN
    }
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
            assert!((got - want).abs() <= 5e-7 * want.abs(), "erf({x}) = {got}, want {want}");
            x += 0.0137;
        }
        // Small arguments keep their relative accuracy (the form is x times a ratio).
        for x in [1e-30f32, -3e-8, 1e-4, 0.01, -0.2, 0.4999, 0.5, 0.5001, 3.999, 4.0, 4.001, -1e30] {
            let (got, want) = (erf_fast(x), erf(x));
            assert!((got - want).abs() <= 5e-7 * want.abs(), "erf({x}) = {got}, want {want}");
        }
        assert_eq!((erf_fast(f32::INFINITY), erf_fast(f32::NEG_INFINITY)), (1.0, -1.0));
        assert!(erf_fast(-0.0).is_sign_negative());
        assert!(erf_fast(f32::NAN).is_nan());
        assert_eq!(erf_fast(0.0), 0.0);
        assert_eq!(exp_fast(-100.0), 0.0);
        assert!(exp_fast(f32::NAN).is_nan());
        assert!(exp_fast(100.0).is_finite());
    }

    #[test]
    fn fast_tanh_and_sigmoid_are_accurate() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let (got, want) = (tanh_fast(x) as f64, (x as f64).tanh());
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1e-30), "tanh({x}) = {got}, want {want}");
            let (got, want) = (sigmoid_fast(x) as f64, 1.0 / (1.0 + (-x as f64).exp()));
            assert!((got - want).abs() <= 1e-6 * want, "sigmoid({x}) = {got}, want {want}");
            x += 0.0113;
        }
        for x in [1e-30f32, -3e-8, 1e-4, 0.2999, 0.3, -0.3001] {
            let (got, want) = (tanh_fast(x) as f64, (x as f64).tanh());
            assert!((got - want).abs() <= 1e-6 * want.abs(), "tanh({x}) = {got}, want {want}");
        }
        assert!(tanh_fast(f32::NAN).is_nan() && sigmoid_fast(f32::NAN).is_nan());
        assert_eq!((tanh_fast(100.0), tanh_fast(-100.0), sigmoid_fast(200.0)), (1.0, -1.0, 1.0));
        assert!((0.0..1e-37).contains(&sigmoid_fast(-200.0)));
    }
}
