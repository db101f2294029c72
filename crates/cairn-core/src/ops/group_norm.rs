//! GroupNormalization (opsets 18, 21) and MeanVarianceNormalization (9, 13): normalizations
//! whose statistics span several axes. Computed in f64 (at least the f32 statistics
//! `stash_type = 1` asks for) and rounded once to the input's dtype.

use super::cast::convert;
use crate::{bail_shape, normalize_axis, required, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("GroupNormalization", |ctx: &OpContext| {
        let groups = ctx.int_req("num_groups")?;
        if groups < 1 {
            return Err(Error::InvalidAttr { attr: "num_groups".into(), detail: format!("must be positive, got {groups}") });
        }
        if ctx.int("stash_type", 1)? != 1 {
            return Err(ctx.unsupported("stash_type", "only float32 (or wider) statistics are supported"));
        }
        // Opset 18 takes scale and bias per group; 21 per channel.
        Ok(Box::new(GroupNorm { groups: groups as usize, epsilon: ctx.float("epsilon", 1e-5)? as f64, per_group: ctx.opset < 21 }))
    });
    r.register("MeanVarianceNormalization", |ctx| Ok(Box::new(Mvn { axes: ctx.ints_opt("axes")?.unwrap_or_else(|| vec![0, 2, 3]) })));
}

#[derive(Debug)]
struct GroupNorm {
    groups: usize,
    epsilon: f64,
    per_group: bool,
}

const GN: &str = "GroupNormalization";

impl GroupNorm {
    fn check(&self, x: &[usize], scale: &[usize], bias: &[usize]) -> Result<()> {
        if x.len() < 2 || !x[1].is_multiple_of(self.groups) {
            bail_shape!(GN, "X must be [N, C, ...] with C divisible by num_groups {}, got {x:?}", self.groups);
        }
        let want = if self.per_group { self.groups } else { x[1] };
        if scale != [want] || bias != [want] {
            bail_shape!(GN, "scale and bias must be [{want}], got {scale:?} and {bias:?}");
        }
        Ok(())
    }
}

impl Op for GroupNorm {
    fn op_type(&self) -> &str {
        GN
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (x, s, b) = (required(inputs, 0, GN)?, required(inputs, 1, GN)?, required(inputs, 2, GN)?);
        if !x.dtype.is_float() || s.dtype != x.dtype || b.dtype != x.dtype {
            bail_shape!(GN, "X, scale and bias must share one float dtype, got {}, {}, {}", x.dtype, s.dtype, b.dtype);
        }
        self.check(&x.shape, &s.shape, &b.shape)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (x, s, b) = (required(inputs, 0, GN)?, required(inputs, 1, GN)?, required(inputs, 2, GN)?);
        self.check(x.shape, s.shape, b.shape)?;
        let (c, spatial): (usize, usize) = (x.shape[1], x.shape[2..].iter().product());
        let per_group = c / self.groups;
        let (xs, scale, bias) = (x.to_f64_vec(), s.to_f64_vec(), b.to_f64_vec());
        let mut y = vec![0.0f64; xs.len()];
        let block = per_group * spatial;
        for (gi, (src, dst)) in xs.chunks_exact(block.max(1)).zip(y.chunks_exact_mut(block.max(1))).enumerate() {
            let n = src.len() as f64;
            let mean = src.iter().sum::<f64>() / n;
            let var = src.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let inv = 1.0 / (var + self.epsilon).sqrt();
            let g = gi % self.groups;
            for (i, (d, &v)) in dst.iter_mut().zip(src).enumerate() {
                let k = if self.per_group { g } else { g * per_group + i / spatial.max(1) };
                *d = scale[k] * (v - mean) * inv + bias[k];
            }
        }
        convert(crate::DataRef::F64(&y), &mut outputs[0].data)
    }
}

/// `(X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9)` over `axes`, as the spec's function body.
#[derive(Debug)]
struct Mvn {
    axes: Vec<i64>,
}

const MVN: &str = "MeanVarianceNormalization";

impl Mvn {
    fn axes(&self, rank: usize) -> Result<Vec<bool>> {
        let mut reduced = vec![false; rank];
        for &a in &self.axes {
            reduced[normalize_axis(a, rank, MVN)?] = true;
        }
        Ok(reduced)
    }
}

impl Op for Mvn {
    fn op_type(&self) -> &str {
        MVN
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, MVN)?;
        if !x.dtype.is_float() {
            bail_shape!(MVN, "is defined for float inputs, got {}", x.dtype);
        }
        self.axes(x.rank())?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, MVN)?;
        let reduced = self.axes(x.rank())?;
        let xs = x.to_f64_vec();
        // Each element's statistics slot: its index over the kept axes.
        let mut slot_stride = vec![0usize; x.rank()];
        let mut slots = 1usize;
        for d in (0..x.rank()).rev() {
            if !reduced[d] {
                slot_stride[d] = slots;
                slots *= x.shape[d];
            }
        }
        let (mut sum, mut sq, mut count) = (vec![0.0f64; slots], vec![0.0f64; slots], vec![0usize; slots]);
        let mut slot_of = Vec::with_capacity(xs.len());
        super::broadcast::for_each_offset(x.shape, [&slot_stride], |i, [s]| {
            sum[s] += xs[i];
            sq[s] += xs[i] * xs[i];
            count[s] += 1;
            slot_of.push((i, s));
        });
        let mut y = vec![0.0f64; xs.len()];
        for (i, s) in slot_of {
            let n = count[s].max(1) as f64;
            let mean = sum[s] / n;
            let std = (sq[s] / n - mean * mean).max(0.0).sqrt();
            y[i] = (xs[i] - mean) / (std + 1e-9);
        }
        convert(crate::DataRef::F64(&y), &mut outputs[0].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::sync::Arc;

    #[test]
    fn one_group_per_channel_pair() {
        // N=1, C=2, one group: statistics over both channels.
        let op = GroupNorm { groups: 1, epsilon: 0.0, per_group: false };
        let x = Tensor::from_f32(vec![1, 2, 1], vec![1., 3.]).unwrap();
        let s = Tensor::from_f32(vec![2], vec![1., 2.]).unwrap();
        let b = Tensor::from_f32(vec![2], vec![0., 10.]).unwrap();
        let out = crate::plan::run_owned(&op, &[x, s, b].map(|t| Some(Arc::new(t)))).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[-1., 12.]);
    }

    #[test]
    fn mvn_over_the_last_axis() {
        let op = Mvn { axes: vec![1] };
        let x = Tensor::from_f32(vec![2, 2], vec![1., 3., 10., 10.]).unwrap();
        let out = crate::plan::run_owned(&op, &[Some(Arc::new(x))]).unwrap();
        let y = out[0].f32s().unwrap();
        assert!((y[0] + 1.0).abs() < 1e-6 && (y[1] - 1.0).abs() < 1e-6 && y[2] == 0.0 && y[3] == 0.0, "{y:?}");
    }
}
