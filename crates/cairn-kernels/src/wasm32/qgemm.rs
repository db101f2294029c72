//! simd128 int8 micro-kernels, 4x8, in two layouts (see `qgemm`):
//! - pairs: `i32x4.dot_i16x8_s` multiplies four columns' k-pairs of i16 by the splatted
//!   pair of one A row and adds each pair into an i32 lane (8 products per instruction);
//! - quads (relaxed build only): `i32x4.relaxed_dot_i8x16_i7x16_add_s` multiplies four
//!   columns' k-quads of bytes by the splatted quad of one A row, adds the four products
//!   and accumulates (16 products per instruction). Chromium lowers it to AVX-VNNI's
//!   `vpdpbusd` where the CPU has it: an exact u8 x s8 product, 1.5x the pairs tile's
//!   rate (61 vs 40 GMAC/s, bare tiles in Chromium 156 on this Xeon). Elsewhere the
//!   relaxed semantics differ (`pmaddubsw` saturates i16 pair sums; Arm's `sdot` reads
//!   the second operand as signed), so the kernel is used only where
//!   [`relaxed_dot_is_exact_u8s8`] finds the exact behaviour.
//!
//! Eight accumulators, two B vectors and one splat: the 4x8 shape the f32 kernel found V8
//! keeps in registers.

use crate::qgemm::{rule, Layout, Q8Tile, QKernel};
use core::arch::wasm32::*;

const MR: usize = 4;
const NR: usize = 8;

pub(crate) const KERNEL: QKernel = QKernel {
    name: "i8_gemm_4x8_simd128",
    mr: MR,
    nr: NR,
    layout: Layout::Pairs,
    fallback: None,
    quads_weight_bound: 0,
    run: kernel_4x8::<false>,
    run_q8: Some(kernel_4x8_q8::<false>),
    run_gemv: gemv_4::<false>,
};

/// The byte-layout kernel (u8 activations, s8 weights), where the engine's relaxed dot is
/// exact for them ([`relaxed_dot_is_exact_u8s8`]); weights that do not fit the byte layout
/// fall back to [`KERNEL`].
#[cfg(target_feature = "relaxed-simd")]
pub(crate) const KERNEL_RELAXED_U8S8: QKernel = QKernel {
    name: "u8s8_gemm_4x8_relaxed",
    mr: MR,
    nr: NR,
    layout: Layout::Quads,
    fallback: Some(&KERNEL),
    quads_weight_bound: 128,
    run: kernel_4x8::<true>,
    run_q8: Some(kernel_4x8_q8::<true>),
    run_gemv: gemv_4::<true>,
};

/// Whether this engine's `i32x4.relaxed_dot_i8x16_i7x16_add_s` computes the exact u8 x s8
/// dot product (the second operand read as unsigned bytes, no saturation), as AVX-VNNI's
/// `vpdpbusd` does. The relaxed-SIMD proposal lets each engine pick one behaviour and keep
/// it, so one probe with operands that tell the behaviours apart decides for the process:
/// 255 read as signed (Arm `sdot`) and the saturating i16 pair sums of `pmaddubsw` (SSSE3
/// lowering) both give other sums than the exact ones below.
#[cfg(target_feature = "relaxed-simd")]
pub(crate) fn relaxed_dot_is_exact_u8s8() -> bool {
    use core::hint::black_box;
    let exact = |a: [i8; 16], b: [u8; 16]| -> bool {
        let (va, vb) = (
            black_box(i8x16(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15])),
            black_box(u8x16(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])),
        );
        let got = i32x4_relaxed_dot_i8x16_i7x16_add(va, vb, black_box(i32x4_splat(7)));
        let want: [i32; 4] = std::array::from_fn(|l| 7 + (0..4).map(|i| a[4 * l + i] as i32 * b[4 * l + i] as i32).sum::<i32>());
        [i32x4_extract_lane::<0>(got), i32x4_extract_lane::<1>(got), i32x4_extract_lane::<2>(got), i32x4_extract_lane::<3>(got)] == want
    };
    exact([-128; 16], [255; 16])
        && exact([127; 16], [255; 16])
        && exact(std::array::from_fn(|i| (i as i8).wrapping_mul(37)), std::array::from_fn(|i| (i as u8).wrapping_mul(101)))
}

/// One k-group step of a tile: `acc + dot(a, b)`, `a` holding s8 weights (quads) or i16
/// pairs, `b` u8 activations (quads) or i16 pairs. Only the relaxed build has quads.
#[inline(always)]
fn dot<const QUADS: bool>(a: v128, b: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    if QUADS {
        return i32x4_relaxed_dot_i8x16_i7x16_add(a, b, acc);
    }
    debug_assert!(!QUADS, "the byte layout needs the relaxed build");
    i32x4_add(acc, i32x4_dot_i16x8(a, b))
}

/// Which inlined sweep fits `kernel`: `Some(quads)` for this module's kernels.
#[inline(always)]
pub(crate) fn sweep_layout(kernel: &QKernel) -> Option<bool> {
    (kernel.name == KERNEL.name).then_some(false).or(sweep_layout_quads(kernel))
}

#[inline(always)]
fn sweep_layout_quads(_kernel: &QKernel) -> Option<bool> {
    #[cfg(target_feature = "relaxed-simd")]
    if _kernel.name == KERNEL_RELAXED_U8S8.name {
        return Some(true);
    }
    None
}

/// # Safety
/// See [`QKernel::run`].
unsafe fn kernel_4x8<const QUADS: bool>(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    let acc = tile::<QUADS>(kp, a, b, init);
    for (i, row) in acc.iter().enumerate() {
        v128_store(c.add(i * NR) as *mut v128, row[0]);
        v128_store(c.add(i * NR + 4) as *mut v128, row[1]);
    }
}

/// The tile requantized in registers: f32 scale and bias per row, clamp, round half to
/// even, zero point (`qgemm::rule`), then narrows to 8 bytes per row. Written with the instructions V8 lowers to
/// one x86 instruction each: `pmin`/`pmax` (the accumulators are never NaN, so
/// `min`/`max`'s NaN fix-ups are dead weight), and rounding by adding 1.5 * 2^23 and
/// reading the integer from the mantissa (exact for the clamped range; `nearest` +
/// `trunc_sat` cost about ten instructions).
///
/// # Safety
/// See [`QKernel::run_q8`].
unsafe fn kernel_4x8_q8<const QUADS: bool>(kp: usize, a: *const i32, b: *const i32, init: *const i32, t: &Q8Tile) {
    store_q8(tile::<QUADS>(kp, a, b, init), t, t.out);
}

/// Every full tile of one A panel against a packed column block (`tiles` panels of B, `kp *
/// NR` words each, stored `NR` columns apart from `t.out` on): [`kernel_4x8_q8`] with the
/// tile inlined in the loop. Called once per panel instead of through the kernel table once
/// per tile: on the small-K layers (K = 16-32) that call and its setup were a tenth of the time.
/// `quads` as [`sweep_layout`] says for the panel's kernel.
///
/// # Safety
/// As for [`QKernel::run_q8`], for each of the `tiles` tiles.
#[inline(always)]
pub(crate) unsafe fn sweep_q8(quads: bool, kp: usize, a: *const i32, bpanels: *const i32, tiles: usize, init: *const i32, t: &Q8Tile) {
    for ti in 0..tiles {
        store_q8(tile_of_layout(quads, kp, a, bpanels.add(ti * kp * NR), init), t, t.out.add(ti * NR));
    }
}

/// The requantizing store of one tile's accumulators to `out` (rows `t.ldc` apart).
#[inline(always)]
unsafe fn store_q8(acc: [[v128; 2]; MR], t: &Q8Tile, out: *mut u8) {
    let (lo, hi) = (f32x4_splat(t.qlo), f32x4_splat(t.qhi));
    let zb = i32x4_splat(t.zero_bits);
    for (i, row) in acc.iter().enumerate() {
        let (s, bias) = (f32x4_splat(*t.si.add(i)), f32x4_splat(*t.bi.add(i)));
        let h = if t.clamp {
            let q = |v: v128| round_plus_zero(f32x4_pmin(f32x4_pmax(f32x4_add(f32x4_mul(f32x4_convert_i32x4(v), s), bias), lo), hi), zb);
            i16x8_narrow_i32x4(q(row[0]), q(row[1]))
        } else {
            // The saturating narrows below clamp to the 8-bit range (see `Q8Tile::clamp`).
            let q = |v: v128| round_plus_zero(f32x4_add(f32x4_mul(f32x4_convert_i32x4(v), s), bias), zb);
            i16x8_narrow_i32x4(q(row[0]), q(row[1]))
        };
        let bytes = if t.signed { i8x16_narrow_i16x8(h, h) } else { u8x16_narrow_i16x8(h, h) };
        v128_store64_lane::<0>(bytes, out.add(i * t.ldc) as *mut u64);
    }
}

/// A full 4x8 real-valued tile (`tile` row-major, 8 wide) stored by columns: column `c`'s
/// four rows go to `out + c * cs` as one vector, `x * s[r] + b[r]` clamped to `[lo, hi]`
/// (NaN passes, as in `store_row`). Two 4x4 transposes in registers instead of 32 scalar
/// stores: the store of a dynamically quantized MatMul's Cᵀ.
///
/// # Safety
/// `tile` holds 32 words, `s` and `b` 4 floats, and `out + c * cs` 4 writable floats for
/// each `c < 8`.
#[inline(always)]
pub(crate) unsafe fn store_real_4x8_by_columns(
    tile: *const i32,
    s: *const f32,
    b: *const f32,
    bounds: (f32, f32),
    out: *mut f32,
    cs: usize,
) {
    let acc: [[v128; 2]; MR] =
        std::array::from_fn(|i| [v128_load(tile.add(i * NR) as *const v128), v128_load(tile.add(i * NR + 4) as *const v128)]);
    store_real_by_columns(acc, s, b, bounds, out, cs)
}

/// Every full tile of one A panel against a packed column block (`tiles` panels of B, `kp *
/// NR` words each), each stored by columns as [`store_real_4x8_by_columns`] does, from
/// `out` on, `NR * cs` floats apart: the dynamically quantized MatMul's loop with the tile
/// inlined, its accumulators going to the store in registers (through the kernel table, each
/// tile was an indirect call, 32 stores and 32 loads).
///
/// # Safety
/// As for [`QKernel::run`] per tile, and as for [`store_real_4x8_by_columns`] at
/// `out + t * NR * cs` for each tile `t`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sweep_real_by_columns(
    quads: bool,
    kp: usize,
    a: *const i32,
    bpanels: *const i32,
    tiles: usize,
    init: *const i32,
    s: *const f32,
    b: *const f32,
    bounds: (f32, f32),
    out: *mut f32,
    cs: usize,
) {
    for ti in 0..tiles {
        let acc = tile_of_layout(quads, kp, a, bpanels.add(ti * kp * NR), init);
        store_real_by_columns(acc, s, b, bounds, out.add(ti * NR * cs), cs);
    }
}

/// The store of [`store_real_4x8_by_columns`] from accumulators in registers.
#[inline(always)]
unsafe fn store_real_by_columns(acc: [[v128; 2]; MR], s: *const f32, b: *const f32, (lo, hi): (f32, f32), out: *mut f32, cs: usize) {
    let (sv, bv) = (v128_load(s as *const v128), v128_load(b as *const v128));
    let clamp = lo > f32::NEG_INFINITY || hi < f32::INFINITY;
    let (lov, hiv) = (f32x4_splat(lo), f32x4_splat(hi));
    // The tile's left and right four columns, each as its four rows.
    let halves: [[v128; MR]; 2] = std::array::from_fn(|h| std::array::from_fn(|i| acc[i][h]));
    for (half, r) in halves.into_iter().enumerate() {
        // Column c of these four rows becomes vector c.
        let cols = super::transpose4(r);
        for (c, v) in cols.into_iter().enumerate() {
            let mut x = f32x4_add(f32x4_mul(f32x4_convert_i32x4(v), sv), bv);
            if clamp {
                // `lt`/`gt` select like `store_row`'s compares: a NaN lane stays NaN.
                x = v128_bitselect(lov, x, f32x4_lt(x, lov));
                x = v128_bitselect(hiv, x, f32x4_gt(x, hiv));
            }
            v128_store(out.add((4 * half + c) * cs) as *mut v128, x);
        }
    }
}

/// Rounds lanes within [-2^22, 2^22] half to even and converts them to i32: the add
/// rounds in the FPU's default mode and leaves the integer in the low mantissa bits.
#[inline(always)]
pub(crate) fn round_clamped(v: v128) -> v128 {
    round_plus_zero(v, i32x4_splat(rule::magic_minus_zero(0)))
}

/// `round_half_even(v) + zero` for lanes within [-2^22, 2^22], `zero_bits` holding
/// `rule::magic_minus_zero(zero)`: the zero point costs nothing (one subtraction either way).
#[inline(always)]
pub(crate) fn round_plus_zero(v: v128, zero_bits: v128) -> v128 {
    i32x4_sub(f32x4_add(v, f32x4_splat(rule::MAGIC)), zero_bits)
}

/// [`tile`] of the layout `quads` names (loop-invariant in the sweeps, which LLVM unswitches).
#[inline(always)]
unsafe fn tile_of_layout(quads: bool, kp: usize, a: *const i32, b: *const i32, init: *const i32) -> [[v128; 2]; MR] {
    if quads {
        tile::<true>(kp, a, b, init)
    } else {
        tile::<false>(kp, a, b, init)
    }
}

#[inline(always)]
unsafe fn tile<const QUADS: bool>(kp: usize, mut a: *const i32, mut b: *const i32, init: *const i32) -> [[v128; 2]; MR] {
    let mut acc: [[v128; 2]; MR] = std::array::from_fn(|i| [i32x4_splat(*init.add(i)); 2]);
    for _ in 0..kp {
        let b0 = v128_load(b as *const v128);
        let b1 = v128_load(b.add(4) as *const v128);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = v128_load32_splat(a.add(i) as *const u32);
            row[0] = dot::<QUADS>(av, b0, row[0]);
            row[1] = dot::<QUADS>(av, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    acc
}

/// One column of four rows per k-group: the panel's four words against the splatted B word.
///
/// # Safety
/// See [`QKernel::run_gemv`].
unsafe fn gemv_4<const QUADS: bool>(kp: usize, a: *const i32, b: *const i32, init: *const i32, c: *mut i32) {
    // Two accumulators hide the dot's latency.
    let (mut s0, mut s1) = (v128_load(init as *const v128), i32x4_splat(0));
    let mut q = 0;
    while q + 2 <= kp {
        s0 = dot::<QUADS>(v128_load(a.add(q * MR) as *const v128), v128_load32_splat(b.add(q) as *const u32), s0);
        s1 = dot::<QUADS>(v128_load(a.add(q * MR + MR) as *const v128), v128_load32_splat(b.add(q + 1) as *const u32), s1);
        q += 2;
    }
    if q < kp {
        s0 = dot::<QUADS>(v128_load(a.add(q * MR) as *const v128), v128_load32_splat(b.add(q) as *const u32), s0);
    }
    v128_store(c as *mut v128, i32x4_add(s0, s1));
}
