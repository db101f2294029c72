//! The blocked int8 GEMM: B is packed one column block at a time (sized to stay in
//! L2 for the whole K), then every A panel sweeps it tile by tile; column blocks
//! are spread over threads. Each i32 tile goes straight through the epilogue.

use super::pack::{pack_b, PackedQA, QRhs};
use super::{quantize, QEpilogue, QOut};
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
    assert!(epi.scale.len() == 1 || epi.scale.len() >= m, "qgemm: scale must be 1 or m values");
    assert!(epi.bias.is_none_or(|v| v.len() == 1 || v.len() >= m), "qgemm: bias must be 1 or m values");
    let dst = RawOut::new(&mut out, row_stride, col_stride);
    let (mr, nr, kp) = (a.kernel.mr, a.kernel.nr, a.kp);
    let per_col = (kp * 4).max(1);
    let mut nc = (B_BLOCK_BYTES / per_col / nr).max(1) * nr;
    let t = threads();
    if t > 1 {
        nc = nc.min(n.div_ceil(t).div_ceil(nr) * nr);
    }
    let blocks: Vec<usize> = (0..n).step_by(nc).collect();
    thread_local! {
        static PACKED_B: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
    }
    for_each_task(&blocks, |&j0| {
        let cols = nc.min(n - j0);
        PACKED_B.with(|buf| {
            let mut pb = buf.borrow_mut();
            pack_b(&b, k, j0, cols, nr, &mut pb);
            let mut tile = vec![0i32; mr * nr];
            for (pi, panel) in a.data.chunks_exact((kp * mr).max(1)).enumerate().take(m.div_ceil(mr)) {
                let r0 = pi * mr;
                let rows = mr.min(m - r0);
                for (ti, bpanel) in pb.chunks_exact((kp * nr).max(1)).enumerate().take(cols.div_ceil(nr)) {
                    let c0 = j0 + ti * nr;
                    // SAFETY: panels hold kp*mr and kp*nr words; the tile has mr*nr; the
                    // kernel's ISA was detected when it was chosen.
                    unsafe { (a.kernel.run)(kp, panel.as_ptr(), bpanel.as_ptr(), tile.as_mut_ptr()) };
                    // SAFETY: rows/cols are inside C (checked above), and each task
                    // writes only its own columns.
                    unsafe { store_tile(dst, epi, &tile, nr, r0, rows, c0, nr.min(n - c0)) };
                }
            }
        });
    });
}

/// Applies the epilogue to the valid `rows x cols` part of a tile and stores it.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn store_tile(dst: RawOut, epi: &QEpilogue, tile: &[i32], nr: usize, r0: usize, rows: usize, c0: usize, cols: usize) {
    for r in 0..rows {
        let row = r0 + r;
        store_row(dst, epi, row, &tile[r * nr..][..cols], row * dst.rs + c0 * dst.cs);
    }
}

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

/// The epilogue for accumulators of output row `row` (its scale, bias), stored from
/// element index `base` on, `dst.cs` apart.
///
/// # Safety
/// `base + (acc.len() - 1) * dst.cs` is inside the output, and no one else writes there.
#[inline]
pub(crate) unsafe fn store_row(dst: RawOut, epi: &QEpilogue, row: usize, acc: &[i32], base: usize) {
    let cols = acc.len();
    if let Kind::I32 = dst.kind {
        let p = dst.ptr.get() as *mut i32;
        for (c, &v) in acc.iter().enumerate() {
            *p.add(base + c * dst.cs) = v;
        }
        return;
    }
    let s = if epi.scale.len() == 1 { epi.scale[0] } else { epi.scale[row] };
    let b = epi.bias.map_or(0.0, |v| if v.len() == 1 { v[0] } else { v[row] });
    let real = |v: i32| epi.activation.apply_one(v as f32 * s + b);
    match dst.kind {
        Kind::F32 => {
            let p = dst.ptr.get() as *mut f32;
            for (c, &v) in acc.iter().enumerate() {
                *p.add(base + c * dst.cs) = real(v);
            }
        }
        Kind::U8 | Kind::I8 => {
            let (lo, hi) = if let Kind::U8 = dst.kind { (0, 255) } else { (-128, 127) };
            let inv = 1.0 / epi.out_scale;
            let z = epi.out_zero;
            let p = dst.ptr.get();
            if let (Activation::Identity | Activation::Relu | Activation::Clip { .. }, 1) = (epi.activation, dst.cs) {
                // Clamping activations are bounds in the quantized domain: one
                // branch-free loop LLVM vectorizes.
                let (alo, ahi) = match epi.activation {
                    Activation::Relu => (0.0, f32::INFINITY),
                    Activation::Clip { min, max } => (min, max),
                    _ => (f32::NEG_INFINITY, f32::INFINITY),
                };
                let qlo = ((alo * inv).max(-1e9) + z as f32).max(lo as f32);
                let qhi = ((ahi * inv).min(1e9) + z as f32).min(hi as f32);
                let (si, bi) = (s * inv, b * inv + z as f32);
                let out = std::slice::from_raw_parts_mut(p.add(base), cols);
                for (o, &v) in out.iter_mut().zip(acc) {
                    let q = super::round_half_even((v as f32 * si + bi).clamp(qlo, qhi));
                    *o = q as i32 as u8;
                }
            } else {
                for (c, &v) in acc.iter().enumerate() {
                    *p.add(base + c * dst.cs) = quantize(real(v), inv, z, lo, hi) as u8;
                }
            }
        }
        Kind::I32 => unreachable!(),
    }
}
