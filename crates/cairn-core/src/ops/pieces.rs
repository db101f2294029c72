//! Cutting owned tensors into pieces along an axis and joining pieces back: what Scan,
//! Loop, SplitToSequence and ConcatFromSequence do to whole values in the eager path.
//! They move bytes (every dtype is a fixed-size little-endian element), so one
//! implementation serves all dtypes; the planned path's Concat/Split kernels work on
//! arena views instead and are not reusable on owned values of changing shapes.

use crate::{checked_numel, normalize_axis, DType, Error, Result, Tensor};

/// Elements before `axis` (outer) and bytes of one step along it (inner, `axis` excluded).
fn outer_inner(shape: &[usize], axis: usize, elem: usize) -> (usize, usize) {
    (shape[..axis].iter().product(), shape[axis + 1..].iter().product::<usize>() * elem)
}

/// `len` entries of `t` along `axis` starting at `start`; the axis keeps its place.
pub fn narrow(op: &str, t: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let dim = *t.shape().get(axis).ok_or_else(|| Error::shape(op, format!("axis {axis} is out of range for shape {:?}", t.shape())))?;
    if start.checked_add(len).is_none_or(|end| end > dim) {
        return Err(Error::shape(op, format!("entries {start}..{} are outside axis {axis} of shape {:?}", start + len, t.shape())));
    }
    let (outer, inner) = outer_inner(t.shape(), axis, t.dtype().size());
    let mut shape = t.shape().to_vec();
    shape[axis] = len;
    let mut out = Tensor::zeros(t.dtype(), shape)?;
    let (src, dst) = (t.bytes(), out.bytes_mut());
    for o in 0..outer {
        let from = (o * dim + start) * inner;
        dst[o * len * inner..(o + 1) * len * inner].copy_from_slice(&src[from..from + len * inner]);
    }
    Ok(out)
}

/// Entry `index` of `t` along `axis`, with that axis removed (one Scan step).
pub fn take(op: &str, t: &Tensor, axis: usize, index: usize) -> Result<Tensor> {
    let piece = narrow(op, t, axis, index, 1)?;
    let mut shape = piece.shape().to_vec();
    shape.remove(axis);
    piece.reshaped(shape)
}

/// Joins `parts` along `axis`; with `new_axis`, each part gains that axis first (stacking).
/// An ONNX axis (negative counts from the end) is resolved against the output rank.
pub fn join(op: &str, dtype: DType, parts: &[&Tensor], axis: i64, new_axis: bool) -> Result<Tensor> {
    let Some(first) = parts.first() else {
        return Err(Error::shape(op, "cannot join an empty list of tensors"));
    };
    let rank = first.rank() + usize::from(new_axis);
    let axis = normalize_axis(axis, rank, op)?;
    let piece_shape = |t: &Tensor| -> Vec<usize> {
        let mut s = t.shape().to_vec();
        if new_axis {
            s.insert(axis, 1);
        }
        s
    };
    let shape0 = piece_shape(first);
    let mut out_shape = shape0.clone();
    out_shape[axis] = 0;
    for t in parts {
        let s = piece_shape(t);
        let same_but_axis = s.len() == shape0.len() && s.iter().zip(&shape0).enumerate().all(|(d, (a, b))| d == axis || a == b);
        if t.dtype() != dtype || !same_but_axis {
            return Err(Error::shape(
                op,
                format!(
                    "cannot join a {} tensor of shape {:?} with {} tensors of shape {:?} along axis {axis}",
                    t.dtype(),
                    t.shape(),
                    dtype,
                    first.shape()
                ),
            ));
        }
        out_shape[axis] += s[axis];
    }
    checked_numel(&out_shape)?;
    let (outer, inner) = outer_inner(&out_shape, axis, dtype.size());
    let mut out = Tensor::zeros(dtype, out_shape.clone())?;
    let dst = out.bytes_mut();
    let mut at = 0;
    for o in 0..outer {
        for t in parts {
            let chunk = t.len() / outer.max(1) * dtype.size();
            dst[at..at + chunk].copy_from_slice(&t.bytes()[o * chunk..(o + 1) * chunk]);
            at += chunk;
        }
    }
    debug_assert_eq!(at, outer * out_shape[axis] * inner);
    Ok(out)
}

/// The single number in a one-element integer tensor (a trip count, a position).
pub fn scalar_i64(op: &str, what: &str, t: &Tensor) -> Result<i64> {
    let v = t.view().to_i64_vec().map_err(|_| Error::shape(op, format!("{what} must be an integer tensor, got {}", t.dtype())))?;
    match v.as_slice() {
        [x] => Ok(*x),
        _ => Err(Error::shape(op, format!("{what} must hold one element, got shape {:?}", t.shape()))),
    }
}

/// The single value of a one-element tensor as a condition (nonzero is true).
pub fn scalar_bool(op: &str, what: &str, t: &Tensor) -> Result<bool> {
    match t.view().to_f32_vec().as_slice() {
        [x] => Ok(*x != 0.0),
        _ => Err(Error::shape(op, format!("{what} must hold one element, got shape {:?}", t.shape()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product::<usize>();
        Tensor::from_i64(shape, (0..n as i64).collect()).unwrap()
    }

    #[test]
    fn take_then_stack_is_the_identity_on_every_axis() {
        let t = iota(vec![2, 3, 4]);
        for axis in 0..3 {
            let pieces: Vec<Tensor> = (0..t.shape()[axis]).map(|i| take("t", &t, axis, i).unwrap()).collect();
            let refs: Vec<&Tensor> = pieces.iter().collect();
            assert_eq!(join("t", DType::I64, &refs, axis as i64, true).unwrap(), t, "axis {axis}");
        }
    }

    #[test]
    fn narrow_then_concat_is_the_identity() {
        let t = iota(vec![3, 5]);
        let a = narrow("t", &t, 1, 0, 2).unwrap();
        let b = narrow("t", &t, 1, 2, 3).unwrap();
        assert_eq!(a.i64s().unwrap(), &[0, 1, 5, 6, 10, 11]);
        assert_eq!(join("t", DType::I64, &[&a, &b], -1, false).unwrap(), t);
    }

    #[test]
    fn mismatched_pieces_and_ranges_are_errors() {
        let (a, b) = (iota(vec![2, 3]), iota(vec![3, 3]));
        assert!(join("t", DType::I64, &[&a, &b], 1, false).is_err());
        assert!(join("t", DType::I64, &[&a, &b], 0, false).is_ok());
        assert!(join("t", DType::I64, &[&a], 3, false).is_err());
        assert!(narrow("t", &a, 1, 2, 2).is_err());
        assert!(take("t", &a, 2, 0).is_err());
    }
}
