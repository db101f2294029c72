//! Cast and CastLike between Cairn's dtypes.

use crate::{required, DType, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use half::f16;

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

/// Converts every element: integers and bools through i64, floats through f32
/// (float to integer truncates toward zero and saturates, like Rust's `as`).
pub(crate) fn convert(src: DataRef, dst: &mut DataMut) -> Result<()> {
    if src.dtype() == dst.dtype() {
        return dst.copy_from(src);
    }
    match src {
        DataRef::F32(_) | DataRef::F16(_) => {
            let v: Vec<f32> = TensorRef { shape: &[], data: src }.to_f32_vec();
            write_floats(&v, dst);
        }
        _ => {
            let v: Vec<i64> = match src {
                DataRef::I8(s) => s.iter().map(|&x| x as i64).collect(),
                DataRef::U8(s) | DataRef::Bool(s) => s.iter().map(|&x| x as i64).collect(),
                DataRef::I32(s) => s.iter().map(|&x| x as i64).collect(),
                DataRef::I64(s) => s.to_vec(),
                _ => return Err(Error::shape("Cast", "unreachable source dtype")),
            };
            match dst {
                DataMut::F32(d) => d.iter_mut().zip(&v).for_each(|(d, &x)| *d = x as f32),
                DataMut::F16(d) => d.iter_mut().zip(&v).for_each(|(d, &x)| *d = f16::from_f32(x as f32)),
                DataMut::I8(d) => d.iter_mut().zip(&v).for_each(|(d, &x)| *d = x as i8),
                DataMut::U8(d) => d.iter_mut().zip(&v).for_each(|(d, &x)| *d = x as u8),
                DataMut::I32(d) => d.iter_mut().zip(&v).for_each(|(d, &x)| *d = x as i32),
                DataMut::I64(d) => d.copy_from_slice(&v),
                DataMut::Bool(d) => d.iter_mut().zip(&v).for_each(|(d, &x)| *d = (x != 0) as u8),
            }
        }
    }
    Ok(())
}

fn write_floats(v: &[f32], dst: &mut DataMut) {
    match dst {
        DataMut::F32(d) => d.copy_from_slice(v),
        DataMut::F16(d) => d.iter_mut().zip(v).for_each(|(d, &x)| *d = f16::from_f32(x)),
        DataMut::I8(d) => d.iter_mut().zip(v).for_each(|(d, &x)| *d = x as i8),
        DataMut::U8(d) => d.iter_mut().zip(v).for_each(|(d, &x)| *d = x as u8),
        DataMut::I32(d) => d.iter_mut().zip(v).for_each(|(d, &x)| *d = x as i32),
        DataMut::I64(d) => d.iter_mut().zip(v).for_each(|(d, &x)| *d = x as i64),
        DataMut::Bool(d) => d.iter_mut().zip(v).for_each(|(d, &x)| *d = (x != 0.0) as u8),
    }
}
