//! What the quantized operators share: reading scale and zero-point inputs, the
//! output quantization, biases in integer or real units, and typed views for the
//! int8 kernels.

use crate::{bail_shape, DType, DataMut, DataRef, Result, TensorRef};
use cairn_kernels::qgemm::{QOut, Q8};

/// What a quantized op writes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum QOutSpec {
    /// Raw accumulators (`ConvInteger`, `MatMulInteger`).
    I32,
    /// Real values (a QDQ conv whose output is not quantized again, e.g. the logits).
    F32,
    /// Requantized to u8 or i8 with this scale and zero point.
    Q { dtype: DType, scale: f32, zero: i32 },
}

impl QOutSpec {
    pub fn dtype(&self) -> DType {
        match self {
            QOutSpec::I32 => DType::I32,
            QOutSpec::F32 => DType::F32,
            QOutSpec::Q { dtype, .. } => *dtype,
        }
    }
    pub fn scale_zero(&self) -> (f32, i32) {
        match self {
            QOutSpec::Q { scale, zero, .. } => (*scale, *zero),
            _ => (1.0, 0),
        }
    }
}

/// A bias per output channel: i32 in accumulator units (scale `x_scale * w_scale[c]`,
/// as `QLinearConv` stores it) or real values.
#[derive(Clone, Debug)]
pub(crate) enum Bias {
    Int(Vec<i32>),
    Real(Vec<f32>),
}

impl Bias {
    pub fn len(&self) -> usize {
        match self {
            Bias::Int(v) => v.len(),
            Bias::Real(v) => v.len(),
        }
    }
    /// The bias as the int8 epilogue takes it (`QEpilogue::bias`, `QEpilogue::acc_bias`): an
    /// integer bias stays in accumulator units and is added to the i32 accumulator exactly,
    /// as XNNPACK (the TFLite interpreter's default kernels) and the ONNX reference add it;
    /// a real one is scaled in f32.
    pub fn parts(&self) -> (Option<&[f32]>, Option<&[i32]>) {
        match self {
            Bias::Real(v) => (Some(v), None),
            Bias::Int(v) => (None, Some(v)),
        }
    }
}

/// An 8-bit input as the kernels take it.
pub(crate) fn q8<'a>(t: TensorRef<'a>, op: &str) -> Result<Q8<'a>> {
    match t.data {
        DataRef::U8(v) => Ok(Q8::U8(v)),
        DataRef::I8(v) => Ok(Q8::I8(v)),
        other => bail_shape!(op, "expects u8 or i8 data, got {}", other.dtype()),
    }
}

/// `len` elements of an output from `off`, as the kernels write them.
pub(crate) fn q8_out<'a>(d: &'a mut DataMut<'_>, off: usize, len: usize, op: &str) -> Result<QOut<'a>> {
    Ok(match d {
        DataMut::U8(v) => QOut::U8(&mut v[off..off + len]),
        DataMut::I8(v) => QOut::I8(&mut v[off..off + len]),
        DataMut::I32(v) => QOut::I32(&mut v[off..off + len]),
        DataMut::F32(v) => QOut::F32(&mut v[off..off + len]),
        other => bail_shape!(op, "cannot write {} output", other.dtype()),
    })
}

/// A per-tensor scale: one positive finite value.
pub(crate) fn scalar_f32(t: TensorRef, op: &str) -> Result<f32> {
    let v = t.to_f32_vec();
    match v.as_slice() {
        [s] if s.is_finite() && *s > 0.0 => Ok(*s),
        [s] => bail_shape!(op, "scale must be positive and finite, got {s}"),
        _ => bail_shape!(op, "expects a per-tensor scale (one value), got {} values", v.len()),
    }
}

/// A per-tensor zero point: one integer.
pub(crate) fn scalar_i32(t: TensorRef, op: &str) -> Result<i32> {
    let v = t.to_f32_vec();
    match v.as_slice() {
        [z] => Ok(*z as i32),
        _ => bail_shape!(op, "expects a per-tensor zero point (one value), got {} values", v.len()),
    }
}
