//! int8 activations stored as uint8, a relabelling that changes no value.
//!
//! An int8 tensor with scale `s` and zero point `z` holds the same real values as a uint8
//! tensor with scale `s` and zero point `z + 128`, its bytes being `q + 128`. Cairn's int8
//! kernels take u8 activations the direct way (the depthwise planes copy them as they are,
//! `QLinearAdd` has its vectorized pass for u8) and i8 ones through a flip or a scalar
//! fallback, so full-integer TFLite files, whose activations are int8, would run slower
//! than the same network from ONNX with u8 activations. Relabelling every quantized int8
//! activation inside the graph keeps the arithmetic the same (each requantization rounds
//! `v / s` and adds its zero point, so every byte is the int8 one plus 128) and lets a
//! QUANTIZE between uint8 and int8 of equal scale, as at the graph input of a uint8-I/O
//! model, become a copy.
//!
//! Graph inputs and outputs keep the file's dtype: callers feed and read what the file says.

use crate::reader::TensorInfo;
use cairn_core::DType;
use std::collections::HashSet;

/// Relabels the per-tensor quantized int8 tensors that are neither constants nor in `keep`
/// (the graph's inputs and outputs). Returns how many were relabelled.
pub(crate) fn relabel(tensors: &mut [TensorInfo], keep: &HashSet<usize>) -> usize {
    let mut n = 0;
    for (i, t) in tensors.iter_mut().enumerate() {
        if t.dtype != DType::I8 || t.constant.is_some() || keep.contains(&i) {
            continue;
        }
        let Some(q) = t.quant.as_mut() else { continue };
        // Per-channel activations are refused later with their own error; a zero point
        // outside int8 keeps the file's value so that error names what the file says.
        let zero = q.zero.first().copied().unwrap_or(0);
        if q.scale.len() != 1 || q.zero.len() > 1 || !(-128..=127).contains(&zero) {
            continue;
        }
        q.zero = vec![zero + 128];
        t.dtype = DType::U8;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::QParams;
    use cairn_core::{Tensor, TensorData};
    use std::sync::Arc;

    fn info(dtype: DType, zero: Vec<i64>, scale: Vec<f32>, constant: bool) -> TensorInfo {
        TensorInfo {
            name: "t".into(),
            dtype,
            shape: vec![scale.len()],
            quant: Some(QParams { scale: scale.clone(), zero, axis: 0 }),
            constant: constant.then(|| Arc::new(Tensor::new(vec![scale.len()], TensorData::I8(vec![0; scale.len()])).unwrap())),
        }
    }

    #[test]
    fn only_inner_per_tensor_int8_activations_become_uint8() {
        let mut t = vec![
            info(DType::I8, vec![-1], vec![0.5], false),         // an activation: relabelled
            info(DType::I8, vec![], vec![0.5], false),           // zero point omitted (0): relabelled
            info(DType::I8, vec![3], vec![0.5], false),          // a graph output: kept
            info(DType::I8, vec![0], vec![0.5], true),           // weights: kept
            info(DType::I8, vec![0, 0], vec![0.5, 0.25], false), // per channel: kept
            info(DType::I8, vec![300], vec![0.5], false),        // invalid zero point: kept for its error
            info(DType::U8, vec![128], vec![0.5], false),        // already uint8
        ];
        let keep: HashSet<usize> = [2].into();
        assert_eq!(relabel(&mut t, &keep), 2);
        assert_eq!((t[0].dtype, t[0].quant.as_ref().unwrap().zero.clone()), (DType::U8, vec![127]));
        assert_eq!((t[1].dtype, t[1].quant.as_ref().unwrap().zero.clone()), (DType::U8, vec![128]));
        for (i, z) in [(2, 3), (3, 0), (5, 300)] {
            assert_eq!((t[i].dtype, t[i].quant.as_ref().unwrap().zero[0]), (DType::I8, z), "tensor {i}");
        }
        assert_eq!(t[4].dtype, DType::I8);
        assert_eq!(t[6].quant.as_ref().unwrap().zero, vec![128]);
    }
}
