//! Depthwise convolution on channel-interleaved blocks: `LANES` channels at a time
//! are transposed into a zero-padded buffer where each pixel holds one vector of
//! channels (`buf[(row * width + col) * LANES + lane]`), the NHWC layout in miniature.
//! Every tap then is one vector multiply-add per output pixel with every lane useful:
//! no wasted lanes at the right edge of 7x7 or 14x14 planes, no deinterleaving for
//! stride 2 (the stride is only an address step), dilations for free. Output pixels
//! are transposed back into the NCHW planes `LANES` at a time.
//!
//! Max pooling runs the same way with `-inf` padding and `max` for the taps.
//!
//! The transposes are the only data movement: one pass over the input and one over
//! the output, in registers (8x8 on AVX2, 4x4 on simd128).

use super::{clamp_of, ConvGeometry};
use crate::simd::F32Simd;
use crate::Activation;

/// Buffers of one task, reused across its channel blocks.
#[derive(Default)]
pub(super) struct Scratch {
    /// The padded, interleaved input of one block.
    buf: Vec<f32>,
    /// The block's filters, tap-major: `w[tap * LANES + lane]`.
    w: Vec<f32>,
    bias: Vec<f32>,
    /// `PIXELS` output pixels of the block, pixel-major, before the transpose back.
    tile: Vec<f32>,
}

/// The padded buffer's shape for a geometry and vector width.
struct Layout {
    /// Padded rows and columns held (every row and column any output reads).
    rows: usize,
    cols: usize,
    /// Output pixels of a row, rounded up to whole vectors' worth.
    groups: usize,
}

impl Layout {
    fn new(g: &ConvGeometry, pixels: usize) -> Layout {
        let groups = g.ow.div_ceil(pixels);
        Layout { rows: (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1, cols: (groups * pixels - 1) * g.sw + (g.kw - 1) * g.dw + 1, groups }
    }
}

/// `y[c] = act(conv(x[c], w[c]) + bias[c])` for the `channels` planes starting at
/// channel 0 of `x`, `w`, `bias` and `y` (raw pointers: threads write disjoint planes).
///
/// # Safety
/// `x` holds `channels * ih * iw` floats, `w` `channels * kh * kw`, `bias` `channels`
/// (or is null), `y` `channels * oh * ow`; the ISA of `S` is available.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn depthwise<S: F32Simd, const MAX: bool>(
    g: &ConvGeometry,
    channels: usize,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    act: Activation,
    y: *mut f32,
    s: &mut Scratch,
) {
    let (l, p) = (S::LANES, S::PIXELS);
    debug_assert!(l % S::BLOCK == 0 && p % S::BLOCK == 0);
    let lay = Layout::new(g, p);
    // The buffer is reused across calls; blocks overwrite only the interior, so the
    // padding is set once per call (filling all of it costs more than the taps).
    // Max pooling pads with -inf, which never wins.
    let pad = if MAX { f32::NEG_INFINITY } else { 0.0 };
    s.buf.resize(lay.rows * lay.cols * l, 0.0);
    pad_border(g, &lay, l, pad, &mut s.buf);
    s.w.resize(g.kh * g.kw * l, 0.0);
    s.bias.resize(l, 0.0);
    s.tile.resize(p * l, 0.0);
    let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
    for c0 in (0..channels).step_by(l) {
        let n = l.min(channels - c0);
        for lane in (0..l).filter(|_| !MAX) {
            for t in 0..ksz {
                s.w[t * l + lane] = if lane < n { *w.add((c0 + lane) * ksz + t) } else { 0.0 };
            }
            s.bias[lane] = if lane < n && !bias.is_null() { *bias.add(c0 + lane) } else { 0.0 };
        }
        fill::<S>(g, &lay, x.add(c0 * isz), n, pad, &mut s.buf);
        // Constant window sizes let the tap loops unroll; a constant pixel count keeps
        // the accumulators in registers (an array of runtime length would live in memory).
        let yb = y.add(c0 * osz);
        match (p, g.kh, g.kw) {
            (4, 3, 3) => rows::<S, 4, MAX>(g, &lay, 3, 3, s, act, yb, n),
            (4, 5, 5) => rows::<S, 4, MAX>(g, &lay, 5, 5, s, act, yb, n),
            (4, kh, kw) => rows::<S, 4, MAX>(g, &lay, kh, kw, s, act, yb, n),
            (8, 3, 3) => rows::<S, 8, MAX>(g, &lay, 3, 3, s, act, yb, n),
            (8, 5, 5) => rows::<S, 8, MAX>(g, &lay, 5, 5, s, act, yb, n),
            (_, kh, kw) => rows::<S, 8, MAX>(g, &lay, kh, kw, s, act, yb, n),
        }
    }
}

/// Sets every cell of the buffer that no input pixel lands on to `pad`.
fn pad_border(g: &ConvGeometry, lay: &Layout, l: usize, pad: f32, buf: &mut [f32]) {
    let row_len = lay.cols * l;
    let (c_lo, c_hi) = (g.pl.min(lay.cols), (g.pl + g.iw).min(lay.cols));
    for r in 0..lay.rows {
        let row = &mut buf[r * row_len..][..row_len];
        if r < g.pt || r >= g.pt + g.ih {
            row.fill(pad);
        } else {
            row[..c_lo * l].fill(pad);
            row[c_hi * l..].fill(pad);
        }
    }
}

/// Transposes `n` channel planes into the interleaved buffer's interior.
#[inline(always)]
unsafe fn fill<S: F32Simd>(g: &ConvGeometry, lay: &Layout, x: *const f32, n: usize, pad: f32, buf: &mut [f32]) {
    let (l, b) = (S::LANES, S::BLOCK);
    let isz = g.ih * g.iw;
    let cols = g.iw.min(lay.cols.saturating_sub(g.pl));
    for iy in 0..g.ih {
        let r = g.pt + iy;
        if r >= lay.rows {
            break;
        }
        let src = x.add(iy * g.iw);
        let dst = buf.as_mut_ptr().add((r * lay.cols + g.pl) * l);
        let mut ix = 0;
        if n == l {
            // A last, partial chunk is moved whole when what it reads past the row lies in
            // the next row of the same plane and what it writes past the row stays in the
            // buffer; the padding it overwrites is zeroed again (7- and 14-wide rows
            // would otherwise be mostly scalar moves).
            let whole = cols.div_ceil(b) * b;
            let end = (r * lay.cols + g.pl + whole) * l;
            let spill = iy + 1 < g.ih && whole - cols <= g.iw && end <= buf.len();
            let stop = if spill { whole } else { cols / b * b };
            while ix < stop {
                for h in (0..l).step_by(b) {
                    S::transpose(src.add(h * isz + ix), isz, dst.add(ix * l + h), l);
                }
                ix += b;
            }
            if spill && whole > cols {
                buf[(r * lay.cols + g.pl + cols) * l..end].fill(pad);
                ix = cols;
            }
        }
        for ix in ix..cols {
            for lane in 0..n {
                *dst.add(ix * l + lane) = *src.add(lane * isz + ix);
            }
        }
    }
}

/// Every output row of one block, `PIXELS` pixels at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows<S: F32Simd, const P: usize, const MAX: bool>(
    g: &ConvGeometry,
    lay: &Layout,
    kh: usize,
    kw: usize,
    s: &mut Scratch,
    act: Activation,
    y: *mut f32,
    n: usize,
) {
    let (l, b) = (S::LANES, S::BLOCK);
    debug_assert_eq!(P, S::PIXELS);
    let osz = g.oh * g.ow;
    let (buf, w, tile) = (s.buf.as_ptr(), s.w.as_ptr(), s.tile.as_mut_ptr());
    let vbias = if MAX { S::splat(f32::NEG_INFINITY) } else { S::load(s.bias.as_ptr()) };
    let clamp = if MAX { None } else { clamp_of(act) };
    let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let (vlo, vhi) = (S::splat(lo), S::splat(hi));
    let pixel_step = g.sw * l;
    for oy in 0..g.oh {
        for grp in 0..lay.groups {
            let ox0 = grp * P;
            let mut acc = [vbias; P];
            for ki in 0..kh {
                let row = buf.add((oy * g.sh + ki * g.dh) * lay.cols * l);
                for kj in 0..kw {
                    let base = row.add((ox0 * g.sw + kj * g.dw) * l);
                    if MAX {
                        for (p, a) in acc.iter_mut().enumerate() {
                            *a = S::max(S::load(base.add(p * pixel_step)), *a);
                        }
                        continue;
                    }
                    let wv = S::load(w.add((ki * kw + kj) * l));
                    for (p, a) in acc.iter_mut().enumerate() {
                        *a = S::mul_add(wv, S::load(base.add(p * pixel_step)), *a);
                    }
                }
            }
            for (p, a) in acc.iter().enumerate() {
                let v = if clamp.is_some() { S::min(S::max(*a, vlo), vhi) } else { *a };
                S::store(tile.add(p * l), v);
            }
            // Back to planes, `BLOCK` pixels by `BLOCK` channels at a time. A partial block
            // is stored whole when its spill lands in the next row of the same plane,
            // which is written afterwards.
            for q in (0..P).step_by(b) {
                let valid = b.min(g.ow.saturating_sub(ox0 + q));
                if valid == 0 {
                    break;
                }
                let out = y.add(oy * g.ow + ox0 + q);
                let tq = tile.add(q * l);
                if n == l && (valid == b || (oy + 1 < g.oh && b - valid <= g.ow)) {
                    for h in (0..l).step_by(b) {
                        S::transpose(tq.add(h), l, out.add(h * osz), osz);
                    }
                } else {
                    for lane in 0..n {
                        for p in 0..valid {
                            *out.add(lane * osz + p) = *tq.add(p * l + lane);
                        }
                    }
                }
            }
        }
    }
    if !MAX && clamp.is_none() && act != Activation::Identity {
        for lane in 0..n {
            act.apply(std::slice::from_raw_parts_mut(y.add(lane * osz), osz));
        }
    }
}
