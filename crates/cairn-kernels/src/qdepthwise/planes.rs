//! The portable int8 depthwise path: any geometry, any weight range, any ISA.
//!
//! Each channel is widened once into a plane holding `x - zero_point`, so the zero
//! padding is a true zero and the taps need no bounds checks. The plane and the
//! accumulators are f32 holding exact integers: |x - z| <= 255 and |w| <= 255, so up to
//! 2^24 / 255^2 = 258 taps every product and sum is exact. Longer kernels use i32
//! (`row_taps_long`). For a column stride s > 1 every padded row is stored as its s
//! column phases side by side, so that the inputs one tap reads for consecutive outputs
//! are contiguous. The tap loops run over whole output rows and are compiled per ISA
//! (AVX2 via `#[target_feature]`, simd128 by the build). The fast paths (`tuples`) take
//! the common cases; this one takes the rest (dilated columns, column strides above 2,
//! weights outside [-128, 127]) and is their reference for the epilogue.

use crate::depthwise::ConvGeometry;
use crate::parallel::for_each_task;
use crate::qgemm::driver::{store_row, RawOut, Requant};
use crate::qgemm::{QEpilogue, QOut, Q8};
use crate::simd::{F32Simd, Scalar4};

/// Channels per task when spreading over threads.
const CHANNELS_PER_TASK: usize = 8;

/// The portable path (any geometry and weight range): see the module docs. The caller
/// checked the buffers; `isa` picks the vector code of the tap loops.
#[cfg_attr(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))), allow(unused_variables))]
pub(super) fn conv(isa: crate::Isa, g: &ConvGeometry, channels: usize, x: Q8, x_zero: i32, w: &[i16], epi: &QEpilogue, y: &mut QOut) {
    let osz = g.oh * g.ow;
    let dst = RawOut::new(y, osz, 1);
    let tasks: Vec<usize> = (0..channels).step_by(CHANNELS_PER_TASK).collect();
    for_each_task(&tasks, |&c0| {
        let chans = c0..(c0 + CHANNELS_PER_TASK).min(channels);
        #[cfg(target_arch = "x86_64")]
        if matches!(isa, crate::Isa::Avx2Fma | crate::Isa::Avx512) {
            // SAFETY: AVX2 and FMA were detected when the ISA was chosen.
            return unsafe { channels_avx2(g, chans, x, x_zero, w, epi, dst) };
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if isa == crate::Isa::WasmSimd128 {
            return channels_body::<crate::simd::wasm::Simd128>(g, chans, x, x_zero, w, epi, dst);
        }
        #[allow(unreachable_code)]
        channels_body::<Scalar4>(g, chans, x, x_zero, w, epi, dst)
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn channels_avx2(g: &ConvGeometry, chans: std::ops::Range<usize>, x: Q8, x_zero: i32, w: &[i16], epi: &QEpilogue, dst: RawOut) {
    channels_body::<crate::simd::avx2::Avx2>(g, chans, x, x_zero, w, epi, dst)
}

/// Computes and stores the output planes of `chans`.
#[inline(always)]
fn channels_body<S: F32Simd>(g: &ConvGeometry, chans: std::ops::Range<usize>, x: Q8, x_zero: i32, w: &[i16], epi: &QEpilogue, dst: RawOut) {
    let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
    let rq = Requant::new(epi, dst);
    let mut plane = Vec::new();
    let mut acc = vec![0f32; g.ow];
    let mut acc_i = Vec::new();
    let mut wts = vec![0f32; ksz];
    let mut starts = Vec::new();
    for ch in chans {
        let layout = fill_plane(g, x, ch * isz, x_zero, &mut plane);
        if starts.is_empty() {
            // Where each tap's input starts in row 0 of the output (the same for every channel).
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let c = kj * g.dw;
                    starts.push(ki * g.dh * layout.row_len + (c % g.sw) * layout.phase_len + c / g.sw);
                }
            }
        }
        let wc = &w[ch * ksz..][..ksz];
        wts.iter_mut().zip(wc).for_each(|(f, &v)| *f = v as f32);
        let bias = epi.acc_bias.map(|_| epi.acc_bias_at(ch));
        for oy in 0..g.oh {
            let at = ch * osz + oy * g.ow;
            // SAFETY (all stores): row `oy` of channel `ch` lies inside y (checked by the
            // caller); tasks write disjoint channels.
            if ksz <= MAX_F32_TAPS {
                row_taps::<S>(&plane, oy * g.sh * layout.row_len, &starts, &wts, &mut acc);
                match bias {
                    // The integer bias joins in i32: f32 holds the taps' sum exactly, not
                    // necessarily the sum with a large bias.
                    Some(b) => {
                        acc_i.clear();
                        acc_i.extend(acc.iter().map(|&v| (v as i32).wrapping_add(b)));
                        unsafe { store_row(dst, &rq, ch, &acc_i, at) };
                    }
                    None => unsafe { store_row(dst, &rq, ch, &acc, at) },
                }
            } else {
                acc_i.resize(g.ow, 0i32);
                row_taps_long(g, &layout, &plane, wc, oy, &mut acc_i);
                let b = bias.unwrap_or(0);
                acc_i.iter_mut().for_each(|v| *v = v.wrapping_add(b));
                unsafe { store_row(dst, &rq, ch, &acc_i, at) };
            }
        }
    }
}

/// Most taps for which f32 accumulation of 8-bit products is exact (2^24 / 255^2).
const MAX_F32_TAPS: usize = 258;

/// Where the padded, phase-split plane keeps things: `row_len` elements per padded
/// row (`sw` phases of `phase_len`).
struct Layout {
    row_len: usize,
    phase_len: usize,
}

#[inline(always)]
fn fill_plane(g: &ConvGeometry, x: Q8, offset: usize, zero: i32, plane: &mut Vec<f32>) -> Layout {
    let pw = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    let ph = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    let phase_len = pw.div_ceil(g.sw);
    let row_len = phase_len * g.sw;
    // LANES of slack: the tap loops read whole vectors past the last output. The padding
    // is zeroed once per call (`plane` starts empty); later channels overwrite only the
    // input positions, which are the same for every channel.
    let len = ph * row_len + LANES;
    if plane.len() != len {
        plane.clear();
        plane.resize(len, 0.0);
    }
    // Input columns inside the padded width: ix = c - pl for c in [pl, pl + iw).
    let c_lo = g.pl;
    let c_hi = (g.pl + g.iw).min(pw);
    for r in 0..ph {
        let iy = r as isize - g.pt as isize;
        if iy < 0 || iy >= g.ih as isize || c_lo >= c_hi {
            continue;
        }
        let src = offset + iy as usize * g.iw;
        let dst = &mut plane[r * row_len..][..row_len];
        match x {
            Q8::U8(v) => scatter(&v[src..src + (c_hi - c_lo)], dst, c_lo, g.sw, phase_len, zero),
            Q8::I8(v) => scatter(&v[src..src + (c_hi - c_lo)], dst, c_lo, g.sw, phase_len, zero),
        }
    }
    Layout { row_len, phase_len }
}

#[inline(always)]
fn scatter<T: Copy + Into<i32>>(src: &[T], dst: &mut [f32], c0: usize, sw: usize, phase_len: usize, zero: i32) {
    if sw == 1 {
        for (d, &s) in dst[c0..c0 + src.len()].iter_mut().zip(src) {
            *d = (s.into() - zero) as f32;
        }
    } else if sw == 2 {
        // Deinterleave pairs into the even and odd phases.
        let (even, odd) = dst.split_at_mut(phase_len);
        let (mut src, mut c) = (src, c0);
        if c % 2 == 1 && !src.is_empty() {
            odd[c / 2] = (src[0].into() - zero) as f32;
            src = &src[1..];
            c += 1;
        }
        let k0 = c / 2;
        let pairs = src.chunks_exact(2);
        let rest = pairs.remainder();
        for ((e, o), p) in even[k0..].iter_mut().zip(odd[k0..].iter_mut()).zip(pairs) {
            *e = (p[0].into() - zero) as f32;
            *o = (p[1].into() - zero) as f32;
        }
        if let [last] = rest {
            even[k0 + src.len() / 2] = ((*last).into() - zero) as f32;
        }
    } else {
        for (i, &s) in src.iter().enumerate() {
            let c = c0 + i;
            dst[(c % sw) * phase_len + c / sw] = (s.into() - zero) as f32;
        }
    }
}

/// Outputs computed together, held in registers across all taps (two AVX2 vectors).
const LANES: usize = 16;

/// One output row: `acc[ox] = sum over taps of w[tap] * plane[row0 + starts[tap] + ox]`,
/// two vectors of outputs at a time, kept in registers across all taps.
#[inline(always)]
fn row_taps<S: F32Simd>(plane: &[f32], row0: usize, starts: &[usize], wts: &[f32], acc: &mut [f32]) {
    let ow = acc.len();
    let step = 2 * S::LANES;
    debug_assert!(step <= LANES);
    let last = row0 + starts.iter().copied().max().unwrap_or(0) + ow.div_ceil(step) * step;
    assert!(last <= plane.len(), "qdepthwise: plane too small");
    let mut x0 = 0;
    while x0 < ow {
        // SAFETY: every load reads below `last` <= plane.len() (asserted); the ISA of `S`
        // is available (chosen by the caller); the tail store goes through a buffer.
        unsafe {
            let (mut a0, mut a1) = (S::splat(0.0), S::splat(0.0));
            for (&st, &wt) in starts.iter().zip(wts) {
                let p = plane.as_ptr().add(row0 + st + x0);
                let wv = S::splat(wt);
                a0 = S::mul_add(wv, S::load(p), a0);
                a1 = S::mul_add(wv, S::load(p.add(S::LANES)), a1);
            }
            if x0 + step <= ow {
                S::store(acc.as_mut_ptr().add(x0), a0);
                S::store(acc.as_mut_ptr().add(x0 + S::LANES), a1);
            } else {
                let mut tail = [0f32; LANES];
                S::store(tail.as_mut_ptr(), a0);
                S::store(tail.as_mut_ptr().add(S::LANES), a1);
                acc[x0..].copy_from_slice(&tail[..ow - x0]);
            }
        }
        x0 += step;
    }
}

/// Kernels of more than `MAX_F32_TAPS` taps: i32, one pass over the row per tap.
fn row_taps_long(g: &ConvGeometry, l: &Layout, plane: &[f32], w: &[i16], oy: usize, acc: &mut [i32]) {
    let ow = acc.len();
    acc.fill(0);
    for ki in 0..g.kh {
        let row = &plane[(oy * g.sh + ki * g.dh) * l.row_len..];
        for kj in 0..g.kw {
            let wt = w[ki * g.kw + kj] as i32;
            let c = kj * g.dw;
            let start = (c % g.sw) * l.phase_len + c / g.sw;
            for (a, &v) in acc.iter_mut().zip(&row[start..start + ow]) {
                *a += wt * v as i32;
            }
        }
    }
}
