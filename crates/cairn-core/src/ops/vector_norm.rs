//! Normalization by a vector norm, f32:
//! - RMSNormalization (opset 23): `Y = X / sqrt(mean(X^2 over axes [axis..]) + epsilon) * scale`,
//!   statistics in f32 (`stash_type` 1), as onnx's reference (`op_rms_normalization.py`);
//! - LpNormalization: `Y = X / ||X||_p` along one axis (p = 1 or 2), 0 where the norm is 0.

use super::broadcast::broadcast_strides;
use crate::{bail_shape, normalize_axis, required, DType, Fact, Op, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("RMSNormalization", |ctx| {
        if ctx.int("stash_type", 1)? != 1 {
            return Err(ctx.unsupported("stash_type", "only float32 statistics are supported"));
        }
        Ok(Box::new(RmsNorm { axis: ctx.int("axis", -1)?, epsilon: ctx.float("epsilon", 1e-5)? }))
    });
    r.register("LpNormalization", |ctx| {
        let p = ctx.int("p", 2)?;
        if p != 1 && p != 2 {
            return Err(crate::Error::InvalidAttr { attr: "p".into(), detail: format!("must be 1 or 2, got {p}") });
        }
        Ok(Box::new(LpNorm { axis: ctx.int("axis", -1)?, p }))
    });
}

#[derive(Debug)]
struct LpNorm {
    axis: i64,
    p: i64,
}

impl Op for LpNorm {
    fn op_type(&self) -> &str {
        "LpNormalization"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "LpNormalization")?;
        if x.dtype != DType::F32 {
            bail_shape!("LpNormalization", "is implemented for f32, got {}", x.dtype);
        }
        normalize_axis(self.axis, x.rank(), "LpNormalization")?;
        Ok(vec![Fact::new(DType::F32, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "LpNormalization")?;
        let axis = normalize_axis(self.axis, x.rank(), "LpNormalization")?;
        let (n, inner) = (x.shape[axis], x.shape[axis + 1..].iter().product::<usize>());
        let outer: usize = x.shape[..axis].iter().product();
        let xs = x.f32s()?;
        let out = outputs[0].f32s_mut()?;
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * n + k) * inner + i;
                let norm = match self.p {
                    1 => (0..n).map(|k| xs[at(k)].abs()).sum::<f32>(),
                    _ => (0..n).map(|k| xs[at(k)] * xs[at(k)]).sum::<f32>().sqrt(),
                };
                for k in 0..n {
                    out[at(k)] = if norm == 0.0 { 0.0 } else { xs[at(k)] / norm };
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct RmsNorm {
    axis: i64,
    epsilon: f32,
}

impl Op for RmsNorm {
    fn op_type(&self) -> &str {
        "RMSNormalization"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "RMSNormalization")?;
        let scale = required(inputs, 1, "RMSNormalization")?;
        if x.dtype != DType::F32 || scale.dtype != DType::F32 {
            bail_shape!("RMSNormalization", "is implemented for f32, got {} and {}", x.dtype, scale.dtype);
        }
        let axis = normalize_axis(self.axis, x.rank(), "RMSNormalization")?;
        // scale broadcasts against the normalized dims only (it must not grow X).
        let norm = &x.shape[axis..];
        let fits = scale.rank() <= norm.len() && scale.shape.iter().rev().zip(norm.iter().rev()).all(|(&s, &n)| s == n || s == 1);
        if !fits {
            bail_shape!("RMSNormalization", "scale {:?} does not broadcast to the normalized dims {:?}", scale.shape, norm);
        }
        Ok(vec![Fact::new(DType::F32, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "RMSNormalization")?;
        let scale = required(inputs, 1, "RMSNormalization")?;
        let axis = normalize_axis(self.axis, x.rank(), "RMSNormalization")?;
        let inner: usize = x.shape[axis..].iter().product();
        let strides = broadcast_strides(scale.shape, &x.shape[axis..]);
        let norm_strides = super::broadcast::contiguous_strides(&x.shape[axis..]);
        // Offset into scale of each position of a normalized row.
        let scale_at: Vec<usize> = (0..inner)
            .map(|i| norm_strides.iter().zip(&strides).zip(&x.shape[axis..]).map(|((&ns, &ss), &d)| (i / ns) % d * ss).sum())
            .collect();
        let (xs, w) = (x.f32s()?, scale.f32s()?);
        let out = outputs[0].f32s_mut()?;
        for (row, o) in xs.chunks(inner.max(1)).zip(out.chunks_mut(inner.max(1))) {
            let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / inner as f32;
            let inv = 1.0 / (mean_sq + self.epsilon).sqrt();
            for ((o, &v), &s) in o.iter_mut().zip(row).zip(&scale_at) {
                *o = v * inv * w[s];
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn normalizes_each_row_by_its_rms() {
        let x = Tensor::from_f32(vec![2, 2], vec![3., 4., 1., 1.]).unwrap();
        let w = Tensor::from_f32(vec![2], vec![1., 2.]).unwrap();
        let mut y = Tensor::zeros(DType::F32, vec![2, 2]).unwrap();
        RmsNorm { axis: -1, epsilon: 0.0 }.run(&[Some(x.view()), Some(w.view())], &mut [y.view_mut()]).unwrap();
        let rms = (12.5f32).sqrt();
        let got = y.f32s().unwrap();
        assert!((got[0] - 3. / rms).abs() < 1e-6 && (got[1] - 8. / rms).abs() < 1e-6);
        assert_eq!(&got[2..], &[1., 2.]);
    }
}
