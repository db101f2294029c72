//! f32 GEMM, cache-blocked with packed panels (Goto & van de Geijn, "Anatomy of
//! High-Performance Matrix Multiplication", TOMS 2008), with a register-blocked
//! micro-kernel per ISA and a fused epilogue (bias, residual, activation).
//!
//! Either operand may be *prepacked* once at load (weights): convolutions keep
//! their filters as a packed A (output channels are rows of C in NCHW), MatMul
//! and Gemm keep a constant right-hand side as a packed B. The other operand is
//! packed per call, one cache block at a time.

mod driver;
mod pack;
pub mod reference;

pub use driver::{gemm, gemm_on};

#[cfg(test)]
mod tests;
/// The K block of packed operands (the packed-B vector product walks the same blocks).
pub(crate) use pack::KC;
pub use pack::{copy_short, PackedA, PackedB};

use crate::{Activation, Isa};

/// Whether an operand is read transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    No,
    Yes,
}

/// A logical row-major `rows x cols` matrix stored with row stride `ld`, possibly transposed.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub trans: Transpose,
}

impl<'a> MatRef<'a> {
    pub fn new(data: &'a [f32], ld: usize, trans: Transpose) -> MatRef<'a> {
        MatRef { data, ld, trans }
    }

    #[inline(always)]
    pub(crate) fn at(&self, r: usize, c: usize) -> f32 {
        match self.trans {
            Transpose::No => self.data[r * self.ld + c],
            Transpose::Yes => self.data[c * self.ld + r],
        }
    }

    /// The last element index a `rows x cols` logical matrix touches, plus one.
    fn extent(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return 0;
        }
        match self.trans {
            Transpose::No => (rows - 1) * self.ld + cols,
            Transpose::Yes => (cols - 1) * self.ld + rows,
        }
    }
}

/// The left operand: strided (packed per call, scaled by `alpha`) or prepacked.
#[derive(Clone, Copy, Debug)]
pub enum LhsOperand<'a> {
    Strided { mat: MatRef<'a>, alpha: f32 },
    Packed(&'a PackedA),
}

/// The right operand: strided (packed per call) or prepacked.
#[derive(Clone, Copy, Debug)]
pub enum RhsOperand<'a> {
    Strided(MatRef<'a>),
    Packed(&'a PackedB),
    /// The unfolded input of a stride-1 convolution, read where it lies (implicit im2col).
    Taps(TapsRef<'a>),
}

/// A `k x n` matrix whose row `t * per_tap + c` starts at `data[offsets[t] + c * ld]`:
/// the im2col matrix of a stride-1 convolution over zero-padded planes `ld` apart, with
/// K ordered tap-major (`offsets[t]` is tap t's shift in the padded plane), so that
/// the rows of one tap are evenly spaced and the micro-kernel streams them in place.
#[derive(Clone, Copy, Debug)]
pub struct TapsRef<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub per_tap: usize,
    pub offsets: &'a [usize],
}

impl TapsRef<'_> {
    /// Where row `p` starts.
    #[inline]
    pub(crate) fn row(&self, p: usize) -> usize {
        self.offsets[p / self.per_tap] + (p % self.per_tap) * self.ld
    }
}

/// A bias added to every element of a row of C (conv output channels) or of a column (Gemm).
#[derive(Clone, Copy, Debug, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    PerRow(&'a [f32]),
    PerCol(&'a [f32]),
}

/// What happens to each output tile after its last K block:
/// `C = activation(C + bias + residual)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    /// A matrix shaped like C (row stride given) added before the activation: the skip
    /// connection of a residual block.
    pub residual: Option<(&'a [f32], usize)>,
    pub activation: Activation,
}

impl Epilogue<'_> {
    pub fn is_identity(&self) -> bool {
        matches!(self.bias, Bias::None) && self.residual.is_none() && self.activation == Activation::Identity
    }

    /// Applies the epilogue to the `rows x cols` block of C at (`row0`, `col0`),
    /// given as a row slice accessor.
    #[inline]
    pub(crate) fn apply_row(&self, row: usize, col0: usize, out: &mut [f32]) {
        self.apply_row_linear(row, col0, out);
        self.activation.apply(out);
    }

    /// [`Epilogue::apply_row`] without the activation: the bias and the residual.
    #[inline]
    pub(crate) fn apply_row_linear(&self, row: usize, col0: usize, out: &mut [f32]) {
        let len = out.len();
        match self.bias {
            Bias::None => {}
            Bias::PerRow(b) => {
                let v = b[row];
                out.iter_mut().for_each(|x| *x += v);
            }
            Bias::PerCol(b) => out.iter_mut().zip(&b[col0..col0 + len]).for_each(|(x, v)| *x += v),
        }
        if let Some((r, ld)) = self.residual {
            out.iter_mut().zip(&r[row * ld + col0..][..len]).for_each(|(x, v)| *x += v);
        }
    }
}

/// A micro-kernel: computes a full `mr x nr` tile of C from `kc` steps of packed
/// panels, either overwriting C or accumulating into it, and applies the tile's
/// epilogue (if given) before its single store.
#[derive(Clone, Copy)]
pub(crate) struct MicroKernel {
    pub mr: usize,
    pub nr: usize,
    /// # Safety
    /// `a` holds `kc * mr` floats; `b` addresses `kc` rows of `nr` floats, `ldb` apart
    /// (`nr` for a packed panel, the matrix's row stride when read in place); `c`
    /// addresses an `mr x nr` tile with row stride `ldc`; the epilogue's pointers cover
    /// the same tile.
    pub run: unsafe fn(
        kc: usize,
        a: *const f32,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        epi: Option<&TileEpilogue>,
    ),
    /// A kernel for partial tiles (`rows <= mr`, `cols <= nr`) that reads and writes only
    /// the valid part of C and spends less work on narrow column tails; without one the
    /// driver runs `run` on a scratch tile and copies.
    pub edge: Option<EdgeKernel>,
}

/// [`MicroKernel::edge`]: as `run`, for the `rows x cols` corner of a tile. `b` is a
/// panel `nr` wide (zero past `cols`); the epilogue's pointers are read for valid rows
/// and columns only.
pub(crate) type EdgeKernel = unsafe fn(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
);

/// The epilogue of one full tile, as raw pointers at the tile's origin (null when absent):
/// `C = clamp(C + row_bias[i] + col_bias[j] + residual[i][j], lo, hi)`.
#[derive(Clone, Copy)]
pub(crate) struct TileEpilogue {
    pub row_bias: *const f32,
    pub col_bias: *const f32,
    pub residual: *const f32,
    pub ld_residual: usize,
    /// Whether to clamp at all: an identity epilogue must keep NaNs, which x86 `max` would not.
    pub clamp: bool,
    pub lo: f32,
    pub hi: f32,
}

impl Epilogue<'_> {
    /// The bounds a clamping activation applies in registers; `None` for the others,
    /// which run over the stored tile.
    pub(crate) fn clamp(&self) -> Option<(f32, f32)> {
        self.activation.clamp_bounds()
    }

    /// The tile epilogue for the full tile at (`row`, `col`).
    pub(crate) fn tile(&self, row: usize, col: usize) -> TileEpilogue {
        let (lo, hi) = self.clamp().unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let (row_bias, col_bias) = match self.bias {
            Bias::None => (std::ptr::null(), std::ptr::null()),
            Bias::PerRow(b) => (b[row..].as_ptr(), std::ptr::null()),
            Bias::PerCol(b) => (std::ptr::null(), b[col..].as_ptr()),
        };
        let (residual, ld_residual) = match self.residual {
            Some((r, ld)) => (r[row * ld + col..].as_ptr(), ld),
            None => (std::ptr::null(), 0),
        };
        let clamp = !matches!(self.activation, Activation::Identity) && self.clamp().is_some();
        TileEpilogue { row_bias, col_bias, residual, ld_residual, clamp, lo, hi }
    }
}

impl Isa {
    pub(crate) fn gemm_kernel(self) -> MicroKernel {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => crate::x86_64::gemm::KERNEL,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => crate::x86_64::gemm_avx512::KERNEL,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::WasmSimd128 => crate::wasm32::gemm::KERNEL,
            _ => crate::generic::gemm::KERNEL,
        }
    }
}

/// `C[m x n] = alpha * op(A) * op(B) + beta * C`, all row-major (BLAS-style convenience).
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
    let accumulate = beta != 0.0;
    if accumulate && beta != 1.0 {
        for i in 0..m {
            c[i * ldc..i * ldc + n].iter_mut().for_each(|v| *v *= beta);
        }
    }
    let lhs = LhsOperand::Strided { mat: MatRef::new(a, lda, trans_a), alpha };
    let rhs = RhsOperand::Strided(MatRef::new(b, ldb, trans_b));
    gemm(m, n, k, lhs, rhs, c, ldc, accumulate, &Epilogue::default());
}
