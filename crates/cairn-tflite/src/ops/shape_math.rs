//! Shape arithmetic converters leave in graphs (SHAPE -> STRIDED_SLICE -> PACK/CONCATENATION,
//! e.g. for a transposed convolution's output shape), evaluated at import: input shapes are
//! static, so these are constants, and the operators that read them need them as constants.

use super::{const_ints, Call, OpResult};
use crate::builder::Builder;
use crate::schema_generated::tflite::BuiltinOperator as B;
use cairn_core::{DType, Tensor, TensorData};

/// Folds the operator when it is integer shape arithmetic on constants; `Ok(false)` otherwise.
pub(super) fn fold(b: &mut Builder, c: &Call, code: B) -> OpResult<bool> {
    let Ok(out) = c.output(0) else { return Ok(false) };
    if !matches!(b.tensors[out].dtype, DType::I32 | DType::I64) {
        return Ok(false);
    }
    let constant = |b: &Builder, i: Option<usize>| i.is_some_and(|i| b.tensors[i].constant.is_some());
    let values: Vec<i64> = match code {
        B::SHAPE => {
            let x = c.input(0)?;
            b.tensors[x].shape.iter().map(|&d| d as i64).collect()
        }
        B::PACK | B::CONCATENATION if c.inputs.iter().all(|&i| constant(b, i)) => {
            if c.inputs.iter().any(|i| i.is_some_and(|i| b.rank(i) > 1)) {
                return Ok(false);
            }
            let mut v = Vec::new();
            for i in c.inputs.iter().flatten() {
                v.extend(const_ints(b, c, *i, "operand")?);
            }
            v
        }
        B::STRIDED_SLICE if c.inputs.iter().all(|&i| constant(b, i)) && b.rank(c.input(0)?) == 1 => {
            let Some(o) = c.op.builtin_options_as_strided_slice_options() else { return Ok(false) };
            if o.ellipsis_mask() != 0 || o.new_axis_mask() != 0 {
                return Ok(false);
            }
            let x = const_ints(b, c, c.input(0)?, "input")?;
            let (begin, end, step) =
                (const_ints(b, c, c.input(1)?, "begin")?, const_ints(b, c, c.input(2)?, "end")?, const_ints(b, c, c.input(3)?, "strides")?);
            let (Some(&s0), Some(&e0), Some(&st)) = (begin.first(), end.first(), step.first()) else { return Ok(false) };
            if st <= 0 {
                return Ok(false);
            }
            let n = x.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n);
            let s = if o.begin_mask() & 1 == 1 { 0 } else { clamp(s0) };
            let e = if o.shrink_axis_mask() & 1 == 1 {
                s + 1
            } else if o.end_mask() & 1 == 1 {
                n
            } else {
                clamp(e0)
            };
            (s..e.min(n)).step_by(st as usize).map(|k| x[k as usize]).collect()
        }
        _ => return Ok(false),
    };
    let shape = if b.tensors[out].shape.is_empty() && values.len() == 1 { vec![] } else { vec![values.len()] };
    let data = match b.tensors[out].dtype {
        DType::I32 => TensorData::I32(values.iter().map(|&v| v as i32).collect()),
        _ => TensorData::I64(values),
    };
    b.set_constant(out, Tensor::new(shape.clone(), data)?);
    b.tensors[out].shape = shape;
    Ok(true)
}
