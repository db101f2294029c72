//! Cast and CastLike between Cairn's dtypes.

use crate::{required, DType, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use half::{bf16, f16};

pub fn register(r: &mut Registry) {
    r.register("Cast", |ctx: &OpContext| {
        ctx.ignore("saturate"); // only meaningful for float8 targets, which Cairn rejects
        let to = ctx.int_req("to")?;
        Ok(Box::new(Cast {
            to: Some(onnx_dtype(to).ok_or_else(|| ctx.unsupported("to", format!("ONNX data type {to} is not supported")))?),
        }))
    });
    r.register("CastLike", |ctx| {
        ctx.ignore("saturate");
        Ok(Box::new(Cast { to: None }))
    });
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
        _ => return None,
    })
}

#[derive(Debug)]
struct Cast {
    /// Target dtype; `None` for CastLike (taken from the second input).
    to: Option<DType>,
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
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        convert(x.data, &mut outputs[0].data)
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
        }
    };
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
