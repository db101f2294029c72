//! Operators whose output *shapes* depend on input *values*: NonZero, Compress, Unique,
//! NonMaxSuppression. They compute their outputs inside `infer` once the input values are
//! known: always on the eager interpreter, and for constants at plan time. Otherwise
//! `infer` says the shape is data-dependent, which sends the binding to the eager path
//! (docs/adr/0010-control-flow-and-dynamic-shapes.md).

use super::pieces::{join, narrow};
use crate::{normalize_axis, DType, Error, Fact, Op, Registry, Result, Tensor, TensorData, TensorMut, TensorRef};
use std::cmp::Ordering;
use std::fmt::Debug;
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    r.register("NonZero", |_| Ok(Box::new(ValueShaped(NonZero))));
    r.register("Compress", |ctx| Ok(Box::new(ValueShaped(Compress { axis: ctx.int_opt("axis")? }))));
    r.register("Unique", |ctx| Ok(Box::new(ValueShaped(Unique { axis: ctx.int_opt("axis")?, sorted: ctx.int("sorted", 1)? != 0 }))));
    r.register("NonMaxSuppression", |ctx| {
        let center = ctx.int("center_point_box", 0)?;
        if !(0..=1).contains(&center) {
            return Err(Error::InvalidAttr { attr: "center_point_box".into(), detail: format!("must be 0 or 1, got {center}") });
        }
        Ok(Box::new(ValueShaped(Nms { center_point_box: center == 1 })))
    });
}

/// An op computed from its input values (also ImageDecoder's form).
pub(super) trait Compute: Debug + Send + Sync {
    const NAME: &'static str;
    fn compute(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>>;
}

#[derive(Debug)]
pub(super) struct ValueShaped<C>(pub(super) C);

impl<C: Compute> Op for ValueShaped<C> {
    fn op_type(&self) -> &str {
        C::NAME
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let values: Vec<Option<&Tensor>> = inputs
            .iter()
            .map(|f| match f {
                None => Ok(None),
                Some(f) => f.value.as_deref().map(Some).ok_or_else(|| {
                    Error::shape(
                        C::NAME,
                        "the output shape depends on the input values, known only at run time (the eager path computes it)",
                    )
                }),
            })
            .collect::<Result<_>>()?;
        Ok(self.0.compute(&values)?.into_iter().map(|t| Fact::from_tensor(Arc::new(t))).collect())
    }

    fn run(&self, _inputs: &[Option<TensorRef>], _outputs: &mut [TensorMut]) -> Result<()> {
        Err(Error::shape(C::NAME, "is computed when its input values are known, never as a planned step"))
    }
}

fn required<'t>(op: &str, inputs: &[Option<&'t Tensor>], i: usize) -> Result<&'t Tensor> {
    inputs.get(i).copied().flatten().ok_or_else(|| Error::shape(op, format!("input {i} is required")))
}

/// Row-major coordinates of a flat index.
fn coords(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        c[d] = flat % n.max(1);
        flat /= n.max(1);
    }
    c
}

#[derive(Debug)]
struct NonZero;

impl Compute for NonZero {
    const NAME: &'static str = "NonZero";
    fn compute(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(Self::NAME, inputs, 0)?;
        let hits: Vec<usize> = x.view().to_f32_vec().iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect();
        let rank = x.rank();
        let mut out = vec![0i64; rank * hits.len()];
        for (k, &flat) in hits.iter().enumerate() {
            for (d, c) in coords(flat, x.shape()).into_iter().enumerate() {
                out[d * hits.len() + k] = c as i64;
            }
        }
        Ok(vec![Tensor::from_i64(vec![rank, hits.len()], out)?])
    }
}

/// Slices `index` of `x` along `axis` joined in order; an empty list gives that axis length 0.
fn gather_slices(op: &str, x: &Tensor, axis: usize, index: &[usize]) -> Result<Tensor> {
    if index.is_empty() {
        let mut shape = x.shape().to_vec();
        shape[axis] = 0;
        return Tensor::zeros(x.dtype(), shape);
    }
    let pieces: Vec<Tensor> = index.iter().map(|&i| narrow(op, x, axis, i, 1)).collect::<Result<_>>()?;
    let refs: Vec<&Tensor> = pieces.iter().collect();
    join(op, x.dtype(), &refs, axis as i64, false)
}

/// `x` flattened to one axis (Compress and Unique without `axis`).
fn flat(x: &Tensor) -> Result<Tensor> {
    x.clone().reshaped(vec![x.len()])
}

#[derive(Debug)]
struct Compress {
    axis: Option<i64>,
}

impl Compute for Compress {
    const NAME: &'static str = "Compress";
    fn compute(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(Self::NAME, inputs, 0)?;
        let cond = required(Self::NAME, inputs, 1)?;
        if cond.rank() != 1 {
            return Err(Error::shape(Self::NAME, format!("condition must be 1-D, got shape {:?}", cond.shape())));
        }
        let (x, axis) = match self.axis {
            // A scalar has no axis to compress along (found by fuzz/import_model).
            Some(_) if x.rank() == 0 => return Err(Error::shape(Self::NAME, "input is a scalar; `axis` needs at least one dimension")),
            Some(a) => (x.clone(), normalize_axis(a, x.rank(), Self::NAME)?),
            None => (flat(x)?, 0),
        };
        let dim = x.shape()[axis];
        if cond.len() > dim {
            return Err(Error::shape(Self::NAME, format!("condition has {} entries but axis {axis} has {dim}", cond.len())));
        }
        let keep: Vec<usize> = cond.view().to_f32_vec().iter().enumerate().filter(|(_, c)| **c != 0.0).map(|(i, _)| i).collect();
        Ok(vec![gather_slices(Self::NAME, &x, axis, &keep)?])
    }
}

#[derive(Debug)]
struct Unique {
    axis: Option<i64>,
    sorted: bool,
}

/// Values of one slice, comparable across dtypes (integers exactly, floats as f64).
#[derive(PartialEq, PartialOrd)]
enum Key {
    Int(Vec<i64>),
    Float(Vec<f64>),
}

impl Compute for Unique {
    const NAME: &'static str = "Unique";
    fn compute(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let x = required(Self::NAME, inputs, 0)?;
        let (x, axis) = match self.axis {
            // A scalar has no axis to compress along (found by fuzz/import_model).
            Some(_) if x.rank() == 0 => return Err(Error::shape(Self::NAME, "input is a scalar; `axis` needs at least one dimension")),
            Some(a) => (x.clone(), normalize_axis(a, x.rank(), Self::NAME)?),
            None => (flat(x)?, 0),
        };
        let dim = x.shape()[axis];
        let keys: Vec<Key> = (0..dim)
            .map(|i| {
                let s = narrow(Self::NAME, &x, axis, i, 1)?;
                Ok(match s.dtype() {
                    DType::F32 | DType::F16 | DType::BF16 | DType::F64 => Key::Float(s.view().to_f64_vec()),
                    DType::Bool | DType::U8 => Key::Int(s.view().to_f32_vec().into_iter().map(|v| v as i64).collect()),
                    DType::I8 => Key::Int(s.i8s()?.iter().map(|&v| v as i64).collect()),
                    _ => Key::Int(s.view().to_i64_vec()?),
                })
            })
            .collect::<Result<_>>()?;
        // First occurrence of each distinct slice, in order of appearance.
        let mut firsts: Vec<usize> = Vec::new();
        let mut inverse_first = Vec::with_capacity(dim);
        for (i, k) in keys.iter().enumerate() {
            let u = match firsts.iter().position(|&f| keys[f] == *k) {
                Some(u) => u,
                None => {
                    firsts.push(i);
                    firsts.len() - 1
                }
            };
            inverse_first.push(u);
        }
        let mut order: Vec<usize> = (0..firsts.len()).collect();
        if self.sorted {
            order.sort_by(|&a, &b| keys[firsts[a]].partial_cmp(&keys[firsts[b]]).unwrap_or(Ordering::Equal));
        }
        let mut rank_of = vec![0usize; firsts.len()];
        for (r, &u) in order.iter().enumerate() {
            rank_of[u] = r;
        }
        let indices: Vec<usize> = order.iter().map(|&u| firsts[u]).collect();
        let mut counts = vec![0i64; firsts.len()];
        let inverse: Vec<i64> = inverse_first.iter().map(|&u| rank_of[u] as i64).collect();
        for &u in &inverse_first {
            counts[rank_of[u]] += 1;
        }
        let n = indices.len();
        Ok(vec![
            gather_slices(Self::NAME, &x, axis, &indices)?,
            Tensor::from_i64(vec![n], indices.iter().map(|&i| i as i64).collect())?,
            Tensor::from_i64(vec![dim], inverse)?,
            Tensor::from_i64(vec![n], counts)?,
        ])
    }
}

#[derive(Debug)]
struct Nms {
    center_point_box: bool,
}

/// A box as (y_min, x_min, y_max, x_max).
type Corners = [f32; 4];

impl Nms {
    fn corners(&self, b: &[f32]) -> Corners {
        if self.center_point_box {
            let (xc, yc, w, h) = (b[0], b[1], b[2], b[3]);
            [yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0]
        } else {
            [b[0].min(b[2]), b[1].min(b[3]), b[0].max(b[2]), b[1].max(b[3])]
        }
    }
}

/// True if `a` and `b` overlap by more than `threshold` (intersection over union), as onnxruntime decides.
fn suppresses(a: &Corners, b: &Corners, threshold: f32) -> bool {
    let ih = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iw = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ih * iw;
    if inter <= 0.0 {
        return false;
    }
    let (area_a, area_b) = ((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]));
    let union = area_a + area_b - inter;
    if area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

impl Compute for Nms {
    const NAME: &'static str = "NonMaxSuppression";
    fn compute(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let op = Self::NAME;
        let boxes = required(op, inputs, 0)?;
        let scores = required(op, inputs, 1)?;
        let (&[batch, n, 4], &[sb, classes, sn]) = (boxes.shape(), scores.shape()) else {
            return Err(Error::shape(
                op,
                format!(
                    "boxes must be [batch, boxes, 4] and scores [batch, classes, boxes], got {:?} and {:?}",
                    boxes.shape(),
                    scores.shape()
                ),
            ));
        };
        if sb != batch || sn != n {
            return Err(Error::shape(
                op,
                format!("boxes {:?} and scores {:?} disagree on batch or box count", boxes.shape(), scores.shape()),
            ));
        }
        let scalar = |i: usize| inputs.get(i).copied().flatten().map(|t| t.view().to_f32_vec().first().copied().unwrap_or(0.0));
        let max_per_class = match inputs.get(2).copied().flatten() {
            Some(t) => t.view().to_i64_vec()?.first().copied().unwrap_or(0).max(0) as usize,
            None => 0,
        };
        let iou = scalar(3).unwrap_or(0.0);
        let score_min = scalar(4);
        let (bx, sc) = (boxes.view().to_f32_vec(), scores.view().to_f32_vec());
        let mut selected: Vec<i64> = Vec::new();
        for b in 0..batch {
            let corners: Vec<Corners> = (0..n).map(|i| self.corners(&bx[(b * n + i) * 4..(b * n + i) * 4 + 4])).collect();
            for c in 0..classes {
                let s = &sc[(b * classes + c) * n..(b * classes + c + 1) * n];
                let mut cand: Vec<usize> = (0..n).filter(|&i| score_min.is_none_or(|m| s[i] > m)).collect();
                // Highest score first; ties keep the lower box index first.
                cand.sort_by(|&i, &j| s[j].partial_cmp(&s[i]).unwrap_or(Ordering::Equal).then(i.cmp(&j)));
                let mut kept: Vec<usize> = Vec::new();
                for i in cand {
                    if kept.len() >= max_per_class {
                        break;
                    }
                    if kept.iter().all(|&k| !suppresses(&corners[k], &corners[i], iou)) {
                        kept.push(i);
                    }
                }
                selected.extend(kept.into_iter().flat_map(|i| [b as i64, c as i64, i as i64]));
            }
        }
        let rows = selected.len() / 3;
        Ok(vec![Tensor::new(vec![rows, 3], TensorData::I64(selected))?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_of_a_scalar_along_an_axis_is_an_error_not_a_panic() {
        let x = Tensor::from_f32(vec![], vec![1.0]).unwrap();
        let cond = Tensor::from_f32(vec![1], vec![1.0]).unwrap();
        let err = Compress { axis: Some(0) }.compute(&[Some(&x), Some(&cond)]).unwrap_err();
        assert!(err.to_string().contains("scalar"), "{err}");
        // Without `axis` the scalar is flattened to one element and compresses normally.
        let out = Compress { axis: None }.compute(&[Some(&x), Some(&cond)]).unwrap();
        assert_eq!(out[0].shape(), &[1]);
    }
}
