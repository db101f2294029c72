//! The narrow dtypes ONNX defines for quantized weights: float8 (E4M3FN, E4M3FNUZ, E5M2,
//! E5M2FNUZ, E8M0), float4 (E2M1) and 2/4-bit integers. In memory each element is one byte
//! holding its bit pattern (sub-byte values unpacked, integers sign-extended), so every
//! data-movement kernel handles them as bytes; files pack them (docs/adr/0021).
//! Conversions follow what onnx's reference computes (ml_dtypes): floats round to nearest
//! even; float to 2/4-bit integer truncates toward zero and gives 0 out of range.

use crate::DType;

/// Bit layout of a narrow float: exponent and mantissa widths, bias, and how it spells
/// infinity and NaN.
#[derive(Clone, Copy)]
struct Layout {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    special: Special,
}

#[derive(Clone, Copy, PartialEq)]
enum Special {
    /// IEEE-like: all-ones exponent is infinity (mantissa 0) or NaN (E5M2).
    Ieee,
    /// No infinity; all-ones exponent and mantissa is NaN (E4M3FN).
    Fn,
    /// No infinity, no negative zero; 0x80 is NaN (the FNUZ types).
    Fnuz,
    /// No infinity and no NaN (E2M1).
    None,
}

fn layout(dtype: DType) -> Option<Layout> {
    let l = |exp_bits, man_bits, bias, special| Some(Layout { exp_bits, man_bits, bias, special });
    match dtype {
        DType::F8E4M3FN => l(4, 3, 7, Special::Fn),
        DType::F8E4M3FNUZ => l(4, 3, 8, Special::Fnuz),
        DType::F8E5M2 => l(5, 2, 15, Special::Ieee),
        DType::F8E5M2FNUZ => l(5, 2, 16, Special::Fnuz),
        DType::F4E2M1 => l(2, 1, 1, Special::None),
        _ => None,
    }
}

/// (min, max) of a narrow integer dtype.
pub fn int_range(dtype: DType) -> Option<(i64, i64)> {
    match dtype {
        DType::I4 => Some((-8, 7)),
        DType::U4 => Some((0, 15)),
        DType::I2 => Some((-2, 1)),
        DType::U2 => Some((0, 3)),
        _ => None,
    }
}

/// Bits per element in a file.
pub fn bits(dtype: DType) -> usize {
    match dtype {
        DType::I4 | DType::U4 | DType::F4E2M1 => 4,
        DType::I2 | DType::U2 => 2,
        _ => 8,
    }
}

/// The value of one element.
pub fn decode(dtype: DType, b: u8) -> f64 {
    if let Some((lo, _)) = int_range(dtype) {
        return if lo < 0 { sign_extend(b, bits(dtype)) as f64 } else { b as f64 };
    }
    if dtype == DType::F8E8M0 {
        return if b == 0xFF { f64::NAN } else { 2f64.powi(b as i32 - 127) };
    }
    let Some(l) = layout(dtype) else { return f64::NAN };
    let width = 1 + l.exp_bits + l.man_bits;
    let sign = if b >> (width - 1) & 1 == 1 { -1.0 } else { 1.0 };
    let exp = (b >> l.man_bits) as u32 & ((1 << l.exp_bits) - 1);
    let man = b as u32 & ((1 << l.man_bits) - 1);
    let exp_max = (1 << l.exp_bits) - 1;
    match l.special {
        Special::Fnuz if b == 0x80 => return f64::NAN,
        Special::Fn if exp == exp_max && man == (1 << l.man_bits) - 1 => return f64::NAN,
        Special::Ieee if exp == exp_max => return if man == 0 { sign * f64::INFINITY } else { f64::NAN },
        _ => {}
    }
    let frac = man as f64 / (1u32 << l.man_bits) as f64;
    let magnitude = if exp == 0 { frac * 2f64.powi(1 - l.bias) } else { (1.0 + frac) * 2f64.powi(exp as i32 - l.bias) };
    sign * magnitude
}

fn sign_extend(b: u8, bits: usize) -> i8 {
    let shift = 8 - bits as u32;
    ((b << shift) as i8) >> shift
}

/// The largest finite value of a narrow float layout.
fn max_finite(dtype: DType, l: Layout) -> f64 {
    let exp_max = (1u32 << l.exp_bits) - 1;
    let (exp, man) = match l.special {
        Special::Ieee => (exp_max - 1, (1 << l.man_bits) - 1),
        Special::Fn => (exp_max, (1 << l.man_bits) - 2),
        Special::Fnuz | Special::None => (exp_max, (1 << l.man_bits) - 1),
    };
    decode(dtype, ((exp << l.man_bits) | man) as u8)
}

/// Encodes a float as a narrow float, rounding to nearest even. Out of range: the largest
/// finite value when `saturate` (always for E2M1, which has no infinity or NaN), else
/// infinity (E5M2) or NaN. E8M0 follows onnx's `to_float8e8m0` (`round_mode`: up, down, nearest).
pub fn encode_float(dtype: DType, x: f64, saturate: bool, round_mode: RoundMode) -> u8 {
    if dtype == DType::F8E8M0 {
        return encode_e8m0(x as f32, saturate, round_mode);
    }
    let l = layout(dtype).expect("encode_float takes a narrow float dtype");
    let width = 1 + l.exp_bits + l.man_bits;
    let sign_bit = 1u8 << (width - 1);
    let negative = x.is_sign_negative();
    let sign = if negative { sign_bit } else { 0 };
    let nan = match l.special {
        Special::Fnuz => 0x80,
        Special::Fn => sign | 0x7F,
        Special::Ieee => sign | 0x7E,
        // ml_dtypes writes E2M1's NaN as negative zero.
        Special::None => sign_bit,
    };
    if x.is_nan() {
        return nan;
    }
    let max = max_finite(dtype, l);
    let a = x.abs();
    let overflow = |a: f64| -> Option<u8> {
        if a <= max {
            return None;
        }
        let max_code = encode_magnitude(max, l);
        Some(if saturate || l.special == Special::None {
            sign | max_code
        } else if l.special == Special::Ieee {
            sign | ((((1u32 << l.exp_bits) - 1) << l.man_bits) as u8)
        } else {
            nan
        })
    };
    if a.is_infinite() {
        return overflow(a).expect("infinity is out of range");
    }
    // Round to the quantum of a's binade (subnormals share the smallest normal's quantum).
    let min_normal_exp = 1 - l.bias;
    let exp = if a == 0.0 { min_normal_exp } else { (a.log2().floor() as i32).max(min_normal_exp) };
    let quantum = 2f64.powi(exp - l.man_bits as i32);
    let rounded = (a / quantum).round_ties_even() * quantum;
    if let Some(code) = overflow(rounded) {
        return code;
    }
    let code = encode_magnitude(rounded, l);
    // The FNUZ types have no negative zero.
    if code == 0 && l.special == Special::Fnuz {
        0
    } else {
        sign | code
    }
}

/// The exponent/mantissa bits of a representable non-negative value.
fn encode_magnitude(a: f64, l: Layout) -> u8 {
    if a == 0.0 {
        return 0;
    }
    let min_normal_exp = 1 - l.bias;
    let exp = (a.log2().floor() as i32).max(min_normal_exp);
    let scaled = a / 2f64.powi(exp - l.man_bits as i32);
    let (field, man) =
        if a < 2f64.powi(min_normal_exp) { (0, scaled as u32) } else { ((exp + l.bias) as u32, scaled as u32 - (1 << l.man_bits)) };
    ((field << l.man_bits) | man) as u8
}

/// How Cast rounds to E8M0 (a power of two).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RoundMode {
    Up,
    Down,
    Nearest,
}

/// onnx's `to_float8e8m0`: the exponent field of the f32, rounded by the mantissa.
fn encode_e8m0(x: f32, saturate: bool, mode: RoundMode) -> u8 {
    let bits = x.to_bits();
    let exp = (bits >> 23) & 0xFF;
    if exp == 0xFF {
        return 0xFF;
    }
    let round_up = match mode {
        RoundMode::Down => false,
        RoundMode::Up => bits & 0x7F_FFFF != 0,
        RoundMode::Nearest => {
            let (g, r, s) = (bits & 0x40_0000 != 0, bits & 0x20_0000 != 0, bits & 0x1F_FFFF != 0);
            g && (r || s || exp > 0)
        }
    };
    let up = round_up && !(saturate && exp == 0xFE);
    (exp + up as u32) as u8
}

/// Encodes a float as a 2/4-bit integer: truncated toward zero, 0 when out of range or NaN.
pub fn encode_int_from_float(dtype: DType, x: f64) -> u8 {
    let (lo, hi) = int_range(dtype).expect("a narrow integer dtype");
    let t = x.trunc();
    if t.is_nan() || t < lo as f64 || t > hi as f64 {
        0
    } else {
        store_int(dtype, t as i64)
    }
}

/// Encodes an integer as a 2/4-bit integer, keeping its low bits (wrapping).
pub fn encode_int_wrapping(dtype: DType, v: i128) -> u8 {
    let b = bits(dtype);
    let low = (v as u8) & ((1u8 << b) - 1);
    if int_range(dtype).is_some_and(|(lo, _)| lo < 0) {
        sign_extend(low, b) as u8
    } else {
        low
    }
}

/// The byte of an in-range 2/4-bit integer (two's complement, sign-extended for the signed ones).
pub fn store_int(_dtype: DType, v: i64) -> u8 {
    v as i8 as u8
}

/// Packs one-byte elements into a file's bytes: sub-byte types low bits first, as ONNX stores them.
pub fn pack(dtype: DType, elements: &[u8]) -> Vec<u8> {
    let b = bits(dtype);
    if b == 8 {
        return elements.to_vec();
    }
    let per = 8 / b;
    let mask = (1u8 << b) - 1;
    elements.chunks(per).map(|c| c.iter().enumerate().fold(0u8, |acc, (i, &e)| acc | ((e & mask) << (i * b)))).collect()
}

/// Unpacks `n` elements from a file's bytes (the inverse of [`pack`]); `None` if the
/// bytes are not exactly what `n` elements need.
pub fn unpack(dtype: DType, bytes: &[u8], n: usize) -> Option<Vec<u8>> {
    let b = bits(dtype);
    if bytes.len() != packed_len(dtype, n) {
        return None;
    }
    if b == 8 {
        return Some(bytes.to_vec());
    }
    let per = 8 / b;
    let mask = (1u8 << b) - 1;
    let signed = int_range(dtype).is_some_and(|(lo, _)| lo < 0);
    Some(
        (0..n)
            .map(|i| {
                let v = (bytes[i / per] >> ((i % per) * b)) & mask;
                if signed {
                    sign_extend(v, b) as u8
                } else {
                    v
                }
            })
            .collect(),
    )
}

/// Bytes `n` packed elements take in a file.
pub fn packed_len(dtype: DType, n: usize) -> usize {
    (n * bits(dtype)).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code decodes and re-encodes to itself (NaNs to the canonical NaN).
    #[test]
    fn every_float_code_round_trips() {
        for dtype in [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ, DType::F4E2M1] {
            let codes = if bits(dtype) == 4 { 16 } else { 256 };
            for code in 0..codes {
                let v = decode(dtype, code as u8);
                if v.is_nan() || (dtype == DType::F8E4M3FNUZ || dtype == DType::F8E5M2FNUZ) && code == 0x80 {
                    continue;
                }
                assert_eq!(encode_float(dtype, v, false, RoundMode::Up), code as u8, "{dtype} code {code:#x} = {v}");
            }
        }
    }

    /// Values from ml_dtypes 0.7 (`np.float32(x).astype(...)`), the library onnx's reference uses.
    #[test]
    fn rounding_and_overflow_match_ml_dtypes() {
        let xs = [0.4, 0.5, 1.5, 2.5, -0.5, -1.7, 7.9, 8.0, -9.2, 100.0, 300.0, -300.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
        let want: [(DType, [u8; 15]); 5] = [
            (DType::F4E2M1, [1, 1, 3, 4, 9, 11, 7, 7, 15, 7, 7, 15, 7, 15, 8]),
            (DType::F8E4M3FN, [45, 48, 60, 66, 176, 190, 80, 80, 209, 108, 121, 249, 127, 255, 127]),
            (DType::F8E4M3FNUZ, [53, 56, 68, 74, 184, 198, 88, 88, 217, 116, 128, 128, 128, 128, 128]),
            (DType::F8E5M2, [54, 56, 62, 65, 184, 191, 72, 72, 201, 86, 93, 221, 124, 252, 126]),
            (DType::F8E5M2FNUZ, [58, 60, 66, 69, 188, 195, 76, 76, 205, 90, 97, 225, 128, 128, 128]),
        ];
        for (dtype, codes) in want {
            let got: Vec<u8> = xs.iter().map(|&x| encode_float(dtype, x as f32 as f64, false, RoundMode::Up)).collect();
            assert_eq!(got, codes, "{dtype}");
        }
        // Saturation clamps to the largest finite value (E5M2: 57344).
        assert_eq!(decode(DType::F8E5M2, encode_float(DType::F8E5M2, f64::INFINITY, true, RoundMode::Up)), 57344.0);
        assert_eq!(decode(DType::F8E4M3FNUZ, encode_float(DType::F8E4M3FNUZ, -300.0, true, RoundMode::Up)), -240.0);
    }

    #[test]
    fn narrow_integers_truncate_wrap_and_pack() {
        let xs = [-8.5, -9.0, 7.5, 8.0, -0.5];
        let got: Vec<i8> = xs.iter().map(|&x| encode_int_from_float(DType::I4, x) as i8).collect();
        assert_eq!(got, [-8, 0, 7, 0, 0]);
        assert_eq!(encode_int_wrapping(DType::I4, -20) as i8, -4);
        assert_eq!(encode_int_wrapping(DType::U4, 17), 1);
        let elements = [(-2i8) as u8, 1, 0, (-1i8) as u8, 1];
        let packed = pack(DType::I2, &elements);
        assert_eq!(packed.len(), 2);
        assert_eq!(unpack(DType::I2, &packed, 5).unwrap(), elements);
        assert!(unpack(DType::I2, &packed, 9).is_none());
    }
}
