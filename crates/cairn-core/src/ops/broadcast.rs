//! Numpy-style (multidirectional) broadcasting, as ONNX defines it:
//! <https://github.com/onnx/onnx/blob/main/docs/Broadcasting.md>.

use crate::{Error, Result};

/// The broadcast shape of several shapes, or an error naming the op.
pub fn broadcast_shapes(shapes: &[&[usize]], op_type: &str) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let pad = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[pad + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(Error::shape(op_type, format!("shapes {:?} cannot be broadcast together", shapes)));
            }
        }
    }
    Ok(out)
}

/// Element strides of `shape` laid out against `out_shape`: 0 on broadcast dims,
/// so `sum(index[i] * strides[i])` finds the source element of an output index.
pub fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let pad = out_shape.len() - shape.len();
    let mut strides = vec![0usize; out_shape.len()];
    let mut acc = 1usize;
    for i in (0..shape.len()).rev() {
        strides[pad + i] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    strides
}

/// Row-major contiguous strides of a shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}


/// Calls `f(out_index, offsets)` for every output element in row-major order, where
/// `offsets[i]` is the element offset in input `i` (laid out with `strides[i]` from
/// [`broadcast_strides`]). An odometer walk: no division per element.
pub fn for_each_offset<const N: usize>(out_shape: &[usize], strides: [&[usize]; N], mut f: impl FnMut(usize, [usize; N])) {
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return;
    }
    let rank = out_shape.len();
    let mut counter = vec![0usize; rank];
    let mut offsets = [0usize; N];
    for idx in 0..total {
        f(idx, offsets);
        // Advance the odometer from the innermost dim.
        for d in (0..rank).rev() {
            counter[d] += 1;
            for (o, s) in offsets.iter_mut().zip(&strides) {
                *o += s[d];
            }
            if counter[d] < out_shape[d] {
                break;
            }
            for (o, s) in offsets.iter_mut().zip(&strides) {
                *o -= s[d] * out_shape[d];
            }
            counter[d] = 0;
        }
    }
}

/// `out[i] = f(a[..], b[..])` with broadcasting; fast paths for equal shapes and scalars.
pub fn map2<A: Copy, B: Copy, O>(a: &[A], a_shape: &[usize], b: &[B], b_shape: &[usize], out: &mut [O], out_shape: &[usize], f: impl Fn(A, B) -> O) {
    if a_shape == out_shape && b_shape == out_shape {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    } else if b.len() == 1 && a_shape == out_shape {
        let y = b[0];
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x, y);
        }
    } else if a.len() == 1 && b_shape == out_shape {
        let x = a[0];
        for (o, &y) in out.iter_mut().zip(b) {
            *o = f(x, y);
        }
    } else {
        let sa = broadcast_strides(a_shape, out_shape);
        let sb = broadcast_strides(b_shape, out_shape);
        for_each_offset(out_shape, [&sa, &sb], |i, [ia, ib]| out[i] = f(a[ia], b[ib]));
    }
}

/// `out[i] = f(out[i], b[..])`: [`map2`] where the first operand already fills the
/// output (an in-place step), `b` broadcast to it.
pub fn map2_in_place<T: Copy, B: Copy>(out: &mut [T], out_shape: &[usize], b: &[B], b_shape: &[usize], f: impl Fn(T, B) -> T) {
    if b_shape == out_shape {
        out.iter_mut().zip(b).for_each(|(o, &y)| *o = f(*o, y));
    } else if b.len() == 1 {
        let y = b[0];
        out.iter_mut().for_each(|o| *o = f(*o, y));
    } else {
        let sb = broadcast_strides(b_shape, out_shape);
        for_each_offset(out_shape, [&sb], |i, [ib]| out[i] = f(out[i], b[ib]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_like_numpy() {
        assert_eq!(broadcast_shapes(&[&[2, 3, 4], &[4]], "Add").unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shapes(&[&[2, 1, 4], &[3, 1]], "Add").unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast_shapes(&[&[], &[5]], "Add").unwrap(), vec![5]);
        assert!(broadcast_shapes(&[&[2, 3], &[4]], "Add").is_err());
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
    }
}
