//! Property tests: every ISA's blocked GEMM against the naive reference, on random
//! shapes with odd sizes and tails, both operand forms, every epilogue part.

use super::reference::sgemm_reference;
use super::*;
use crate::testutil::{assert_close, Rng};

#[test]
fn blocked_matches_reference_on_odd_shapes() {
    let mut rng = Rng(7);
    let shapes = [(1, 1, 1), (3, 5, 7), (6, 16, 256), (7, 17, 257), (65, 33, 300), (130, 1030, 20), (7, 3, 0), (13, 1100, 9)];
    for &(m, n, k) in &shapes {
        for (ta, tb) in [
            (Transpose::No, Transpose::No),
            (Transpose::Yes, Transpose::No),
            (Transpose::No, Transpose::Yes),
            (Transpose::Yes, Transpose::Yes),
        ] {
            let a = rng.vec(m * k);
            let b = rng.vec(k * n);
            let c0 = rng.vec(m * n);
            let lda = if ta == Transpose::No { k } else { m };
            let ldb = if tb == Transpose::No { n } else { k };
            for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (2.0, -0.5)] {
                let mut got = c0.clone();
                let mut want = c0.clone();
                sgemm(m, n, k, alpha, &a, lda.max(1), ta, &b, ldb.max(1), tb, beta, &mut got, n);
                sgemm_reference(m, n, k, alpha, &a, lda.max(1), ta, &b, ldb.max(1), tb, beta, &mut want, n);
                assert_close(&got, &want, 1e-4, &format!("{m}x{n}x{k} {ta:?} {tb:?} alpha {alpha} beta {beta}"));
            }
        }
    }
}

/// Random shapes, every ISA, prepacked and strided operands, with a full epilogue: a clamp
/// (applied by the kernels in registers) and activations applied after each block (GELU,
/// sigmoid), on shapes that also span several row and column blocks.
#[test]
fn every_isa_and_operand_form_matches_reference_with_epilogue() {
    let mut rng = Rng(42);
    let activations = [Activation::Clip { min: 0.0, max: 6.0 }, Activation::Gelu, Activation::Sigmoid];
    for case in 0..63 {
        let (m, n, k) = if case >= 60 {
            (150 + rng.below(100), 520 + rng.below(600), 1 + rng.below(300))
        } else {
            (1 + rng.below(70), 1 + rng.below(300), 1 + rng.below(600))
        };
        let activation = activations[case % activations.len()];
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let row_bias = rng.vec(m);
        let col_bias = rng.vec(n);
        let residual = rng.vec(m * n);
        let use_row_bias = case % 2 == 0;
        let mut want = vec![0.0; m * n];
        sgemm_reference(m, n, k, 1.0, &a, k, Transpose::No, &b, n, Transpose::No, 0.0, &mut want, n);
        for i in 0..m {
            for j in 0..n {
                let v = want[i * n + j] + if use_row_bias { row_bias[i] } else { col_bias[j] } + residual[i * n + j];
                want[i * n + j] = activation.apply_one(v);
            }
        }
        let epi = Epilogue {
            bias: if use_row_bias { Bias::PerRow(&row_bias) } else { Bias::PerCol(&col_bias) },
            residual: Some((&residual, n)),
            activation,
        };
        for isa in Isa::all_available() {
            let pa = PackedA::new(isa, MatRef::new(&a, k, Transpose::No), m, k, 1.0);
            let pb = PackedB::new(isa, MatRef::new(&b, n, Transpose::No), k, n);
            let strided_a = LhsOperand::Strided { mat: MatRef::new(&a, k, Transpose::No), alpha: 1.0 };
            let strided_b = RhsOperand::Strided(MatRef::new(&b, n, Transpose::No));
            for (lhs, rhs, form) in [
                (strided_a, strided_b, "strided"),
                (LhsOperand::Packed(&pa), strided_b, "packed A"),
                (strided_a, RhsOperand::Packed(&pb), "packed B"),
            ] {
                let mut got = vec![f32::NAN; m * n];
                gemm_on(isa, m, n, k, lhs, rhs, &mut got, n, false, &epi);
                assert_close(&got, &want, 1e-4, &format!("case {case} {m}x{n}x{k} {isa:?} {form} {activation:?}"));
            }
        }
    }
}

/// A packed per call and A prepacked give the same bits: the relaxed wasm build runs the
/// former on its 5-row tile and the latter on the 4-row one, and every product's sums run in
/// the same order either way (so the choice never changes an output).
#[test]
fn tall_and_short_tiles_give_the_same_bits() {
    let mut rng = Rng(5);
    for (m, n, k) in [(20, 8, 64), (37, 19, 100), (128, 40, 384), (131, 33, 257)] {
        let (a, b, bias) = (rng.vec(m * k), rng.vec(k * n), rng.vec(n));
        let epi = Epilogue { bias: Bias::PerCol(&bias), residual: None, activation: Activation::Clip { min: -1.0, max: 1.0 } };
        for isa in Isa::all_available() {
            let pa = PackedA::new(isa, MatRef::new(&a, k, Transpose::No), m, k, 1.0);
            let mut strided = vec![f32::NAN; m * n];
            let mut packed = vec![f32::NAN; m * n];
            let rhs = RhsOperand::Strided(MatRef::new(&b, n, Transpose::No));
            gemm_on(
                isa,
                m,
                n,
                k,
                LhsOperand::Strided { mat: MatRef::new(&a, k, Transpose::No), alpha: 1.0 },
                rhs,
                &mut strided,
                n,
                false,
                &epi,
            );
            gemm_on(isa, m, n, k, LhsOperand::Packed(&pa), rhs, &mut packed, n, false, &epi);
            assert!(strided.iter().zip(&packed).all(|(x, y)| x.to_bits() == y.to_bits()), "{m}x{n}x{k} {isa:?}");
        }
    }
}

/// C with a row stride wider than n: only the n columns are written.
#[test]
fn respects_ldc_and_leaves_padding_alone() {
    let (m, n, k, ldc) = (9, 19, 33, 24);
    let mut rng = Rng(3);
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let mut c = vec![7.0; m * ldc];
    sgemm(m, n, k, 1.0, &a, k, Transpose::No, &b, n, Transpose::No, 0.0, &mut c, ldc);
    let mut want = vec![0.0; m * n];
    sgemm_reference(m, n, k, 1.0, &a, k, Transpose::No, &b, n, Transpose::No, 0.0, &mut want, n);
    for i in 0..m {
        assert_close(&c[i * ldc..i * ldc + n], &want[i * n..i * n + n], 1e-4, "row");
        assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 7.0), "padding of row {i} was written");
    }
}

/// Shapes of real layers (SqueezeNet's classifier: 1000 rows, 4 past the last full
/// panel of 12; 169 columns; two K blocks), prepacked filters, row bias and ReLU.
#[test]
fn classifier_shapes_with_row_edges_match_reference() {
    let mut rng = Rng(9);
    for &(m, n, k) in &[(1000, 169, 512), (64, 49, 576), (16, 12544, 32), (1000, 1, 300), (52, 196, 520)] {
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let bias = rng.vec(m);
        let mut want = vec![0.0; m * n];
        sgemm_reference(m, n, k, 1.0, &a, k, Transpose::No, &b, n, Transpose::No, 0.0, &mut want, n);
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (want[i * n + j] + bias[i]).max(0.0);
            }
        }
        let epi = Epilogue { bias: Bias::PerRow(&bias), residual: None, activation: Activation::Relu };
        for isa in Isa::all_available() {
            let pa = PackedA::new(isa, MatRef::new(&a, k, Transpose::No), m, k, 1.0);
            let mut got = vec![f32::NAN; m * n];
            gemm_on(
                isa,
                m,
                n,
                k,
                LhsOperand::Packed(&pa),
                RhsOperand::Strided(MatRef::new(&b, n, Transpose::No)),
                &mut got,
                n,
                false,
                &epi,
            );
            assert_close(&got, &want, 1e-4, &format!("{m}x{n}x{k} {isa:?}"));
        }
    }
}

/// The taps operand (implicit im2col) against the same matrix written out, on random
/// shapes: taps whose rows straddle K blocks, partial panels, few rows per tap (packed)
/// and many (read in place), both A forms, every ISA.
#[test]
fn taps_operand_matches_explicit_matrix() {
    let mut rng = Rng(17);
    for case in 0..40 {
        let per_tap = [1, 3, 16, 48, 64, 100, 256, 300][case % 8];
        let taps = 1 + rng.below(9);
        // Now and then more rows than one A block (taps packed per panel are packed again per block).
        let (m, n) = (1 + rng.below(if case % 5 == 4 { 300 } else { 40 }), 1 + rng.below(120));
        let k = taps * per_tap;
        let ld = n + rng.below(30);
        let offsets: Vec<usize> = (0..taps).map(|_| rng.below(2 * ld + 5)).collect();
        let slack = rng.below(4);
        let data = rng.vec(offsets.iter().max().unwrap() + (per_tap - 1) * ld + n + slack);
        let t = TapsRef { data: &data, ld, per_tap, offsets: &offsets };
        let explicit: Vec<f32> = (0..k).flat_map(|p| data[t.row(p)..t.row(p) + n].to_vec()).collect();
        let a = rng.vec(m * k);
        let bias = rng.vec(m);
        let epi = Epilogue { bias: Bias::PerRow(&bias), residual: None, activation: Activation::Relu };
        let mut want = vec![0.0; m * n];
        sgemm_reference(m, n, k, 1.0, &a, k, Transpose::No, &explicit, n, Transpose::No, 0.0, &mut want, n);
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (want[i * n + j] + bias[i]).max(0.0);
            }
        }
        for isa in Isa::all_available() {
            let pa = PackedA::new(isa, MatRef::new(&a, k, Transpose::No), m, k, 1.0);
            let strided = LhsOperand::Strided { mat: MatRef::new(&a, k, Transpose::No), alpha: 1.0 };
            for lhs in [LhsOperand::Packed(&pa), strided] {
                let mut got = vec![f32::NAN; m * n];
                gemm_on(isa, m, n, k, lhs, RhsOperand::Taps(t), &mut got, n, false, &epi);
                assert_close(&got, &want, 1e-4, &format!("case {case} {m}x{n}x{k} taps {taps}x{per_tap} {isa:?}"));
            }
        }
    }
}
