//! CenterCropPad: crops or zero-pads chosen axes to a target size around the center
//! (odd differences put the extra element at the end, as onnx's reference does).
//! Every dtype; the target `shape` must be known when planning.

use super::broadcast::contiguous_strides;
use crate::{bail_shape, normalize_axis, required, Error, Fact, Op, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("CenterCropPad", |ctx| Ok(Box::new(CenterCropPad { axes: ctx.ints_opt("axes")? })));
}

#[derive(Debug)]
struct CenterCropPad {
    axes: Option<Vec<i64>>,
}

impl CenterCropPad {
    fn out_shape(&self, x: &[usize], target: &[i64]) -> Result<Vec<usize>> {
        let axes: Vec<usize> = match &self.axes {
            Some(a) => a.iter().map(|&a| normalize_axis(a, x.len(), "CenterCropPad")).collect::<Result<_>>()?,
            None => (0..x.len()).collect(),
        };
        if axes.len() != target.len() {
            bail_shape!("CenterCropPad", "shape {:?} must give one size per axis {:?}", target, axes);
        }
        let mut out = x.to_vec();
        for (&a, &s) in axes.iter().zip(target) {
            out[a] = usize::try_from(s).map_err(|_| Error::shape("CenterCropPad", format!("negative size {s}")))?;
        }
        crate::checked_numel(&out)?;
        Ok(out)
    }
}

impl Op for CenterCropPad {
    fn op_type(&self) -> &str {
        "CenterCropPad"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "CenterCropPad")?;
        let Some(target) = required(inputs, 1, "CenterCropPad")?.known_i64s() else {
            bail_shape!("CenterCropPad", "shape must be known before running (a constant or computable from shapes)");
        };
        Ok(vec![Fact::new(x.dtype, self.out_shape(&x.shape, &target)?)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "CenterCropPad")?;
        let out = &mut outputs[0];
        let out_shape = out.shape;
        // Per axis: input coordinate = output coordinate + shift (negative when padding).
        let shifts: Vec<i64> =
            x.shape.iter().zip(out_shape).map(|(&d, &s)| if d >= s { ((d - s) / 2) as i64 } else { -(((s - d) / 2) as i64) }).collect();
        let in_strides = contiguous_strides(x.shape);
        let out_strides = contiguous_strides(out_shape);
        let sources: Vec<Option<usize>> = (0..out.len())
            .map(|flat| {
                let mut off = 0usize;
                for d in 0..out_shape.len() {
                    let c = ((flat / out_strides[d]) % out_shape[d]) as i64 + shifts[d];
                    if c < 0 || c >= x.shape[d] as i64 {
                        return None;
                    }
                    off += c as usize * in_strides[d];
                }
                Some(off)
            })
            .collect();
        crate::with_same_dtype!(x.data, &mut out.data, |s, d| d
            .iter_mut()
            .zip(&sources)
            .for_each(|(d, src)| *d = src.map_or_else(Default::default, |o| s[o])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Tensor};

    #[test]
    fn crops_one_axis_and_pads_the_other() {
        let x = Tensor::from_i64(vec![3, 1], vec![1, 2, 3]).unwrap();
        let op = CenterCropPad { axes: None };
        assert_eq!(op.out_shape(x.shape(), &[1, 3]).unwrap(), vec![1, 3]);
        let mut y = Tensor::zeros(DType::I64, vec![1, 3]).unwrap();
        op.run(&[Some(x.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.i64s().unwrap(), &[0, 2, 0]);
    }
}
