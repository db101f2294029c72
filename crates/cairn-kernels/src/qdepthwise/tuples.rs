//! The fast int8 depthwise path, one channel plane at a time, generic over the ISA's
//! [`Taps`] (see the module docs of `qdepthwise` for the zero-point folding).
//!
//! Each channel is copied into a padded 8-bit plane (`x` as is, or `x ^ 0x80` for i8
//! input so that every ISA multiplies unsigned bytes; the padding is the zero point).
//! A lane of an accumulator multiplies `T` consecutive bytes of a plane row by `T`
//! consecutive taps of a filter row (the last tuple of a row padded with zero taps) and
//! adds the products: for column stride 1, consecutive lanes then start `T` bytes apart
//! and so compute every `T`-th output, and `T` accumulators at byte offsets 0..T
//! together cover `T * L` consecutive outputs (interleaved); for stride 2 a lane's
//! outputs are `T / 2` apart. The store puts the lanes back in order (a few shuffles
//! per `T * L` outputs), so no layout change of the input is needed: only a copy.
//!
//! With stride 1 both ways a channel is computed as one long row over the padded plane
//! (output `(oy, ox)` at `oy * width + ox`, the `kw - 1` outputs between rows thrown
//! away), so 7- and 14-wide planes fill the 64 outputs of an AVX-512 step nearly as well
//! as 112-wide ones. Strided convolutions go row by row.

use super::filters::QDwFilters;
use crate::depthwise::ConvGeometry;
use crate::parallel::{for_each_task, SendPtr};
use crate::qgemm::driver::{store_row, RawOut, Requant};
use crate::qgemm::{rule, QEpilogue, QOut, Q8};
use std::cell::RefCell;

/// Fewest channels per task when spreading over threads (a task sets up its plane).
const CHANNELS_PER_TASK: usize = 8;

/// Most weight tuples per filter the kernels hold in registers.
const MAX_TUPLES: usize = 64;

/// The register-level operations of one ISA.
pub(super) trait Taps: Copy {
    /// i32 lanes per accumulator.
    const L: usize;
    /// Steps computed before one store (1 or 2: wider narrowing stores), where the
    /// weights leave registers for it (not with the 2 x 6 pairs of the shifted layout).
    const STEPS: usize = 1;
    /// Bytes (taps) each lane multiplies and adds per step: 2 (i16 pairs) or 4 (u8 x i8 quads).
    const T: usize;
    /// i32 accumulators.
    type A: Copy;
    /// One weight tuple in every lane.
    type W: Copy;
    /// `T * L` input bytes as the multiply takes them.
    type X: Copy;
    /// The epilogue's constants in registers.
    type Q: Copy;
    /// `bits` (a weight tuple of [`QDwFilters`]) in every lane.
    unsafe fn splat_w(bits: i32) -> Self::W;
    unsafe fn splat(v: i32) -> Self::A;
    /// The `T * L` bytes at `p`.
    unsafe fn load(p: *const u8) -> Self::X;
    /// `acc + dot(x, w)` per lane of `T` bytes.
    unsafe fn madd(acc: Self::A, x: Self::X, w: Self::W) -> Self::A;
    unsafe fn q_consts(c: &QConsts) -> Self::Q;
    /// Requantizes `NV` accumulators and stores their `NV * L` bytes in output order:
    /// lane `i` of `acc[v]` is output `v + NV * i` when `interleaved`, else `v * L + i`.
    /// With `steps` steps at once (`acc[step]`, 1 or `STEPS`), `steps * NV * L` bytes.
    unsafe fn store_q8<const NV: usize>(acc: &[[Self::A; NV]; 2], steps: usize, interleaved: bool, q: &Self::Q, out: *mut u8);
    /// Stores the `L` lanes in order.
    unsafe fn store_i32(a: Self::A, out: *mut i32);
    /// Whether [`Taps::compress`] and [`Taps::expand`] work on this CPU.
    fn has_masked_bytes() -> bool {
        false
    }
    /// For each 64-byte chunk `c` of `src`, appends its bytes selected by `masks[c]` to
    /// `dst`, in order (the valid outputs of a channel's stream).
    unsafe fn compress(_src: *const u8, _masks: &[u64], _dst: *mut u8) {
        unreachable!("no masked byte moves on this ISA")
    }
    /// For each 64-byte chunk `c` of `dst`, places the next bytes of `src` at the bits of
    /// `masks[c]` and `fill` elsewhere (a channel's input into its padded plane).
    unsafe fn expand(_src: *const u8, _masks: &[u64], _fill: u8, _dst: *mut u8) {
        unreachable!("no masked byte moves on this ISA")
    }
}

/// Per channel: `q = round_half_even(clamp(acc * si + bi, qlo, qhi)) + zero`, the rule of
/// `qgemm::rule` (as `qgemm`'s epilogue), so both paths give the same bits; the integer
/// bias is in the accumulators' start value.
#[derive(Clone, Copy, Debug)]
pub(super) struct QConsts {
    pub si: f32,
    pub bi: f32,
    /// The quantized bounds minus the zero point.
    pub qlo: f32,
    pub qhi: f32,
    /// `rule::magic_minus_zero(zero)`: rounding by `bits(f + MAGIC) - zero_bits`.
    pub zero_bits: i32,
    pub signed: bool,
    /// False when the clamp is the saturation of the narrowing to 8 bits and the
    /// channel's values are small enough (|v| < 2^21) for every rounding trick.
    pub clamp: bool,
}

/// Whether the fast path computes this convolution: tuples need adjacent taps
/// (no column dilation), strides 1 or 2, weights that fit a signed byte, and a filter
/// row short enough for the registers.
pub(super) fn applies(g: &ConvGeometry, x: Q8, x_zero: i32, f: &QDwFilters) -> bool {
    let zero_fits = match x {
        Q8::U8(_) => (0..=255).contains(&x_zero),
        Q8::I8(_) => (-128..=127).contains(&x_zero),
    };
    zero_fits && g.dw == 1 && (g.sw == 1 || g.sw == 2) && g.kh * (g.kw / 2 + 1) <= MAX_TUPLES && f.fit_bytes()
}

/// Everything a task needs: geometry, input, weights, and where and how to store.
pub(super) struct Job<'a> {
    g: ConvGeometry,
    x: Q8<'a>,
    /// The zero point of the bytes in the plane (`x_zero + 128` for i8 input).
    zu: u8,
    f: &'a QDwFilters,
    epi: &'a QEpilogue<'a>,
    /// Output bytes, when the epilogue requantizes in registers: (base, signed, qlo, qhi),
    /// the bounds minus the zero point as `Requant` has them.
    fast: Option<(SendPtr<u8>, bool, f32, f32)>,
    dst: RawOut,
    rq: Requant<'a>,
}

impl<'a> Job<'a> {
    pub(super) fn new(g: &ConvGeometry, x: Q8<'a>, x_zero: i32, f: &'a QDwFilters, epi: &'a QEpilogue<'a>, y: &mut QOut) -> Job<'a> {
        let zu = match x {
            Q8::U8(_) => x_zero,
            Q8::I8(_) => x_zero + 128,
        };
        let osz = g.oh * g.ow;
        let dst = RawOut::new(y, osz, 1);
        let rq = Requant::new(epi, dst);
        // Clamping activations: the bounds of the quantized domain (`Requant`'s).
        let fast = match (y, rq.fast) {
            (QOut::U8(v), Some((lo, hi))) => Some((SendPtr(v.as_mut_ptr()), false, lo, hi)),
            (QOut::I8(v), Some((lo, hi))) => Some((SendPtr(v.as_mut_ptr() as *mut u8), true, lo, hi)),
            _ => None,
        };
        Job { g: *g, x, zu: zu as u8, f, epi, fast, dst, rq }
    }

    /// The epilogue of channel `ch` with filter sums `sum` and `sum_abs`, when it
    /// requantizes in registers.
    #[inline(always)]
    fn consts(&self, ch: usize, sum: i32, sum_abs: i32) -> Option<QConsts> {
        let (_, signed, qlo, qhi) = self.fast?;
        let (si, bi) = self.rq.consts(ch);
        let zero = self.epi.out_zero;
        let limits = if signed { (-128.0, 127.0) } else { (0.0, 255.0) };
        // |acc| <= sum |w| * 255 + |zu * sum w| + |bias|; in f64, with room for the f32 roundings.
        let acc = sum_abs as f64 * 255.0 + (self.zu as f64 * sum as f64).abs() + (self.epi.acc_bias_at(ch) as f64).abs();
        let bound = acc * (si as f64).abs() + (bi as f64).abs();
        // Written negated so that a NaN bound (never expected) keeps the clamp.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        let clamp = (qlo + zero as f32, qhi + zero as f32) != limits || !(bound < (1 << 21) as f64);
        Some(QConsts { si, bi, qlo, qhi, zero_bits: rule::magic_minus_zero(zero), signed, clamp })
    }
}

/// Buffers of one task (per thread, reused across calls).
#[derive(Default)]
pub(super) struct Scratch {
    plane: Vec<u8>,
    out8: Vec<u8>,
    /// Per 64-byte chunk: the output positions of the stream, the input positions of the
    /// plane (empty unless the ISA moves bytes under masks).
    out_masks: Vec<u64>,
    in_masks: Vec<u64>,
    out32: Vec<i32>,
}

/// One task's channels, compiled for an ISA.
pub(super) type Channels = unsafe fn(&Job, std::ops::Range<usize>, &mut Scratch);

/// Spreads the channels over tasks; `channels_fn` is the ISA's [`channels`].
pub(super) fn run(job: &Job, channels: usize, channels_fn: Channels) {
    let per = CHANNELS_PER_TASK.max(channels.div_ceil(4 * crate::parallel::threads()));
    let tasks: Vec<usize> = (0..channels).step_by(per).collect();
    for_each_task(&tasks, |&c0| {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = RefCell::default();
        }
        let mut s = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        // SAFETY: the caller checked the buffers against `channels`, and chose an ISA
        // this process has; tasks write disjoint channels.
        unsafe { channels_fn(job, c0..(c0 + per).min(channels), &mut s) };
        SCRATCH.with(|t| *t.borrow_mut() = s);
    });
}

/// The padded plane's layout: rows split by their phase modulo the row stride, so that
/// output `(oy, ox)` is position `p = oy * step + ox` of one stream per channel and tap
/// `(ki, kj)` reads byte `tap_off[ki] + sw * p + kj`.
struct Plan {
    /// Bytes per padded row (a multiple of `sw`).
    width: usize,
    /// Stream positions per output row (`width / sw`; the last `step - ow` are thrown away).
    step: usize,
    /// Padded rows, and the bytes of each row phase.
    rows: usize,
    phase_len: usize,
    /// Where filter row `ki` starts, relative to output row 0.
    tap_off: [usize; MAX_TUPLES],
    /// Accumulators per step, and whether their lanes interleave.
    nv: usize,
    interleaved: bool,
    /// Pairs at stride 1: the accumulators read the same bytes, with the filter row
    /// shifted by one tap for the odd outputs (`(0, w0), (w1, w2)` besides
    /// `(w0, w1), (w2, 0)`), so each load feeds both.
    shifted: bool,
    /// Weight tuples per filter row.
    nt: usize,
    /// Stream positions computed (whole steps), and bytes of plane read (slack included).
    n: usize,
    len: usize,
}

impl Plan {
    fn new<K: Taps>(g: &ConvGeometry) -> Plan {
        let interleaved = K::T / g.sw > 1;
        let shifted = K::T == 2 && g.sw == 1;
        let nv = if interleaved { K::T / g.sw } else { 2 };
        let nt = if shifted { g.kw / 2 + 1 } else { g.kw.div_ceil(K::T) };
        let width = ((g.ow - 1) * g.sw + g.kw).next_multiple_of(g.sw);
        let rows = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
        let phase_len = rows.div_ceil(g.sh) * width;
        let mut tap_off = [0; MAX_TUPLES];
        for (ki, t) in tap_off.iter_mut().enumerate().take(g.kh) {
            *t = (ki * g.dh % g.sh) * phase_len + ki * g.dh / g.sh * width;
        }
        let step = width / g.sw;
        let n = ((g.oh - 1) * step + g.ow).next_multiple_of(K::STEPS * nv * K::L);
        let reach = tap_off[..g.kh].iter().max().copied().unwrap_or(0) + g.sw * n + K::T * nt;
        Plan { width, step, rows, phase_len, tap_off, nv, interleaved, shifted, nt, n, len: reach.max(g.sh * phase_len) }
    }
}

/// Computes and stores channels `chans` (the body of every ISA's task function).
///
/// # Safety
/// The ISA of `K` is available; the job's buffers hold every channel of `chans`.
#[inline(always)]
pub(super) unsafe fn channels<K: Taps>(job: &Job, chans: std::ops::Range<usize>, s: &mut Scratch) {
    let g = &job.g;
    let p = Plan::new::<K>(g);
    // The padding is the zero point; channels overwrite only the input positions.
    s.plane.clear();
    // Where the ISA moves bytes under masks (AVX-512 VBMI2): which stream positions are
    // outputs, and (stride 1, no cropping) which plane positions are inputs.
    // Only for rows shorter than a chunk (7 to 28 wide), where row copies are the cost.
    let masked = K::has_masked_bytes() && job.fast.is_some() && p.width < 64;
    s.out_masks.clear();
    s.in_masks.clear();
    if masked {
        // Stream position q = row * step + col is an output when col < ow.
        bit_masks(p.n, p.step, (0, g.oh), (0, g.ow), &mut s.out_masks);
        if g.sh == 1 && g.pl + g.iw <= p.width && matches!(job.x, Q8::U8(_)) {
            // Plane position q = row * width + col holds input when both are inside.
            bit_masks(p.rows * p.width, p.width, (g.pt, (g.pt + g.ih).min(p.rows)), (g.pl, g.pl + g.iw), &mut s.in_masks);
        }
    }
    s.plane.resize(p.len.max(64 * s.in_masks.len()), job.zu);
    // 64 bytes of slack: the masked moves read whole chunks.
    s.out8.resize(p.n + 64, 0);
    if job.fast.is_none() {
        s.out32.resize(p.n, 0);
    }
    match (K::T, p.nv, g.kh, p.nt) {
        (2, 2, 3, 2) => channels_k::<K, 2, 3, 2, 12>(job, &p, chans, s),
        (2, 2, 5, 3) => channels_k::<K, 2, 5, 3, 30>(job, &p, chans, s),
        (4, 4, 3, 1) => channels_k::<K, 4, 3, 1, 3>(job, &p, chans, s),
        (4, 2, 3, 1) => channels_k::<K, 2, 3, 1, 3>(job, &p, chans, s),
        (4, 4, 5, 2) => channels_k::<K, 4, 5, 2, 10>(job, &p, chans, s),
        (4, 2, 5, 2) => channels_k::<K, 2, 5, 2, 10>(job, &p, chans, s),
        (_, 2, _, _) => channels_k::<K, 2, 0, 0, { 2 * MAX_TUPLES }>(job, &p, chans, s),
        _ => channels_k::<K, 4, 0, 0, MAX_TUPLES>(job, &p, chans, s),
    }
}

/// [`channels`] for `NV` accumulators per step and a `KH x NT`-tuple filter (`KH = 0`:
/// any size, read from the plan), `NW` weight vectors at most. Constant sizes let the
/// tap loops unroll and keep the weights in registers.
#[inline(always)]
unsafe fn channels_k<K: Taps, const NV: usize, const KH: usize, const NT: usize, const NW: usize>(
    job: &Job,
    p: &Plan,
    chans: std::ops::Range<usize>,
    s: &mut Scratch,
) {
    let g = &job.g;
    let (kh, nt) = if KH == 0 { (g.kh, p.nt) } else { (KH, NT) };
    // Weight vectors: one filter for all accumulators, or one per accumulator (shifted).
    let phases = if p.shifted { NV } else { 1 };
    let nw = phases * kh * nt;
    assert!(kh == g.kh && nt == p.nt && NV == p.nv && nw <= NW);
    let (isz, osz) = (g.ih * g.iw, g.oh * g.ow);
    // The weight tuples prepared for this layout (see `QDwFilters`), `nw` per channel.
    let bits = match (K::T, p.shifted) {
        (4, _) => &job.f.quads,
        (_, true) => &job.f.shifted,
        _ => &job.f.pairs,
    };
    for ch in chans {
        match job.x {
            Q8::U8(v) if !s.in_masks.is_empty() => K::expand(v[ch * isz..][..isz].as_ptr(), &s.in_masks, job.zu, s.plane.as_mut_ptr()),
            _ => fill_plane(g, p, job.x, ch * isz, &mut s.plane),
        }
        let mut wv = [K::splat_w(0); NW];
        let b = &bits[ch * nw..][..nw];
        // A loop of constant length (unrolled: the weights stay in registers).
        for (i, w) in wv.iter_mut().enumerate() {
            if i < nw {
                *w = K::splat_w(b[i]);
            }
        }
        let [sum, sum_abs] = job.f.sums[ch];
        // The input zero point's correction and the integer bias (as `qgemm`'s `init`).
        let init = K::splat((job.zu as i32).wrapping_mul(sum).wrapping_neg().wrapping_add(job.epi.acc_bias_at(ch)));
        let q = job.consts(ch, sum, sum_abs).map(|c| K::q_consts(&c));
        let (out8, out32) = (s.out8.as_mut_ptr(), s.out32.as_mut_ptr());
        compute::<K, NV>(g, p, s.plane.as_ptr(), &wv[..nw], kh, nt, init, &q, out8, out32);
        if let (Some((y, ..)), false) = (job.fast, s.out_masks.is_empty()) {
            K::compress(out8, &s.out_masks, y.get().add(ch * osz));
            continue;
        }
        for oy in 0..g.oh {
            let (from, to) = (oy * p.step, ch * osz + oy * g.ow);
            match job.fast {
                Some((y, ..)) => {
                    // Whole 16-byte chunks where what they write past the row stays in
                    // this channel's later rows (written afterwards) and what they read
                    // stays in `out8`; exact copies elsewhere.
                    let whole = g.ow.next_multiple_of(16);
                    if from + whole <= p.n && oy * g.ow + whole <= osz {
                        for c in (0..whole).step_by(16) {
                            (y.get().add(to + c) as *mut u128).write_unaligned((out8.add(from + c) as *const u128).read_unaligned());
                        }
                    } else {
                        copy_bytes(out8.add(from), y.get().add(to), g.ow)
                    }
                }
                None => store_row(job.dst, &job.rq, ch, std::slice::from_raw_parts(out32.add(from), g.ow), to),
            }
        }
    }
}

/// The whole stream of one channel: positions `0..p.n`, stored to `out8` (requantized
/// with `q`) or `out32`. A function, not a closure, so that it is compiled with the
/// caller's target features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn compute<K: Taps, const NV: usize>(
    g: &ConvGeometry,
    p: &Plan,
    plane: *const u8,
    wv: &[K::W],
    kh: usize,
    nt: usize,
    init: K::A,
    q: &Option<K::Q>,
    out8: *mut u8,
    out32: *mut i32,
) {
    let kt = kh * nt;
    // Locals, not reads through `p` (the stores below could alias it for all LLVM knows,
    // and V8 pays for every reload).
    let (n, shifted, interleaved, sw) = (p.n, p.shifted, p.interleaved, g.sw);
    let tap_off = p.tap_off;
    let steps = if shifted { 1 } else { K::STEPS };
    let mut o = 0;
    while o < n {
        let mut accs = [[init; NV]; 2];
        for (st, acc) in accs.iter_mut().enumerate().take(steps) {
            let o = o + st * NV * K::L;
            if shifted {
                let at = plane.add(o);
                for ki in 0..kh {
                    for j in 0..nt {
                        let x = K::load(at.add(tap_off[ki] + K::T * j));
                        for v in 0..NV {
                            acc[v] = K::madd(acc[v], x, wv[v * kt + ki * nt + j]);
                        }
                    }
                }
            } else {
                let mut at = [plane; NV];
                for (v, a) in at.iter_mut().enumerate() {
                    *a = plane.add(sw * (o + if interleaved { v } else { v * K::L }));
                }
                for ki in 0..kh {
                    for j in 0..nt {
                        let w = wv[ki * nt + j];
                        for v in 0..NV {
                            acc[v] = K::madd(acc[v], K::load(at[v].add(tap_off[ki] + K::T * j)), w);
                        }
                    }
                }
            }
        }
        match q {
            Some(q) => K::store_q8::<NV>(&accs, steps, interleaved, q, out8.add(o)),
            None => {
                for (st, acc) in accs.iter().enumerate().take(steps) {
                    store_lanes::<K, NV>(acc, interleaved, out32.add(o + st * NV * K::L));
                }
            }
        }
        o += steps * NV * K::L;
    }
}

/// Appends one bit per position `q < len` (64 per word), set where `q = row * step + col`
/// has `row` in `rows` and `col` in `cols` (half-open ranges).
fn bit_masks(len: usize, step: usize, rows: (usize, usize), cols: (usize, usize), out: &mut Vec<u64>) {
    let (mut row, mut col) = (0, 0);
    for c in 0..len.div_ceil(64) {
        let mut m = 0u64;
        for i in 0..64.min(len - 64 * c) {
            if row >= rows.0 && row < rows.1 && col >= cols.0 && col < cols.1 {
                m |= 1 << i;
            }
            col += 1;
            if col == step {
                (row, col) = (row + 1, 0);
            }
        }
        out.push(m);
    }
}

/// i32 accumulators in output order (for epilogues other than 8-bit clamps).
#[inline(always)]
unsafe fn store_lanes<K: Taps, const NV: usize>(acc: &[K::A; NV], interleaved: bool, out: *mut i32) {
    let mut lanes = [0i32; 64];
    for (v, a) in acc.iter().enumerate() {
        K::store_i32(*a, lanes.as_mut_ptr().add(v * K::L));
    }
    for v in 0..NV {
        for i in 0..K::L {
            let o = if interleaved { v + NV * i } else { v * K::L + i };
            *out.add(o) = lanes[v * K::L + i];
        }
    }
}

/// Copies channel plane `x[offset..]` into the padded plane (i8 as `x ^ 0x80`).
#[inline(always)]
fn fill_plane(g: &ConvGeometry, p: &Plan, x: Q8, offset: usize, plane: &mut [u8]) {
    let cols = g.iw.min(p.width.saturating_sub(g.pl));
    // Padded row r = pt + iy lives in phase r % sh, row r / sh of it (counted, not
    // divided: a division per row cost as much as the taps of a 7x7 plane in V8).
    let (mut phase, mut m) = (g.pt % g.sh, g.pt / g.sh);
    for iy in 0..g.ih.min(p.rows.saturating_sub(g.pt)) {
        let dst = &mut plane[phase * p.phase_len + m * p.width + g.pl..][..cols];
        phase += 1;
        if phase == g.sh {
            (phase, m) = (0, m + 1);
        }
        let src = offset + iy * g.iw;
        match x {
            // SAFETY: both ranges are in bounds (the slices are checked).
            Q8::U8(v) => unsafe { copy_bytes(v[src..src + cols].as_ptr(), dst.as_mut_ptr(), cols) },
            Q8::I8(v) => dst.iter_mut().zip(&v[src..src + cols]).for_each(|(d, &s)| *d = s as u8 ^ 0x80),
        }
    }
}

/// `memcpy` for the short rows of small planes (7 to 114 bytes), inlined: whole words,
/// the last one overlapping, where a call per row cost more than the taps of 7x7 planes.
///
/// # Safety
/// `src` and `dst` hold `n` bytes and do not overlap.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, n: usize) {
    #[inline(always)]
    unsafe fn words<W: Copy>(src: *const u8, dst: *mut u8, n: usize) {
        let k = std::mem::size_of::<W>();
        let mut i = 0;
        while i + k < n {
            (dst.add(i) as *mut W).write_unaligned((src.add(i) as *const W).read_unaligned());
            i += k;
        }
        (dst.add(n - k) as *mut W).write_unaligned((src.add(n - k) as *const W).read_unaligned());
    }
    match n {
        16.. => words::<u128>(src, dst, n),
        8.. => words::<u64>(src, dst, n),
        4.. => words::<u32>(src, dst, n),
        _ => (0..n).for_each(|i| *dst.add(i) = *src.add(i)),
    }
}
