//! Packing into k-group panels. Pairs: one i32 word holds the i16 values (zero point
//! already subtracted) of two consecutive k, low half first, so a 32-bit splat of
//! an A word against a vector of B words is exactly what a dot-i16-pairs
//! instruction multiplies. Quads: one word holds four consecutive-k bytes, s8
//! weights in A and u8 activations in B, what a u8 x s8 dot-of-four multiplies.

use super::{Layout, QKernel, Q8};

#[inline(always)]
pub(crate) fn pair(lo: i32, hi: i32) -> i32 {
    ((lo as u32 & 0xffff) | ((hi as u32) << 16)) as i32
}

/// The prepacked left operand (weights): `m x k`, in panels of the kernel's `mr`
/// rows; rows past `m` and the k tail are zeros.
#[derive(Clone, Debug)]
pub struct PackedQA {
    pub(crate) kernel: QKernel,
    pub(crate) m: usize,
    pub(crate) k: usize,
    /// k-groups (words per row).
    pub(crate) kp: usize,
    pub(crate) data: Vec<i32>,
    /// Quads only: the sum of each row's s8 weights (the zero-point correction).
    pub(crate) rowsum: Vec<i32>,
}

impl PackedQA {
    /// Packs `m x k` values given by `at(row, col)` (already zero-point adjusted,
    /// within i16) for `kernel`, or for its pairs fallback.
    pub fn from_fn(kernel: QKernel, m: usize, k: usize, at: impl Fn(usize, usize) -> i32) -> PackedQA {
        let kernel = kernel.fallback.map_or(kernel, |f| *f);
        let (mr, kp) = (kernel.mr, k.div_ceil(2));
        let panels = m.div_ceil(mr);
        let mut data = vec![0i32; panels * kp * mr];
        for p in 0..panels {
            let panel = &mut data[p * kp * mr..][..kp * mr];
            for r in 0..mr.min(m - p * mr) {
                let row = p * mr + r;
                for q in 0..kp {
                    let lo = at(row, 2 * q);
                    let hi = if 2 * q + 1 < k { at(row, 2 * q + 1) } else { 0 };
                    panel[q * mr + r] = pair(lo, hi);
                }
            }
        }
        PackedQA { kernel, m, k, kp, data, rowsum: Vec::new() }
    }

    /// Packs s8 values `at(row, col)` four k to a word for a byte-layout kernel.
    fn quads(kernel: QKernel, m: usize, k: usize, at: impl Fn(usize, usize) -> i8) -> PackedQA {
        let (mr, kp) = (kernel.mr, k.div_ceil(4));
        let panels = m.div_ceil(mr);
        let mut data = vec![0i32; panels * kp * mr];
        let mut rowsum = vec![0i32; panels * mr];
        for p in 0..panels {
            let panel = &mut data[p * kp * mr..][..kp * mr];
            for r in 0..mr.min(m - p * mr) {
                let row = p * mr + r;
                for q in 0..kp {
                    let mut word = [0i8; 4];
                    for (i, w) in word.iter_mut().enumerate().take(k - 4 * q) {
                        *w = at(row, 4 * q + i);
                    }
                    rowsum[row] += word.iter().map(|&v| v as i32).sum::<i32>();
                    panel[q * mr + r] = i32::from_le_bytes(word.map(|v| v as u8));
                }
            }
        }
        PackedQA { kernel, m, k, kp, data, rowsum }
    }

    /// Packs 8-bit values: element (r, c) at `w[r * row_stride + c * col_stride]`,
    /// with one zero point per row (or one for all rows).
    pub fn new(kernel: QKernel, w: Q8, m: usize, k: usize, row_stride: usize, col_stride: usize, zero: &[i32]) -> PackedQA {
        assert!(zero.len() == 1 || zero.len() == m, "PackedQA: zero points must be 1 or m");
        if m > 0 && k > 0 {
            assert!((m - 1) * row_stride + (k - 1) * col_stride < w.len(), "PackedQA: weights too short");
        }
        let z = |r: usize| if zero.len() == 1 { zero[0] } else { zero[r] };
        if kernel.layout == Layout::Quads {
            // s8 with zero point 0 as it is; u8 with zero point 128 is s8 with its top bit flipped.
            let at = |r: usize, c: usize| match w {
                Q8::I8(v) => v[r * row_stride + c * col_stride],
                Q8::U8(v) => (v[r * row_stride + c * col_stride] ^ 0x80) as i8,
            };
            let symmetric = match w {
                Q8::I8(_) => zero.iter().all(|&z| z == 0),
                Q8::U8(_) => zero.iter().all(|&z| z == 128),
            };
            let bound = kernel.quads_weight_bound;
            let fits = || bound >= 128 || (0..m).all(|r| (0..k).all(|c| (at(r, c) as i32).abs() <= bound));
            if symmetric && fits() {
                return PackedQA::quads(kernel, m, k, at);
            }
        }
        PackedQA::from_fn(kernel, m, k, |r, c| w.at(r * row_stride + c * col_stride) - z(r))
    }

    pub fn rows(&self) -> usize {
        self.m
    }
    pub fn depth(&self) -> usize {
        self.k
    }
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
    pub fn kernel(&self) -> QKernel {
        self.kernel
    }
}

/// The right operand (activations), packed per call: element (kk, j) of the
/// logical `k x n` matrix is `data[kk * k_stride + j * n_stride]`, minus `zero`.
#[derive(Clone, Copy, Debug)]
pub struct QRhs<'a> {
    pub data: Q8<'a>,
    pub zero: i32,
    pub k_stride: usize,
    pub n_stride: usize,
}

impl QRhs<'_> {
    /// The zero point the byte layout subtracts, after i8 data is flipped to u8 (+128).
    pub(crate) fn quad_zero(&self) -> i32 {
        match self.data {
            Q8::U8(_) => self.zero,
            Q8::I8(_) => self.zero + 128,
        }
    }
}

/// Packs columns `j0 .. j0 + cols` of B into panels of `nr` words per k-group.
pub(crate) fn pack_b(b: &QRhs, k: usize, j0: usize, cols: usize, nr: usize, layout: Layout, out: &mut Vec<i32>) {
    let kp = k.div_ceil(layout.group());
    let panels = cols.div_ceil(nr);
    out.clear();
    out.resize(panels * kp * nr, 0);
    match (layout, b.data) {
        (Layout::Pairs, Q8::U8(d)) => pack_b_typed(d, b, k, j0, cols, nr, out),
        (Layout::Pairs, Q8::I8(d)) => pack_b_typed(d, b, k, j0, cols, nr, out),
        (Layout::Quads, Q8::U8(d)) => pack_b_quads(d, 0, b, k, j0, cols, nr, out),
        (Layout::Quads, Q8::I8(d)) => {
            // SAFETY: same size and alignment; the bytes are flipped to u8 while packing.
            let d = unsafe { std::slice::from_raw_parts(d.as_ptr() as *const u8, d.len()) };
            pack_b_quads(d, 0x80, b, k, j0, cols, nr, out)
        }
    }
}

/// Bytes of four consecutive k of B, xor `flip`, into one word per column; the k tail
/// is zero (its weights are zero too).
#[allow(clippy::too_many_arguments)]
fn pack_b_quads(d: &[u8], flip: u8, b: &QRhs, k: usize, j0: usize, cols: usize, nr: usize, out: &mut [i32]) {
    let kp = k.div_ceil(4);
    for (p, panel) in out.chunks_exact_mut(kp * nr).enumerate() {
        let c0 = j0 + p * nr;
        let w = nr.min(j0 + cols - c0);
        // simd128 or x86_64, each column's K contiguous (a dynamically quantized MatMul's
        // activations, B = Xᵀ): whole 16-k steps of 4-column groups here, the rest below.
        #[allow(unused_mut)] // only simd128 and x86_64 builds fill a block here
        let (mut q_done, mut c_done) = (0, 0);
        #[cfg(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")))]
        if b.k_stride == 1 && b.n_stride != 1 {
            (q_done, c_done) = (k / 16 * 4, w / 4 * 4);
            quads_k_contiguous(d, flip, b, k, c0, c_done, nr, panel);
        }
        for q in 0..kp {
            let skip = if q < q_done { c_done } else { 0 };
            if skip == w {
                continue;
            }
            let dst = &mut panel[q * nr..][skip..w];
            let c0 = c0 + skip;
            let base = 4 * q * b.k_stride + c0 * b.n_stride;
            let full = 4 * q + 4 <= k;
            #[cfg(target_arch = "x86_64")]
            if full && b.n_stride == 1 {
                // SAFETY: four rows of `w` bytes from `base` lie inside B (checked by the driver).
                unsafe { interleave4_sse2(d, base, b.k_stride, flip, dst) };
                continue;
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            if full && b.n_stride == 1 {
                // SAFETY: as above.
                unsafe { interleave4_simd128(d, base, b.k_stride, flip, dst) };
                continue;
            }
            if full && b.n_stride == 1 {
                let rows: [&[u8]; 4] = std::array::from_fn(|i| &d[base + i * b.k_stride..][..dst.len()]);
                for (c, o) in dst.iter_mut().enumerate() {
                    *o = i32::from_le_bytes([rows[0][c] ^ flip, rows[1][c] ^ flip, rows[2][c] ^ flip, rows[3][c] ^ flip]);
                }
            } else {
                let n = (k - 4 * q).min(4);
                for (c, o) in dst.iter_mut().enumerate() {
                    let mut word = [0u8; 4];
                    for (i, v) in word.iter_mut().enumerate().take(n) {
                        *v = d[base + i * b.k_stride + c * b.n_stride] ^ flip;
                    }
                    *o = i32::from_le_bytes(word);
                }
            }
        }
    }
}

/// The quad interleave of four contiguous rows, 16 columns per step with SSE2
/// (x86_64 baseline): two byte unpacks, then two 16-bit unpacks.
///
/// # Safety
/// `d[base + i * stride ..][..dst.len()]` is in bounds for i in 0..4.
#[cfg(target_arch = "x86_64")]
unsafe fn interleave4_sse2(d: &[u8], base: usize, stride: usize, flip: u8, dst: &mut [i32]) {
    use std::arch::x86_64::*;
    let w = dst.len();
    debug_assert!(base + 3 * stride + w <= d.len());
    let p = d.as_ptr().add(base);
    let f = _mm_set1_epi8(flip as i8);
    let mut c = 0;
    while c + 16 <= w {
        let r = |i: usize| _mm_xor_si128(_mm_loadu_si128(p.add(i * stride + c) as *const __m128i), f);
        let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
        let (lo01, hi01) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
        let (lo23, hi23) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
        let o = dst.as_mut_ptr().add(c) as *mut __m128i;
        _mm_storeu_si128(o, _mm_unpacklo_epi16(lo01, lo23));
        _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(lo01, lo23));
        _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(hi01, hi23));
        _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(hi01, hi23));
        c += 16;
    }
    for (j, o) in dst.iter_mut().enumerate().skip(c) {
        *o =
            i32::from_le_bytes([*p.add(j) ^ flip, *p.add(stride + j) ^ flip, *p.add(2 * stride + j) ^ flip, *p.add(3 * stride + j) ^ flip]);
    }
}

/// [`interleave4_sse2`] in wasm simd128: the same byte and 16-bit interleaves as shuffles.
///
/// # Safety
/// `d[base + i * stride ..][..dst.len()]` is in bounds for i in 0..4.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn interleave4_simd128(d: &[u8], base: usize, stride: usize, flip: u8, dst: &mut [i32]) {
    use core::arch::wasm32::*;
    let w = dst.len();
    debug_assert!(base + 3 * stride + w <= d.len());
    let p = d.as_ptr().add(base);
    let f = u8x16_splat(flip);
    let mut c = 0;
    while c + 16 <= w {
        let r = |i: usize| v128_xor(v128_load(p.add(i * stride + c) as *const v128), f);
        let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
        let lo01 = u8x16_shuffle::<0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23>(r0, r1);
        let hi01 = u8x16_shuffle::<8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31>(r0, r1);
        let lo23 = u8x16_shuffle::<0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23>(r2, r3);
        let hi23 = u8x16_shuffle::<8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31>(r2, r3);
        let o = dst.as_mut_ptr().add(c) as *mut v128;
        v128_store(o, u16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(lo01, lo23));
        v128_store(o.add(1), u16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(lo01, lo23));
        v128_store(o.add(2), u16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(hi01, hi23));
        v128_store(o.add(3), u16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(hi01, hi23));
        c += 16;
    }
    for (j, o) in dst.iter_mut().enumerate().skip(c) {
        *o =
            i32::from_le_bytes([*p.add(j) ^ flip, *p.add(stride + j) ^ flip, *p.add(2 * stride + j) ^ flip, *p.add(3 * stride + j) ^ flip]);
    }
}

/// The quads of columns `c0 .. c0 + cols` (`cols` a multiple of 4) of a B whose columns
/// each hold K contiguous bytes (`k_stride == 1`), for the K steps `0 .. k / 16 * 16`, into
/// `panel` (`nr` words per k-quad): a column's four consecutive k are already one word, so per
/// four columns and sixteen k, four 16-byte loads and a 4x4 transpose of words make four
/// stores of one k-quad's four columns (simd128, or SSE2 of the x86_64 baseline).
#[cfg(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128")))]
#[allow(clippy::too_many_arguments)]
fn quads_k_contiguous(d: &[u8], flip: u8, b: &QRhs, k: usize, c0: usize, cols: usize, nr: usize, panel: &mut [i32]) {
    // Every store below ends by word (k / 16 * 4 - 1) * nr + cols.
    assert!(cols.is_multiple_of(4) && cols <= nr && k / 16 * 4 * nr <= panel.len(), "qgemm: B panel too small");
    for c in (0..cols).step_by(4) {
        let starts: [usize; 4] = std::array::from_fn(|i| (c0 + c + i) * b.n_stride);
        // Bounds once per column group: each column's k values are read up to k / 16 * 16.
        assert!(starts[3] + k / 16 * 16 <= d.len(), "qgemm: B too short");
        for s in (0..k / 16 * 16).step_by(16) {
            // SAFETY: starts[i] + s + 16 <= starts[3] + k / 16 * 16 <= d.len() (asserted above;
            // starts ascend), and panel[(s / 4 + j) * nr + c ..][..4] is in bounds for j < 4
            // (asserted at the top).
            unsafe { transpose_quads_4x16(d.as_ptr(), starts.map(|v| v + s), flip, panel.as_mut_ptr().add(s / 4 * nr + c), nr) };
        }
    }
}

/// Sixteen bytes from each of four columns (`starts`), xor `flip`, stored as four k-quads of
/// the four columns, `nr` words apart from `out` on.
///
/// # Safety
/// `d + starts[i] ..+16` is readable and `out + j * nr ..+4` writable for i, j < 4.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose_quads_4x16(d: *const u8, starts: [usize; 4], flip: u8, out: *mut i32, nr: usize) {
    use std::arch::x86_64::*;
    let f = _mm_set1_epi8(flip as i8);
    let col = |i: usize| _mm_xor_si128(_mm_loadu_si128(d.add(starts[i]) as *const __m128i), f);
    let (c0, c1, c2, c3) = (col(0), col(1), col(2), col(3));
    let (t0, t1) = (_mm_unpacklo_epi32(c0, c1), _mm_unpacklo_epi32(c2, c3));
    let (t2, t3) = (_mm_unpackhi_epi32(c0, c1), _mm_unpackhi_epi32(c2, c3));
    let rows = [_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1), _mm_unpacklo_epi64(t2, t3), _mm_unpackhi_epi64(t2, t3)];
    for (j, v) in rows.into_iter().enumerate() {
        _mm_storeu_si128(out.add(j * nr) as *mut __m128i, v);
    }
}

/// [`transpose_quads_4x16`] in simd128.
///
/// # Safety
/// As for the x86_64 form.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn transpose_quads_4x16(d: *const u8, starts: [usize; 4], flip: u8, out: *mut i32, nr: usize) {
    use core::arch::wasm32::*;
    let f = u8x16_splat(flip);
    let col = |i: usize| v128_xor(v128_load(d.add(starts[i]) as *const v128), f);
    let rows = crate::wasm32::transpose4([col(0), col(1), col(2), col(3)]);
    for (j, v) in rows.into_iter().enumerate() {
        v128_store(out.add(j * nr) as *mut v128, v);
    }
}

/// An 8-bit element type of B.
trait Byte: Copy + Into<i32> {
    // Only the simd128 packer reads it.
    #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
    const SIGNED: bool;
}
impl Byte for u8 {
    const SIGNED: bool = false;
}
impl Byte for i8 {
    const SIGNED: bool = true;
}

fn pack_b_typed<T: Byte>(d: &[T], b: &QRhs, k: usize, j0: usize, cols: usize, nr: usize, out: &mut [i32]) {
    let kp = k.div_ceil(2);
    let z = b.zero;
    for (p, panel) in out.chunks_exact_mut(kp * nr).enumerate() {
        let c0 = j0 + p * nr;
        let w = nr.min(j0 + cols - c0);
        // simd128, each column's K contiguous (a dynamically quantized MatMul's activations,
        // B = Xᵀ): the block of whole 8-k steps and 4-column groups, the rest below.
        #[allow(unused_mut)] // only simd128 builds fill a block here
        let (mut q_done, mut c_done) = (0, 0);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if b.k_stride == 1 && b.n_stride != 1 {
            (q_done, c_done) = (k / 8 * 4, w / 4 * 4);
            pairs_k_contiguous_simd128(d, b, k, c0, c_done, nr, panel);
        }
        for q in 0..kp {
            if q < q_done && c_done == w {
                continue;
            }
            if q < q_done {
                // (Only the k-contiguous layout gets here: the generic branch below.)
                let r0 = 2 * q;
                for (c, o) in panel[q * nr..][..w].iter_mut().enumerate().skip(c_done) {
                    let i = (c0 + c) * b.n_stride;
                    *o = pair(d[r0 + i].into() - z, d[r0 + 1 + i].into() - z);
                }
                continue;
            }
            let dst = &mut panel[q * nr..][..w];
            let r0 = 2 * q * b.k_stride + c0 * b.n_stride;
            if 2 * q + 1 < k {
                let r1 = r0 + b.k_stride;
                if b.n_stride == 1 {
                    let (s0, s1) = (&d[r0..r0 + w], &d[r1..r1 + w]);
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    let (s0, s1, dst) = {
                        let done = pairs_simd128::<T>(s0, s1, z, dst);
                        (&s0[done..], &s1[done..], &mut dst[done..])
                    };
                    for ((o, &x0), &x1) in dst.iter_mut().zip(s0).zip(s1) {
                        *o = pair(x0.into() - z, x1.into() - z);
                    }
                } else {
                    for (c, o) in dst.iter_mut().enumerate() {
                        let i = c * b.n_stride;
                        *o = pair(d[r0 + i].into() - z, d[r1 + i].into() - z);
                    }
                }
            } else {
                for (c, o) in dst.iter_mut().enumerate() {
                    *o = pair(d[r0 + c * b.n_stride].into() - z, 0);
                }
            }
        }
    }
}

/// The pairs of columns `c0 .. c0 + cols` (`cols` a multiple of 4) of a B whose columns
/// each hold K contiguous values (`k_stride == 1`), for the K steps `0 .. k / 8 * 8`, into
/// `panel` (`nr` words per k-pair): per four columns and eight k, four 8-byte loads widened
/// to i16 minus the zero point (four pair words each), then a 4x4 transpose of words so that
/// each k-pair's four columns are one store (the scalar form gathered every byte `n_stride`
/// apart).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn pairs_k_contiguous_simd128<T: Byte>(d: &[T], b: &QRhs, k: usize, c0: usize, cols: usize, nr: usize, panel: &mut [i32]) {
    use core::arch::wasm32::*;
    // Every store below ends by word (k / 8 * 4 - 1) * nr + cols.
    assert!(cols.is_multiple_of(4) && cols <= nr && k / 8 * 4 * nr <= panel.len(), "qgemm: B panel too small");
    let zv = i16x8_splat(b.zero as i16);
    for c in (0..cols).step_by(4) {
        let starts: [usize; 4] = std::array::from_fn(|i| (c0 + c + i) * b.n_stride);
        // Bounds once per column group: each column's k values are read up to k / 8 * 8.
        assert!(starts[3] + k / 8 * 8 <= d.len(), "qgemm: B too short");
        for s in (0..k / 8 * 8).step_by(8) {
            let col = |i: usize| {
                // SAFETY: starts[i] + s + 8 <= starts[3] + k / 8 * 8 <= d.len() (asserted above; starts ascend).
                let v = unsafe { v128_load64_zero(d.as_ptr().add(starts[i] + s) as *const u64) };
                i16x8_sub(if T::SIGNED { i16x8_extend_low_i8x16(v) } else { u16x8_extend_low_u8x16(v) }, zv)
            };
            let r = [col(0), col(1), col(2), col(3)];
            // Word q of column i becomes lane i of vector q.
            let rows = crate::wasm32::transpose4(r);
            for (j, v) in rows.into_iter().enumerate() {
                let at = (s / 2 + j) * nr + c;
                // SAFETY: panel[at .. at + 4] is in bounds (asserted at the top).
                unsafe { v128_store(panel.as_mut_ptr().add(at) as *mut v128, v) };
            }
        }
    }
}

/// Pairs of two contiguous rows, eight columns per step: widen to i16, subtract the zero
/// point, interleave the rows' lanes. Returns how many columns it packed.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn pairs_simd128<T: Byte>(s0: &[T], s1: &[T], z: i32, dst: &mut [i32]) -> usize {
    use core::arch::wasm32::*;
    let n = dst.len().min(s0.len()).min(s1.len()) / 8 * 8;
    let zv = i16x8_splat(z as i16);
    let widen = |p: *const T| {
        // SAFETY: the caller's loop keeps 8 elements of each row in bounds.
        let v = unsafe { v128_load64_zero(p as *const u64) };
        i16x8_sub(if T::SIGNED { i16x8_extend_low_i8x16(v) } else { u16x8_extend_low_u8x16(v) }, zv)
    };
    let mut c = 0;
    while c < n {
        let (a, b) = (widen(s0[c..].as_ptr()), widen(s1[c..].as_ptr()));
        // SAFETY: dst[c .. c + 8] is in bounds.
        unsafe {
            v128_store(dst.as_mut_ptr().add(c) as *mut v128, i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(a, b));
            v128_store(dst.as_mut_ptr().add(c + 4) as *mut v128, i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(a, b));
        }
        c += 8;
    }
    n
}
