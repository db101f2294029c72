//! Stride-1 depthwise convolution on wide planes, one channel at a time: the channel is
//! copied into a zero-padded plane, after which the input that tap (ki, kj) reads for
//! output (oy, ox) sits at `ki * width + kj + oy * width + ox`, so every tap is one
//! contiguous stream and a row of outputs is whole vectors with no edge handling (rows
//! are computed `width` wide; the extra outputs spill into the next row, which is
//! written afterwards). Rows 28 wide and more keep every lane busy this way with only
//! a plain copy per channel, which measured faster than the interleaved kernel's two
//! transposes, in V8 especially (MobileNetV2's 112- and 56-wide layers: 0.24 vs
//! 0.55 ms in Node).

use super::{clamp_of, ConvGeometry};
use crate::simd::F32Simd;
use crate::Activation;

/// Rows at least this wide take this path.
const WIDE: usize = 28;

/// Whether this path computes `g`.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.ow >= WIDE
}

/// Buffers of one task, reused across its channels.
#[derive(Default)]
pub(super) struct Scratch {
    plane: Vec<f32>,
    /// One output row, for the last row, whose spill would leave the plane.
    row: Vec<f32>,
}

/// `y[c] = act(conv(x[c], w[c]) + bias[c])` for `channels` planes (see
/// [`super::interleaved::depthwise`] for the pointer contract); `applies(g)` holds.
///
/// # Safety
/// As [`super::interleaved::depthwise`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn depthwise<S: F32Simd>(
    g: &ConvGeometry,
    channels: usize,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    act: Activation,
    y: *mut f32,
    s: &mut Scratch,
) {
    let l = S::LANES;
    let width = g.ow - 1 + g.kw;
    let rows = g.oh - 1 + g.kh;
    // Rows compute pairs of vectors: up to `ow` rounded up to 2 * LANES outputs.
    let reach = (g.oh - 1) * width + g.ow.div_ceil(2 * l) * 2 * l;
    let len = (rows * width).max((g.kh - 1) * width + g.kw - 1 + reach);
    // Zeroed once per call: channels overwrite only the input positions.
    s.plane.clear();
    s.plane.resize(len, 0.0);
    s.row.resize(g.ow.div_ceil(2 * l) * 2 * l, 0.0);
    let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
    let cols = g.iw.min(width.saturating_sub(g.pl));
    for ch in 0..channels {
        let xc = x.add(ch * isz);
        for iy in 0..g.ih {
            let r = g.pt + iy;
            if r >= rows {
                break;
            }
            std::ptr::copy_nonoverlapping(xc.add(iy * g.iw), s.plane.as_mut_ptr().add(r * width + g.pl), cols);
        }
        let b = if bias.is_null() { 0.0 } else { *bias.add(ch) };
        let wc = std::slice::from_raw_parts(w.add(ch * ksz), ksz);
        let yc = std::slice::from_raw_parts_mut(y.add(ch * osz), osz);
        match (g.kh, g.kw) {
            (3, 3) => taps::<S, 3, 3>(g, width, &s.plane, wc, b, act, yc, &mut s.row),
            (5, 5) => taps::<S, 5, 5>(g, width, &s.plane, wc, b, act, yc, &mut s.row),
            _ => taps_any::<S>(g, width, &s.plane, wc, b, act, yc, &mut s.row),
        }
        if clamp_of(act).is_none() && act != Activation::Identity {
            act.apply(yc);
        }
    }
}

/// Where row `oy`'s whole-vector stores go: straight into `y`, or into `row` when the
/// spill would leave the plane (then `finish_row` copies it).
#[inline(always)]
unsafe fn row_dst(g: &ConvGeometry, oy: usize, span: usize, y: &mut [f32], row: &mut [f32]) -> (*mut f32, bool) {
    if oy * g.ow + span <= g.oh * g.ow {
        (y.as_mut_ptr().add(oy * g.ow), true)
    } else {
        (row.as_mut_ptr(), false)
    }
}

#[inline(always)]
fn finish_row(g: &ConvGeometry, oy: usize, direct: bool, y: &mut [f32], row: &[f32]) {
    if !direct {
        y[oy * g.ow..(oy + 1) * g.ow].copy_from_slice(&row[..g.ow]);
    }
}

/// Fixed window: taps unrolled, the filter splatted in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn taps<S: F32Simd, const KH: usize, const KW: usize>(
    g: &ConvGeometry,
    width: usize,
    plane: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    y: &mut [f32],
    row: &mut [f32],
) {
    let l = S::LANES;
    let pairs = g.ow.div_ceil(2 * l);
    let wv: [[S::V; KW]; KH] = std::array::from_fn(|ki| std::array::from_fn(|kj| S::splat(w[ki * KW + kj])));
    let clamp = clamp_of(act);
    let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let (vlo, vhi, vbias) = (S::splat(lo), S::splat(hi), S::splat(bias));
    let base = plane.as_ptr();
    for oy in 0..g.oh {
        let (dst, direct) = row_dst(g, oy, pairs * 2 * l, y, row);
        for v in 0..pairs {
            let t0 = base.add(oy * width + 2 * v * l);
            let (mut a0, mut a1) = (vbias, vbias);
            for (ki, wr) in wv.iter().enumerate() {
                for (kj, wt) in wr.iter().enumerate() {
                    let src = t0.add(ki * width + kj);
                    a0 = S::mul_add(*wt, S::load(src), a0);
                    a1 = S::mul_add(*wt, S::load(src.add(l)), a1);
                }
            }
            if clamp.is_some() {
                a0 = S::min(S::max(a0, vlo), vhi);
                a1 = S::min(S::max(a1, vlo), vhi);
            }
            S::store(dst.add(2 * v * l), a0);
            S::store(dst.add(2 * v * l + l), a1);
        }
        finish_row(g, oy, direct, y, row);
    }
}

/// Any window size.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn taps_any<S: F32Simd>(
    g: &ConvGeometry,
    width: usize,
    plane: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    y: &mut [f32],
    row: &mut [f32],
) {
    let l = S::LANES;
    let pairs = g.ow.div_ceil(2 * l);
    let clamp = clamp_of(act);
    let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let (vlo, vhi) = (S::splat(lo), S::splat(hi));
    let base = plane.as_ptr();
    for oy in 0..g.oh {
        let (dst, direct) = row_dst(g, oy, pairs * 2 * l, y, row);
        for v in 0..2 * pairs {
            let t0 = base.add(oy * width + v * l);
            let mut a0 = S::splat(bias);
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    a0 = S::mul_add(S::splat(w[ki * g.kw + kj]), S::load(t0.add(ki * width + kj)), a0);
                }
            }
            if clamp.is_some() {
                a0 = S::min(S::max(a0, vlo), vhi);
            }
            S::store(dst.add(v * l), a0);
        }
        finish_row(g, oy, direct, y, row);
    }
}
