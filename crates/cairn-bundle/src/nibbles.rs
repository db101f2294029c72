//! Progressive int8: each weight byte sent as two nibbles in two levels.
//!
//! `w = 16 * hi + lo` with `hi = w >> 4` (signed, -8..=7) and `lo = w & 15`. The coarse
//! level packs the high nibbles two per byte; the loader fills each weight with the
//! tensor's *coarse value* of its high nibble, a table of 16 int8 values written by
//! `pack` (the rounded mean of the tensor's weights in that bucket, so the coarse
//! model's errors have no bias per bucket; see docs/adr/0023). Every table entry lies
//! in its own bucket (`entry >> 4 == hi`), so the coarse value keeps the exact high
//! nibble, and the refinement only has to set the low nibble: `w = (coarse & 0xF0) | lo`.
//! If a refinement arrives first, it sets the low nibble of a zero byte, and the
//! coarse level then sets only the high nibble there (the loader knows which ranges
//! are refined), so the two levels may arrive in any order.
//!
//! The high nibbles of int8 weights are low-entropy (most weights are near 0), so the
//! coarse level compresses well over the wire; the low nibbles are nearly uniform.

/// The 16 coarse values of a tensor, indexed by the high nibble as unsigned (0..=15).
pub type CoarseValues = [i8; 16];

/// Whether every entry lies in the bucket of its index, as the refinement relies on.
pub fn coarse_values_valid(values: &CoarseValues) -> bool {
    values.iter().enumerate().all(|(u, &v)| (v as u8 >> 4) as usize == u)
}

/// The rounded mean of the weights in each high-nibble bucket (the middle of the
/// bucket where it holds none): the value of least squared error given the bucket.
pub fn coarse_values(weights: &[i8]) -> CoarseValues {
    let mut sum = [0i64; 16];
    let mut count = [0i64; 16];
    for &w in weights {
        let u = (w as u8 >> 4) as usize;
        sum[u] += w as i64;
        count[u] += 1;
    }
    std::array::from_fn(|u| {
        let low = ((u as u8) << 4) as i8 as i64; // the bucket's smallest value
        let mean = if count[u] == 0 { low + 8 } else { (2 * sum[u] + count[u]).div_euclid(2 * count[u]) };
        mean.clamp(low, low + 15) as i8
    })
}

/// Packs nibbles (values 0..=15) two per byte, the first in the low half; an odd count
/// leaves the last byte's high half zero.
fn pack(nibbles: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending: Option<u8> = None;
    for n in nibbles {
        match pending.take() {
            None => pending = Some(n),
            Some(first) => out.push(first | (n << 4)),
        }
    }
    out.extend(pending);
    out
}

/// The i-th nibble of a packed buffer.
fn nibble(packed: &[u8], i: usize) -> u8 {
    (packed[i / 2] >> ((i & 1) * 4)) & 15
}

/// Bytes a part of `len` elements takes: two nibbles per byte.
pub fn packed_len(len: usize) -> usize {
    len.div_ceil(2)
}

/// The coarse level's bytes for raw int8 weights.
pub fn encode_high(raw: &[u8]) -> Vec<u8> {
    pack(raw.iter().map(|&w| w >> 4))
}

/// The refinement's bytes for raw int8 weights.
pub fn encode_low(raw: &[u8]) -> Vec<u8> {
    pack(raw.iter().map(|&w| w & 15))
}

/// Places high nibbles into `dst` (a part's weights): the coarse value where element
/// `i` is not yet `refined(i)`, else only the high nibble beside the exact low one.
pub fn apply_high(src: &[u8], dst: &mut [u8], values: &CoarseValues, refined: impl Fn(usize) -> bool) {
    for (i, d) in dst.iter_mut().enumerate() {
        let hi = nibble(src, i);
        *d = if refined(i) { (hi << 4) | (*d & 15) } else { values[hi as usize] as u8 };
    }
}

/// Places low nibbles into `dst`, keeping the high nibble already there (or zero).
pub fn apply_low(src: &[u8], dst: &mut [u8]) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = (*d & 0xF0) | nibble(src, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_bytes() -> Vec<u8> {
        (0..=255u8).collect()
    }

    #[test]
    fn every_byte_round_trips_in_either_order() {
        let raw = all_bytes();
        let values = coarse_values(&raw.iter().map(|&b| b as i8).collect::<Vec<_>>());
        assert!(coarse_values_valid(&values));
        let (hi, lo) = (encode_high(&raw), encode_low(&raw));
        assert_eq!((hi.len(), lo.len()), (128, 128), "two nibbles per byte");

        let mut coarse_first = vec![0u8; 256];
        apply_high(&hi, &mut coarse_first, &values, |_| false);
        apply_low(&lo, &mut coarse_first);
        assert_eq!(coarse_first, raw);

        let mut refine_first = vec![0u8; 256];
        apply_low(&lo, &mut refine_first);
        apply_high(&hi, &mut refine_first, &values, |_| true);
        assert_eq!(refine_first, raw);
    }

    #[test]
    fn odd_lengths_and_split_ranges_round_trip() {
        let raw: Vec<u8> = (0..37u32).map(|i| (i.wrapping_mul(97) ^ 0x5a) as u8).collect();
        let values = coarse_values(&raw.iter().map(|&b| b as i8).collect::<Vec<_>>());
        let mut dst = vec![0u8; raw.len()];
        // Coarse in two pieces (7 and 30 elements), refinement in three other pieces.
        for (s, e) in [(0, 7), (7, 37)] {
            apply_high(&encode_high(&raw[s..e]), &mut dst[s..e], &values, |_| false);
        }
        for (s, e) in [(0, 1), (1, 20), (20, 37)] {
            let packed = encode_low(&raw[s..e]);
            assert_eq!(packed.len(), packed_len(e - s));
            apply_low(&packed, &mut dst[s..e]);
        }
        assert_eq!(dst, raw);
    }

    #[test]
    fn coarse_values_are_bucket_means_and_stay_in_their_bucket() {
        let w: Vec<i8> = vec![0, 1, 2, 3, -1, -2, 127, 120, -127];
        let v = coarse_values(&w);
        assert!(coarse_values_valid(&v));
        assert_eq!(v[0], 2, "mean of 0, 1, 2, 3 is 1.5, rounded half up");
        assert_eq!(v[15], -1, "mean of -1 and -2 is -1.5, rounded half up");
        assert_eq!(v[7], 124, "mean of 127 and 120 is 123.5");
        assert_eq!(v[8], -127);
        assert_eq!(v[3], 56, "an empty bucket gets its middle");
        // A coarse weight is within its bucket: at most 15 away from the exact one.
        let mut dst = vec![0u8; w.len()];
        let raw: Vec<u8> = w.iter().map(|&x| x as u8).collect();
        apply_high(&encode_high(&raw), &mut dst, &v, |_| false);
        for (c, x) in dst.iter().zip(&w) {
            assert!(((*c as i8) as i32 - *x as i32).abs() <= 15);
        }
    }

    #[test]
    fn invalid_coarse_values_are_detected() {
        let mut v = coarse_values(&[0, 1, 2]);
        assert!(coarse_values_valid(&v));
        v[0] = 16; // bucket 1's value in bucket 0: the refinement would be wrong
        assert!(!coarse_values_valid(&v));
    }
}
