//! Depthwise 2-D convolution on NCHW planes (one filter per channel), with the
//! bias and activation fused into the store.
//!
//! Each channel's input is first copied into a zero-padded plane, so the inner
//! loop has no bounds checks; for stride 2 the copy also splits every padded row
//! into its even and odd columns, so that every kernel tap reads a *contiguous*
//! run of input for consecutive outputs. The inner loop then accumulates `LANES`
//! outputs in a fixed-size array, which LLVM turns into SIMD registers for the
//! ISA the function is compiled for (simd128, AVX2+FMA, or the baseline).

mod interleaved;

use crate::parallel::{for_each_task, SendPtr};
use crate::simd::{F32Simd, Scalar4};
use crate::{Activation, Isa};

/// Window geometry of a 2-D convolution (1-D is `ih = kh = oh = 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub ih: usize,
    pub iw: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    /// Padding before the first row and column (the padding after follows from the output size).
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Channels per task when spreading over threads.
const CHANNELS_PER_TASK: usize = 16;

/// `y[c] = act(conv(x[c], w[c]) + bias[c])` for `channels` planes.
/// `x`: `channels * ih * iw`, `w`: `channels * kh * kw`, `y`: `channels * oh * ow`.
pub fn depthwise_conv2d(g: &ConvGeometry, channels: usize, x: &[f32], w: &[f32], bias: Option<&[f32]>, act: Activation, y: &mut [f32]) {
    depthwise_conv2d_on(Isa::current(), g, channels, x, w, bias, act, y)
}

/// [`depthwise_conv2d`] with an explicit ISA.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_on(isa: Isa, g: &ConvGeometry, channels: usize, x: &[f32], w: &[f32], bias: Option<&[f32]>, act: Activation, y: &mut [f32]) {
    let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
    assert!(x.len() >= channels * isz && w.len() >= channels * ksz && y.len() >= channels * osz, "depthwise: buffers too small");
    assert!(bias.is_none_or(|b| b.len() >= channels), "depthwise: bias too short");
    let tasks: Vec<usize> = (0..channels).step_by(CHANNELS_PER_TASK).collect();
    let y_ptr = SendPtr(y.as_mut_ptr());
    for_each_task(&tasks, |&c0| {
        let n = CHANNELS_PER_TASK.min(channels - c0);
        // Buffers live on per thread: a fresh multi-100-KiB buffer per call would be
        // mapped and faulted in every time.
        thread_local! {
            static SCRATCH: std::cell::RefCell<interleaved::Scratch> = std::cell::RefCell::default();
        }
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let (xc, wc, bc) = (x[c0 * isz..].as_ptr(), w[c0 * ksz..].as_ptr(), bias.map_or(std::ptr::null(), |b| b[c0..].as_ptr()));
        // SAFETY: the asserts above cover every plane; each task writes only its own
        // channels' planes; the ISA is available (chosen by `Isa`).
        unsafe {
            let yc = y_ptr.get().add(c0 * osz);
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Fma => depthwise_avx2(g, n, xc, wc, bc, act, yc, &mut scratch),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => depthwise_avx512(g, n, xc, wc, bc, act, yc, &mut scratch),
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Isa::WasmSimd128 => interleaved::depthwise::<crate::simd::wasm::Simd128>(g, n, xc, wc, bc, act, yc, &mut scratch),
                _ => interleaved::depthwise::<Scalar4>(g, n, xc, wc, bc, act, yc, &mut scratch),
            }
        }
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn depthwise_avx2(g: &ConvGeometry, channels: usize, x: *const f32, w: *const f32, bias: *const f32, act: Activation, y: *mut f32, s: &mut interleaved::Scratch) {
    interleaved::depthwise::<crate::simd::avx2::Avx2>(g, channels, x, w, bias, act, y, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn depthwise_avx512(g: &ConvGeometry, channels: usize, x: *const f32, w: *const f32, bias: *const f32, act: Activation, y: *mut f32, s: &mut interleaved::Scratch) {
    interleaved::depthwise::<crate::simd::avx512::Avx512>(g, channels, x, w, bias, act, y, s)
}

/// Per-task buffers, reused across channels.
#[derive(Default)]
struct Scratch {
    plane: Vec<f32>,
    /// The plane's padding is in place: every channel of one call has the same geometry,
    /// so later channels only overwrite the input positions.
    primed: bool,
    /// One output row, for rows whose whole-vector stores would run past the plane.
    row: Vec<f32>,
}

/// One channel's zero-padded input, split by the phase of each row and column
/// modulo the stride (2x2 strides give four sub-planes). In this layout the input
/// that tap (ki, kj) reads for output (oy, ox) sits at `offsets[tap] + oy * s + ox`:
/// every tap is one contiguous stream over a "virtual" output of `oh` rows of width
/// `s >= ow`. The kernel computes the virtual output (a little wider than the real
/// one) with full-width vectors and no edge cases; the caller keeps the real part.
/// This is what makes small planes (7x7, 14x14) as vector-friendly as large ones.
struct PhasePlane {
    s: usize,
    /// Floats per phase sub-plane.
    sub: usize,
    offsets: Vec<usize>,
    /// The buffer length: every sub-plane, and every tap's reads for the virtual rows.
    len: usize,
}

/// Vector pairs never exceed this many lanes (AVX2: 2 x 8).
const MAX_STEP: usize = 16;

impl PhasePlane {
    fn new(g: &ConvGeometry) -> PhasePlane {
        let (sh, sw) = (g.sh, g.sw);
        let width = (g.ow - 1) * sw + g.kw; // padded columns any output reads
        let rows = (g.oh - 1) * sh + g.kh;
        let s = width.div_ceil(sw);
        let sub = rows.div_ceil(sh) * s;
        let mut plane = PhasePlane { s, sub, offsets: Vec::new(), len: 0 };
        plane.offsets = (0..g.kh * g.kw).map(|t| plane.slot(g, t / g.kw, t % g.kw)).collect();
        // A row computes whole vectors: up to `ow` rounded up to MAX_STEP outputs.
        let reach = (g.oh - 1) * s + g.ow.div_ceil(MAX_STEP) * MAX_STEP;
        let max_off = plane.offsets.iter().copied().max().unwrap_or(0);
        plane.len = (sh * sw * sub).max(max_off + reach);
        plane
    }

    /// Where padded input (row `r`, column `c`) lives in the buffer.
    #[inline]
    fn slot(&self, g: &ConvGeometry, r: usize, c: usize) -> usize {
        ((r % g.sh) * g.sw + c % g.sw) * self.sub + (r / g.sh) * self.s + c / g.sw
    }

    /// Copies one channel `x` into `buf` (whose padding holds `pad` once primed).
    fn fill(&self, g: &ConvGeometry, x: &[f32], buf: &mut Vec<f32>, primed: &mut bool, pad: f32) {
        let (sh, sw, len) = (g.sh, g.sw, self.len);
        let width = (g.ow - 1) * sw + g.kw;
        let rows = (g.oh - 1) * sh + g.kh;
        let slot = |r: usize, c: usize| self.slot(g, r, c);
        if !*primed || buf.len() != len {
            buf.clear();
            buf.resize(len, pad);
            *primed = true;
        }
        for r in 0..rows {
            let iy = r as isize - g.pt as isize;
            if iy < 0 || iy >= g.ih as isize {
                continue;
            }
            let src = &x[iy as usize * g.iw..][..g.iw];
            let (c_lo, c_hi) = (g.pl, (g.pl + g.iw).min(width));
            if c_lo >= c_hi {
                continue;
            }
            if sw == 1 {
                let at = slot(r, c_lo);
                crate::gemm::copy_short(&mut buf[at..at + c_hi - c_lo], &src[..c_hi - c_lo]);
            } else {
                // Stride 2: even padded columns to one sub-plane row, odd to the other,
                // in one pass over pairs (which LLVM turns into shuffles).
                let (even_at, odd_at) = (slot(r, c_lo - c_lo % 2), slot(r, c_lo - c_lo % 2 + 1));
                let mut c = c_lo;
                if c % 2 == 1 {
                    buf[odd_at + c / 2 - c_lo / 2] = src[c - g.pl];
                    c += 1;
                }
                let pairs = (c_hi - c) / 2;
                let base = (c - (c_lo - c_lo % 2)) / 2;
                let (lo, hi) = buf.split_at_mut(odd_at.max(even_at));
                let (evens, odds) = if even_at < odd_at { (&mut lo[even_at + base..], &mut hi[base..]) } else { (&mut hi[base..], &mut lo[odd_at + base..]) };
                for (i, pair) in src[c - g.pl..c - g.pl + 2 * pairs].chunks_exact(2).enumerate() {
                    evens[i] = pair[0];
                    odds[i] = pair[1];
                }
                c += 2 * pairs;
                if c < c_hi {
                    evens[pairs] = src[c - g.pl];
                }
            }
        }
    }
}

/// Clamping activations run on the vectors; the others on the finished plane
/// (Identity included: x86 `max` would turn NaN into the bound).
#[inline(always)]
fn clamp_of(act: Activation) -> Option<(f32, f32)> {
    match act {
        Activation::Identity => None,
        Activation::Relu => Some((0.0, f32::INFINITY)),
        Activation::Clip { min, max } => Some((min, max)),
        _ => None,
    }
}

/// Where row `oy`'s whole-vector stores go. Rows are written in order straight into
/// `y`; a row's last vector may spill into the next row, which is written afterwards.
/// A row whose spill would leave the plane is computed into `row` and copied
/// (`finish_row`). No closures here: they would not inherit the caller's
/// `#[target_feature]`, and the intrinsics inside would stop inlining.
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

/// The reference: direct loops with bounds checks, any geometry.
#[cfg(test)]
fn channel_general(g: &ConvGeometry, x: &[f32], w: &[f32], bias: f32, act: Activation, y: &mut [f32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let mut acc = bias;
            for ki in 0..g.kh {
                let iy = (oy * g.sh + ki * g.dh) as isize - g.pt as isize;
                if iy < 0 || iy >= g.ih as isize {
                    continue;
                }
                for kj in 0..g.kw {
                    let ix = (ox * g.sw + kj * g.dw) as isize - g.pl as isize;
                    if ix >= 0 && (ix as usize) < g.iw {
                        acc += w[ki * g.kw + kj] * x[iy as usize * g.iw + ix as usize];
                    }
                }
            }
            y[oy * g.ow + ox] = act.apply_one(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_close, Rng};

    /// Every ISA's kernel against the direct loop, on random geometries with odd sizes,
    /// partial channel blocks, strides up to 3 and dilations.
    #[test]
    fn fast_paths_match_general_loop() {
        let mut rng = Rng(11);
        for case in 0..300 {
            let k = [1, 3, 5, 7][rng.below(4)];
            let (kh, kw) = if case % 7 == 0 { (1, k) } else { (k, k) };
            let (sh, sw) = [(1, 1), (2, 2), (1, 2), (2, 1), (3, 3)][rng.below(5)];
            let (dh, dw) = if case % 5 == 0 { (2, 1 + rng.below(2)) } else { (1, 1) };
            let (ekh, ekw) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
            let (ih, iw) = (ekh + rng.below(20), ekw + rng.below(40));
            let (pt, pl) = (rng.below(kh / 2 + 1), rng.below(kw / 2 + 1));
            let (pb, pr) = (rng.below(kh / 2 + 1), rng.below(kw / 2 + 1));
            let oh = (ih + pt + pb - ekh) / sh + 1;
            let ow = (iw + pl + pr - ekw) / sw + 1;
            let g = ConvGeometry { ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow };
            let channels = 1 + rng.below(21);
            let x = rng.vec(channels * ih * iw);
            let w = rng.vec(channels * kh * kw);
            let bias = rng.vec(channels);
            let act = [Activation::Clip { min: 0.0, max: 6.0 }, Activation::Identity, Activation::Relu, Activation::Sigmoid][case % 4];
            let mut want = vec![0.0; channels * oh * ow];
            for ch in 0..channels {
                channel_general(&g, &x[ch * ih * iw..][..ih * iw], &w[ch * kh * kw..][..kh * kw], bias[ch], act, &mut want[ch * oh * ow..][..oh * ow]);
            }
            for isa in Isa::all_available() {
                let mut got = vec![f32::NAN; channels * oh * ow];
                depthwise_conv2d_on(isa, &g, channels, &x, &w, Some(&bias), act, &mut got);
                assert_close(&got, &want, 1e-5, &format!("case {case} {g:?} {isa:?}"));
            }
        }
    }
}

/// Max pooling over NCHW planes with the same phase-split layout as the depthwise
/// convolution (padding is -inf, so it never wins). Dilations must be 1 and strides 1 or 2;
/// returns false (doing nothing) for other geometries, which the caller handles.
/// NaN inputs follow the vector `max` of the ISA (they may not propagate).
pub fn max_pool2d(g: &ConvGeometry, planes: usize, x: &[f32], y: &mut [f32]) -> bool {
    if !(g.dh == 1 && g.dw == 1 && (1..=2).contains(&g.sw) && (1..=2).contains(&g.sh)) {
        return false;
    }
    let (isz, osz) = (g.ih * g.iw, g.oh * g.ow);
    assert!(x.len() >= planes * isz && y.len() >= planes * osz, "max_pool2d: buffers too small");
    let isa = Isa::current();
    let tasks: Vec<usize> = (0..planes).step_by(CHANNELS_PER_TASK).collect();
    let y_ptr = SendPtr(y.as_mut_ptr());
    let plane = PhasePlane::new(g);
    let plane = &plane;
    for_each_task(&tasks, |&c0| {
        let mut scratch = Scratch::default();
        for ch in c0..(c0 + CHANNELS_PER_TASK).min(planes) {
            plane.fill(g, &x[ch * isz..][..isz], &mut scratch.plane, &mut scratch.primed, f32::NEG_INFINITY);
            // SAFETY: each task writes only its own planes; `fill` checked the read extent.
            let yc = unsafe { std::slice::from_raw_parts_mut(y_ptr.get().add(ch * osz), osz) };
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2Fma | Isa::Avx512 => max_taps_avx2(g, plane, &scratch.plane, yc, &mut scratch.row),
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    Isa::WasmSimd128 => max_taps::<crate::simd::wasm::Simd128>(g, plane, &scratch.plane, yc, &mut scratch.row),
                    _ => max_taps::<Scalar4>(g, plane, &scratch.plane, yc, &mut scratch.row),
                }
            }
        }
    });
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn max_taps_avx2(g: &ConvGeometry, p: &PhasePlane, plane: &[f32], y: &mut [f32], row: &mut Vec<f32>) {
    max_taps::<crate::simd::avx2::Avx2>(g, p, plane, y, row)
}

#[inline(always)]
unsafe fn max_taps<S: F32Simd>(g: &ConvGeometry, p: &PhasePlane, plane: &[f32], y: &mut [f32], row: &mut Vec<f32>) {
    let l = S::LANES;
    let n_vec = g.ow.div_ceil(l);
    row.resize(n_vec * l, 0.0);
    for oy in 0..g.oh {
        let (dst, direct) = row_dst(g, oy, n_vec * l, y, row);
        for v in 0..n_vec {
            let t0 = oy * p.s + v * l;
            let mut m = S::splat(f32::NEG_INFINITY);
            for &off in &p.offsets {
                m = S::max(S::load(plane.as_ptr().add(off + t0)), m);
            }
            S::store(dst.add(v * l), m);
        }
        finish_row(g, oy, direct, y, row);
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use crate::testutil::{assert_close, Rng};

    #[test]
    fn max_pool_matches_direct_loop() {
        let mut rng = Rng(5);
        for case in 0..100 {
            let k = 1 + rng.below(4);
            let s = 1 + rng.below(2);
            let (ih, iw) = (k + rng.below(15), k + rng.below(30));
            let (pt, pl) = (rng.below(k / 2 + 1), rng.below(k / 2 + 1));
            let ceil = case % 2 == 1;
            let span = |i: usize, p: usize| if ceil { (i + 2 * p - k).div_ceil(s) + 1 } else { (i + 2 * p - k) / s + 1 };
            let g = ConvGeometry { ih, iw, kh: k, kw: k, sh: s, sw: s, dh: 1, dw: 1, pt, pl, oh: span(ih, pt), ow: span(iw, pl) };
            let planes = 1 + rng.below(5);
            let x = rng.vec(planes * ih * iw);
            let mut want = vec![f32::NEG_INFINITY; planes * g.oh * g.ow];
            for c in 0..planes {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (iy, ix) = ((oy * s + ki) as isize - pt as isize, (ox * s + kj) as isize - pl as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < ih && (ix as usize) < iw {
                                    let v = x[c * ih * iw + iy as usize * iw + ix as usize];
                                    let o = &mut want[c * g.oh * g.ow + oy * g.ow + ox];
                                    *o = o.max(v);
                                }
                            }
                        }
                    }
                }
            }
            let mut got = vec![0.0; want.len()];
            assert!(max_pool2d(&g, planes, &x, &mut got));
            assert_close(&got, &want, 0.0, &format!("case {case} {g:?}"));
        }
    }
}
