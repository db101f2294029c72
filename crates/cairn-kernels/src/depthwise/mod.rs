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
mod padded;

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
pub fn depthwise_conv2d_on(
    isa: Isa,
    g: &ConvGeometry,
    channels: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let ksz = g.kh * g.kw;
    assert!(w.len() >= channels * ksz, "depthwise: filters too short");
    assert!(bias.is_none_or(|b| b.len() >= channels), "depthwise: bias too short");
    planes::<false>(isa, g, channels, x, Some((w, bias)), act, y);
}

/// Runs the interleaved kernel over every plane, up to `CHANNELS_PER_TASK` per task:
/// a depthwise convolution with `filters = (w, bias)`, or max pooling (`MAX`, no filters).
fn planes<const MAX: bool>(
    isa: Isa,
    g: &ConvGeometry,
    channels: usize,
    x: &[f32],
    filters: Option<(&[f32], Option<&[f32]>)>,
    act: Activation,
    y: &mut [f32],
) {
    let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
    assert!(x.len() >= channels * isz && y.len() >= channels * osz, "depthwise: buffers too small");
    assert!(MAX || filters.is_some());
    // Fewer channels per task where `CHANNELS_PER_TASK` would leave under four tasks per
    // thread (MobileNetV2's first depthwise layer, 32 planes of 112x112, was two tasks for
    // two threads: no slack when one thread starts late), in whole interleaved blocks of
    // the ISA's vector width so that no lane idles.
    let lanes = lanes(isa);
    let per = channels.div_ceil(4 * crate::parallel::threads()).next_multiple_of(lanes).clamp(lanes, CHANNELS_PER_TASK.max(lanes));
    let tasks: Vec<usize> = (0..channels).step_by(per).collect();
    let y_ptr = SendPtr(y.as_mut_ptr());
    for_each_task(&tasks, |&c0| {
        let n = per.min(channels - c0);
        // Buffers live on per thread: a fresh multi-100-KiB buffer per call would be
        // mapped and faulted in every time.
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
        }
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let (wc, bc) = match filters {
            Some((w, b)) => (w[c0 * ksz..].as_ptr(), b.map_or(std::ptr::null(), |b| b[c0..].as_ptr())),
            None => (std::ptr::null(), std::ptr::null()),
        };
        let xc = x[c0 * isz..].as_ptr();
        // SAFETY: the asserts above cover every plane; each task writes only its own
        // channels' planes; the ISA is available (chosen by `Isa`).
        unsafe {
            let yc = y_ptr.get().add(c0 * osz);
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Fma => planes_avx2::<MAX>(g, n, xc, wc, bc, act, yc, &mut scratch),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => planes_avx512::<MAX>(g, n, xc, wc, bc, act, yc, &mut scratch),
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Isa::WasmSimd128 => run::<crate::simd::wasm::Simd128, MAX>(g, n, xc, wc, bc, act, yc, &mut scratch),
                _ => run::<Scalar4, MAX>(g, n, xc, wc, bc, act, yc, &mut scratch),
            }
        }
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
    });
}

/// Channels per interleaved block of the kernel `planes` runs on `isa` (the same dispatch).
fn lanes(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => crate::simd::avx2::Avx2::LANES,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => crate::simd::avx512::Avx512::LANES,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::WasmSimd128 => crate::simd::wasm::Simd128::LANES,
        _ => Scalar4::LANES,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn planes_avx2<const MAX: bool>(
    g: &ConvGeometry,
    channels: usize,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    act: Activation,
    y: *mut f32,
    s: &mut Scratch,
) {
    run::<crate::simd::avx2::Avx2, MAX>(g, channels, x, w, bias, act, y, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn planes_avx512<const MAX: bool>(
    g: &ConvGeometry,
    channels: usize,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    act: Activation,
    y: *mut f32,
    s: &mut Scratch,
) {
    run::<crate::simd::avx512::Avx512, MAX>(g, channels, x, w, bias, act, y, s)
}

/// Buffers of one task (per thread, reused across calls).
#[derive(Default)]
struct Scratch {
    interleaved: interleaved::Scratch,
    padded: padded::Scratch,
}

/// Wide stride-1 convolutions one plane at a time, the rest (and pooling) on
/// channel-interleaved blocks.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn run<S: F32Simd, const MAX: bool>(
    g: &ConvGeometry,
    channels: usize,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    act: Activation,
    y: *mut f32,
    s: &mut Scratch,
) {
    if !MAX && padded::applies(g) {
        padded::depthwise::<S>(g, channels, x, w, bias, act, y, &mut s.padded)
    } else {
        interleaved::depthwise::<S, MAX>(g, channels, x, w, bias, act, y, &mut s.interleaved)
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

    /// Few channels are cut into smaller tasks where threads exist (whole vector blocks):
    /// MobileNetV2's first depthwise layers give the same bits on one thread and on three,
    /// on every ISA. (Natively: the wasm builds' threads are not rayon's.)
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn channel_tasks_on_threads_equal_one_thread() {
        let mut rng = Rng(12);
        for (channels, hw, s) in [(32usize, 112usize, 1usize), (36, 57, 2), (20, 30, 1)] {
            let oh = (hw + 2 - 3) / s + 1;
            let g = ConvGeometry { ih: hw, iw: hw, kh: 3, kw: 3, sh: s, sw: s, dh: 1, dw: 1, pt: 1, pl: 1, oh, ow: oh };
            let (x, w, bias) = (rng.vec(channels * hw * hw), rng.vec(channels * 9), rng.vec(channels));
            for isa in Isa::all_available() {
                let run = |threads: usize| {
                    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                        let mut y = vec![f32::NAN; channels * oh * oh];
                        depthwise_conv2d_on(isa, &g, channels, &x, &w, Some(&bias), Activation::Clip { min: 0.0, max: 6.0 }, &mut y);
                        y
                    })
                };
                let (one, three) = (run(1), run(3));
                assert!(one.iter().zip(&three).all(|(a, b)| a.to_bits() == b.to_bits()), "{channels} x {hw} s{s} {isa:?}");
                assert!(one.iter().all(|v| v.is_finite()));
            }
        }
    }

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
            // Every third case is wide enough (28+) for the padded-plane path.
            let (ih, iw) = (ekh + rng.below(20), ekw + if case % 3 == 0 { 27 + rng.below(60) } else { rng.below(40) });
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
                channel_general(
                    &g,
                    &x[ch * ih * iw..][..ih * iw],
                    &w[ch * kh * kw..][..kh * kw],
                    bias[ch],
                    act,
                    &mut want[ch * oh * ow..][..oh * ow],
                );
            }
            for isa in Isa::all_available() {
                let mut got = vec![f32::NAN; channels * oh * ow];
                depthwise_conv2d_on(isa, &g, channels, &x, &w, Some(&bias), act, &mut got);
                assert_close(&got, &want, 1e-5, &format!("case {case} {g:?} {isa:?}"));
            }
        }
    }
}

/// Max pooling over NCHW planes with the depthwise kernel's interleaved layout
/// (padding is -inf, so it never wins). Any strides and dilations; returns true (the
/// caller's fallback for other geometries is kept for other kernels' sake).
/// NaN inputs follow the vector `max` of the ISA (they may not propagate).
pub fn max_pool2d(g: &ConvGeometry, planes: usize, x: &[f32], y: &mut [f32]) -> bool {
    self::planes::<true>(Isa::current(), g, planes, x, None, Activation::Identity, y);
    true
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use crate::testutil::{assert_close, Rng};

    #[test]
    fn max_pool_matches_direct_loop() {
        let mut rng = Rng(5);
        for case in 0..150 {
            let k = 1 + rng.below(4);
            let s = 1 + rng.below(3);
            let (ih, iw) = (k + rng.below(15), k + rng.below(30));
            let (pt, pl) = (rng.below(k / 2 + 1), rng.below(k / 2 + 1));
            let ceil = case % 2 == 1;
            let span = |i: usize, p: usize| if ceil { (i + 2 * p - k).div_ceil(s) + 1 } else { (i + 2 * p - k) / s + 1 };
            let g = ConvGeometry { ih, iw, kh: k, kw: k, sh: s, sw: s, dh: 1, dw: 1, pt, pl, oh: span(ih, pt), ow: span(iw, pl) };
            let planes = 1 + rng.below(21);
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
