//! Running totals along an axis: CumSum and CumProd (`exclusive`, `reverse`), on
//! every numeric dtype; f16/bf16 accumulate in f32, as onnxruntime does.

use crate::{bail_shape, normalize_axis, required, DataMut, DataRef, Error, Fact, Op, Registry, Result, TensorMut, TensorRef};
use half::{bf16, f16};

pub fn register(r: &mut Registry) {
    r.register("CumSum", |ctx| {
        Ok(Box::new(Cumulative { product: false, exclusive: ctx.int("exclusive", 0)? != 0, reverse: ctx.int("reverse", 0)? != 0 }))
    });
    r.register("CumProd", |ctx| {
        Ok(Box::new(Cumulative { product: true, exclusive: ctx.int("exclusive", 0)? != 0, reverse: ctx.int("reverse", 0)? != 0 }))
    });
}

#[derive(Debug)]
struct Cumulative {
    product: bool,
    exclusive: bool,
    reverse: bool,
}

/// The layout of one scan: `outer` blocks of `n` steps, `inner` elements apart.
#[derive(Clone, Copy)]
struct Lanes {
    outer: usize,
    n: usize,
    inner: usize,
    exclusive: bool,
    reverse: bool,
}

fn scan<T: Copy>(x: &[T], out: &mut [T], l: Lanes, identity: T, op: impl Fn(T, T) -> T) {
    for o in 0..l.outer {
        for i in 0..l.inner {
            let mut acc = identity;
            for step in 0..l.n {
                let k = if l.reverse { l.n - 1 - step } else { step };
                let at = (o * l.n + k) * l.inner + i;
                if l.exclusive {
                    out[at] = acc;
                    acc = op(acc, x[at]);
                } else {
                    acc = op(acc, x[at]);
                    out[at] = acc;
                }
            }
        }
    }
}

impl Cumulative {
    fn name(&self) -> &'static str {
        if self.product {
            "CumProd"
        } else {
            "CumSum"
        }
    }
}

impl Op for Cumulative {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name())?;
        let axis = required(inputs, 1, self.name())?;
        if axis.numel() != 1 || !matches!(axis.dtype, crate::DType::I32 | crate::DType::I64) {
            bail_shape!(self.name(), "axis must be one i32 or i64, got {} {:?}", axis.dtype, axis.shape);
        }
        if !(x.dtype.is_float() || x.dtype.is_integer()) {
            bail_shape!(self.name(), "needs a numeric input, got {}", x.dtype);
        }
        // As in onnxruntime: there is no axis to accumulate along in a scalar.
        if x.rank() == 0 {
            bail_shape!(self.name(), "the input must have rank >= 1, got a scalar");
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.name();
        let x = required(inputs, 0, op)?;
        let axis = required(inputs, 1, op)?.to_i64_vec()?[0];
        let axis = normalize_axis(axis, x.rank(), op)?;
        let l = Lanes {
            outer: x.shape[..axis].iter().product(),
            n: x.shape[axis],
            inner: x.shape[axis + 1..].iter().product(),
            exclusive: self.exclusive,
            reverse: self.reverse,
        };
        let p = self.product;
        macro_rules! ints {
            ($x:expr, $o:expr) => {
                if p {
                    scan($x, $o, l, 1, |a, b| a.wrapping_mul(b))
                } else {
                    scan($x, $o, l, 0, |a, b| a.wrapping_add(b))
                }
            };
        }
        macro_rules! floats {
            ($x:expr, $o:expr, $one:expr, $zero:expr) => {
                if p {
                    scan($x, $o, l, $one, |a, b| a * b)
                } else {
                    scan($x, $o, l, $zero, |a, b| a + b)
                }
            };
        }
        match (x.data, &mut outputs[0].data) {
            (DataRef::F32(x), DataMut::F32(o)) => floats!(x, o, 1.0, 0.0),
            (DataRef::F64(x), DataMut::F64(o)) => floats!(x, o, 1.0, 0.0),
            (DataRef::I8(x), DataMut::I8(o)) => ints!(x, o),
            (DataRef::U8(x), DataMut::U8(o)) => ints!(x, o),
            (DataRef::I16(x), DataMut::I16(o)) => ints!(x, o),
            (DataRef::U16(x), DataMut::U16(o)) => ints!(x, o),
            (DataRef::I32(x), DataMut::I32(o)) => ints!(x, o),
            (DataRef::U32(x), DataMut::U32(o)) => ints!(x, o),
            (DataRef::I64(x), DataMut::I64(o)) => ints!(x, o),
            (DataRef::U64(x), DataMut::U64(o)) => ints!(x, o),
            (DataRef::F16(x), DataMut::F16(o)) => {
                let wide: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
                let mut acc = vec![0.0f32; wide.len()];
                floats!(&wide, &mut acc, 1.0, 0.0);
                o.iter_mut().zip(&acc).for_each(|(o, &v)| *o = f16::from_f32(v));
            }
            (DataRef::BF16(x), DataMut::BF16(o)) => {
                let wide: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
                let mut acc = vec![0.0f32; wide.len()];
                floats!(&wide, &mut acc, 1.0, 0.0);
                o.iter_mut().zip(&acc).for_each(|(o, &v)| *o = bf16::from_f32(v));
            }
            (x, _) => return Err(Error::shape(op, format!("is not defined for {}", x.dtype()))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_reverse_sums_and_products() {
        let l = Lanes { outer: 1, n: 4, inner: 1, exclusive: true, reverse: true };
        let mut out = [0i64; 4];
        scan(&[1i64, 2, 3, 4], &mut out, l, 0, |a, b| a + b);
        assert_eq!(out, [9, 7, 4, 0]);
        let l = Lanes { outer: 2, n: 2, inner: 1, exclusive: false, reverse: false };
        let mut out = [0.0f32; 4];
        scan(&[2.0, 3.0, 4.0, 5.0], &mut out, l, 1.0, |a, b| a * b);
        assert_eq!(out, [2.0, 6.0, 4.0, 20.0]);
    }
}
