//! Depthwise filters prepared once (at model load): the taps for the portable path and,
//! when every tap fits a signed byte, the weight tuples of the fast path's layouts with
//! each channel's sums, so that a call only splats them.

/// Filters of `channels` channels of `kh x kw` taps, zero points subtracted.
#[derive(Debug, Clone)]
pub struct QDwFilters {
    pub(super) channels: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) taps: Vec<i16>,
    /// Per channel `[sum of taps, sum of |taps|]`; empty when a tap exceeds a byte.
    pub(super) sums: Vec<[i32; 2]>,
    /// Per channel, the i16 pairs of each filter row (`kw.div_ceil(2)` per row).
    pub(super) pairs: Vec<i32>,
    /// Per channel, the pairs of the rows and of the rows shifted by one tap (stride 1).
    pub(super) shifted: Vec<i32>,
    /// Per channel, the i8 quads of each filter row.
    pub(super) quads: Vec<i32>,
}

impl QDwFilters {
    /// `taps` holds `channels * kh * kw` values, row-major per channel.
    pub fn new(taps: Vec<i16>, channels: usize, kh: usize, kw: usize) -> QDwFilters {
        let ksz = kh * kw;
        assert!(taps.len() >= channels * ksz, "qdepthwise: {} taps for {channels} filters of {kh}x{kw}", taps.len());
        let mut f = QDwFilters { channels, kh, kw, taps, sums: Vec::new(), pairs: Vec::new(), shifted: Vec::new(), quads: Vec::new() };
        if f.taps[..channels * ksz].iter().all(|&v| (-128..=127).contains(&v)) {
            for c in f.taps[..channels * ksz].chunks_exact(ksz.max(1)).take(channels) {
                f.sums.push(c.iter().fold([0, 0], |[s, a], &v| [s + v as i32, a + (v as i32).abs()]));
                tuples(c, kh, kw, 2, 1, kw.div_ceil(2), pair_bits, &mut f.pairs);
                tuples(c, kh, kw, 2, 2, kw / 2 + 1, pair_bits, &mut f.shifted);
                tuples(c, kh, kw, 4, 1, kw.div_ceil(4), quad_bits, &mut f.quads);
            }
        }
        f
    }

    /// The taps, `channels * kh * kw`.
    pub fn taps(&self) -> &[i16] {
        &self.taps
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        2 * self.taps.len() + 8 * self.sums.len() + 4 * (self.pairs.len() + self.shifted.len() + self.quads.len())
    }

    /// Whether every tap fits a signed byte (the fast path's condition).
    pub(super) fn fit_bytes(&self) -> bool {
        !self.sums.is_empty() || self.channels == 0
    }
}

/// Appends one channel's tuples of `t` taps: for each of `phases` shifts `v`, each filter
/// row and each tuple `j`, the taps `t * j - v .. t * j - v + t` of the row (zero outside).
#[allow(clippy::too_many_arguments)]
fn tuples(c: &[i16], kh: usize, kw: usize, t: usize, phases: usize, nt: usize, bits: fn([i16; 4]) -> i32, out: &mut Vec<i32>) {
    for v in 0..phases {
        for row in c.chunks_exact(kw.max(1)).take(kh) {
            for j in 0..nt {
                let mut taps = [0i16; 4];
                for (i, tap) in taps.iter_mut().enumerate().take(t) {
                    let k = (t * j + i).wrapping_sub(v);
                    if k < kw {
                        *tap = row[k];
                    }
                }
                out.push(bits(taps));
            }
        }
    }
}

/// Two taps as the i16 pair of one 32-bit lane (little-endian: tap 0 first).
fn pair_bits(t: [i16; 4]) -> i32 {
    (t[0] as u16 as u32 | (t[1] as u16 as u32) << 16) as i32
}

/// Four taps as the i8 quad of one 32-bit lane.
fn quad_bits(t: [i16; 4]) -> i32 {
    i32::from_le_bytes(t.map(|v| v as i8 as u8))
}
