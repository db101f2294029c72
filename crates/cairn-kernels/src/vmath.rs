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

use crate::math::{erf_fast, exp_fast, sigmoid_fast, tanh_fast};

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
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return simd128::map(xs, simd128::exp, exp_fast);
        #[allow(unreachable_code)]
        for x in xs.iter_mut() {
            *x = exp_fast(*x);
        }
    }
}

/// The dispatch wrapper, for other slice kernels of the crate (e.g. [`crate::gemv`]).
pub(crate) use per_isa;

per_isa! {
    /// `x = 1 / (1 + e^-x)` for every element (see [`sigmoid_fast`]): the gates of LSTM and GRU.
    pub fn sigmoid_in_place(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = sigmoid_fast(*x);
        }
    }
}

per_isa! {
    /// `x = tanh(x)` for every element (see [`tanh_fast`]).
    pub fn tanh_in_place(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = tanh_fast(*x);
        }
    }
}

per_isa! {
    /// `x = erf(x)` for every element, to ~1e-6 relative (see [`erf_fast`]).
    pub fn erf_in_place(xs: &mut [f32]) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return simd128::map(xs, simd128::erf, erf_fast);
        #[allow(unreachable_code)]
        for x in xs.iter_mut() {
            *x = erf_fast(*x);
        }
    }
}

per_isa! {
    /// `x = x * 0.5 * (1 + erf(x / sqrt 2))` (exact GELU) for every element. Dispatched per
    /// ISA like the others: the GEMM epilogues that call it run in the portable driver, where
    /// an inlined loop got baseline SSE (GELU was an eighth of MiniLM's time).
    pub fn gelu_in_place(xs: &mut [f32]) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return simd128::map(xs, simd128::gelu, gelu);
        #[allow(unreachable_code)]
        for x in xs.iter_mut() {
            *x = gelu(*x);
        }
    }
}

/// Exact GELU of one value, through [`erf_fast`].
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2))
}

per_isa! {
    /// Softmax of every contiguous run of `n` elements of `xs`, in place, with each
    /// run's max subtracted for range. `xs.len()` must be a multiple of `n` (`n > 0`).
    pub fn softmax_rows(xs: &mut [f32], n: usize) {
        // A `for` loop (see the module's note): `for_each` left the row kernel compiled for
        // the baseline, 40% of a fused attention step natively.
        for row in xs.chunks_exact_mut(n) {
            softmax_row_for_target(row);
        }
    }
}

/// [`softmax_rows`] of `x` written to `y` (as long as `x`), blocks of rows in parallel where
/// threads exist ([`crate::parallel::for_row_blocks`]: attention's 1536 rows of 128 were a
/// twentieth of a threaded encoder run left on one thread).
pub fn softmax_rows_into(x: &[f32], y: &mut [f32], n: usize) {
    assert_eq!(x.len(), y.len(), "softmax_rows_into: lengths differ");
    crate::parallel::for_row_blocks(y, n, |r0, block| softmax_rows_copied(&x[r0 * n..r0 * n + block.len()], block, n));
}

per_isa! {
    /// One block of [`softmax_rows_into`]. Each row is copied just before it is normalized,
    /// while it is in L1: copying the whole tensor first (as the Softmax op did) was one more
    /// pass over attention scores that outgrow L1.
    pub fn softmax_rows_copied(x: &[f32], y: &mut [f32], n: usize) {
        for (src, row) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            row.copy_from_slice(src);
            softmax_row_for_target(row);
        }
    }
}

/// One row's softmax with the target's kernel: simd128 in wasm, else the portable one
/// (which `per_isa!` compiles for each x86 ISA). Inlined into the row loops above.
#[inline(always)]
fn softmax_row_for_target(row: &mut [f32]) {
    let inv = 1.0 / exp_minus_max_for_target(row);
    scale_row_for_target(row, inv);
}

/// `row = exp(row - max(row))`, returning the sum, with the target's kernel.
#[inline(always)]
fn exp_minus_max_for_target(row: &mut [f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::exp_minus_max(row);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    return exp_minus_max(row);
}

/// `row *= s` with the target's kernel.
#[inline(always)]
fn scale_row_for_target(row: &mut [f32], s: f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd128::scale_row(row, s);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scale_row(row, s);
}

per_isa! {
    /// Softmax without its last pass: every run of `n` becomes `exp(x - max(run))` and
    /// `inv_sums[r]` gets `1 / sum` of run `r`, for a caller that scales a smaller product
    /// instead (attention scales `P V`, `dv` wide, rather than `P`, `Sk` wide).
    /// `xs.len()` must be `n * inv_sums.len()`.
    pub fn softmax_rows_unscaled(xs: &mut [f32], n: usize, inv_sums: &mut [f32]) {
        assert_eq!(xs.len(), n * inv_sums.len(), "softmax_rows_unscaled: {} rows of {n} is not {} values", inv_sums.len(), xs.len());
        for (row, inv) in xs.chunks_exact_mut(n).zip(inv_sums.iter_mut()) {
            *inv = 1.0 / exp_minus_max_for_target(row);
        }
    }
}

per_isa! {
    /// `y[r * ld..][..width] *= scales[r]` for every row `r` of `scales`: the last pass of
    /// [`softmax_rows_unscaled`], applied to a product of its rows.
    pub fn scale_rows(y: &mut [f32], ld: usize, width: usize, scales: &[f32]) {
        for (r, &s) in scales.iter().enumerate() {
            scale_row_for_target(&mut y[r * ld..r * ld + width], s);
        }
    }
}

#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
/// One row: max, then exp and sum. Sixteen partial maxima and sums keep the
/// reductions in vector registers (a single accumulator would serialize them).
#[inline(always)]
fn exp_minus_max(v: &mut [f32]) -> f32 {
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
    sum
}

#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
#[inline(always)]
fn scale_row(v: &mut [f32], s: f32) {
    for x in v.iter_mut() {
        *x *= s;
    }
}

/// simd128 forms, written with intrinsics: LLVM does not vectorize the scalar loops for
/// wasm (they ran at 4-9 ns an element in V8). Same operations in the same order as the
/// scalar functions, so the simd128 build's results are bit-identical to them. The relaxed
/// build fuses each multiply-add of the polynomials ([`madd`]): their multiplies and adds
/// were the whole cost (V8 runs them on two ports; exp was ~13 cycles a vector), and a
/// fused step is at least as accurate, so there results may differ from the scalar forms
/// in the last bit.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use crate::math::{ERF_P, ERF_Q};
    use crate::wasm32::madd;
    use core::arch::wasm32::*;

    /// [`crate::math::exp_fast`] on four lanes.
    #[inline(always)]
    pub(super) fn exp(x: v128) -> v128 {
        let splat = f32x4_splat;
        let xc = f32x4_pmin(f32x4_pmax(splat(-87.3), x), splat(88.0));
        // pmax(-87.3, NaN) is -87.3, like the scalar comparison.
        let round = splat(12_582_912.0);
        let shifted = madd(xc, splat(std::f32::consts::LOG2_E), round);
        let k = f32x4_sub(shifted, round);
        // xc - k ln2 in two parts (Cody-Waite), as the scalar form subtracts them.
        let r = madd(k, splat(-1.428_606_8e-6), madd(k, splat(-0.693_145_75), xc));
        let mut p = splat(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = madd(r, p, splat(c));
        }
        // 2^k from the bits of `shifted` (1.5 * 2^23 + k, k in [-126, 127]): its low bits
        // are k plus those of 1.5 * 2^23, which the shift by 23 pushes out. The integer k the
        // scalar form converts, without V8's eight-instruction `trunc_sat` (exp was 1.4 ns an
        // element in Node, a third of it that conversion).
        let scale = i32x4_shl(i32x4_add(shifted, i32x4_splat(127)), 23);
        let y = v128_andnot(f32x4_mul(p, scale), f32x4_lt(x, splat(-87.3)));
        v128_bitselect(x, y, f32x4_ne(x, x))
    }

    /// [`crate::math::erf_fast`] on four lanes.
    #[inline(always)]
    pub(super) fn erf(x: v128) -> v128 {
        // NaN is put back at the end: with relaxed SIMD enabled, LLVM may fold the clamp's
        // pmin/pmax pair (plain selects to it) into a form that turns NaN into -4 (erf(NaN)
        // came out -1 in the relaxed build).
        v128_bitselect(x, erf_of_finite(x), f32x4_ne(x, x))
    }

    /// [`erf`] without its NaN fix-up, for callers whose result is NaN anyway when `x` is
    /// (GELU multiplies by `x`; the fix-up cost it a sixth of its time).
    #[inline(always)]
    fn erf_of_finite(x: v128) -> v128 {
        // `x.clamp(-4, 4)` as `f32::clamp` compares, then the same Horner steps.
        let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(-4.0)), f32x4_splat(4.0));
        let z = f32x4_mul(x, x);
        let mut p = f32x4_splat(ERF_P[0]);
        for &c in &ERF_P[1..] {
            p = madd(p, z, f32x4_splat(c));
        }
        let mut q = f32x4_splat(ERF_Q[0]);
        for &c in &ERF_Q[1..] {
            q = madd(q, z, f32x4_splat(c));
        }
        f32x4_div(f32x4_mul(x, p), q)
    }

    /// [`super::gelu`] on four lanes.
    #[inline(always)]
    pub(super) fn gelu(x: v128) -> v128 {
        let e = erf_of_finite(f32x4_mul(x, f32x4_splat(std::f32::consts::FRAC_1_SQRT_2)));
        f32x4_mul(f32x4_mul(f32x4_splat(0.5), x), f32x4_add(f32x4_splat(1.0), e))
    }

    /// `f` on every element, four at a time; `scalar` on the tail.
    #[inline(always)]
    pub(super) fn map(xs: &mut [f32], f: impl Fn(v128) -> v128, scalar: impl Fn(f32) -> f32) {
        let mut chunks = xs.chunks_exact_mut(4);
        for c in &mut chunks {
            let p = c.as_mut_ptr() as *mut v128;
            // SAFETY: `c` holds four f32 (unaligned access is allowed).
            unsafe { v128_store(p, f(v128_load(p))) };
        }
        for x in chunks.into_remainder() {
            *x = scalar(*x);
        }
    }

    /// [`super::exp_minus_max`] four lanes wide.
    #[inline(always)]
    pub(super) fn exp_minus_max(v: &mut [f32]) -> f32 {
        let mut chunks = v.chunks_exact(4);
        let mut m = f32x4_splat(f32::NEG_INFINITY);
        for c in &mut chunks {
            // SAFETY: `c` holds four f32.
            m = f32x4_pmax(m, unsafe { v128_load(c.as_ptr() as *const v128) });
        }
        let lanes = [f32x4_extract_lane::<0>(m), f32x4_extract_lane::<1>(m), f32x4_extract_lane::<2>(m), f32x4_extract_lane::<3>(m)];
        let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for x in chunks.remainder() {
            max = max.max(*x);
        }
        let (vmax, mut sums) = (f32x4_splat(max), f32x4_splat(0.0));
        let mut chunks = v.chunks_exact_mut(4);
        for c in &mut chunks {
            let p = c.as_mut_ptr() as *mut v128;
            // SAFETY: `c` holds four f32.
            unsafe {
                let e = exp(f32x4_sub(v128_load(p), vmax));
                v128_store(p, e);
                sums = f32x4_add(sums, e);
            }
        }
        let mut sum =
            f32x4_extract_lane::<0>(sums) + f32x4_extract_lane::<1>(sums) + f32x4_extract_lane::<2>(sums) + f32x4_extract_lane::<3>(sums);
        for x in chunks.into_remainder() {
            *x = crate::math::exp_fast(*x - max);
            sum += *x;
        }
        sum
    }

    /// `v *= s`, four lanes at a time.
    #[inline(always)]
    pub(super) fn scale_row(v: &mut [f32], s: f32) {
        let vs = f32x4_splat(s);
        let mut chunks = v.chunks_exact_mut(4);
        for c in &mut chunks {
            let p = c.as_mut_ptr() as *mut v128;
            // SAFETY: `c` holds four f32.
            unsafe { v128_store(p, f32x4_mul(v128_load(p), vs)) };
        }
        for x in chunks.into_remainder() {
            *x *= s;
        }
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

    /// Every ISA's loop computes exactly the scalar function (the SIMD forms repeat its
    /// operations in order; Rust never contracts a * b + c into an FMA on its own).
    #[test]
    fn vector_forms_are_bit_identical_to_the_scalar_functions() {
        let x: Vec<f32> = (0..4099)
            .map(|i| ((i * 7919 % 4001) as f32 - 2000.0) / 40.0)
            .chain([f32::NAN, -0.0, 0.0, 1e-30, -1e-38, 88.5, -90.0])
            .collect();
        let (mut e, mut r) = (x.clone(), x.clone());
        exp_in_place(&mut e);
        erf_in_place(&mut r);
        for (i, &v) in x.iter().enumerate() {
            assert!(same_up_to_fusion(e[i], exp_fast(v), exp_fast(v)), "exp({v}): {} vs {}", e[i], exp_fast(v));
            assert!(same_up_to_fusion(r[i], erf_fast(v), erf_fast(v)), "erf({v}): {} vs {}", r[i], erf_fast(v));
        }
        let (mut s, mut t) = (x.clone(), x.clone());
        sigmoid_in_place(&mut s);
        tanh_in_place(&mut t);
        for (i, &v) in x.iter().enumerate() {
            assert!(s[i].to_bits() == sigmoid_fast(v).to_bits() || (s[i].is_nan() && v.is_nan()), "sigmoid({v})");
            assert!(t[i].to_bits() == tanh_fast(v).to_bits() || (t[i].is_nan() && v.is_nan()), "tanh({v})");
        }
        let mut g = x.clone();
        gelu_in_place(&mut g);
        for (i, &v) in x.iter().enumerate() {
            // (GELU's 1 + erf cancels for large negative x: one unit of erf moves it by ~|x| 1e-7.)
            assert!(same_up_to_fusion(g[i], gelu(v), v), "gelu({v}): {} vs {}", g[i], gelu(v));
        }
    }

    /// The same bits (both NaN counts), except in the relaxed wasm build, whose polynomial
    /// steps are fused multiply-adds: there within 1e-6 of `scale`'s magnitude.
    fn same_up_to_fusion(vector: f32, scalar: f32, scale: f32) -> bool {
        if vector.to_bits() == scalar.to_bits() || (vector.is_nan() && scalar.is_nan()) {
            return true;
        }
        let fused = cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd"));
        fused && (vector - scalar).abs() <= 1e-6 * scale.abs()
    }

    #[test]
    fn unscaled_softmax_then_scale_rows_is_softmax() {
        let (rows, n) = (5, 131);
        let x: Vec<f32> = (0..rows * n).map(|i| ((i as f32) * 0.61).cos() * 6.0).collect();
        let mut want = x.clone();
        softmax_rows(&mut want, n);
        let (mut got, mut inv) = (x.clone(), vec![0.0; rows]);
        softmax_rows_unscaled(&mut got, n, &mut inv);
        // Scaled in place with a row stride wider than the rows (as attention's output is).
        let ld = n + 3;
        let mut strided = vec![-1.0f32; rows * ld];
        for r in 0..rows {
            strided[r * ld..r * ld + n].copy_from_slice(&got[r * n..(r + 1) * n]);
        }
        scale_rows(&mut strided, ld, n, &inv);
        for r in 0..rows {
            assert_eq!(&strided[r * ld..r * ld + n], &want[r * n..(r + 1) * n], "row {r}");
            assert_eq!(&strided[r * ld + n..(r + 1) * ld], &[-1.0; 3], "row {r}'s gap was written");
        }
    }

    #[test]
    fn softmax_into_equals_softmax_in_place() {
        // 3 rows (one block), and attention's 12 x 128 rows of 128 (blocks of rows on every
        // thread there are): the same bits either way.
        for (rows, n) in [(3, 131), (12 * 128, 128)] {
            let x: Vec<f32> = (0..rows * n).map(|i| ((i as f32) * 0.61).cos() * 6.0).collect();
            let mut in_place = x.clone();
            softmax_rows(&mut in_place, n);
            let mut into = vec![f32::NAN; x.len()];
            softmax_rows_into(&x, &mut into, n);
            assert_eq!(in_place, into, "{rows} rows of {n}");
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
