//! TopK: the `k` largest (or smallest) elements along an axis and their indices,
//! every numeric dtype. Ties keep the lower index first, as onnxruntime and onnx's
//! reference (a stable sort) do; NaN counts as larger than every number, as numpy
//! sorts it. `k` must be known when planning (it sets the output shape): a constant,
//! or an input the planner folds.

use super::indexing::gather_offsets;
use crate::{bail_shape, normalize_axis, required, DType, Error, Fact, Op, Registry, Result, TensorMut, TensorRef};
use std::cmp::Ordering;

pub fn register(r: &mut Registry) {
    r.register("TopK", |ctx| {
        // `sorted = 0` lets an implementation return any order; Cairn always sorts.
        ctx.ignore("sorted");
        let k_attr = if ctx.opset < 10 { Some(ctx.int_req("k")?) } else { None };
        Ok(Box::new(TopK { axis: ctx.int("axis", -1)?, largest: ctx.int("largest", 1)? != 0, k_attr }))
    });
}

#[derive(Debug)]
struct TopK {
    axis: i64,
    largest: bool,
    /// Opsets 1-9 give k as an attribute.
    k_attr: Option<i64>,
}

impl TopK {
    fn k(&self, inputs: &[Option<&Fact>]) -> Result<i64> {
        if let Some(k) = self.k_attr {
            return Ok(k);
        }
        let k = required(inputs, 1, "TopK")?;
        match k.known_i64s() {
            Some(v) if v.len() == 1 => Ok(v[0]),
            Some(v) => bail_shape!("TopK", "K must hold one value, got {v:?}"),
            None => bail_shape!("TopK", "K must be known before running (a constant or computable from shapes): it sets the output shape"),
        }
    }
}

/// Orders NaN above every number; -0.0 == 0.0.
fn cmp_nan_last(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

impl Op for TopK {
    fn op_type(&self) -> &str {
        "TopK"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "TopK")?;
        let axis = normalize_axis(self.axis, x.rank(), "TopK")?;
        let k = self.k(inputs)?;
        if k < 0 || k as usize > x.shape[axis] {
            bail_shape!("TopK", "K = {k} is outside 0..={} (the axis size)", x.shape[axis]);
        }
        if !(x.dtype.is_float() || x.dtype.is_integer()) {
            bail_shape!("TopK", "needs a numeric input, got {}", x.dtype);
        }
        let mut shape = x.shape.clone();
        shape[axis] = k as usize;
        Ok(vec![Fact::new(x.dtype, shape.clone()), Fact::new(DType::I64, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "TopK")?;
        let axis = normalize_axis(self.axis, x.rank(), "TopK")?;
        let k = outputs[0].shape[axis];
        let (n, inner) = (x.shape[axis], x.shape[axis + 1..].iter().product::<usize>());
        let outer: usize = x.shape[..axis].iter().product();
        let values = x.to_f64_vec();
        let mut offsets = Vec::with_capacity(outer * k * inner);
        let mut indices = vec![0i64; outer * k * inner];
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for o in 0..outer {
            for i in 0..inner {
                let at = |j: usize| (o * n + j) * inner + i;
                order.clear();
                order.extend(0..n);
                // A stable sort keeps equal values in index order.
                if self.largest {
                    order.sort_by(|&a, &b| cmp_nan_last(values[at(b)], values[at(a)]));
                } else {
                    order.sort_by(|&a, &b| cmp_nan_last(values[at(a)], values[at(b)]));
                }
                for (r, &j) in order[..k].iter().enumerate() {
                    indices[(o * k + r) * inner + i] = j as i64;
                }
            }
        }
        // Offsets in output order (row-major over [outer, k, inner]).
        for o in 0..outer {
            for r in 0..k {
                for i in 0..inner {
                    offsets.push((o * n + indices[(o * k + r) * inner + i] as usize) * inner + i);
                }
            }
        }
        gather_offsets(x.data, &mut outputs[0].data, &offsets)?;
        match outputs.get_mut(1) {
            Some(idx) => idx.i64s_mut()?.copy_from_slice(&indices),
            None => return Err(Error::shape("TopK", "needs its indices output")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn ties_keep_index_order() {
        let x = Tensor::from_f32(vec![1, 5], vec![3., 1., 3., 2., 3.]).unwrap();
        let op = TopK { axis: -1, largest: true, k_attr: Some(2) };
        let mut v = Tensor::zeros(DType::F32, vec![1, 2]).unwrap();
        let mut i = Tensor::zeros(DType::I64, vec![1, 2]).unwrap();
        op.run(&[Some(x.view())], &mut [v.view_mut(), i.view_mut()]).unwrap();
        assert_eq!(v.f32s().unwrap(), &[3., 3.]);
        assert_eq!(i.i64s().unwrap(), &[0, 2]);
        let small = TopK { largest: false, ..op };
        small.run(&[Some(x.view())], &mut [v.view_mut(), i.view_mut()]).unwrap();
        assert_eq!(i.i64s().unwrap(), &[1, 3]);
    }
}
