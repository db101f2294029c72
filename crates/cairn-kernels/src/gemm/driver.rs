//! The blocked GEMM loop nest, and how it is split across threads.

use super::pack::{pack_a, pack_b, KC};
use super::{Epilogue, LhsOperand, MicroKernel, RhsOperand, TapsRef, TileEpilogue, Transpose};
use crate::parallel::{for_each_task, SendPtr};
use crate::Isa;
use std::ops::Range;

/// Rows of A packed per block (times `mr`): an `MC x KC` block of A stays in L2.
const MC_PANELS: usize = 16;
/// Columns of B packed per block (times `nr`).
const NC_PANELS: usize = 64;
/// Below this many multiply-adds a GEMM runs on the calling thread: splitting costs more.
const PARALLEL_MIN_MACS: usize = 1 << 18;
/// A taps operand with fewer rows per tap than this is packed panel by panel: read in
/// place, each tap's run would be its own micro-kernel call, and a stem convolution's 3
/// input channels would make that 3 K steps between a load and a store of C.
const TAPS_PACK_BELOW: usize = 32;

/// `C = epilogue(op(A) * op(B) [+ C if accumulate])` for `C: m x n` with row stride `ldc`.
///
/// # Panics
/// If the operands or C are smaller than the shapes say, or a prepacked operand was packed
/// for another shape or ISA (both are programming errors, not input errors: callers check
/// shapes before).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    lhs: LhsOperand,
    rhs: RhsOperand,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: &Epilogue,
) {
    gemm_on(Isa::current(), m, n, k, lhs, rhs, c, ldc, accumulate, epilogue)
}

/// [`gemm`] with an explicit ISA (tests and benchmarks compare ISAs in one process).
#[allow(clippy::too_many_arguments)]
pub fn gemm_on(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    lhs: LhsOperand,
    rhs: RhsOperand,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    epilogue: &Epilogue,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "gemm: C is too small for {m}x{n} with ldc {ldc}");
    assert!(isa.is_available(), "gemm: {isa:?} is not available here");
    check_operands(isa, m, n, k, &lhs, &rhs, epilogue);
    if k == 0 {
        for i in 0..m {
            let row = &mut c[i * ldc..i * ldc + n];
            if !accumulate {
                row.fill(0.0);
            }
            epilogue.apply_row(i, 0, row);
        }
        return;
    }
    let kernel = kernel_for(isa, m, k, &lhs);
    let tasks = split(m, n, k, kernel);
    let c_ptr = SendPtr(c.as_mut_ptr());
    for_each_task(&tasks, |(rows, cols)| {
        // SAFETY: tasks cover disjoint rectangles of C, inside the bounds asserted above.
        unsafe {
            // The simd128 tile is called directly so that it inlines into the loop nest:
            // its tiles are small (4x8), and an indirect call per tile costs V8 more than
            // a short-K tile's arithmetic.
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            if isa == Isa::WasmSimd128 {
                #[cfg(target_feature = "relaxed-simd")]
                if kernel.mr == crate::wasm32::gemm::KERNEL_TALL.mr {
                    let tile =
                        |kc, a, b, ldb, c, ldc, acc, epi: Option<&_>| crate::wasm32::gemm::kernel_mx8::<5>(kc, a, b, ldb, c, ldc, acc, epi);
                    return gemm_block(kernel, tile, rows.clone(), cols.clone(), k, &lhs, &rhs, c_ptr.get(), ldc, accumulate, epilogue);
                }
                let tile =
                    |kc, a, b, ldb, c, ldc, acc, epi: Option<&_>| crate::wasm32::gemm::kernel_mx8::<4>(kc, a, b, ldb, c, ldc, acc, epi);
                return gemm_block(kernel, tile, rows.clone(), cols.clone(), k, &lhs, &rhs, c_ptr.get(), ldc, accumulate, epilogue);
            }
            let tile = |kc, a, b, ldb, c, ldc, acc, epi: Option<&_>| (kernel.run)(kc, a, b, ldb, c, ldc, acc, epi);
            gemm_block(kernel, tile, rows.clone(), cols.clone(), k, &lhs, &rhs, c_ptr.get(), ldc, accumulate, epilogue)
        }
    });
}

/// The micro-kernel for one product: the ISA's, except that the relaxed wasm build runs its
/// 5-row tile where A is packed here (activations, not prepacked weights, whose panels are
/// the 4-row kernel's) and the product is large enough to fill it: the encoder's products
/// (128 tokens x K >= 384) gain ~5% in Chromium, MobileNetV2's convolutions (prepacked, few
/// rows per output channel group) would lose to the partial tiles (docs/adr/0038).
#[allow(unused_variables)]
fn kernel_for(isa: Isa, m: usize, k: usize, lhs: &LhsOperand) -> MicroKernel {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    if isa == Isa::WasmSimd128 && matches!(lhs, LhsOperand::Strided { .. }) && m >= TALL_MIN_ROWS && k >= TALL_MIN_K {
        return crate::wasm32::gemm::KERNEL_TALL;
    }
    isa.gemm_kernel()
}

/// Smallest product the tall wasm tile takes: four full tiles of rows, and a K long enough
/// that its tiles' set-up (accumulators, epilogue) is a small part of their time.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
const TALL_MIN_ROWS: usize = 20;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
const TALL_MIN_K: usize = 64;

fn check_operands(isa: Isa, m: usize, n: usize, k: usize, lhs: &LhsOperand, rhs: &RhsOperand, epi: &Epilogue) {
    match lhs {
        LhsOperand::Strided { mat, .. } => assert!(mat.data.len() >= mat.extent(m, k), "gemm: A is too small for {m}x{k}"),
        LhsOperand::Packed(p) => assert!(p.isa == isa && p.m == m && p.k == k, "gemm: A was packed for {}x{} on {:?}", p.m, p.k, p.isa),
    }
    match rhs {
        RhsOperand::Strided(mat) => assert!(mat.data.len() >= mat.extent(k, n), "gemm: B is too small for {k}x{n}"),
        RhsOperand::Packed(p) => assert!(p.isa == isa && p.k == k && p.n == n, "gemm: B was packed for {}x{} on {:?}", p.k, p.n, p.isa),
        RhsOperand::Taps(t) => {
            assert!(
                t.per_tap > 0 && t.offsets.len() * t.per_tap == k,
                "gemm: {} taps of {} rows do not make K = {k}",
                t.offsets.len(),
                t.per_tap
            );
            let last = t.offsets.iter().max().map_or(0, |o| o + (t.per_tap - 1) * t.ld + n);
            assert!(t.data.len() >= last, "gemm: tap rows run past B");
        }
    }
    match epi.bias {
        super::Bias::PerRow(b) => assert!(b.len() >= m, "gemm: row bias too short"),
        super::Bias::PerCol(b) => assert!(b.len() >= n, "gemm: column bias too short"),
        super::Bias::None => {}
    }
    if let Some((r, ld)) = epi.residual {
        assert!(ld >= n && r.len() >= (m - 1) * ld + n, "gemm: residual too small");
    }
}

/// Cuts C into two rectangles per thread along the dimension with more tiles, on tile
/// boundaries so prepacked panels line up. Threads claim them as they finish, so a thread
/// the OS pauses mid-layer leaves its second rectangle to the others (docs/adr/0019).
fn split(m: usize, n: usize, k: usize, kernel: MicroKernel) -> Vec<(Range<usize>, Range<usize>)> {
    let threads = crate::parallel::threads();
    if threads <= 1 || m * n * k < PARALLEL_MIN_MACS {
        return vec![(0..m, 0..n)];
    }
    let (m_tiles, n_tiles) = (m.div_ceil(kernel.mr), n.div_ceil(kernel.nr));
    let along_n = n_tiles >= m_tiles;
    let tiles = if along_n { n_tiles } else { m_tiles };
    let parts = (2 * threads).min(tiles);
    let (unit, len) = if along_n { (kernel.nr, n) } else { (kernel.mr, m) };
    (0..parts)
        .map(|p| {
            let r = (tiles * p / parts * unit).min(len)..(tiles * (p + 1) / parts * unit).min(len);
            if along_n {
                (0..m, r)
            } else {
                (r, 0..n)
            }
        })
        .filter(|(r, c)| !r.is_empty() && !c.is_empty())
        .collect()
}

/// The Goto loop nest over one rectangle of C.
///
/// # Safety
/// `c` addresses C with row stride `ldc`; `rows x cols` lies inside it and no other
/// thread writes that rectangle.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block(
    kernel: MicroKernel,
    run: impl Fn(usize, *const f32, *const f32, usize, *mut f32, usize, bool, Option<&TileEpilogue>),
    rows: Range<usize>,
    cols: Range<usize>,
    k: usize,
    lhs: &LhsOperand,
    rhs: &RhsOperand,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: &Epilogue,
) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let (mc_max, nc_max) = (MC_PANELS * mr, NC_PANELS * nr);
    let kc_max = KC.min(k);
    // Packing buffers, sized for what is packed: a transposed B whole blocks, a row-major
    // B (read in place) only its last partial panel, a prepacked operand nothing.
    let mut b_buf = match rhs {
        RhsOperand::Strided(b) if b.trans == Transpose::No => vec![0.0f32; kc_max * nr],
        RhsOperand::Strided(_) => vec![0.0f32; kc_max * nc_max.min(cols.len().div_ceil(nr) * nr)],
        RhsOperand::Packed(_) => Vec::new(),
        RhsOperand::Taps(_) => vec![0.0f32; kc_max * nr],
    };
    let mut a_buf = match lhs {
        LhsOperand::Strided { .. } => vec![0.0f32; kc_max * mc_max.min(rows.len().div_ceil(mr) * mr)],
        LhsOperand::Packed(_) => Vec::new(),
    };
    let mut edge = vec![0.0f32; mr * nr];
    let taps_packed = matches!(rhs, RhsOperand::Taps(t) if t.per_tap < TAPS_PACK_BELOW);
    // Clamping activations are applied by the kernels in registers; the others after each block.
    let deferred_activation = epi.clamp().is_none();
    let mut panel = if taps_packed { vec![0.0f32; kc_max * nr] } else { Vec::new() };
    for jc in cols.clone().step_by(nc_max) {
        let nc = nc_max.min(cols.end - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let last_k = pc + kc == k;
            // A row-major B is read in place by the micro-kernel (rows `ld` apart):
            // packing it would copy the whole activation tensor once more per call.
            // Only a last, partial panel is packed, zero-padded to the kernel's width.
            let direct = match rhs {
                RhsOperand::Strided(b) if b.trans == Transpose::No => Some(*b),
                _ => None,
            };
            let b_block: &[f32] = match rhs {
                RhsOperand::Strided(b) if direct.is_none() => {
                    pack_b(b, pc, kc, jc, nc, nr, &mut b_buf);
                    &b_buf
                }
                RhsOperand::Strided(b) => {
                    let full = nc / nr * nr;
                    if full < nc {
                        pack_b(b, pc, kc, jc + full, nc - full, nr, &mut b_buf);
                    }
                    &b_buf
                }
                RhsOperand::Taps(t) if !taps_packed => {
                    let full = nc / nr * nr;
                    if full < nc {
                        pack_taps(t, pc, kc, jc + full, nc - full, nr, &mut b_buf);
                    }
                    &b_buf
                }
                RhsOperand::Taps(_) => &[], // packed per panel below
                RhsOperand::Packed(p) => p.block(jc, pc, kc),
            };
            // The K block in runs of evenly spaced B rows: one run, or for taps read in
            // place one per tap the block touches (the kernel is called once per run, C
            // carried over).
            let segments: Vec<(usize, usize)> = match rhs {
                RhsOperand::Taps(t) if !taps_packed => {
                    let mut runs = Vec::new();
                    let mut s0 = pc;
                    while s0 < pc + kc {
                        let s1 = ((s0 / t.per_tap + 1) * t.per_tap).min(pc + kc);
                        runs.push((s0, s1));
                        s0 = s1;
                    }
                    runs
                }
                _ => vec![(pc, pc + kc)],
            };
            for ic in rows.clone().step_by(mc_max) {
                let mc = mc_max.min(rows.end - ic);
                let a_block: &[f32] = match lhs {
                    LhsOperand::Strided { mat, alpha } => {
                        pack_a(mat, *alpha, ic, mc, pc, kc, mr, &mut a_buf);
                        &a_buf
                    }
                    LhsOperand::Packed(p) => p.block(ic, pc, kc),
                };
                for jr in (0..nc).step_by(nr) {
                    let ncols = nr.min(nc - jr);
                    if let (RhsOperand::Taps(t), true) = (rhs, taps_packed) {
                        pack_taps(t, pc, kc, jc + jr, ncols, nr, &mut panel);
                    }
                    for ir in (0..mc).step_by(mr) {
                        for (si, &(s0, s1)) in segments.iter().enumerate() {
                            let nrows = mr.min(mc - ir);
                            // This run's K steps (`kc` is the whole block's).
                            let ks = s1 - s0;
                            let last_k = last_k && si + 1 == segments.len();
                            let (bp, ldb) = match (rhs, direct) {
                                (_, Some(b)) if ncols == nr => (b.data[(s0 * b.ld + jc + jr)..].as_ptr(), b.ld),
                                (RhsOperand::Taps(_), _) if taps_packed => (panel[(s0 - pc) * nr..][..ks * nr].as_ptr(), nr),
                                (RhsOperand::Taps(t), _) if ncols == nr => (t.data[t.row(s0) + jc + jr..].as_ptr(), t.ld),
                                // the packed partial panel
                                (RhsOperand::Taps(_), _) | (_, Some(_)) => (b_block[(s0 - pc) * nr..][..ks * nr].as_ptr(), nr),
                                _ => (b_block[jr * kc + (s0 - pc) * nr..][..ks * nr].as_ptr(), nr),
                            };
                            let ap = a_block[ir * kc + (s0 - pc) * mr..][..ks * mr].as_ptr();
                            let tile = c.add((ic + ir) * ldc + jc + jr);
                            let acc = accumulate || pc > 0 || si > 0;
                            if nrows == mr && ncols == nr {
                                if last_k && !epi.is_identity() {
                                    let tile_epi = epi.tile(ic + ir, jc + jr);
                                    run(ks, ap, bp, ldb, tile, ldc, acc, Some(&tile_epi));
                                } else {
                                    run(ks, ap, bp, ldb, tile, ldc, acc, None);
                                }
                                continue;
                            }
                            if let Some(edge_kernel) = kernel.edge {
                                let tile_epi = (last_k && !epi.is_identity()).then(|| epi.tile(ic + ir, jc + jr));
                                edge_kernel(ks, ap, bp, ldb, tile, ldc, nrows, ncols, acc, tile_epi.as_ref());
                                continue;
                            }
                            // Edge tile: run the full kernel on a scratch tile, copy the valid
                            // part, and apply the epilogue to it element-wise.
                            if acc {
                                for i in 0..nrows {
                                    std::ptr::copy_nonoverlapping(tile.add(i * ldc), edge.as_mut_ptr().add(i * nr), ncols);
                                }
                            }
                            run(ks, ap, bp, ldb, edge.as_mut_ptr(), nr, acc, None);
                            for i in 0..nrows {
                                std::ptr::copy_nonoverlapping(edge.as_ptr().add(i * nr), tile.add(i * ldc), ncols);
                            }
                            if last_k && !epi.is_identity() {
                                for i in 0..nrows {
                                    let row = std::slice::from_raw_parts_mut(tile.add(i * ldc), ncols);
                                    epi.apply_row_linear(ic + ir + i, jc + jr, row);
                                    if !deferred_activation {
                                        epi.activation.apply(row);
                                    }
                                }
                            }
                        }
                    }
                }
                // An activation the kernels cannot apply in registers (GELU, sigmoid, ...)
                // runs once per row of the finished block, while it is still in L2: per
                // 8-wide tile row it cost a call and a loop setup for every 8 values (in wasm
                // about as much as the GELU itself).
                if last_k && deferred_activation {
                    for i in 0..mc {
                        epi.activation.apply(std::slice::from_raw_parts_mut(c.add((ic + i) * ldc + jc), nc));
                    }
                }
            }
        }
    }
}

/// Packs rows `p0..p0+kc`, columns `j0..j0+nc` (`nc <= nr`) of a taps operand into one
/// zero-padded `nr`-wide panel.
fn pack_taps(t: &TapsRef, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, out: &mut [f32]) {
    // (tap, channel) stepped along instead of divided out per row: a division costs as
    // much as copying the row, and a stem convolution packs 147 rows per 32 columns.
    let (mut tap, mut ch) = (p0 / t.per_tap, p0 % t.per_tap);
    for p in 0..kc {
        let row = &mut out[p * nr..p * nr + nr];
        let start = t.offsets[tap] + ch * t.ld + j0;
        super::pack::copy_short(&mut row[..nc], &t.data[start..start + nc]);
        row[nc..].fill(0.0);
        ch += 1;
        if ch == t.per_tap {
            (tap, ch) = (tap + 1, 0);
        }
    }
}
