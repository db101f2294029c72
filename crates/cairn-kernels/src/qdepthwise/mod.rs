//! int8 depthwise 2-D convolution on NCHW planes, i32 accumulation, with the
//! requantizing epilogue of [`crate::qgemm`] (per-channel scale, bias, activation; the
//! rule of [`crate::qgemm::rule`]).
//!
//! Two paths give the same bits:
//! - `tuples` (the common case: column stride 1 or 2, no column dilation, weights
//!   within [-128, 127] after their zero point): the raw 8-bit input is multiplied by
//!   the weights without subtracting its zero point, which is folded into the start
//!   value of each channel's accumulators instead (`-zero * sum(w)`), so the padding is
//!   the zero point and the inner loop is one widening multiply-add of 2 or 4 taps
//!   per lane (`i32x4.dot_i16x8_s` on wasm, `vpmaddwd` on AVX2, `vpdpbusd` on
//!   AVX-512 VNNI); the epilogue requantizes in registers. One file per ISA
//!   (`wasm32.rs`, `x86_64.rs`) holds those instructions.
//! - `planes` (everything else, and the portable build): f32 lanes holding exact integers.

mod filters;
mod planes;
// The tap-tuple kernels have SIMD forms only; a scalar wasm build keeps the portable path.
#[cfg_attr(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))), allow(dead_code, unused_variables))]
mod tuples;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm32;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::depthwise::ConvGeometry;
use crate::qgemm::{QEpilogue, QOut, Q8};
use crate::Isa;

pub use filters::QDwFilters;

/// `y[c] = epilogue_c(sum_taps w[c] * (x[c] - x_zero))` for `channels` planes.
/// `w` holds `channels * kh * kw` weights with their zero point already subtracted;
/// `epi.scale`/`epi.bias` are per channel (or one value). `y` is `channels * oh * ow`.
/// Prepares the filters on every call: models hold a [`QDwFilters`] and call
/// [`qdepthwise_conv2d_packed`].
pub fn qdepthwise_conv2d(g: &ConvGeometry, channels: usize, x: Q8, x_zero: i32, w: &[i16], epi: &QEpilogue, y: QOut) {
    qdepthwise_conv2d_on(Isa::current(), g, channels, x, x_zero, w, epi, y)
}

/// [`qdepthwise_conv2d`] with an explicit ISA (the tests compare them all).
#[allow(clippy::too_many_arguments)]
pub fn qdepthwise_conv2d_on(isa: Isa, g: &ConvGeometry, channels: usize, x: Q8, x_zero: i32, w: &[i16], epi: &QEpilogue, y: QOut) {
    let ksz = g.kh * g.kw;
    assert!(w.len() >= channels * ksz, "qdepthwise: buffers too small");
    let f = QDwFilters::new(w[..channels * ksz].to_vec(), channels, g.kh, g.kw);
    qdepthwise_conv2d_packed_on(isa, g, channels, x, x_zero, &f, epi, y)
}

/// [`qdepthwise_conv2d`] with filters prepared by [`QDwFilters::new`].
pub fn qdepthwise_conv2d_packed(g: &ConvGeometry, channels: usize, x: Q8, x_zero: i32, f: &QDwFilters, epi: &QEpilogue, y: QOut) {
    qdepthwise_conv2d_packed_on(Isa::current(), g, channels, x, x_zero, f, epi, y)
}

/// [`qdepthwise_conv2d_packed`] with an explicit ISA.
#[allow(clippy::too_many_arguments)]
pub fn qdepthwise_conv2d_packed_on(
    isa: Isa,
    g: &ConvGeometry,
    channels: usize,
    x: Q8,
    x_zero: i32,
    f: &QDwFilters,
    epi: &QEpilogue,
    mut y: QOut,
) {
    let (isz, osz) = (g.ih * g.iw, g.oh * g.ow);
    assert!(
        f.kh == g.kh && f.kw == g.kw && f.channels >= channels,
        "qdepthwise: {}x{} filters x{} for a {}x{} window x{channels}",
        f.kh,
        f.kw,
        f.channels,
        g.kh,
        g.kw
    );
    assert!(x.len() >= channels * isz && y.len() >= channels * osz, "qdepthwise: buffers too small");
    epi.check(channels, "qdepthwise");
    assert!(g.sh >= 1 && g.sw >= 1 && g.dh >= 1 && g.dw >= 1, "qdepthwise: strides and dilations must be positive");
    assert!(isa.is_available(), "qdepthwise: {isa:?} is not available here");
    if osz == 0 || channels == 0 {
        return;
    }
    if tuples::applies(g, x, x_zero, f) {
        #[allow(unused_variables)] // no tuple kernel in scalar wasm builds
        let job = tuples::Job::new(g, x, x_zero, f, epi, &mut y);
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if x86_64::has_vnni() => return tuples::run(&job, channels, x86_64::channels_vnni),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma | Isa::Avx512 => return tuples::run(&job, channels, x86_64::channels_avx2),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::WasmSimd128 => return tuples::run(&job, channels, wasm32::channels_simd128),
            _ => {}
        }
    }
    planes::conv(isa, g, channels, x, x_zero, f.taps(), epi, &mut y)
}

/// The naive twin: direct indexing with bounds tests, i64 accumulation.
pub fn qdepthwise_reference_i32(g: &ConvGeometry, channels: usize, x: Q8, x_zero: i32, w: &[i16]) -> Vec<i32> {
    let mut out = vec![0i32; channels * g.oh * g.ow];
    for ch in 0..channels {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut s = 0i64;
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let iy = (oy * g.sh + ki * g.dh) as isize - g.pt as isize;
                        let ix = (ox * g.sw + kj * g.dw) as isize - g.pl as isize;
                        if iy < 0 || ix < 0 || iy >= g.ih as isize || ix >= g.iw as isize {
                            continue;
                        }
                        let v = x.at(ch * g.ih * g.iw + iy as usize * g.iw + ix as usize) - x_zero;
                        s += v as i64 * w[ch * g.kh * g.kw + ki * g.kw + kj] as i64;
                    }
                }
                out[(ch * g.oh + oy) * g.ow + ox] = s as i32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
