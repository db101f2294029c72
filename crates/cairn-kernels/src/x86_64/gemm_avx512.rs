//! AVX-512F micro-kernel, 12x32: twenty-four zmm accumulators, two for the B row,
//! and A broadcast straight from memory into the FMA (`{1to16}`), 26 of the 32 zmm
//! registers. Each k step issues 24 FMAs against 2 vector loads and 12 scalar
//! broadcasts. On cores with full-width 512-bit FMA units (Zen 4/5, Xeon) it does
//! twice the work per instruction of the 6x16 AVX2 kernel.
//!
//! Twelve rows divide the channel counts of common image models (24, 96, 144, 192,
//! 384, 576, 960 ...) as well as six did; 32 columns keep a 256-deep B panel at 32 KiB,
//! inside the L1 of the cores that have AVX-512.

use crate::gemm::{MicroKernel, TileEpilogue};
use std::arch::x86_64::__mmask16;
use std::arch::x86_64::*;

const MR: usize = 12;
const NR: usize = 32;
/// How far ahead (in floats: 64 K steps) the tile prefetches its packed A stream.
const A_PREFETCH: usize = MR * 64;
/// How many K steps ahead the tile prefetches B's rows (~300 cycles of L3 latency ahead).
const B_PREFETCH: usize = 24;

pub(crate) const KERNEL: MicroKernel = MicroKernel { mr: MR, nr: NR, run: kernel_12x32_entry, edge: Some(edge_12x32_entry) };

/// # Safety
/// See [`MicroKernel::run`]; the CPU must support AVX-512F (checked by `Isa::current`).
unsafe fn kernel_12x32_entry(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    kernel_12x32(kc, a, b, ldb, c, ldc, accumulate, epi)
}

#[target_feature(enable = "avx512f")]
unsafe fn kernel_12x32(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate() {
            row[0] = _mm512_loadu_ps(c.add(i * ldc));
            row[1] = _mm512_loadu_ps(c.add(i * ldc + 16));
        }
    } else {
        // The tile's 24 lines of C (12 rows a plane apart, so 12 separate streams the
        // hardware prefetcher does not follow) are fetched while the K loop runs, not
        // when the stores and the residual loads stall on them.
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 16) as *const i8);
        }
    }
    if let Some(e) = epi.filter(|e| !e.residual.is_null()) {
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(e.residual.add(i * e.ld_residual) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(e.residual.add(i * e.ld_residual + 16) as *const i8);
        }
    }
    // A packed B (rows NR apart) continues with the next panel, which the next tile
    // reads: fetching past this block's end warms it. A B read in place (activations of
    // a pointwise convolution, rows a plane apart) does not: there the rows past the
    // block are no one's, and a short-K tile (16-32 steps) would fetch as many lines for
    // nothing (measured: 20% slower on MobileNet's first pointwise layers).
    let prefetch_b_until = if ldb == NR { kc } else { kc.saturating_sub(B_PREFETCH) };
    for step in 0..kc {
        // Packed A is read once per tile front to back, and the next tile's panel follows
        // it in memory: fetching it ahead hides the memory latency of weights that are
        // used by few columns (7x7 planes), where the tile otherwise waits on every line.
        // (`prefetcht0` never faults, so running past the end of A is harmless.)
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_PREFETCH) as *const i8);
        // B's panel too: the first tile on a panel reads it from L3 (a transformer's
        // weights are used by a few row tiles each and do not stay in L2 between calls),
        // and without this waited on every line (MiniLM's 1536-wide layers ran at half speed).
        if step < prefetch_b_until {
            // (`prefetcht0` never faults: past the last panel is harmless.)
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(B_PREFETCH * ldb) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(B_PREFETCH * ldb + 16) as *const i8);
        }
        let b0 = _mm512_loadu_ps(b);
        let b1 = _mm512_loadu_ps(b.add(16));
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(i));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(ldb);
    }
    if let Some(e) = epi {
        let (lo, hi) = (_mm512_set1_ps(e.lo), _mm512_set1_ps(e.hi));
        let col_bias = (!e.col_bias.is_null()).then(|| [_mm512_loadu_ps(e.col_bias), _mm512_loadu_ps(e.col_bias.add(16))]);
        for (i, row) in acc.iter_mut().enumerate() {
            for (h, v) in row.iter_mut().enumerate() {
                if !e.row_bias.is_null() {
                    *v = _mm512_add_ps(*v, _mm512_set1_ps(*e.row_bias.add(i)));
                }
                if let Some(cb) = col_bias {
                    *v = _mm512_add_ps(*v, cb[h]);
                }
                if !e.residual.is_null() {
                    *v = _mm512_add_ps(*v, _mm512_loadu_ps(e.residual.add(i * e.ld_residual + 16 * h)));
                }
                if e.clamp {
                    *v = _mm512_min_ps(_mm512_max_ps(*v, lo), hi);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(c.add(i * ldc), row[0]);
        _mm512_storeu_ps(c.add(i * ldc + 16), row[1]);
    }
}

/// Partial tiles. Columns are what partial tiles lack most (7x7 and 14x14 planes leave
/// 17 and 4 columns): up to 16 columns run one zmm per row instead of two, and up to
/// 4 columns turn the tile around: each column of C is one vector over the 12 rows
/// (A's packed k step), so a 1-column tail costs one FMA per k step instead of twelve;
/// 17 to 20 columns are 16 plus such a tail. Missing rows are skipped in steps of four
/// (channel counts like 16, 64 or 160 leave 4 rows), the rest of a step computed on
/// A's zero padding and not stored.
///
/// # Safety
/// See [`crate::gemm::EdgeKernel`]; the CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
unsafe fn edge_12x32_entry(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    debug_assert!(rows <= MR && cols <= NR && rows > 0 && cols > 0);
    // Column vectors address rows with 32-bit gather offsets.
    let small = |ld: usize| ld < (1 << 26);
    let gathers = small(ldc) && epi.is_none_or(|e| small(e.ld_residual));
    match cols {
        1..=4 if gathers => columns_any(kc, a, b, ldb, c, ldc, rows, cols, accumulate, epi),
        1..=16 => rows_any::<1>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, epi),
        17..=20 if gathers => {
            rows_any::<1>(kc, a, b, ldb, c, ldc, rows, 16, accumulate, epi);
            let shifted = epi.map(|e| TileEpilogue {
                col_bias: if e.col_bias.is_null() { e.col_bias } else { e.col_bias.add(16) },
                residual: if e.residual.is_null() { e.residual } else { e.residual.add(16) },
                ..*e
            });
            columns_any(kc, a, b.add(16), ldb, c.add(16), ldc, rows, cols - 16, accumulate, shifted.as_ref());
        }
        _ => rows_any::<2>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, epi),
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_any<const H: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    match rows {
        1..=4 => rows_masked::<H, 4>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, epi),
        5..=8 => rows_masked::<H, 8>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, epi),
        _ => rows_masked::<H, MR>(kc, a, b, ldb, c, ldc, rows, cols, accumulate, epi),
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn columns_any(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    match cols {
        1 => columns::<1>(kc, a, b, ldb, c, ldc, rows, accumulate, epi),
        2 => columns::<2>(kc, a, b, ldb, c, ldc, rows, accumulate, epi),
        3 => columns::<3>(kc, a, b, ldb, c, ldc, rows, accumulate, epi),
        _ => columns::<4>(kc, a, b, ldb, c, ldc, rows, accumulate, epi),
    }
}

/// The first `R` rows of the panel with `H` zmm per row; the last zmm masked to the
/// valid columns on every access to C, the bias and the residual (B's panel is zero
/// past `cols`, so it is read whole).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_masked<const H: usize, const R: usize>(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    let last: __mmask16 = (((1u32 << (cols - 16 * (H - 1))) - 1) & 0xFFFF) as __mmask16;
    let mask = |h: usize| if h + 1 == H { last } else { 0xFFFF };
    let mut acc = [[_mm512_setzero_ps(); H]; R];
    // C is loaded first, as the full kernel does, so that a partial tile sums in the same
    // order and rounds the same as a full one (outputs that should be equal stay equal).
    if accumulate {
        for (i, row) in acc.iter_mut().enumerate().take(rows) {
            for (h, v) in row.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(mask(h), c.add(i * ldc + 16 * h));
            }
        }
    }
    for _ in 0..kc {
        let bv: [__m512; H] = std::array::from_fn(|h| _mm512_loadu_ps(b.add(16 * h)));
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(i));
            for h in 0..H {
                row[h] = _mm512_fmadd_ps(av, bv[h], row[h]);
            }
        }
        a = a.add(MR);
        b = b.add(ldb);
    }
    for (i, row) in acc.iter_mut().enumerate().take(rows) {
        for (h, v) in row.iter_mut().enumerate() {
            let (m, at) = (mask(h), 16 * h);
            if let Some(e) = epi {
                if !e.row_bias.is_null() {
                    *v = _mm512_add_ps(*v, _mm512_set1_ps(*e.row_bias.add(i)));
                }
                if !e.col_bias.is_null() {
                    *v = _mm512_add_ps(*v, _mm512_maskz_loadu_ps(m, e.col_bias.add(at)));
                }
                if !e.residual.is_null() {
                    *v = _mm512_add_ps(*v, _mm512_maskz_loadu_ps(m, e.residual.add(i * e.ld_residual + at)));
                }
                if e.clamp {
                    *v = _mm512_min_ps(_mm512_max_ps(*v, _mm512_set1_ps(e.lo)), _mm512_set1_ps(e.hi));
                }
            }
            _mm512_mask_storeu_ps(c.add(i * ldc + at), m, *v);
        }
    }
}

/// `W` columns, each a vector over the tile's rows (lanes 12..16 masked off).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn columns<const W: usize>(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    accumulate: bool,
    epi: Option<&TileEpilogue>,
) {
    const PANEL: __mmask16 = (1 << MR) - 1;
    let valid: __mmask16 = ((1u32 << rows) - 1) as __mmask16;
    let row_index = |ld: usize| {
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(ld as i32))
    };
    let c_index = row_index(ldc);
    // C first, as in the full kernel (same summation order, same rounding).
    let mut acc: [__m512; W] = std::array::from_fn(|j| {
        if accumulate {
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), valid, c_index, c.add(j))
        } else {
            _mm512_setzero_ps()
        }
    });
    for _ in 0..kc {
        let av = _mm512_maskz_loadu_ps(PANEL, a);
        for (j, v) in acc.iter_mut().enumerate() {
            *v = _mm512_fmadd_ps(av, _mm512_set1_ps(*b.add(j)), *v);
        }
        a = a.add(MR);
        b = b.add(ldb);
    }
    // The epilogue on whole columns: rows are lanes, so C and the residual are read and
    // written with gathers and scatters `ld` apart, and the row bias is one load.
    let row_bias = match epi {
        Some(e) if !e.row_bias.is_null() => _mm512_maskz_loadu_ps(valid, e.row_bias),
        _ => _mm512_setzero_ps(),
    };
    let r_index = epi.map_or(c_index, |e| row_index(e.ld_residual));
    for (j, v) in acc.iter_mut().enumerate() {
        let out = c.add(j);
        if let Some(e) = epi {
            *v = _mm512_add_ps(*v, row_bias);
            if !e.col_bias.is_null() {
                *v = _mm512_add_ps(*v, _mm512_set1_ps(*e.col_bias.add(j)));
            }
            if !e.residual.is_null() {
                *v = _mm512_add_ps(*v, _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), valid, r_index, e.residual.add(j)));
            }
            if e.clamp {
                *v = _mm512_min_ps(_mm512_max_ps(*v, _mm512_set1_ps(e.lo)), _mm512_set1_ps(e.hi));
            }
        }
        _mm512_mask_i32scatter_ps::<4>(out, valid, c_index, *v);
    }
}
