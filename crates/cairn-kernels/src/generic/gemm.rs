//! f32 GEMM, cache-blocked with packed panels (Goto & van de Geijn, "Anatomy of
//! High-Performance Matrix Multiplication", TOMS 2008): B is packed in KC x NR
//! column panels, A in MR x KC row panels, and a register-blocked MR x NR
//! micro-kernel accumulates in locals that LLVM keeps in vector registers.

/// Whether an operand is read transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    No,
    Yes,
}

const MR: usize = 4;
const NR: usize = 16;
const KC: usize = 256;
const MC: usize = 64;
const NC: usize = 1024;

/// Strided read of a logical row-major `rows x cols` matrix stored with leading dimension `ld`,
/// possibly transposed.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    ld: usize,
    trans: Transpose,
}

impl Mat<'_> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        match self.trans {
            Transpose::No => self.data[r * self.ld + c],
            Transpose::Yes => self.data[c * self.ld + r],
        }
    }
}

/// `C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C`, all row-major.
/// `lda`/`ldb`/`ldc` are the row strides of the matrices as stored.
/// With `beta == 0`, C is overwritten (NaNs in C do not propagate).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        if beta == 0.0 {
            row.fill(0.0);
        } else if beta != 1.0 {
            row.iter_mut().for_each(|v| *v *= beta);
        }
    }
    if k == 0 || alpha == 0.0 {
        return;
    }
    let a = Mat { data: a, ld: lda, trans: trans_a };
    let b = Mat { data: b, ld: ldb, trans: trans_b };
    let mut packed_b = vec![0.0f32; KC * NC.min(n.div_ceil(NR) * NR)];
    let mut packed_a = vec![0.0f32; MC * KC];
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            pack_b(&b, pc, kc, jc, nc, &mut packed_b);
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                pack_a(&a, ic, mc, pc, kc, alpha, &mut packed_a);
                for jr in (0..nc).step_by(NR) {
                    let nr = NR.min(nc - jr);
                    let bp = &packed_b[jr * kc..jr * kc + kc * NR];
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let ap = &packed_a[ir * kc..ir * kc + kc * MR];
                        let acc = f32_gemm_4x16_generic(kc, ap, bp);
                        for i in 0..mr {
                            let row = &mut c[(ic + ir + i) * ldc + jc + jr..][..nr];
                            for (dst, v) in row.iter_mut().zip(&acc[i][..nr]) {
                                *dst += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs `op(B)[pc..pc+kc, jc..jc+nc]` into NR-wide column panels, zero-padded.
fn pack_b(b: &Mat, pc: usize, kc: usize, jc: usize, nc: usize, out: &mut [f32]) {
    for (panel, j0) in (0..nc).step_by(NR).enumerate() {
        let cols = NR.min(nc - j0);
        let dst = &mut out[panel * kc * NR..(panel + 1) * kc * NR];
        for p in 0..kc {
            let row = &mut dst[p * NR..p * NR + NR];
            if b.trans == Transpose::No {
                let start = (pc + p) * b.ld + jc + j0;
                row[..cols].copy_from_slice(&b.data[start..start + cols]);
            } else {
                for (j, v) in row[..cols].iter_mut().enumerate() {
                    *v = b.at(pc + p, jc + j0 + j);
                }
            }
            row[cols..].fill(0.0);
        }
    }
}

/// Packs `alpha * op(A)[ic..ic+mc, pc..pc+kc]` into MR-tall row panels, zero-padded.
fn pack_a(a: &Mat, ic: usize, mc: usize, pc: usize, kc: usize, alpha: f32, out: &mut [f32]) {
    for (panel, i0) in (0..mc).step_by(MR).enumerate() {
        let rows = MR.min(mc - i0);
        let dst = &mut out[panel * kc * MR..(panel + 1) * kc * MR];
        for p in 0..kc {
            for i in 0..MR {
                dst[p * MR + i] = if i < rows { alpha * a.at(ic + i0 + i, pc + p) } else { 0.0 };
            }
        }
    }
}

/// The micro-kernel: a 4x16 tile of `A panel (kc x 4) * B panel (kc x 16)`.
#[inline(always)]
fn f32_gemm_4x16_generic(kc: usize, ap: &[f32], bp: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (a, b) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)).take(kc) {
        for i in 0..MR {
            let ai = a[i];
            for j in 0..NR {
                acc[i][j] += ai * b[j];
            }
        }
    }
    acc
}

/// Naive reference GEMM for tests.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_reference(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let a = Mat { data: a, ld: lda, trans: trans_a };
    let b = Mat { data: b, ld: ldb, trans: trans_b };
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += a.at(i, p) as f64 * b.at(p, j) as f64;
            }
            let prev = if beta == 0.0 { 0.0 } else { beta * c[i * ldc + j] };
            c[i * ldc + j] = alpha * s as f32 + prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn blocked_matches_reference_on_odd_shapes() {
        let mut seed = 7;
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (4, 16, 256), (5, 17, 257), (65, 33, 300), (130, 1030, 20), (7, 3, 0)] {
            for &(ta, tb) in &[(Transpose::No, Transpose::No), (Transpose::Yes, Transpose::No), (Transpose::No, Transpose::Yes), (Transpose::Yes, Transpose::Yes)] {
                let a = rand(m * k, &mut seed);
                let b = rand(k * n, &mut seed);
                let c0 = rand(m * n, &mut seed);
                let lda = if ta == Transpose::No { k } else { m };
                let ldb = if tb == Transpose::No { n } else { k };
                for &(alpha, beta) in &[(1.0, 0.0), (0.5, 1.0), (2.0, -0.5)] {
                    let mut c1 = c0.clone();
                    let mut c2 = c0.clone();
                    sgemm(m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut c1, n);
                    sgemm_reference(m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut c2, n);
                    for (x, y) in c1.iter().zip(&c2) {
                        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{m}x{n}x{k} {ta:?} {tb:?}: {x} vs {y}");
                    }
                }
            }
        }
    }
}
