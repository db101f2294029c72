//! 8-bit integer GEMM with i32 accumulation and a fused requantizing epilogue,
//! for quantized convolutions and matrix products (`QLinearConv`, `QLinearMatMul`,
//! `MatMulInteger`, `ConvInteger`, QDQ graphs).
//!
//! Two operand layouts ([`Layout`]). The general one: operands are widened to i16
//! *after* subtracting their zero points, so that any
//! mix of u8/i8 operands and zero points is exact: the micro-kernels multiply i16
//! pairs and add both products into an i32 lane (`vpmaddwd` on AVX2,
//! `vpdpwssd` on AVX-512 VNNI, `i32x4.dot_i16x8_s` on wasm simd128). That is half
//! the products per instruction of `vpmaddubsw`, but `vpmaddubsw` saturates its i16
//! pair sums (255 * 127 * 2 > 32767) and so is not exact for full-range u8 x i8;
//! onnxruntime works around it with 7-bit weights (`reduce_range`), which costs accuracy.
//!
//! The byte layout, where the CPU has an exact u8 x s8 dot (AVX-512 VNNI or AVX-VNNI `vpdpbusd`:
//! four products per i32 lane, no saturation; in wasm, the relaxed build's
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s` where the engine lowers it to `vpdpbusd`) and the weights are symmetric s8 (zero
//! point 0, what `cairn optimize` writes; or u8 with zero point 128, flipped to s8):
//! weights stay s8 and activations stay raw bytes (i8 activations flipped to u8 by
//! `xor 0x80`, i.e. +128). The activation zero point `zb` is taken out algebraically:
//! `sum_k a (b - zb) = sum_k a b - zb * rowsum(a)`, so each accumulator *starts* at
//! `-zb * rowsum(a)` (exact i32 arithmetic, no change to the epilogue).
//!
//! Layout: `C[m x n] = A[m x k] * B[k x n]`. A is the prepacked operand (weights:
//! conv filters, or a constant MatMul operand transposed), B is packed per call
//! from any strided 8-bit matrix. Both are packed as *k-groups*: one i32 word holds
//! two consecutive-k i16 values (pairs) or four consecutive-k bytes (quads), the unit
//! every dot instruction consumes.
//! The epilogue turns each i32 tile into i32, f32, or requantized u8/i8 output,
//! with per-row scale, bias and activation (see [`QEpilogue`]); 8-bit output follows
//! XNNPACK's fp32 requantization ([`rule`]).

pub(crate) mod driver;
mod pack;
pub mod reference;
pub mod rule;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod xnnpack_rule;

pub use driver::{qgemm, qgemm_on};
pub use pack::{PackedQA, QRhs};

use crate::Activation;
use std::sync::OnceLock;

/// A borrowed 8-bit tensor (activations or weights).
#[derive(Clone, Copy, Debug)]
pub enum Q8<'a> {
    U8(&'a [u8]),
    I8(&'a [i8]),
}

impl Q8<'_> {
    pub fn len(&self) -> usize {
        match self {
            Q8::U8(v) => v.len(),
            Q8::I8(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline(always)]
    pub fn at(&self, i: usize) -> i32 {
        match self {
            Q8::U8(v) => v[i] as i32,
            Q8::I8(v) => v[i] as i32,
        }
    }
}

/// Where the output goes and in what type. Element (r, c) of C is stored at
/// `r * row_stride + c * col_stride` (a transposed store computes MatMul as `(Bᵀ Aᵀ)ᵀ`).
#[derive(Debug)]
pub enum QOut<'a> {
    I32(&'a mut [i32]),
    F32(&'a mut [f32]),
    U8(&'a mut [u8]),
    I8(&'a mut [i8]),
}

impl QOut<'_> {
    pub fn len(&self) -> usize {
        match self {
            QOut::I32(v) => v.len(),
            QOut::F32(v) => v.len(),
            QOut::U8(v) => v.len(),
            QOut::I8(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the epilogue does to an accumulator `acc` of row `r`: first `acc += acc_bias[r]`
/// (exact, in i32, for every output kind), then for f32 output `act(acc * scale[r] + bias[r])`,
/// and for 8-bit output with a clamping activation (identity, ReLU, clip) the rule of
/// [`rule`]: `q = round_half_even(clamp(acc * (scale[r] / out_scale) + bias[r] / out_scale,
/// qmin - out_zero, qmax - out_zero)) + out_zero` (XNNPACK's fp32 requantization). Other
/// activations apply in real units: `q = clamp(round_half_even(act(v) / out_scale) + out_zero)`.
/// `scale`, `bias` and `acc_bias` hold one value per row, or a single value for all rows.
#[derive(Clone, Copy, Debug)]
pub struct QEpilogue<'a> {
    pub scale: &'a [f32],
    /// A bias in real units (models whose bias is a float).
    pub bias: Option<&'a [f32]>,
    /// A bias in accumulator units (scale `scale[r]`), as QLinearConv, TFLite and XNNPACK
    /// keep it: added to the i32 accumulator exactly. At most one of `bias`, `acc_bias`.
    pub acc_bias: Option<&'a [i32]>,
    pub activation: Activation,
    pub out_scale: f32,
    pub out_zero: i32,
}

impl Default for QEpilogue<'_> {
    fn default() -> Self {
        QEpilogue { scale: &[1.0], bias: None, acc_bias: None, activation: Activation::Identity, out_scale: 1.0, out_zero: 0 }
    }
}

impl QEpilogue<'_> {
    /// The accumulator bias of row `r` (0 without one).
    #[inline(always)]
    pub(crate) fn acc_bias_at(&self, r: usize) -> i32 {
        self.acc_bias.map_or(0, |v| if v.len() == 1 { v[0] } else { v[r] })
    }

    /// Panics with `what` when a bias has the wrong length for `rows` rows, or both are given.
    pub(crate) fn check(&self, rows: usize, what: &str) {
        assert!(self.scale.len() == 1 || self.scale.len() >= rows, "{what}: scale must be 1 or {rows} values");
        assert!(self.bias.is_none_or(|v| v.len() == 1 || v.len() >= rows), "{what}: bias must be 1 or {rows} values");
        assert!(self.acc_bias.is_none_or(|v| v.len() == 1 || v.len() >= rows), "{what}: acc_bias must be 1 or {rows} values");
        assert!(self.bias.is_none() || self.acc_bias.is_none(), "{what}: a real bias and an accumulator bias at once");
    }
}

/// Rounds half to even for |v| < 2^22 (the default FP rounding mode does the work;
/// `round_ties_even` is a libm call on baseline x86_64 and wasm).
#[inline(always)]
pub fn round_half_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (v + MAGIC) - MAGIC
}

/// Quantizes a real value: `clamp(round(v * inv_scale) + zero, lo, hi)`; NaN maps to `zero`.
#[inline(always)]
pub fn quantize(v: f32, inv_scale: f32, zero: i32, lo: i32, hi: i32) -> i32 {
    let x = (v * inv_scale).clamp((lo - zero) as f32, (hi - zero) as f32);
    // NaN fails every comparison and survives `clamp`: map it to the zero point.
    if x.is_nan() {
        return zero;
    }
    round_half_even(x) as i32 + zero
}

/// What one packed i32 word of a kernel's operands holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Two consecutive-k i16 values, zero points subtracted (low half first).
    Pairs,
    /// Four consecutive-k bytes (lowest k in the lowest byte): s8 weights, u8 activations.
    Quads,
}

impl Layout {
    /// k values per word.
    pub fn group(self) -> usize {
        match self {
            Layout::Pairs => 2,
            Layout::Quads => 4,
        }
    }
}

/// A fused requantizing tile kernel (see [`QKernel::run_q8`]).
pub(crate) type Q8TileFn = unsafe fn(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile);

/// A micro-kernel: an `mr x nr` i32 tile from `kp` k-groups of packed A (`mr` words
/// per group) and packed B (`nr` words per group), stored to `c` (row stride `nr`).
/// Row i of the tile starts from `init[i]` (the zero-point correction of the byte layout).
#[derive(Clone, Copy)]
pub struct QKernel {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub layout: Layout,
    /// For a byte-layout kernel, the pairs kernel used when the weights do not fit it
    /// (non-zero weight zero points).
    pub(crate) fallback: Option<&'static QKernel>,
    /// For a byte-layout kernel, the largest weight magnitude its dot is exact for: 128 (any
    /// s8) for `vpdpbusd`, 64 for `vpmaddubsw`, whose i16 sums of two products saturate past
    /// 2 * 255 * 64. Weights beyond it are packed for the fallback. 0 for pairs kernels.
    pub(crate) quads_weight_bound: i32,
    /// # Safety
    /// `a` holds `kp * mr` words, `b` holds `kp * nr` words, `init` holds `mr` values,
    /// `c` has room for `mr * nr`; the CPU supports the kernel's instructions.
    pub(crate) run: unsafe fn(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32),
    /// The same tile requantized in registers and stored as 8-bit (see [`Q8Tile`]), for
    /// full tiles with a clamping activation; `None` where the ISA has no such kernel.
    pub(crate) run_q8: Option<Q8TileFn>,
    /// One output column (a matrix-vector product, e.g. a classifier at batch 1, where a
    /// tile would compute `nr` columns to keep one): for the `mr` rows of panel `a`,
    /// `c[i] = init[i] + sum_q dot(a[q * mr + i], b[q])`, `b` holding `kp` words.
    pub(crate) run_gemv: unsafe fn(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32),
}

/// Where and how a fused kernel stores a full 8-bit tile: for row i,
/// `out[i * ldc + j] = round_half_even(clamp(acc[i][j] * si[i] + bi[i], qlo, qhi)) + zero`,
/// computed as `bits(clamp(..) + rule::MAGIC) - zero_bits` (see [`rule`]).
// Only the SIMD kernels read it (the portable build has none).
#[cfg_attr(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))), allow(dead_code))]
pub(crate) struct Q8Tile {
    pub si: *const f32,
    pub bi: *const f32,
    /// The clamp before rounding: the quantized bounds minus the zero point.
    pub qlo: f32,
    pub qhi: f32,
    /// `rule::magic_minus_zero(zero)`.
    pub zero_bits: i32,
    pub out: *mut u8,
    pub ldc: usize,
    pub signed: bool,
    /// False when the clamp cannot change any result: `[qlo, qhi] + zero` is the whole 8-bit
    /// range (the narrowing instructions saturate to it) and every `acc * si + bi` is provably
    /// below 2^22 in magnitude (so the rounding trick is exact without a bound). Kernels may
    /// then skip the two clamp instructions per vector; they may also ignore it (the x86
    /// kernels do: their clamps are a small part of a tile there).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub clamp: bool,
}

impl std::fmt::Debug for QKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl QKernel {
    /// The fastest kernel this machine (or wasm build) runs, chosen once per process.
    /// `CAIRN_ISA=generic` forces the portable one, like the f32 kernels.
    pub fn current() -> QKernel {
        static CHOSEN: OnceLock<QKernel> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            match crate::Isa::current() {
                crate::Isa::Generic => crate::generic::qgemm::KERNEL,
                // AVX2 forced (`CAIRN_ISA=avx2`): no AVX-512 kernel either.
                #[cfg(target_arch = "x86_64")]
                crate::Isa::Avx2Fma if std::arch::is_x86_feature_detected!("avxvnni") => crate::x86_64::qgemm::KERNEL_AVX_VNNI_U8S8,
                #[cfg(target_arch = "x86_64")]
                crate::Isa::Avx2Fma => crate::x86_64::qgemm::KERNEL_AVX2_U8S7,
                _ => QKernel::all_available()[0],
            }
        })
    }

    /// Every kernel this process can run, best first (tests compare them all to the reference).
    // Which pushes exist depends on the target (cfg), so the list cannot be a `vec![]` literal.
    #[allow(unused_mut, clippy::vec_init_then_push)]
    pub fn all_available() -> Vec<QKernel> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                if std::arch::is_x86_feature_detected!("avx512vl") {
                    out.push(crate::x86_64::qgemm::KERNEL_AVX512_VNNI_U8S8);
                }
                out.push(crate::x86_64::qgemm::KERNEL_AVX512_VNNI);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("avxvnni") {
                out.push(crate::x86_64::qgemm::KERNEL_AVX_VNNI_U8S8);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                out.push(crate::x86_64::qgemm::KERNEL_AVX2_U8S7);
                out.push(crate::x86_64::qgemm::KERNEL_AVX2);
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        if crate::wasm32::qgemm::relaxed_dot_is_exact_u8s8() {
            out.push(crate::wasm32::qgemm::KERNEL_RELAXED_U8S8);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        out.push(crate::wasm32::qgemm::KERNEL);
        out.push(crate::generic::qgemm::KERNEL);
        out
    }
}

/// Largest reduction length for which i32 accumulation cannot overflow:
/// |a - za|, |b - zb| <= 255, so k * 255 * 255 < 2^31. (The byte layout's partial sums
/// may wrap; i32 arithmetic wraps, so the final sum is still exact.)
pub const MAX_K: usize = 33_000;
