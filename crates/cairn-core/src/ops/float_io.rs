//! The generic f16 path: ops without an f16 kernel read f16 inputs as f32, compute in f32
//! and round the result to f16 once at the end (docs/adr/0014-f16-compute.md). f32 inputs
//! are borrowed, never copied.

use crate::{DType, DataMut, DataRef, Error, Result, TensorMut, TensorRef};
use half::{bf16, f16};
use std::borrow::Cow;

/// A float tensor's values as f32: borrowed for f32, widened for f16.
pub(crate) fn f32_values<'a>(t: &TensorRef<'a>, op: &str) -> Result<Cow<'a, [f32]>> {
    match t.data {
        DataRef::F32(v) => Ok(Cow::Borrowed(v)),
        DataRef::F16(v) => Ok(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
        DataRef::BF16(v) => Ok(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
        other => Err(Error::shape(op, format!("expects f32, f16 or bf16 tensors, got {}", other.dtype()))),
    }
}

/// Runs `compute` on an f32 buffer for `out`: the output itself when it is f32, else a
/// scratch buffer rounded into the f16 output afterwards.
pub(crate) fn write_f32(out: &mut TensorMut, op: &str, compute: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
    match &mut out.data {
        DataMut::F32(v) => compute(v),
        DataMut::F16(v) => {
            let mut wide = vec![0.0f32; v.len()];
            compute(&mut wide)?;
            v.iter_mut().zip(&wide).for_each(|(d, &s)| *d = f16::from_f32(s));
            Ok(())
        }
        DataMut::BF16(v) => {
            let mut wide = vec![0.0f32; v.len()];
            compute(&mut wide)?;
            v.iter_mut().zip(&wide).for_each(|(d, &s)| *d = bf16::from_f32(s));
            Ok(())
        }
        other => Err(Error::shape(op, format!("writes f32, f16 or bf16 tensors, got {}", other.dtype()))),
    }
}

/// True for the half-precision dtypes this path widens (f16, bf16).
pub(crate) fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// Checks that a dtype is one the f16-through-f32 path handles.
pub(crate) fn check_float(dtype: DType, op: &str) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::shape(op, format!("is implemented for f32 and f16, got {dtype}")))
    }
}
