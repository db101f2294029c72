//! Transcendental math over whole slices (exp, erf, softmax rows), vectorized.
//!
//! The scalar forms in [`crate::math`] are branch-free, so a plain loop over them
//! vectorizes; what decides the vector width is the ISA the loop is compiled for.
//! Native builds target baseline x86_64 (SSE2), so each function here compiles its
//! loop once more inside `#[target_feature]` wrappers and picks one by
//! [`crate::Isa::current`]; a wasm build compiled with simd128 vectorizes the plain loop.
//! Attention softmax, GELU's erf and exp were scalar and took 5-20 ns an element before.
//! The bodies use `for` loops, not `for_each` closures: a closure is a separate generic
//! function that LLVM may leave un-inlined, compiled for the baseline instead of the wrapper's ISA.

use crate::math::{erf_fast, exp_fast};

/// Defines `pub fn $name(args)` whose `$body` is compiled for AVX-512, AVX2+FMA and the
/// build's baseline, called through the one the process uses.
macro_rules! per_isa {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                match crate::Isa::current() {
                    // SAFETY: the ISA was detected on this CPU before it was chosen.
                    crate::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    crate::Isa::Avx2Fma => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}

per_isa! {
    /// `x = exp(x)` for every element (relative error ~2e-7; see [`exp_fast`]).
    pub fn exp_in_place(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = exp_fast(*x);
        }
    }
}

per_isa! {
    /// `x = erf(x)` for every element, to ~1e-6 relative (see [`erf_fast`]).
    pub fn erf_in_place(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = erf_fast(*x);
        }
    }
}

per_isa! {
    /// Softmax of every contiguous run of `n` elements of `xs`, in place, with each
    /// run's max subtracted for range. `xs.len()` must be a multiple of `n` (`n > 0`).
    pub fn softmax_rows(xs: &mut [f32], n: usize) {
        for row in xs.chunks_exact_mut(n) {
            softmax_row(row);
        }
    }
}

/// One row: max, exp and sum, scale. Eight partial maxima and sums keep the
/// reductions in vector registers (a single accumulator would serialize them).
#[inline(always)]
fn softmax_row(v: &mut [f32]) {
    const W: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; W];
    let mut chunks = v.chunks_exact(W);
    for c in &mut chunks {
        for (m, x) in lanes.iter_mut().zip(c) {
            *m = if *x > *m { *x } else { *m };
        }
    }
    let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for x in chunks.remainder() {
        max = max.max(*x);
    }
    let mut sums = [0.0f32; W];
    let mut chunks = v.chunks_exact_mut(W);
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
    for x in v.iter_mut() {
        *x *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_match_the_scalar_definitions_on_every_length() {
        for len in [0usize, 1, 3, 7, 15, 16, 17, 33, 128, 131] {
            let x: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.37).sin() * 4.0 - 0.5).collect();
            let mut e = x.clone();
            exp_in_place(&mut e);
            let mut r = x.clone();
            erf_in_place(&mut r);
            for ((&xi, &ei), &ri) in x.iter().zip(&e).zip(&r) {
                let want = (xi as f64).exp();
                assert!(((ei as f64 - want) / want).abs() < 5e-7, "exp({xi}) = {ei}, want {want}");
                assert!((ri - crate::math::erf(xi)).abs() <= 1e-6 * crate::math::erf(xi).abs(), "erf({xi}) = {ri}");
            }
            if len == 0 {
                continue;
            }
            let mut s = x.clone();
            softmax_rows(&mut s, len);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f64 = x.iter().map(|&v| ((v - max) as f64).exp()).sum();
            for (&g, &v) in s.iter().zip(&x) {
                assert!((g as f64 - ((v - max) as f64).exp() / total).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn softmax_rows_are_independent() {
        let mut x: Vec<f32> = (0..24).map(|i| i as f32).collect();
        softmax_rows(&mut x, 8);
        for row in x.chunks(8) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            assert!(row[7] > row[6]);
        }
    }

    #[test]
    fn extremes_stay_finite_or_propagate_nan() {
        let mut x = vec![-1000.0, 1000.0, f32::NAN, 0.0, -0.0, 1e-30];
        exp_in_place(&mut x);
        assert_eq!(x[0], 0.0);
        assert!(x[1].is_finite());
        assert!(x[2].is_nan());
        assert_eq!(x[3], 1.0);
        let mut y = vec![-10.0, 10.0, f32::NAN, 0.0, 1e-30, -1e-20];
        erf_in_place(&mut y);
        assert_eq!((y[0], y[1]), (-1.0, 1.0));
        assert!(y[2].is_nan());
        assert_eq!(y[3], 0.0);
        assert!((y[4] - 1.128_379_2e-30).abs() < 1e-36);
        assert!(y[5] < 0.0);
    }
}
