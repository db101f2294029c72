//! Tensor values as JSON, both ways, exactly.
//!
//! A JSON number is read as written: integers stay integers (`i64`/`u64`, never through
//! `f64`), so an int64 id of any size sent as a JSON number arrives intact. JavaScript cannot
//! write integers beyond 2^53 as numbers, so integer elements may also be decimal strings
//! (`"9007199254740993"`), and float elements the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"` (JSON has no literal for them). Bool elements are `true`/`false` or 0/1.
//!
//! Outputs mirror this: int64/uint64 values beyond ±2^53 are written as decimal strings (the
//! rest as numbers), non-finite floats as those three strings, f16/bf16 as their exact values.
//! A JavaScript client reads any int64 element with `BigInt(x)`, whichever form it has.

use cairn_core::{DType, Tensor, TensorData};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Largest integer magnitude every JSON reader holds exactly (a double's 53-bit mantissa).
const EXACT: u64 = 1 << 53;

/// One element of a tensor's `data` array, as the JSON said it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elem {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

/// `data`: a flat array of elements, read without an intermediate `serde_json::Value`
/// (an image is ~150k of them).
#[derive(Debug, Default)]
pub struct Data(pub Vec<Elem>);

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        struct Seq;
        impl<'de> Visitor<'de> for Seq {
            type Value = Data;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a flat array of numbers (integers beyond 2^53 may be decimal strings)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
                // The size hint is the caller's claim; cap what it may reserve up front.
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(e) = seq.next_element::<Elem>()? {
                    v.push(e);
                }
                Ok(Data(v))
            }
        }
        d.deserialize_seq(Seq)
    }
}

impl<'de> Deserialize<'de> for Elem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Elem, D::Error> {
        struct One;
        impl Visitor<'_> for One {
            type Value = Elem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a decimal integer string, \"NaN\", \"Infinity\", \"-Infinity\" or a boolean")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Elem, E> {
                Ok(Elem::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Elem, E> {
                Ok(Elem::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Elem, E> {
                Ok(Elem::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Elem, E> {
                Ok(Elem::Bool(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Elem, E> {
                match s {
                    "NaN" => return Ok(Elem::Float(f64::NAN)),
                    "Infinity" => return Ok(Elem::Float(f64::INFINITY)),
                    "-Infinity" => return Ok(Elem::Float(f64::NEG_INFINITY)),
                    _ => {}
                }
                if let Ok(v) = s.parse::<i64>() {
                    Ok(Elem::Int(v))
                } else if let Ok(v) = s.parse::<u64>() {
                    Ok(Elem::UInt(v))
                } else {
                    Err(E::custom(format!("the string {s:?} is not a decimal integer (nor NaN/Infinity/-Infinity)")))
                }
            }
        }
        d.deserialize_any(One)
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Elem::Int(v) => write!(f, "{v}"),
            Elem::UInt(v) => write!(f, "{v}"),
            Elem::Float(v) => write!(f, "{v}"),
            Elem::Bool(v) => write!(f, "{v}"),
        }
    }
}

impl Elem {
    /// The element as an exact integer: integer forms, bools, and whole floats up to 2^53
    /// (a larger float may already have been rounded by the client's JSON writer).
    fn integer(self) -> Option<i128> {
        match self {
            Elem::Int(v) => Some(v.into()),
            Elem::UInt(v) => Some(v.into()),
            Elem::Float(v) if v.fract() == 0.0 && v.abs() <= EXACT as f64 => Some(v as i128),
            Elem::Float(_) => None,
            Elem::Bool(b) => Some(b.into()),
        }
    }

    fn float(self) -> Option<f64> {
        match self {
            Elem::Int(v) => Some(v as f64),
            Elem::UInt(v) => Some(v as f64),
            Elem::Float(v) => Some(v),
            Elem::Bool(_) => None,
        }
    }
}

/// The elements as `dtype`, each checked: integers whole and in range, bools 0/1.
pub fn to_tensor_data(dtype: DType, v: &[Elem]) -> Result<TensorData, String> {
    fn ints<T: TryFrom<i128>>(dtype: DType, v: &[Elem]) -> Result<Vec<T>, String> {
        v.iter()
            .enumerate()
            .map(|(i, e)| {
                let whole = e.integer().ok_or_else(|| match e {
                    Elem::Float(f) if f.fract() == 0.0 => {
                        format!("element {i} ({e}) is beyond 2^53 as a JSON float: send {} values past 2^53 as strings", dtype.name())
                    }
                    _ => format!("element {i} ({e}) is not a whole number, as {} needs", dtype.name()),
                })?;
                T::try_from(whole).map_err(|_| format!("element {i} ({e}) is out of the {} range", dtype.name()))
            })
            .collect()
    }
    fn floats(dtype: DType, v: &[Elem]) -> Result<Vec<f64>, String> {
        v.iter()
            .enumerate()
            .map(|(i, e)| e.float().ok_or_else(|| format!("element {i} ({e}) is a boolean, not a {} value", dtype.name())))
            .collect()
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(floats(dtype, v)?.into_iter().map(|x| x as f32).collect()),
        DType::F64 => TensorData::F64(floats(dtype, v)?),
        DType::F16 => TensorData::F16(floats(dtype, v)?.into_iter().map(half::f16::from_f64).collect()),
        DType::BF16 => TensorData::BF16(floats(dtype, v)?.into_iter().map(half::bf16::from_f64).collect()),
        DType::I8 => TensorData::I8(ints(dtype, v)?),
        DType::U8 => TensorData::U8(ints(dtype, v)?),
        DType::I16 => TensorData::I16(ints(dtype, v)?),
        DType::U16 => TensorData::U16(ints(dtype, v)?),
        DType::I32 => TensorData::I32(ints(dtype, v)?),
        DType::U32 => TensorData::U32(ints(dtype, v)?),
        DType::I64 => TensorData::I64(ints(dtype, v)?),
        DType::U64 => TensorData::U64(ints(dtype, v)?),
        DType::Bool => {
            let bytes: Vec<u8> = ints(dtype, v)?;
            if let Some(i) = bytes.iter().position(|&b| b > 1) {
                return Err(format!("element {i} ({}) is not a bool: send true/false or 0/1", bytes[i]));
            }
            TensorData::Bool(bytes)
        }
        narrow => return Err(format!("{narrow} inputs are not accepted as JSON (send f32 and cast in the model)")),
    })
}

/// One tensor as `{"dtype", "shape", "data"}`, exact (see the module comment).
pub fn tensor_json(t: &Tensor) -> serde_json::Value {
    let data: Vec<serde_json::Value> = match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| float(x.into())).collect(),
        TensorData::F64(v) => v.iter().map(|&x| float(x)).collect(),
        TensorData::F16(v) => v.iter().map(|x| float(x.to_f64())).collect(),
        TensorData::BF16(v) => v.iter().map(|x| float(x.to_f64())).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::I16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::U16(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::U32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::I64(v) => v.iter().map(|&x| if x.unsigned_abs() > EXACT { x.to_string().into() } else { x.into() }).collect(),
        TensorData::U64(v) => v.iter().map(|&x| if x > EXACT { x.to_string().into() } else { x.into() }).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| (x != 0).into()).collect(),
        TensorData::Narrow(d, v) => v.iter().map(|&b| float(cairn_core::narrow::decode(*d, b))).collect(),
    };
    serde_json::json!({ "dtype": t.dtype().name(), "shape": t.shape(), "data": data })
}

/// A float as a JSON number; NaN and the infinities (no JSON literal) as strings.
fn float(x: f64) -> serde_json::Value {
    if x.is_finite() {
        // f32 values go through f64 exactly; serde_json prints the shortest f64 form.
        serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
    } else if x.is_nan() {
        "NaN".into()
    } else if x > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> Vec<Elem> {
        serde_json::from_str::<Data>(json).unwrap().0
    }

    #[test]
    fn int64_beyond_2_53_is_exact_as_a_number_and_as_a_string() {
        let v = data(r#"[9007199254740993, "9007199254740993", "-9223372036854775808", 18446744073709551615]"#);
        let t = to_tensor_data(DType::I64, &v[..3]).unwrap();
        assert_eq!(t, TensorData::I64(vec![9_007_199_254_740_993, 9_007_199_254_740_993, i64::MIN]));
        assert_eq!(to_tensor_data(DType::U64, &v[3..]).unwrap(), TensorData::U64(vec![u64::MAX]));
        let err = to_tensor_data(DType::I64, &v[3..]).unwrap_err();
        assert!(err.contains("element 0 (18446744073709551615) is out of the i64 range"), "{err}");
    }

    #[test]
    fn floats_where_integers_are_needed_and_bad_bools_are_named() {
        let err = to_tensor_data(DType::I32, &data("[1, 2.5]")).unwrap_err();
        assert!(err.contains("element 1 (2.5) is not a whole number"), "{err}");
        let err = to_tensor_data(DType::I64, &data("[1e17]")).unwrap_err();
        assert!(err.contains("beyond 2^53 as a JSON float"), "{err}");
        assert_eq!(to_tensor_data(DType::U8, &data("[255, 3.0]")).unwrap(), TensorData::U8(vec![255, 3]));
        assert!(to_tensor_data(DType::U8, &data("[256]")).unwrap_err().contains("out of the u8 range"));
        assert!(to_tensor_data(DType::I8, &data("[-129]")).unwrap_err().contains("out of the i8 range"));
        assert_eq!(to_tensor_data(DType::Bool, &data("[true, 0, 1, false]")).unwrap(), TensorData::Bool(vec![1, 0, 1, 0]));
        assert!(to_tensor_data(DType::Bool, &data("[2]")).unwrap_err().contains("not a bool"));
        assert!(to_tensor_data(DType::F32, &data("[true]")).unwrap_err().contains("a boolean"));
        assert!(serde_json::from_str::<Data>(r#"["12x"]"#).unwrap_err().to_string().contains("not a decimal integer"));
        assert!(serde_json::from_str::<Data>(r#"[[1]]"#).is_err());
    }

    #[test]
    fn outputs_round_trip_through_their_json_form() {
        let big = Tensor::new(vec![3], TensorData::I64(vec![1 << 53, (1 << 53) + 1, -(1 << 60)])).unwrap();
        let j = tensor_json(&big);
        assert_eq!(j["data"], serde_json::json!([9007199254740992i64, "9007199254740993", "-1152921504606846976"]));
        let back: Data = serde_json::from_value(j["data"].clone()).unwrap();
        assert_eq!(to_tensor_data(DType::I64, &back.0).unwrap(), *big.data());
        let f = Tensor::new(vec![4], TensorData::F32(vec![0.1, f32::NAN, f32::NEG_INFINITY, -2.5])).unwrap();
        let j = tensor_json(&f);
        assert_eq!(j["data"][1], "NaN");
        let back = to_tensor_data(DType::F32, &serde_json::from_value::<Data>(j["data"].clone()).unwrap().0).unwrap();
        let TensorData::F32(b) = back else { unreachable!() };
        assert_eq!((b[0], b[2], b[3]), (0.1, f32::NEG_INFINITY, -2.5));
        assert!(b[1].is_nan());
        let h = Tensor::new(vec![1], TensorData::F16(vec![half::f16::from_f32(0.333)])).unwrap();
        let j = tensor_json(&h);
        assert_eq!((j["dtype"].as_str(), j["data"][0].as_f64()), (Some("f16"), Some(half::f16::from_f32(0.333).to_f64())));
        let m = Tensor::new(vec![2], TensorData::Bool(vec![1, 0])).unwrap();
        assert_eq!(tensor_json(&m)["data"], serde_json::json!([true, false]));
    }
}
