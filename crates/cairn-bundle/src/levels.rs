//! Progressive levels without redundant bytes.
//!
//! An f32 weight is sent as two 16-bit halves in two levels: first its bfloat16
//! rounding (the high half, rounded to nearest), then the signed difference between
//! the exact bits and that rounding. The coarse level runs on its own with bf16
//! weights (about 3 significant digits); adding the residual restores the f32 bit
//! for bit. Both steps are wrapping additions into the zero-initialised weight
//! bits, so they commute and a loader never needs the halves side by side.

use crate::manifest::Encoding;
use crate::nibbles::CoarseValues;

/// Splits f32 bits into (bf16 rounded to nearest, residual): `(hi << 16) + residual == bits`.
pub fn split_f32(bits: u32) -> (u16, i16) {
    let hi = (bits.wrapping_add(0x8000) >> 16) as u16;
    let residual = bits.wrapping_sub((hi as u32) << 16) as i32 as i16;
    (hi, residual)
}

/// The bytes a part stores for elements of an f32 tensor given as raw little-endian bytes.
pub fn encode(encoding: Encoding, raw: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::Raw => raw.to_vec(),
        Encoding::I8High4 => crate::nibbles::encode_high(raw),
        Encoding::I8Low4 => crate::nibbles::encode_low(raw),
        Encoding::F32Bf16 | Encoding::F32Residual16 => raw
            .chunks_exact(4)
            .flat_map(|c| {
                let (hi, residual) = split_f32(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                if encoding == Encoding::F32Bf16 {
                    hi.to_le_bytes()
                } else {
                    residual.to_le_bytes()
                }
            })
            .collect(),
    }
}

/// What placing coarse int8 nibbles needs besides the bytes: the tensor's coarse values
/// and which of the part's elements the refinement has already completed.
pub struct CoarseContext<'a> {
    pub values: &'a CoarseValues,
    pub refined: &'a dyn Fn(usize) -> bool,
}

/// Places a part's stored bytes into the destination weight bytes (already sized to the part).
pub fn apply(encoding: Encoding, src: &[u8], dst: &mut [u8], coarse: &CoarseContext) {
    match encoding {
        Encoding::Raw => dst.copy_from_slice(src),
        Encoding::I8Low4 => crate::nibbles::apply_low(src, dst),
        Encoding::I8High4 => crate::nibbles::apply_high(src, dst, coarse.values, coarse.refined),
        Encoding::F32Bf16 | Encoding::F32Residual16 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
                let half = u16::from_le_bytes([s[0], s[1]]);
                let add = if encoding == Encoding::F32Bf16 { (half as u32) << 16 } else { half as i16 as i32 as u32 };
                let bits = u32::from_le_bytes([d[0], d[1], d[2], d[3]]).wrapping_add(add);
                d.copy_from_slice(&bits.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TABLE: CoarseContext = CoarseContext { values: &[0; 16], refined: &|_| false };

    #[test]
    fn halves_restore_every_bit_pattern_class() {
        let samples = [0.0f32, -0.0, 1.0, -1.0, 0.1, -3.7e-5, 1.0e30, f32::MAX, f32::MIN_POSITIVE, 1e-45, f32::INFINITY, f32::NAN];
        let mut bits: Vec<u32> = samples.iter().map(|f| f.to_bits()).collect();
        bits.extend([0x7fff_ffff, 0xffff_ffff, 0x0000_8000, 0x3f80_8000, 0x3f80_7fff, 0xffff_8000]);
        for b in bits {
            let raw = b.to_le_bytes();
            let mut dst = [0u8; 4];
            // Either order: the two additions commute.
            apply(Encoding::F32Residual16, &encode(Encoding::F32Residual16, &raw), &mut dst, &NO_TABLE);
            apply(Encoding::F32Bf16, &encode(Encoding::F32Bf16, &raw), &mut dst, &NO_TABLE);
            assert_eq!(u32::from_le_bytes(dst), b, "bits {b:#x}");
        }
    }

    #[test]
    fn coarse_level_is_bf16_rounded_to_nearest() {
        #[allow(clippy::approx_constant)] // arbitrary values, not the constants
        for &v in &[0.1f32, 3.14159, -2.71828, 123456.0, 1e-3] {
            let mut dst = [0u8; 4];
            apply(Encoding::F32Bf16, &encode(Encoding::F32Bf16, &v.to_le_bytes()), &mut dst, &NO_TABLE);
            let coarse = f32::from_le_bytes(dst);
            assert!(((coarse - v) / v).abs() <= 1.0 / 256.0, "{v} -> {coarse}");
        }
    }
}
