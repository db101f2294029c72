//! The blocked int8 GEMM: B is packed one column block at a time (sized to stay in
//! L2 for the whole K), then every A panel sweeps it tile by tile; column blocks (and,
//! for narrow products, A panel ranges) are the threads' tasks ([`split`]). Each i32 tile
//! goes straight through the epilogue.

use super::pack::{pack_b, PackedQA, QRhs};
use super::{quantize, rule, QEpilogue, QOut};
use crate::activation::clip;
use crate::parallel::{for_each_task, threads, SendPtr};
use crate::Activation;
use std::cell::RefCell;

/// Bytes of packed B per column block.
const B_BLOCK_BYTES: usize = 96 * 1024;

#[derive(Clone, Copy)]
enum Kind {
    I32,
    F32,
    U8,
    I8,
}

/// `C = epilogue(A * B)` for `C` of `m x n` with reduction `k` (see the module docs).
/// `out` must hold every element `(m-1) * row_stride + (n-1) * col_stride`.
#[allow(clippy::too_many_arguments)]
pub fn qgemm(m: usize, n: usize, k: usize, a: &PackedQA, b: QRhs, out: QOut, row_stride: usize, col_stride: usize, epi: &QEpilogue) {
    qgemm_on(m, n, k, a, b, out, row_stride, col_stride, epi)
}

/// Same as [`qgemm`]; the kernel is the one `a` was packed for.
#[allow(clippy::too_many_arguments)]
pub fn qgemm_on(m: usize, n: usize, k: usize, a: &PackedQA, b: QRhs, mut out: QOut, row_stride: usize, col_stride: usize, epi: &QEpilogue) {
    assert!(a.m == m && a.k == k, "qgemm: packed A is {}x{}, not {m}x{k}", a.m, a.k);
    assert!(k <= super::MAX_K, "qgemm: k = {k} could overflow i32 accumulators");
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * row_stride + (n - 1) * col_stride < out.len(), "qgemm: output too short");
    if k > 0 {
        assert!((k - 1) * b.k_stride + (n - 1) * b.n_stride < b.data.len(), "qgemm: B too short");
    }
    epi.check(m, "qgemm");
    let dst = RawOut::new(&mut out, row_stride, col_stride);
    let rq = Requant::new(epi, dst).with_rows(m).with_depth(k);
    let (nr, kp) = (a.kernel.nr, a.kp);
    // Where each accumulator row starts: the byte layout's zero-point correction plus the
    // integer bias (i32 lanes wrap, as XNNPACK's; the exact sum is what matters).
    let zb = b.quad_zero();
    let mut init = vec![0i32; m.div_ceil(a.kernel.mr) * a.kernel.mr];
    // (`rowsum` is empty for the pairs layout, whose operands have their zero points subtracted.)
    for (r, i) in init.iter_mut().enumerate().take(m) {
        let s = a.rowsum.get(r).copied().unwrap_or(0);
        *i = s.wrapping_mul(zb).wrapping_neg().wrapping_add(epi.acc_bias_at(r));
    }
    let init = &init[..];
    if n <= GEMV_MAX_N {
        return gemv(m, n, k, a, &b, init, dst, &rq);
    }
    assert!(a.kernel.mr * nr <= MAX_TILE, "qgemm: kernel tile too large");
    let threads = if m * n * k >= PARALLEL_MIN_MACS { threads() } else { 1 };
    let tasks = split(m.div_ceil(a.kernel.mr), n, nr, kp, threads);
    thread_local! {
        static PACKED_B: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
    }
    for_each_task(&tasks, |task| {
        PACKED_B.with(|buf| {
            let mut pb = buf.borrow_mut();
            #[cfg(target_arch = "x86_64")]
            if matches!(crate::Isa::current(), crate::Isa::Avx2Fma | crate::Isa::Avx512) {
                // SAFETY: AVX2 was detected when the ISA was chosen.
                return unsafe { column_block_avx2(m, k, a, &b, init, dst, &rq, task, &mut pb) };
            }
            column_block(m, k, a, &b, init, dst, &rq, task, &mut pb)
        });
    });
}

/// One task of the GEMM: A panels `panels` (of `mr` rows each) over columns `cols`.
#[derive(Clone, Debug, PartialEq)]
struct Task {
    panels: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
}

/// Below this many multiply-adds a GEMM runs on one thread: a fork-join costs a few
/// microseconds, the int8 tile does ~30 MACs per nanosecond (wasm), so 2^19 is ~15 us.
const PARALLEL_MIN_MACS: usize = 1 << 19;

/// Cuts the GEMM (`panels` A panels, `n` columns in tiles of `nr`, `kp` packed words per
/// column) into tasks for `threads` threads. Columns come in blocks of at most
/// `B_BLOCK_BYTES` of packed B (each task packs its own block, so column blocks cost
/// nothing extra); with threads, the work is dealt into at least two parts per thread,
/// which the threads claim as they finish (a thread the OS pauses mid-layer leaves its
/// second part to the others): column tiles evenly into blocks where there are many, else
/// (a 7x7 layer has 7 tiles of 8, which two threads would share 4:3) the A panels, at the
/// price of packing the (small) B block once per part.
fn split(panels: usize, n: usize, nr: usize, kp: usize, threads: usize) -> Vec<Task> {
    let col_tiles = n.div_ceil(nr);
    let tiles_per_block = (B_BLOCK_BYTES / (kp * 4).max(1) / nr).max(1);
    let mut blocks = col_tiles.div_ceil(tiles_per_block);
    let mut row_parts = 1;
    if threads > 1 {
        // Two parts per thread at least; by columns where whole tiles share out within a few
        // percent (eight tiles per thread or more), else by A panels.
        let wanted = 2 * threads;
        if col_tiles >= 8 * threads {
            blocks = blocks.max(wanted).div_ceil(threads) * threads;
        } else {
            row_parts = wanted.min(panels);
        }
    }
    let blocks = blocks.min(col_tiles);
    let cuts = |total: usize, parts: usize, p: usize| total * p / parts;
    let mut tasks = Vec::with_capacity(blocks * row_parts);
    for r in 0..row_parts {
        for c in 0..blocks {
            let cols = (cuts(col_tiles, blocks, c) * nr)..(cuts(col_tiles, blocks, c + 1) * nr).min(n);
            let panels = cuts(panels, row_parts, r)..cuts(panels, row_parts, r + 1);
            if !cols.is_empty() && !panels.is_empty() {
                tasks.push(Task { panels, cols });
            }
        }
    }
    tasks
}

/// Up to this many columns, each column is a matrix-vector product ([`QKernel::run_gemv`]):
/// a tile would compute `nr` columns to keep `n`.
const GEMV_MAX_N: usize = 2;

/// `C = epilogue(A * B)` one column at a time, row panels spread over threads.
#[allow(clippy::too_many_arguments)]
fn gemv(m: usize, n: usize, k: usize, a: &PackedQA, b: &QRhs, init: &[i32], dst: RawOut, rq: &Requant) {
    let (mr, kp) = (a.kernel.mr, a.kp);
    let panels = m.div_ceil(mr);
    let per_task = panels.div_ceil(threads()).max(1);
    let tasks: Vec<usize> = (0..panels).step_by(per_task).collect();
    let mut col = Vec::new();
    for j in 0..n {
        pack_b(b, k, j, 1, 1, a.kernel.layout, &mut col);
        for_each_task(&tasks, |&p0| {
            let mut acc = [0i32; MAX_TILE];
            for p in p0..(p0 + per_task).min(panels) {
                let r0 = p * mr;
                // SAFETY: the panel holds kp*mr words, `col` kp, init and acc at least mr.
                unsafe { (a.kernel.run_gemv)(kp, a.data[p * kp * mr..].as_ptr(), col.as_ptr(), init[r0..].as_ptr(), acc.as_mut_ptr()) };
                for (r, v) in acc[..mr.min(m - r0)].iter().enumerate() {
                    let row = r0 + r;
                    // SAFETY: (row, j) is inside C; each task writes only its own rows.
                    unsafe { store_row(dst, rq, row, std::slice::from_ref(v), row * dst.rs + j * dst.cs) };
                }
            }
        });
    }
}

/// [`column_block`] compiled for AVX2, so that packing and the epilogue vectorize 8-wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn column_block_avx2(
    m: usize,
    k: usize,
    a: &PackedQA,
    b: &QRhs,
    init: &[i32],
    dst: RawOut,
    rq: &Requant,
    task: &Task,
    pb: &mut Vec<i32>,
) {
    column_block(m, k, a, b, init, dst, rq, task, pb)
}

/// Packs the task's columns of B, then sweeps the task's A panels over them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn column_block(m: usize, k: usize, a: &PackedQA, b: &QRhs, init: &[i32], dst: RawOut, rq: &Requant, task: &Task, pb: &mut Vec<i32>) {
    let (mr, nr, kp) = (a.kernel.mr, a.kernel.nr, a.kp);
    let (j0, n_end) = (task.cols.start, task.cols.end);
    let cols = n_end - j0;
    pack_b(b, k, j0, cols, nr, a.kernel.layout, pb);
    let mut tile = [0i32; MAX_TILE];
    // simd128: which inlined sweep (if any) fits the kernel, once per block.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let sweep = crate::wasm32::qgemm::sweep_layout(&a.kernel);
    let panels = a.data.chunks_exact((kp * mr).max(1)).enumerate().take(m.div_ceil(mr));
    for (pi, panel) in panels.skip(task.panels.start).take(task.panels.len()) {
        let r0 = pi * mr;
        let rows = mr.min(m - r0);
        let init = init[r0..].as_ptr();
        #[allow(unused_mut)] // only simd128 builds sweep full tiles first
        let mut first = 0;
        // simd128: the full tiles of the panel in one call with the tile inlined (see `sweep_q8`).
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if let (Some(quads), Some((qlo, qhi)), true, true) = (sweep, rq.fast, rows == mr, !rq.si.is_empty()) {
            first = cols / nr;
            // SAFETY: `pb` holds the block's panels of kp*nr words; as for `run_q8` per tile.
            unsafe {
                crate::wasm32::qgemm::sweep_q8(quads, kp, panel.as_ptr(), pb.as_ptr(), first, init, &rq.q8_tile(dst, r0, j0, qlo, qhi))
            };
        }
        // simd128, a real-valued Cᵀ (dynamically quantized MatMul): the same with the store by columns.
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if let (0, Some(bounds), Some(quads), true) = (first, rq.real_by_columns(dst), sweep, rows == mr) {
            first = cols / nr;
            // (That kernel's mr is 4.)
            let (mut s, mut b) = ([0f32; 4], [0f32; 4]);
            for r in 0..4 {
                (s[r], b[r]) = rq.row(r0 + r);
            }
            let out = (dst.ptr.get() as *mut f32).wrapping_add(r0 + j0 * dst.cs);
            // SAFETY: `pb` holds the block's panels of kp*nr words, `s` and `b` 4 floats; the
            // tiles' columns j0 .. j0 + first * nr and rows r0 .. r0 + mr are inside C.
            unsafe {
                crate::wasm32::qgemm::sweep_real_by_columns(
                    quads,
                    kp,
                    panel.as_ptr(),
                    pb.as_ptr(),
                    first,
                    init,
                    s.as_ptr(),
                    b.as_ptr(),
                    bounds,
                    out,
                    dst.cs,
                )
            };
        }
        for (ti, bpanel) in pb.chunks_exact((kp * nr).max(1)).enumerate().take(cols.div_ceil(nr)).skip(first) {
            let c0 = j0 + ti * nr;
            if let (Some(run_q8), Some((qlo, qhi)), true, true) =
                (a.kernel.run_q8, rq.fast, rows == mr && c0 + nr <= n_end, !rq.si.is_empty())
            {
                // SAFETY: as for `run`, and the tile's rows are `rs` bytes apart in C.
                unsafe { run_q8(kp, panel.as_ptr(), bpanel.as_ptr(), init, &rq.q8_tile(dst, r0, c0, qlo, qhi)) };
                continue;
            }
            // SAFETY: panels hold kp*mr and kp*nr words; the tile has room for mr*nr
            // (checked against MAX_TILE below); the kernel's ISA was detected when chosen.
            unsafe { (a.kernel.run)(kp, panel.as_ptr(), bpanel.as_ptr(), init, tile.as_mut_ptr()) };
            if let Some(bounds) = rq.real_by_columns(dst) {
                // SAFETY: as for `store_row` below, for the tile's rows and columns.
                unsafe { store_real_tile_by_columns(dst, rq, bounds, &tile, nr, r0, rows, c0, nr.min(n_end - c0)) };
                continue;
            }
            for r in 0..rows {
                let row = r0 + r;
                // SAFETY: rows/cols are inside C (checked by the caller), and each task
                // writes only its own columns.
                unsafe { store_row(dst, rq, row, &tile[r * nr..][..nr.min(n_end - c0)], row * dst.rs + c0 * dst.cs) };
            }
        }
    }
}

/// A real-valued tile of C whose rows are adjacent in memory (`dst.rs == 1`): C is the
/// transposed product, as a dynamically quantized MatMul computes `Cᵀ = Wᵀ · Xᵀ` into a
/// row-major output. Written column by column, so that each column's `rows` values are one
/// contiguous run (the row-by-row store wrote one float per cache line of a 1.5-6 KiB stride).
///
/// # Safety
/// Rows `r0 .. r0 + rows` and columns `c0 .. c0 + cols` are inside C and written by no one else.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn store_real_tile_by_columns(
    dst: RawOut,
    rq: &Requant,
    (lo, hi): (f32, f32),
    tile: &[i32],
    nr: usize,
    r0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
) {
    const MAX_MR: usize = MAX_TILE / 8;
    let (mut s, mut b) = ([0f32; MAX_MR], [0f32; MAX_MR]);
    for r in 0..rows {
        (s[r], b[r]) = rq.row(r0 + r);
    }
    let p = dst.ptr.get() as *mut f32;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if rows == 4 && cols == 8 && nr == 8 {
        return crate::wasm32::qgemm::store_real_4x8_by_columns(
            tile.as_ptr(),
            s.as_ptr(),
            b.as_ptr(),
            (lo, hi),
            p.add(r0 + c0 * dst.cs),
            dst.cs,
        );
    }
    for c in 0..cols {
        let out = std::slice::from_raw_parts_mut(p.add(r0 + (c0 + c) * dst.cs), rows);
        for (r, o) in out.iter_mut().enumerate() {
            *o = clip(tile[r * nr + c] as f32 * s[r] + b[r], lo, hi);
        }
    }
}

/// Largest `mr * nr` of any kernel.
const MAX_TILE: usize = 8 * 32;

/// Where [`store_row`] writes: an output buffer of some kind, with a column stride.
#[derive(Clone, Copy)]
pub(crate) struct RawOut {
    ptr: SendPtr<u8>,
    kind: Kind,
    rs: usize,
    cs: usize,
}

impl RawOut {
    /// Row stride `rs` and column stride `cs` in elements.
    pub(crate) fn new(out: &mut QOut, rs: usize, cs: usize) -> RawOut {
        let (ptr, kind) = match out {
            QOut::I32(v) => (v.as_mut_ptr() as *mut u8, Kind::I32),
            QOut::F32(v) => (v.as_mut_ptr() as *mut u8, Kind::F32),
            QOut::U8(v) => (v.as_mut_ptr(), Kind::U8),
            QOut::I8(v) => (v.as_mut_ptr() as *mut u8, Kind::I8),
        };
        RawOut { ptr: SendPtr(ptr), kind, rs, cs }
    }
}

/// The epilogue's constants, computed once per call: the output kind and, for clamping
/// activations, the bounds of [`rule`] (quantized, minus the zero point).
#[derive(Clone)]
pub(crate) struct Requant<'a> {
    epi: &'a QEpilogue<'a>,
    kind: Kind,
    inv: f32,
    /// (qmin - zero, qmax - zero) when the activation is a clamp (or identity) and the
    /// store contiguous.
    pub(crate) fast: Option<(f32, f32)>,
    lo: i32,
    hi: i32,
    /// Per row, for the fused kernels: `rule::row_scale` and `rule::row_bias`.
    si: Vec<f32>,
    bi: Vec<f32>,
    /// Whether the fused kernels must clamp (see [`super::Q8Tile::clamp`]).
    clamp: bool,
}

impl<'a> Requant<'a> {
    pub(crate) fn new(epi: &'a QEpilogue<'a>, dst: RawOut) -> Requant<'a> {
        let (lo, hi) = if let Kind::I8 = dst.kind { (-128, 127) } else { (0, 255) };
        let inv = 1.0 / epi.out_scale;
        let fast = epi
            .activation
            .clamp_bounds()
            .filter(|_| dst.cs == 1)
            .map(|(amin, amax)| rule::shifted_bounds(rule::bounds(amin, amax, epi.out_scale, epi.out_zero, lo, hi), epi.out_zero));
        Requant { epi, kind: dst.kind, inv, fast, lo, hi, si: Vec::new(), bi: Vec::new(), clamp: true }
    }

    /// Prepares the per-row constants of `rows` rows for the fused kernels.
    fn with_rows(mut self, rows: usize) -> Self {
        if self.fast.is_some() && matches!(self.kind, Kind::U8 | Kind::I8) {
            (self.si, self.bi) = (0..rows).map(|r| self.consts(r)).unzip();
        }
        self
    }

    /// Decides [`Requant::clamp`] for a reduction of length `k`: every accumulator is a sum
    /// of `k` products of operands that are at most 255 in magnitude after their zero points,
    /// plus its integer bias.
    fn with_depth(mut self, k: usize) -> Self {
        if let Some((qlo, qhi)) = self.fast {
            let z = self.epi.out_zero as f32;
            let whole_range = qlo + z <= self.lo as f32 && qhi + z >= self.hi as f32;
            let max_acc = k as f32 * 255.0 * 255.0;
            let largest = (0..self.si.len()).fold(0f32, |m, r| {
                let acc = max_acc + self.epi.acc_bias_at(r).unsigned_abs() as f32;
                m.max(self.si[r].abs() * acc + self.bi[r].abs())
            });
            // NaN scales or biases fail the comparison and keep the clamp.
            self.clamp = !(whole_range && largest < 4_000_000.0);
        }
        self
    }

    /// Row `row`'s multiplier and bias in output steps (no zero point), per [`rule`].
    #[inline(always)]
    pub(crate) fn consts(&self, row: usize) -> (f32, f32) {
        if let (Some(&s), Some(&b)) = (self.si.get(row), self.bi.get(row)) {
            return (s, b);
        }
        let (s, b) = self.row(row);
        (rule::row_scale(s, self.epi.out_scale), rule::row_bias(b, self.epi.out_scale))
    }

    /// Where a fused kernel stores the full tile(s) from row `r0`, column `c0` on; the
    /// caller has checked that they lie inside C.
    #[inline(always)]
    fn q8_tile(&self, dst: RawOut, r0: usize, c0: usize, qlo: f32, qhi: f32) -> super::Q8Tile {
        super::Q8Tile {
            si: self.si[r0..].as_ptr(),
            bi: self.bi[r0..].as_ptr(),
            qlo,
            qhi,
            zero_bits: rule::magic_minus_zero(self.epi.out_zero),
            // Only computes the address; writes happen in the kernel, inside C.
            out: dst.ptr.get().wrapping_add(r0 * dst.rs + c0),
            ldc: dst.rs,
            signed: matches!(self.kind, Kind::I8),
            clamp: self.clamp,
        }
    }

    /// The activation's bounds when C is real-valued, stored with its rows adjacent
    /// (`rs == 1`) and the activation a clamp: the case [`store_real_tile_by_columns`] serves.
    #[inline(always)]
    fn real_by_columns(&self, dst: RawOut) -> Option<(f32, f32)> {
        match self.kind {
            Kind::F32 if dst.rs == 1 && dst.cs != 1 => self.epi.activation.clamp_bounds(),
            _ => None,
        }
    }

    /// Scale and real bias of output row `row` (the integer bias is in the accumulator).
    #[inline(always)]
    pub(crate) fn row(&self, row: usize) -> (f32, f32) {
        let e = self.epi;
        (if e.scale.len() == 1 { e.scale[0] } else { e.scale[row] }, e.bias.map_or(0.0, |v| if v.len() == 1 { v[0] } else { v[row] }))
    }
}

/// The epilogue for accumulators of output row `row` (their integer bias included), stored
/// from element index `base` on, `dst.cs` apart.
///
/// # Safety
/// `base + (acc.len() - 1) * dst.cs` is inside the output, and no one else writes there.
#[inline(always)]
pub(crate) unsafe fn store_row<T: Acc>(dst: RawOut, rq: &Requant, row: usize, acc: &[T], base: usize) {
    let (s, b) = rq.row(row);
    match rq.kind {
        Kind::I32 => {
            let p = dst.ptr.get() as *mut i32;
            for (c, &v) in acc.iter().enumerate() {
                *p.add(base + c * dst.cs) = v.to_i32();
            }
        }
        Kind::F32 => {
            let p = dst.ptr.get() as *mut f32;
            let act = rq.epi.activation;
            match (act, rq.fast.is_some() || dst.cs == 1) {
                (Activation::Identity | Activation::Relu | Activation::Clip { .. }, true) => {
                    let (lo, hi) = match act {
                        Activation::Relu => (0.0, f32::INFINITY),
                        Activation::Clip { min, max } => (min, max),
                        _ => (f32::NEG_INFINITY, f32::INFINITY),
                    };
                    for (c, &v) in acc.iter().enumerate() {
                        *p.add(base + c * dst.cs) = clip(v.to_f32() * s + b, lo, hi);
                    }
                }
                _ => {
                    for (c, &v) in acc.iter().enumerate() {
                        *p.add(base + c * dst.cs) = act.apply_one(v.to_f32() * s + b);
                    }
                }
            }
        }
        Kind::U8 | Kind::I8 => {
            let z = rq.epi.out_zero;
            let p = dst.ptr.get();
            if let Some(bounds) = rq.fast {
                // Clamping activations are bounds in the quantized domain.
                let (si, bi) = rq.consts(row);
                let out = std::slice::from_raw_parts_mut(p.add(base), acc.len());
                T::requantize(acc, si, bi, bounds, z, matches!(rq.kind, Kind::I8), out);
            } else {
                let act = rq.epi.activation;
                for (c, &v) in acc.iter().enumerate() {
                    *p.add(base + c * dst.cs) = quantize(act.apply_one(v.to_f32() * s + b), rq.inv, z, rq.lo, rq.hi) as u8;
                }
            }
        }
    }
}

/// An accumulator the epilogue reads: i32 from the GEMM, f32 holding exact integers
/// from the depthwise kernel.
pub(crate) trait Acc: Copy {
    fn to_f32(self) -> f32;
    fn to_i32(self) -> i32;

    /// `out[j] = rule::requantize(acc[j], ..)` as 8-bit (its low byte: the value is within
    /// the type's range after the clamp).
    #[inline(always)]
    fn requantize(acc: &[Self], si: f32, bi: f32, bounds: (f32, f32), zero: i32, _signed: bool, out: &mut [u8]) {
        for (o, &v) in out.iter_mut().zip(acc) {
            *o = rule::requantize(v.to_f32(), si, bi, bounds, zero) as u8;
        }
    }
}

impl Acc for i32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self
    }
}

impl Acc for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }

    /// simd128: four lanes per step, rounding half to even, saturating narrows.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn requantize(acc: &[f32], si: f32, bi: f32, (qlo, qhi): (f32, f32), zero: i32, signed: bool, out: &mut [u8]) {
        use core::arch::wasm32::*;
        let n = acc.len().min(out.len());
        let (s, b, lo, hi) = (f32x4_splat(si), f32x4_splat(bi), f32x4_splat(qlo), f32x4_splat(qhi));
        let zb = i32x4_splat(rule::magic_minus_zero(zero));
        let mut j = 0;
        // SAFETY: loads and stores stay below n (8 at a time, then the scalar tail).
        unsafe {
            while j + 8 <= n {
                // pmin/pmax and the mantissa rounding: see the simd128 GEMM kernel's epilogue.
                let q = |p: *const f32| {
                    crate::wasm32::qgemm::round_plus_zero(
                        f32x4_pmin(f32x4_pmax(f32x4_add(f32x4_mul(v128_load(p as *const v128), s), b), lo), hi),
                        zb,
                    )
                };
                let h = i16x8_narrow_i32x4(q(acc.as_ptr().add(j)), q(acc.as_ptr().add(j + 4)));
                let bytes = if signed { i8x16_narrow_i16x8(h, h) } else { u8x16_narrow_i16x8(h, h) };
                v128_store64_lane::<0>(bytes, out.as_mut_ptr().add(j) as *mut u64);
                j += 8;
            }
        }
        for (o, &v) in out[j..n].iter_mut().zip(&acc[j..n]) {
            *o = rule::requantize(v, si, bi, (qlo, qhi), zero) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{split, Task};

    /// Every (panel, column) is in exactly one task.
    fn covers(tasks: &[Task], panels: usize, n: usize) -> bool {
        let mut seen = vec![0u8; panels * n];
        for t in tasks {
            for p in t.panels.clone() {
                for j in t.cols.clone() {
                    seen[p * n + j] += 1;
                }
            }
        }
        seen.iter().all(|&c| c == 1)
    }

    #[test]
    fn one_thread_takes_column_blocks_sized_for_the_cache() {
        let tasks = split(16, 3136, 8, 36, 1);
        assert!(covers(&tasks, 16, 3136));
        // 96 KiB of packed B per block, 144 bytes per column: at most 672 columns.
        assert!(tasks.iter().all(|t| t.cols.len() <= 672 && t.panels == (0..16)), "{tasks:?}");
        assert_eq!(split(16, 3136, 8, 36, 1).len(), 5);
    }

    #[test]
    fn threads_get_at_least_two_even_column_blocks_each() {
        for n in [196, 784, 3136, 12544] {
            let tasks = split(40, n, 8, 96, 2);
            assert!(covers(&tasks, 40, n), "n = {n}");
            assert!(tasks.len() >= 4 && tasks.len().is_multiple_of(2), "n = {n}: {} tasks", tasks.len());
            let (lo, hi) = tasks.iter().fold((usize::MAX, 0), |(lo, hi), t| (lo.min(t.cols.len()), hi.max(t.cols.len())));
            assert!(hi - lo <= 8, "n = {n}: blocks of {lo}..{hi} columns");
        }
    }

    #[test]
    fn too_few_column_tiles_split_the_panels_too() {
        // A 7x7 layer: 7 column tiles of 8 for 2 threads.
        let tasks = split(80, 49, 8, 240, 2);
        assert!(covers(&tasks, 80, 49));
        assert_eq!(tasks.iter().map(|t| t.panels.clone()).collect::<Vec<_>>(), [0..20, 20..40, 40..60, 60..80]);
        // More threads than panels: one part per panel.
        let tasks = split(1, 8, 8, 8, 4);
        assert!(covers(&tasks, 1, 8));
        assert_eq!(tasks.len(), 1);
    }
}
