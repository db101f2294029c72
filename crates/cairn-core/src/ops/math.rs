//! Elementwise math the f32 unary table of `elementwise.rs` lacks, on every float
//! dtype (computed in f64, stored in the input's dtype): inverse hyperbolic functions,
//! Shrink, Swish, and the float classifiers IsNaN / IsInf (bool out).

use super::cast::convert;
use crate::{bail_shape, required, DType, DataRef, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use std::sync::Arc;

type FloatFn = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

pub fn register(r: &mut Registry) {
    r.register("Acosh", |_| Ok(map("Acosh", f64::acosh)));
    r.register("Asinh", |_| Ok(map("Asinh", f64::asinh)));
    r.register("Atanh", |_| Ok(map("Atanh", f64::atanh)));
    r.register("Shrink", |ctx: &OpContext| {
        let (bias, lambd) = (ctx.float("bias", 0.0)? as f64, ctx.float("lambd", 0.5)? as f64);
        Ok(map("Shrink", move |x| {
            if x < -lambd {
                x + bias
            } else if x > lambd {
                x - bias
            } else {
                0.0
            }
        }))
    });
    r.register("Swish", |ctx| {
        let alpha = ctx.float("alpha", 1.0)? as f64;
        Ok(map("Swish", move |x| x / (1.0 + (-alpha * x).exp())))
    });
    r.register("SwiGLU", |ctx| Ok(Box::new(SwiGlu { alpha: ctx.float("alpha", 1.0)? as f64 })));
    r.register("IsNaN", |_| Ok(Box::new(Classify { name: "IsNaN", test: Arc::new(f64::is_nan) })));
    r.register("IsInf", |ctx| {
        let (neg, pos) = (ctx.int("detect_negative", 1)? != 0, ctx.int("detect_positive", 1)? != 0);
        Ok(Box::new(Classify { name: "IsInf", test: Arc::new(move |x| x.is_infinite() && if x > 0.0 { pos } else { neg }) }))
    });
}

fn map(name: &'static str, f: impl Fn(f64) -> f64 + Send + Sync + 'static) -> Box<dyn Op> {
    Box::new(FloatMap { name, f: Arc::new(f) })
}

/// `y = f(x)` on a float tensor of any float dtype (Shrink also on integers).
struct FloatMap {
    name: &'static str,
    f: FloatFn,
}

impl std::fmt::Debug for FloatMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

impl Op for FloatMap {
    fn op_type(&self) -> &str {
        self.name
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name)?;
        let ok = x.dtype.is_float() || (self.name == "Shrink" && x.dtype.is_integer());
        if !ok {
            bail_shape!(self.name, "needs a float input, got {}", x.dtype);
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name)?;
        let y: Vec<f64> = x.to_f64_vec().into_iter().map(|v| (self.f)(v)).collect();
        convert(DataRef::F64(&y), &mut outputs[0].data)
    }
}

/// A float predicate per element, bool out.
struct Classify {
    name: &'static str,
    test: Arc<dyn Fn(f64) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Classify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

impl Op for Classify {
    fn op_type(&self) -> &str {
        self.name
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name)?;
        if !x.dtype.is_float() {
            bail_shape!(self.name, "needs a float input, got {}", x.dtype);
        }
        Ok(vec![Fact::new(DType::Bool, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name)?;
        for (o, v) in outputs[0].bools_mut()?.iter_mut().zip(x.to_f64_vec()) {
            *o = (self.test)(v) as u8;
        }
        Ok(())
    }
}

/// SwiGLU(A, B) = Swish_alpha(A) * B, A and B of one shape and float dtype.
#[derive(Debug)]
struct SwiGlu {
    alpha: f64,
}

impl Op for SwiGlu {
    fn op_type(&self) -> &str {
        "SwiGLU"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (a, b) = (required(inputs, 0, "SwiGLU")?, required(inputs, 1, "SwiGLU")?);
        if a.shape != b.shape || a.dtype != b.dtype || !a.dtype.is_float() {
            bail_shape!(
                "SwiGLU",
                "needs two float inputs of one shape and dtype, got {} {:?} and {} {:?}",
                a.dtype,
                a.shape,
                b.dtype,
                b.shape
            );
        }
        Ok(vec![Fact::new(a.dtype, a.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (a, b) = (required(inputs, 0, "SwiGLU")?.to_f64_vec(), required(inputs, 1, "SwiGLU")?.to_f64_vec());
        let y: Vec<f64> = a.iter().zip(&b).map(|(&a, &b)| a / (1.0 + (-self.alpha * a).exp()) * b).collect();
        convert(DataRef::F64(&y), &mut outputs[0].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn isinf_respects_the_sign_switches_and_shrink_works_on_f64() {
        let x = Tensor::from_f32(vec![4], vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0]).unwrap();
        let op = Classify { name: "IsInf", test: Arc::new(|x: f64| x.is_infinite() && x < 0.0) };
        let mut y = Tensor::zeros(DType::Bool, vec![4]).unwrap();
        op.run(&[Some(x.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.bools().unwrap(), &[0, 1, 0, 0]);
        let x = Tensor::new(vec![3], crate::TensorData::F64(vec![-2.0, 0.2, 3.0])).unwrap();
        let shrink = FloatMap { name: "Shrink", f: Arc::new(|x| if x.abs() > 0.5 { x - x.signum() } else { 0.0 }) };
        let mut y = Tensor::zeros(DType::F64, vec![3]).unwrap();
        shrink.run(&[Some(x.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.f64s().unwrap(), &[-1.0, 0.0, 2.0]);
    }
}
