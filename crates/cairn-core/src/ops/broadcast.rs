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
