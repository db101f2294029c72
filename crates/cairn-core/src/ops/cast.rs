//! Cast and CastLike between Cairn's dtypes.

use crate::narrow::{self, RoundMode};
use crate::{required, DType, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use half::{bf16, f16};

pub fn register(r: &mut Registry) {
    r.register("Cast", |ctx: &OpContext| {
        let to = ctx.int_req("to")?;
        if to == DType::Str.onnx_code() {
            return Ok(super::string_ops::cast_to_string());
        }
        let to = onnx_dtype(to).ok_or_else(|| ctx.unsupported("to", format!("ONNX data type {to} is not supported")))?;
        Ok(Box::new(Cast { to: Some(to), narrow: narrow_options(ctx)? }))
    });
    r.register("CastLike", |ctx| Ok(Box::new(Cast { to: None, narrow: narrow_options(ctx)? })));
}

/// How a float becomes a float8: `saturate` (default 1) clamps out-of-range values to the
/// largest finite one; `round_mode` (opset 24) is for E8M0 only.
#[derive(Clone, Copy, Debug)]
struct NarrowOptions {
    saturate: bool,
    round_mode: RoundMode,
}

fn narrow_options(ctx: &OpContext) -> Result<NarrowOptions> {
    let round_mode = match ctx.string("round_mode", "up")?.as_str() {
        "up" => RoundMode::Up,
        "down" => RoundMode::Down,
        "nearest" => RoundMode::Nearest,
        other => return Err(ctx.unsupported("round_mode", format!("'{other}' is not up, down or nearest"))),
    };
    Ok(NarrowOptions { saturate: ctx.int("saturate", 1)? != 0, round_mode })
}

/// ONNX `TensorProto.DataType` codes Cairn computes with.
pub(crate) fn onnx_dtype(code: i64) -> Option<DType> {
    Some(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        4 => DType::U16,
        5 => DType::I16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        17 => DType::F8E4M3FN,
        18 => DType::F8E4M3FNUZ,
        19 => DType::F8E5M2,
        20 => DType::F8E5M2FNUZ,
        21 => DType::U4,
        22 => DType::I4,
        23 => DType::F4E2M1,
        24 => DType::F8E8M0,
        25 => DType::U2,
        26 => DType::I2,
        _ => return None,
    })
}

#[derive(Debug)]
struct Cast {
    /// Target dtype; `None` for CastLike (taken from the second input).
    to: Option<DType>,
    narrow: NarrowOptions,
}

impl Op for Cast {
    fn op_type(&self) -> &str {
        if self.to.is_some() {
            "Cast"
        } else {
            "CastLike"
        }
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        let to = match self.to {
            Some(t) => t,
            None => required(inputs, 1, "CastLike")?.dtype,
        };
        Ok(vec![Fact::new(to, x.shape.clone())])
    }
    /// Cast from strings parses them (docs/adr/0031).
    fn takes_strings(&self) -> bool {
        true
    }
    /// Only a Cast to string makes strings (CastLike's target is a second input, which is a
    /// string only if something upstream made it one).
    fn makes_strings(&self) -> bool {
        self.to == Some(DType::Str)
    }
    fn eval(&self, inputs: &[Option<crate::Value>], cx: &crate::eager::EvalContext) -> Result<Vec<crate::Value>> {
        match (inputs.first(), self.to) {
            (Some(Some(crate::Value::Strings(s))), Some(to)) => {
                super::string_ops::parse_strings(s, to).map(|t| vec![crate::Value::tensor(t)])
            }
            _ if inputs.iter().flatten().any(|v| matches!(v, crate::Value::Strings(_))) => {
                Err(Error::shape("CastLike", "CastLike to or from strings is not implemented; use Cast with `to`"))
            }
            _ => crate::eager::eval_tensors(self, inputs, cx),
        }
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let out = &mut outputs[0].data;
        match out {
            DataMut::Narrow(to, d) if x.dtype() != *to => {
                narrow_from(x.data, *to, self.narrow, d);
                Ok(())
            }
            _ => convert(x.data, out),
        }
    }
}

/// Converts every element. Floats go through f64 (exact for every float dtype); integers
/// and bools through i128 (exact for every integer dtype), then narrow like C and numpy:
/// integer to integer wraps, float to integer truncates toward zero (saturating, as
/// Rust's `as`), anything to bool is `x != 0`, and f32/f64 to f16/bf16 round to nearest
/// even, as onnx's reference does.
pub(crate) fn convert(src: DataRef, dst: &mut DataMut) -> Result<()> {
    if src.dtype() == dst.dtype() {
        return dst.copy_from(src);
    }
    // Small integers to f32 directly (each is exact in f32, as through i128): the staging
    // vector below cost ~5 ns an element, and an int8 embedding gather casts its rows every run.
    fn widen<T: Copy>(s: &[T], d: &mut [f32], f: impl Fn(T) -> f32) -> Result<()> {
        d.iter_mut().zip(s).for_each(|(d, &x)| *d = f(x));
        Ok(())
    }
    match (src, &mut *dst) {
        (DataRef::I8(s), DataMut::F32(d)) => return widen(s, d, f32::from),
        (DataRef::U8(s), DataMut::F32(d)) => return widen(s, d, f32::from),
        (DataRef::I16(s), DataMut::F32(d)) => return widen(s, d, f32::from),
        (DataRef::U16(s), DataMut::F32(d)) => return widen(s, d, f32::from),
        _ => {}
    }
    if let DataMut::Narrow(to, d) = dst {
        narrow_from(src, *to, NarrowOptions { saturate: true, round_mode: RoundMode::Up }, d);
        return Ok(());
    }
    if let DataRef::Narrow(from, s) = src {
        // Narrow integers convert like the other integers; narrow floats like floats.
        if narrow::int_range(from).is_some() {
            let v: Vec<i128> = s.iter().map(|&b| narrow::decode(from, b) as i128).collect();
            write_ints(&v, dst);
        } else {
            let v: Vec<f64> = s.iter().map(|&b| narrow::decode(from, b)).collect();
            write_floats(&v, dst);
        }
        return Ok(());
    }
    if src.dtype().is_float() {
        let v: Vec<f64> = match src {
            DataRef::F64(s) => s.to_vec(),
            other => TensorRef { shape: &[], data: other }.to_f32_vec().into_iter().map(f64::from).collect(),
        };
        write_floats(&v, dst);
        return Ok(());
    }
    let v: Vec<i128> = match src {
        DataRef::I8(s) => s.iter().map(|&x| x as i128).collect(),
        DataRef::U8(s) | DataRef::Bool(s) => s.iter().map(|&x| x as i128).collect(),
        DataRef::I16(s) => s.iter().map(|&x| x as i128).collect(),
        DataRef::U16(s) => s.iter().map(|&x| x as i128).collect(),
        DataRef::I32(s) => s.iter().map(|&x| x as i128).collect(),
        DataRef::U32(s) => s.iter().map(|&x| x as i128).collect(),
        DataRef::I64(s) => s.iter().map(|&x| x as i128).collect(),
        DataRef::U64(s) => s.iter().map(|&x| x as i128).collect(),
        other => return Err(Error::shape("Cast", format!("cannot convert from {}", other.dtype()))),
    };
    write_ints(&v, dst);
    Ok(())
}

macro_rules! narrow_into {
    ($v:expr, $dst:expr, $x:ident => $float:expr, $int:ty) => {
        match $dst {
            DataMut::F32(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $float as f32),
            DataMut::F64(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $float as f64),
            DataMut::F16(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = f16::from_f64($float as f64)),
            DataMut::BF16(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = bf16::from_f64($float as f64)),
            DataMut::I8(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as i8),
            DataMut::U8(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as u8),
            DataMut::I16(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as i16),
            DataMut::U16(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as u16),
            DataMut::I32(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as i32),
            DataMut::U32(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as u32),
            DataMut::I64(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as i64),
            DataMut::U64(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = $x as $int as u64),
            DataMut::Bool(d) => d.iter_mut().zip($v).for_each(|(d, &$x)| *d = ($float != 0.0) as u8),
            // Callers route narrow destinations to `narrow_from`.
            DataMut::Narrow(..) => {}
        }
    };
}

/// Converts into a narrow dtype: floats round (and saturate) as onnx's reference does;
/// integers and bools wrap into 2/4-bit integers or become the nearest narrow float.
fn narrow_from(src: DataRef, to: DType, opts: NarrowOptions, dst: &mut [u8]) {
    let from_float = src.dtype().is_float() || matches!(src, DataRef::Narrow(d, _) if narrow::int_range(d).is_none());
    let values = TensorRef { shape: &[], data: src }.to_f64_vec();
    for (d, &x) in dst.iter_mut().zip(&values) {
        *d = match narrow::int_range(to) {
            Some(_) if from_float => narrow::encode_int_from_float(to, x),
            Some(_) => narrow::encode_int_wrapping(to, x as i128),
            None => narrow::encode_float(to, x, opts.saturate, opts.round_mode),
        };
    }
}

/// Float to integer goes through i128 so that it saturates at the i128 range and then
/// wraps like a C cast of an in-range value (numpy's result on x86 for in-range floats).
fn write_floats(v: &[f64], dst: &mut DataMut) {
    narrow_into!(v, dst, x => x, i128)
}

fn write_ints(v: &[i128], dst: &mut DataMut) {
    narrow_into!(v, dst, x => (x as f64), i128)
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor, TensorData};

    #[test]
    fn converts_between_the_wide_and_narrow_dtypes() {
        let x = Tensor::new(vec![4], TensorData::F64(vec![1.5, -2.75, 300.0, 1e-9])).unwrap();
        // Float to integer truncates toward zero; out-of-range integers wrap like C.
        assert_eq!(x.cast(DType::I32).unwrap().data(), &TensorData::I32(vec![1, -2, 300, 0]));
        assert_eq!(x.cast(DType::U8).unwrap().data(), &TensorData::U8(vec![1, 254, 44, 0]));
        assert_eq!(x.cast(DType::Bool).unwrap().data(), &TensorData::Bool(vec![1, 1, 1, 1]));
        let bf = x.cast(DType::BF16).unwrap().cast(DType::F32).unwrap();
        assert_eq!(bf.f32s().unwrap()[..3], [1.5, -2.75, 300.0]);
        let big = Tensor::new(vec![2], TensorData::U64(vec![u64::MAX, 7])).unwrap();
        assert_eq!(big.cast(DType::I64).unwrap().data(), &TensorData::I64(vec![-1, 7]));
        assert_eq!(big.cast(DType::U16).unwrap().data(), &TensorData::U16(vec![u16::MAX, 7]));
    }
}
