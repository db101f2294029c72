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
