//! MaxUnpool (opset 9+): scatters pooled values back to the positions MaxPool's Indices
//! output recorded, zeros elsewhere. Indices are flat positions in the shape the pooling
//! geometry implies; a larger `output_shape` pads that block at the end of each dim,
//! as the spec's reference does.

use crate::{bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("MaxUnpool", |ctx: &OpContext| {
        let read = |name: &str| ctx.usizes_opt(name);
        let kernel = read("kernel_shape")?.ok_or_else(|| Error::InvalidAttr { attr: "kernel_shape".into(), detail: "required".into() })?;
        Ok(Box::new(MaxUnpool { strides: read("strides")?, pads: read("pads")?, kernel }))
    });
}

const OP: &str = "MaxUnpool";

#[derive(Debug)]
struct MaxUnpool {
    kernel: Vec<usize>,
    strides: Option<Vec<usize>>,
    pads: Option<Vec<usize>>,
}

impl MaxUnpool {
    /// The shape the pooling geometry implies: `(in - 1) * stride - pads + kernel`.
    fn inferred(&self, x: &[usize]) -> Result<Vec<usize>> {
        let r = self.kernel.len();
        if x.len() != r + 2 {
            bail_shape!(OP, "X must be [N, C] plus {r} spatial dims (kernel_shape), got {x:?}");
        }
        let strides = self.strides.clone().unwrap_or_else(|| vec![1; r]);
        let pads = self.pads.clone().unwrap_or_else(|| vec![0; 2 * r]);
        if strides.len() != r || pads.len() != 2 * r {
            bail_shape!(OP, "strides {strides:?} and pads {pads:?} must have {r} and {} values", 2 * r);
        }
        let mut shape = x[..2].to_vec();
        for d in 0..r {
            let full = x[d + 2].saturating_sub(1) * strides[d] + self.kernel[d];
            shape
                .push(full.checked_sub(pads[d] + pads[d + r]).ok_or_else(|| Error::shape(OP, "pads are larger than the unpooled extent"))?);
        }
        Ok(shape)
    }

    fn output_shape(&self, inferred: &[usize], requested: Option<Vec<i64>>) -> Result<Vec<usize>> {
        let Some(req) = requested else { return Ok(inferred.to_vec()) };
        let ok = req.len() == inferred.len() && req.iter().zip(inferred).all(|(&r, &i)| r >= i as i64);
        if !ok {
            bail_shape!(OP, "output_shape {req:?} must have rank {} and be at least {inferred:?} in every dim", inferred.len());
        }
        Ok(req.iter().map(|&d| d as usize).collect())
    }
}

impl Op for MaxUnpool {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (x, i) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?);
        if i.dtype != DType::I64 || i.shape != x.shape {
            bail_shape!(OP, "I must be int64 with X's shape {:?}, got {} {:?}", x.shape, i.dtype, i.shape);
        }
        let requested = match inputs.get(2).copied().flatten() {
            None => None,
            Some(f) => Some(
                f.known_i64s().ok_or_else(|| Error::shape(OP, "output_shape sets the output shape; it must be known before running"))?,
            ),
        };
        let shape = self.output_shape(&self.inferred(&x.shape)?, requested)?;
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (x, i) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?);
        let inferred = self.inferred(x.shape)?;
        let out_shape = outputs[0].shape.to_vec();
        let total: usize = inferred.iter().product();
        // Position in the output of each flat position of the inferred block.
        let place = |mut flat: usize| {
            let mut at = 0;
            let mut scale = 1;
            for d in (0..inferred.len()).rev() {
                at += (flat % inferred[d]) * scale;
                flat /= inferred[d];
                scale *= out_shape[d];
            }
            at
        };
        let mut targets = Vec::with_capacity(i.len());
        for &ix in i.i64s()? {
            if ix < 0 || ix as usize >= total {
                bail_shape!(OP, "index {ix} is outside the unpooled tensor of {total} elements");
            }
            targets.push(place(ix as usize));
        }
        let out = &mut outputs[0];
        crate::with_same_dtype!(x.data, &mut out.data, |src, dst| {
            dst.iter_mut().for_each(|v| *v = Default::default());
            for (&t, &v) in targets.iter().zip(src.iter()) {
                dst[t] = v;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::sync::Arc;

    #[test]
    fn values_go_back_to_their_indices() {
        let op = MaxUnpool { kernel: vec![2], strides: Some(vec![2]), pads: None };
        let x = Tensor::from_f32(vec![1, 1, 2], vec![5., 7.]).unwrap();
        let i = Tensor::from_i64(vec![1, 1, 2], vec![1, 2]).unwrap();
        let out = crate::plan::run_owned(&op, &[x, i].map(|t| Some(Arc::new(t)))).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[0., 5., 7., 0.]);
    }
}
