//! Data movement and shape operators: they work on every dtype.

use super::broadcast::{broadcast_shapes, contiguous_strides};
use crate::{
    bail_shape, checked_numel, normalize_axis, required, DType, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, Tensor,
    TensorData, TensorMut, TensorRef,
};
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    r.register("Identity", |_| Ok(Box::new(View::Identity)));
    r.register("Dropout", |ctx| {
        ctx.ignore("seed");
        ctx.ignore("ratio");
        ctx.ignore("is_test");
        Ok(Box::new(View::Dropout))
    });
    r.register("Flatten", |ctx| Ok(Box::new(View::Flatten(ctx.int("axis", 1)?))));
    r.register("Reshape", |ctx| {
        Ok(Box::new(View::Reshape { allowzero: ctx.int("allowzero", 0)? == 1, attr_shape: ctx.ints_opt("shape")? }))
    });
    r.register("Squeeze", |ctx| Ok(Box::new(View::Squeeze(axes_attr(ctx)?))));
    r.register("Unsqueeze", |ctx| Ok(Box::new(View::Unsqueeze(axes_attr(ctx)?))));
    r.register("Transpose", |ctx| Ok(Box::new(Transpose { perm: ctx.ints_opt("perm")? })));
    r.register("Concat", |ctx| Ok(Box::new(Concat { axis: ctx.int_req("axis")? })));
    r.register("Split", |ctx| {
        Ok(Box::new(Split {
            axis: ctx.int("axis", 0)?,
            split: if ctx.opset < 13 { ctx.ints_opt("split")? } else { None },
            num_outputs: ctx.int_opt("num_outputs")?,
            n_outputs: ctx.n_outputs,
        }))
    });
    r.register("Slice", |ctx| {
        if ctx.opset < 10 {
            let starts = ctx.ints_opt("starts")?.unwrap_or_default();
            let ends = ctx.ints_opt("ends")?.unwrap_or_default();
            return Ok(Box::new(Slice { attrs: Some((starts, ends, ctx.ints_opt("axes")?)) }));
        }
        Ok(Box::new(Slice { attrs: None }))
    });
    r.register("Gather", |ctx| Ok(Box::new(Gather { axis: ctx.int("axis", 0)? })));
    r.register("Shape", |ctx| Ok(Box::new(ShapeOp { start: ctx.int("start", 0)?, end: ctx.int_opt("end")? })));
    r.register("Size", |_| Ok(Box::new(SizeOp)));
    r.register("Range", |_| Ok(Box::new(Range)));
    r.register("ConstantOfShape", |ctx| {
        let value = ctx.tensor_opt("value")?.unwrap_or_else(|| Tensor::scalar_f32(0.0));
        if value.len() != 1 {
            return Err(Error::InvalidAttr { attr: "value".into(), detail: "must hold exactly one element".into() });
        }
        Ok(Box::new(ConstantOfShape { value }))
    });
    r.register("Expand", |_| Ok(Box::new(Expand)));
    r.register("Tile", |_| Ok(Box::new(Tile)));
    r.register("Pad", |ctx| {
        let mode = ctx.string("mode", "constant")?;
        if !matches!(mode.as_str(), "constant" | "edge" | "reflect" | "wrap") {
            return Err(ctx.unsupported("mode", format!("'{mode}'")));
        }
        let attrs = if ctx.opset < 11 { Some((ctx.ints_opt("pads")?.unwrap_or_default(), ctx.float("value", 0.0)?)) } else { None };
        Ok(Box::new(Pad { mode, attrs }))
    });
}

fn axes_attr(ctx: &OpContext) -> Result<Option<Vec<i64>>> {
    if ctx.opset < 13 {
        ctx.ints_opt("axes")
    } else {
        Ok(None)
    }
}

/// A value input that must be known at plan time (shape-like), as i64s.
fn known(inputs: &[Option<&Fact>], i: usize, op: &str, what: &str) -> Result<Option<Vec<i64>>> {
    match inputs.get(i).copied().flatten() {
        None => Ok(None),
        Some(f) => f
            .known_i64s()
            .map(Some)
            .ok_or_else(|| Error::shape(op, format!("the {what} input must be a constant or computable from shapes"))),
    }
}

fn copy_all(src: &TensorRef, dst: &mut TensorMut) -> Result<()> {
    dst.data.copy_from(src.data)
}

/// Ops whose output is the input's data under another shape.
#[derive(Debug)]
enum View {
    Identity,
    Dropout,
    Flatten(i64),
    Reshape { allowzero: bool, attr_shape: Option<Vec<i64>> },
    Squeeze(Option<Vec<i64>>),
    Unsqueeze(Option<Vec<i64>>),
}

impl View {
    fn name(&self) -> &'static str {
        match self {
            View::Identity => "Identity",
            View::Dropout => "Dropout",
            View::Flatten(_) => "Flatten",
            View::Reshape { .. } => "Reshape",
            View::Squeeze(_) => "Squeeze",
            View::Unsqueeze(_) => "Unsqueeze",
        }
    }

    fn out_shape(&self, inputs: &[Option<&Fact>]) -> Result<Vec<usize>> {
        let op = self.name();
        let x = required(inputs, 0, op)?;
        let s = &x.shape;
        Ok(match self {
            View::Identity | View::Dropout => s.clone(),
            View::Flatten(axis) => {
                let axis = if *axis == s.len() as i64 { s.len() } else { normalize_axis(*axis, s.len().max(1), op)? };
                vec![s[..axis].iter().product(), s[axis..].iter().product()]
            }
            View::Reshape { allowzero, attr_shape } => {
                let target = match attr_shape {
                    Some(v) => v.clone(),
                    None => known(inputs, 1, op, "shape")?.ok_or_else(|| Error::shape(op, "needs a shape input"))?,
                };
                reshape_target(s, &target, *allowzero)?
            }
            View::Squeeze(attr) => {
                let axes = match attr {
                    Some(a) => Some(a.clone()),
                    None => known(inputs, 1, op, "axes")?,
                };
                match axes {
                    None => s.iter().copied().filter(|&d| d != 1).collect(),
                    Some(axes) => {
                        let axes: Vec<usize> = axes.iter().map(|&a| normalize_axis(a, s.len(), op)).collect::<Result<_>>()?;
                        if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
                            bail_shape!(op, "cannot squeeze axis {a} of size {}", s[a]);
                        }
                        s.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
                    }
                }
            }
            View::Unsqueeze(attr) => {
                let axes = match attr {
                    Some(a) => a.clone(),
                    None => known(inputs, 1, op, "axes")?.ok_or_else(|| Error::shape(op, "needs axes"))?,
                };
                let rank = s.len() + axes.len();
                let mut axes: Vec<usize> = axes.iter().map(|&a| normalize_axis(a, rank, op)).collect::<Result<_>>()?;
                axes.sort_unstable();
                if axes.windows(2).any(|w| w[0] == w[1]) {
                    bail_shape!(op, "repeated axes");
                }
                let mut dims = s.iter().copied();
                (0..rank).map(|i| if axes.binary_search(&i).is_ok() { 1 } else { dims.next().unwrap_or(1) }).collect()
            }
        })
    }
}

fn reshape_target(input: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let total = checked_numel(input)?;
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *input
                    .get(i)
                    .ok_or_else(|| Error::shape("Reshape", format!("0 at position {i} copies a dim the input {input:?} does not have")))?,
            ),
            t if t >= 0 => out.push(t as usize),
            _ => bail_shape!("Reshape", "invalid target shape {target:?}"),
        }
    }
    let known = checked_numel(&out)?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            bail_shape!("Reshape", "cannot reshape {input:?} to {target:?}");
        }
        out[i] = total / known;
    }
    if checked_numel(&out)? != total {
        bail_shape!("Reshape", "cannot reshape {input:?} ({total} elements) to {target:?}");
    }
    Ok(out)
}

impl Op for View {
    fn op_type(&self) -> &str {
        self.name()
    }
    /// Identity also passes sequences and optionals through (opsets 14 and 16).
    fn eval(&self, inputs: &[Option<crate::Value>], cx: &crate::eager::EvalContext) -> Result<Vec<crate::Value>> {
        match (self, inputs.first()) {
            (View::Identity, Some(Some(v))) if !matches!(v, crate::Value::Tensor(_)) => Ok(vec![v.clone()]),
            _ => crate::eager::eval_tensors(self, inputs, cx),
        }
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name())?;
        let shape = self.out_shape(inputs)?;
        if let View::Dropout = self {
            // Known at load time (constants): refuse a random Dropout before running.
            let scalar = |i: usize| inputs.get(i).copied().flatten().map(|f| f.value.as_ref().map(|v| v.view().to_f32_vec()));
            dropout_is_deterministic(scalar(1), scalar(2))?;
        }
        let mut out = vec![Fact {
            dtype: x.dtype,
            value: x.value.as_ref().map(|v| Arc::new((**v).clone().reshaped(shape.clone()).expect("same size"))),
            shape: shape.clone(),
        }];
        if let View::Dropout = self {
            out.push(Fact::new(DType::Bool, shape));
        }
        Ok(out)
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name())?;
        if let View::Dropout = self {
            let scalar = |i: usize| inputs.get(i).copied().flatten().map(|t| Some(t.to_f32_vec()));
            dropout_is_deterministic(scalar(1), scalar(2))?;
        }
        copy_all(&x, &mut outputs[0])?;
        if let Some(mask) = outputs.get_mut(1) {
            mask.bools_mut()?.fill(1);
        }
        Ok(())
    }
}

/// Dropout is the identity (and its mask all true) when `training_mode` (input 2) is false
/// or absent, or when `ratio` (input 1, default 0.5) is 0: what onnxruntime and the ONNX
/// reference compute. Training with a ratio above 0 draws random masks, which an inference
/// engine does not reproduce. Each argument is `None` when the input is omitted,
/// `Some(None)` when present but not known yet (at load time, for a graph input).
fn dropout_is_deterministic(ratio: Option<Option<Vec<f32>>>, training: Option<Option<Vec<f32>>>) -> Result<()> {
    let scalar = |v: &[f32], what: &str| match v {
        [x] => Ok(*x),
        _ => Err(Error::shape("Dropout", format!("{what} must be a scalar, got {} values", v.len()))),
    };
    let training = match training {
        None => return Ok(()),
        Some(None) => return Ok(()),
        Some(Some(t)) => scalar(&t, "training_mode")? != 0.0,
    };
    if !training {
        return Ok(());
    }
    let ratio = match ratio {
        None => 0.5,
        Some(None) => return Ok(()),
        Some(Some(r)) => scalar(&r, "ratio")?,
    };
    if !(0.0..1.0).contains(&ratio) {
        return Err(Error::shape("Dropout", format!("ratio must be in [0, 1), got {ratio}")));
    }
    if ratio != 0.0 {
        return Err(Error::shape(
            "Dropout",
            format!(
                "training_mode is true with ratio {ratio}: that drops random elements, which Cairn (an inference engine) does not do; export the model in eval mode (training_mode false) or set ratio to 0"
            ),
        ));
    }
    Ok(())
}

/// Copies `out_shape` elements from `src` starting at `base`, walking `strides`
/// (element strides of the source per output dim; negative for reversed slices).
/// The innermost dims the source walks evenly are merged into runs, copied with
/// `copy_from_slice` when contiguous (Slice, and Transposes that keep the last axis,
/// like attention's head split) or by one strided loop each; an odometer steps
/// between runs only.
fn strided_copy(src: DataRef, dst: &mut DataMut, out_shape: &[usize], strides: &[isize], base: isize) -> Result<()> {
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return Ok(());
    }
    let (mut d, mut len, step) = match out_shape.len().checked_sub(1) {
        Some(last) => (last, out_shape[last], strides[last]),
        None => (0, 1, 1),
    };
    while d > 0 && strides[d - 1] == step * len as isize {
        d -= 1;
        len *= out_shape[d];
    }
    crate::with_same_dtype!(src, dst, |s, dst| {
        let mut counter = vec![0usize; d];
        let mut off = base;
        for run in dst[..total].chunks_exact_mut(len) {
            if step == 1 {
                run.copy_from_slice(&s[off as usize..off as usize + len]);
            } else {
                for (k, slot) in run.iter_mut().enumerate() {
                    *slot = s[(off + k as isize * step) as usize];
                }
            }
            for k in (0..d).rev() {
                counter[k] += 1;
                off += strides[k];
                if counter[k] < out_shape[k] {
                    break;
                }
                off -= strides[k] * out_shape[k] as isize;
                counter[k] = 0;
            }
        }
    })
}

/// Copies `len` elements from `src[from..]` to `dst[to..]` (same dtype).
fn copy_run(src: DataRef, from: usize, dst: &mut DataMut, to: usize, len: usize) -> Result<()> {
    crate::with_same_dtype!(src, dst, |s, d| d[to..to + len].copy_from_slice(&s[from..from + len]))
}

#[derive(Debug)]
struct Transpose {
    perm: Option<Vec<i64>>,
}

impl Transpose {
    fn perm(&self, rank: usize) -> Result<Vec<usize>> {
        let perm: Vec<usize> = match &self.perm {
            None => (0..rank).rev().collect(),
            Some(p) => p.iter().map(|&a| normalize_axis(a, rank, "Transpose")).collect::<Result<_>>()?,
        };
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
            bail_shape!("Transpose", "perm {:?} is not a permutation of rank {rank}", self.perm);
        }
        Ok(perm)
    }
}

impl Op for Transpose {
    fn op_type(&self) -> &str {
        "Transpose"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Transpose")?;
        let perm = self.perm(x.rank())?;
        Ok(vec![Fact::new(x.dtype, perm.iter().map(|&p| x.shape[p]).collect())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Transpose")?;
        let perm = self.perm(x.rank())?;
        let cs = contiguous_strides(x.shape);
        let strides: Vec<isize> = perm.iter().map(|&p| cs[p] as isize).collect();
        let out = &mut outputs[0];
        let shape = out.shape;
        strided_copy(x.data, &mut out.data, shape, &strides, 0)
    }
}

#[derive(Debug)]
struct Concat {
    axis: i64,
}

impl Op for Concat {
    fn op_type(&self) -> &str {
        "Concat"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let facts: Vec<&Fact> = inputs.iter().flatten().copied().collect();
        let first = facts.first().ok_or_else(|| Error::shape("Concat", "needs inputs"))?;
        let axis = normalize_axis(self.axis, first.rank(), "Concat")?;
        let mut shape = first.shape.clone();
        shape[axis] = 0;
        for f in &facts {
            if f.dtype != first.dtype
                || f.rank() != first.rank()
                || f.shape.iter().enumerate().any(|(i, &d)| i != axis && d != first.shape[i])
            {
                bail_shape!("Concat", "inputs {:?} and {:?} do not fit along axis {axis}", first.shape, f.shape);
            }
            shape[axis] += f.shape[axis];
        }
        Ok(vec![Fact::new(first.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let ins: Vec<&TensorRef> = inputs.iter().flatten().collect();
        let out = &mut outputs[0];
        let axis = normalize_axis(self.axis, out.shape.len(), "Concat")?;
        let outer: usize = out.shape[..axis].iter().product();
        let out_block: usize = out.shape[axis..].iter().product();
        let mut offset = 0;
        for x in ins {
            let block: usize = x.shape[axis..].iter().product();
            for o in 0..outer {
                copy_run(x.data, o * block, &mut out.data, o * out_block + offset, block)?;
            }
            offset += block;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Split {
    axis: i64,
    split: Option<Vec<i64>>,
    num_outputs: Option<i64>,
    /// Outputs the node declares: the number of equal parts when no split is given.
    n_outputs: usize,
}

impl Split {
    fn sizes(&self, inputs: &[Option<&Fact>]) -> Result<(usize, Vec<usize>)> {
        let x = required(inputs, 0, "Split")?;
        let axis = normalize_axis(self.axis, x.rank(), "Split")?;
        let dim = x.shape[axis];
        let split = match &self.split {
            Some(s) => Some(s.clone()),
            None => known(inputs, 1, "Split", "split")?,
        };
        let sizes: Vec<usize> = match split {
            Some(s) if !s.is_empty() => {
                s.iter().map(|&v| usize::try_from(v).map_err(|_| Error::shape("Split", "negative split"))).collect::<Result<_>>()?
            }
            _ => {
                let n = self.num_outputs.map_or(self.n_outputs, |n| n as usize).max(1);
                let chunk = dim.div_ceil(n);
                (0..n).map(|i| chunk.min(dim.saturating_sub(i * chunk))).collect()
            }
        };
        if sizes.iter().sum::<usize>() != dim {
            bail_shape!("Split", "sizes {sizes:?} do not add up to {dim}");
        }
        Ok((axis, sizes))
    }
}

impl Op for Split {
    fn op_type(&self) -> &str {
        "Split"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Split")?;
        let (axis, sizes) = self.sizes(inputs)?;
        Ok(sizes
            .into_iter()
            .map(|s| {
                let mut shape = x.shape.clone();
                shape[axis] = s;
                Fact::new(x.dtype, shape)
            })
            .collect())
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Split")?;
        let axis = normalize_axis(self.axis, x.rank(), "Split")?;
        let outer: usize = x.shape[..axis].iter().product();
        let in_block: usize = x.shape[axis..].iter().product();
        let mut offset = 0;
        for out in outputs.iter_mut() {
            let block: usize = out.shape[axis..].iter().product();
            for o in 0..outer {
                copy_run(x.data, o * in_block + offset, &mut out.data, o * block, block)?;
            }
            offset += block;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Slice {
    /// Opset < 10: starts, ends, axes as attributes.
    attrs: Option<(Vec<i64>, Vec<i64>, Option<Vec<i64>>)>,
}

/// Per output dim: (start index, step, length) of a Slice.
fn slice_ranges(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<(i64, i64, usize)>> {
    let rank = shape.len();
    let mut ranges: Vec<(i64, i64, usize)> = shape.iter().map(|&d| (0, 1, d)).collect();
    if starts.len() != ends.len() {
        bail_shape!("Slice", "starts {starts:?} and ends {ends:?} differ in length");
    }
    let default_axes: Vec<i64> = (0..starts.len() as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    if axes.len() != starts.len() || steps.is_some_and(|s| s.len() != starts.len()) {
        bail_shape!("Slice", "axes/steps must match starts in length");
    }
    for (i, &a) in axes.iter().enumerate() {
        let axis = normalize_axis(a, rank, "Slice")?;
        let dim = shape[axis] as i64;
        let step = steps.map_or(1, |s| s[i]);
        if step == 0 {
            bail_shape!("Slice", "step cannot be 0");
        }
        let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (start, end) = if step > 0 {
            (clamp(norm(starts[i]), 0, dim), clamp(norm(ends[i]), 0, dim))
        } else {
            (clamp(norm(starts[i]), 0, dim - 1), clamp(norm(ends[i]), -1, dim - 1))
        };
        let len = if step > 0 {
            (end - start).max(0).div_euclid(1).saturating_add(step - 1) / step
        } else {
            (start - end).max(0).saturating_add(-step - 1) / -step
        };
        ranges[axis] = (start, step, len.max(0) as usize);
    }
    Ok(ranges)
}

impl Slice {
    fn ranges(&self, inputs: &[Option<&Fact>]) -> Result<Vec<(i64, i64, usize)>> {
        let x = required(inputs, 0, "Slice")?;
        match &self.attrs {
            Some((s, e, a)) => slice_ranges(&x.shape, s, e, a.as_deref(), None),
            None => {
                let starts = known(inputs, 1, "Slice", "starts")?.ok_or_else(|| Error::shape("Slice", "needs starts"))?;
                let ends = known(inputs, 2, "Slice", "ends")?.ok_or_else(|| Error::shape("Slice", "needs ends"))?;
                let axes = known(inputs, 3, "Slice", "axes")?;
                let steps = known(inputs, 4, "Slice", "steps")?;
                slice_ranges(&x.shape, &starts, &ends, axes.as_deref(), steps.as_deref())
            }
        }
    }
}

impl Op for Slice {
    fn op_type(&self) -> &str {
        "Slice"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Slice")?;
        let ranges = self.ranges(inputs)?;
        Ok(vec![Fact::new(x.dtype, ranges.iter().map(|r| r.2).collect())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let facts: Vec<Option<Fact>> = inputs.iter().map(|t| t.map(|t| Fact::from_tensor(Arc::new(t.to_tensor())))).collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
        let ranges = self.ranges(&refs)?;
        let x = required(inputs, 0, "Slice")?;
        let cs = contiguous_strides(x.shape);
        let base: i64 = ranges.iter().zip(&cs).map(|(r, &s)| r.0 * s as i64).sum();
        let strides: Vec<isize> = ranges.iter().zip(&cs).map(|(r, &s)| (r.1 * s as i64) as isize).collect();
        let out = &mut outputs[0];
        let shape = out.shape;
        strided_copy(x.data, &mut out.data, shape, &strides, base as isize)
    }
}

#[derive(Debug)]
struct Gather {
    axis: i64,
}

impl Op for Gather {
    fn op_type(&self) -> &str {
        "Gather"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Gather")?;
        let idx = required(inputs, 1, "Gather")?;
        if !matches!(idx.dtype, DType::I64 | DType::I32) {
            bail_shape!("Gather", "indices must be i32 or i64, got {}", idx.dtype);
        }
        let axis = normalize_axis(self.axis, x.rank(), "Gather")?;
        let mut shape = x.shape[..axis].to_vec();
        shape.extend(&idx.shape);
        shape.extend(&x.shape[axis + 1..]);
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Gather")?;
        let idx = required(inputs, 1, "Gather")?.to_i64_vec()?;
        let axis = normalize_axis(self.axis, x.rank(), "Gather")?;
        let dim = x.shape[axis] as i64;
        let outer: usize = x.shape[..axis].iter().product();
        let inner: usize = x.shape[axis + 1..].iter().product();
        let out = &mut outputs[0];
        for o in 0..outer {
            for (j, &i) in idx.iter().enumerate() {
                let i = if i < 0 { i + dim } else { i };
                if !(0..dim).contains(&i) {
                    bail_shape!("Gather", "index {i} is out of range for axis of size {dim}");
                }
                copy_run(x.data, (o * dim as usize + i as usize) * inner, &mut out.data, (o * idx.len() + j) * inner, inner)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct ShapeOp {
    start: i64,
    end: Option<i64>,
}

impl Op for ShapeOp {
    fn op_type(&self) -> &str {
        "Shape"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Shape")?;
        let r = x.rank() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (s, e) = (clamp(self.start), clamp(self.end.unwrap_or(r)));
        let dims: Vec<i64> = x.shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
        // Known from the shape alone: this is what lets shape chains fold at plan time.
        Ok(vec![Fact::from_tensor(Arc::new(Tensor::from_i64(vec![dims.len()], dims)?))])
    }
    fn run(&self, _inputs: &[Option<TensorRef>], _outputs: &mut [TensorMut]) -> Result<()> {
        unreachable_value_op("Shape")
    }
}

#[derive(Debug)]
struct SizeOp;

impl Op for SizeOp {
    fn op_type(&self) -> &str {
        "Size"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Size")?;
        Ok(vec![Fact::from_tensor(Arc::new(Tensor::from_i64(vec![], vec![x.numel() as i64])?))])
    }
    fn run(&self, _inputs: &[Option<TensorRef>], _outputs: &mut [TensorMut]) -> Result<()> {
        unreachable_value_op("Size")
    }
}

/// Shape and Size always know their value at plan time, so the planner never schedules them.
fn unreachable_value_op(op: &str) -> Result<()> {
    Err(Error::shape(op, "internal: value ops are computed at plan time"))
}

#[derive(Debug)]
struct ConstantOfShape {
    value: Tensor,
}

impl Op for ConstantOfShape {
    fn op_type(&self) -> &str {
        "ConstantOfShape"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let dims = known(inputs, 0, "ConstantOfShape", "shape")?.ok_or_else(|| Error::shape("ConstantOfShape", "needs a shape"))?;
        let shape: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| Error::shape("ConstantOfShape", format!("negative dim in {dims:?}"))))
            .collect::<Result<_>>()?;
        checked_numel(&shape)?;
        Ok(vec![Fact::new(self.value.dtype(), shape)])
    }
    fn run(&self, _inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        crate::with_same_dtype!(self.value.data().as_ref(), &mut outputs[0].data, |v, d| d.fill(v[0]))
    }
}

/// `Range(start, limit, delta)`: the output length depends on the values, which
/// are known at plan time in practice (`Shape`-derived sequence lengths).
#[derive(Debug)]
struct Range;

impl Range {
    fn scalars(inputs: &[Option<&Fact>]) -> Result<Option<(DType, [f64; 3])>> {
        let mut v = [0.0f64; 3];
        let mut dtype = None;
        for (i, slot) in v.iter_mut().enumerate() {
            let f = required(inputs, i, "Range")?;
            if f.numel() != 1 {
                bail_shape!("Range", "start, limit and delta must be scalars, input {i} has shape {:?}", f.shape);
            }
            dtype = Some(f.dtype);
            match &f.value {
                None => return Ok(None),
                Some(t) => *slot = t.view().to_f64_vec().first().copied().unwrap_or(0.0),
            }
            if let Some(t) = &f.value {
                if let Ok(ints) = t.view().to_i64_vec() {
                    *slot = ints[0] as f64;
                }
            }
        }
        Ok(dtype.map(|d| (d, v)))
    }
}

impl Op for Range {
    fn op_type(&self) -> &str {
        "Range"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let Some((dtype, [start, limit, delta])) = Range::scalars(inputs)? else {
            bail_shape!("Range", "needs start, limit and delta known before running (they set the output length)");
        };
        if delta == 0.0 {
            bail_shape!("Range", "delta must not be 0");
        }
        let n = ((limit - start) / delta).ceil().max(0.0);
        if n > (1u64 << 32) as f64 {
            return Err(Error::TooLarge(format!("Range of {n} elements")));
        }
        let n = n as usize;
        let values: Vec<f64> = (0..n).map(|i| start + i as f64 * delta).collect();
        let t = match dtype {
            DType::I64 => Tensor::from_i64(vec![n], values.iter().map(|&v| v as i64).collect())?,
            DType::I32 => Tensor::new(vec![n], crate::TensorData::I32(values.iter().map(|&v| v as i32).collect()))?,
            DType::I16 => Tensor::new(vec![n], crate::TensorData::I16(values.iter().map(|&v| v as i16).collect()))?,
            DType::F32 => Tensor::from_f32(vec![n], values.iter().map(|&v| v as f32).collect())?,
            DType::F64 => Tensor::new(vec![n], crate::TensorData::F64(values))?,
            DType::F16 => Tensor::new(vec![n], crate::TensorData::F16(values.iter().map(|&v| half::f16::from_f64(v)).collect()))?,
            DType::BF16 => Tensor::new(vec![n], crate::TensorData::BF16(values.iter().map(|&v| half::bf16::from_f64(v)).collect()))?,
            other => bail_shape!("Range", "is not implemented for {other}"),
        };
        Ok(vec![Fact::from_tensor(std::sync::Arc::new(t))])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let facts: Vec<Option<Fact>> = inputs.iter().map(|t| t.map(|t| Fact::from_tensor(std::sync::Arc::new(t.to_tensor())))).collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
        let out = self.infer(&refs)?.remove(0);
        let value = out.value.expect("Range infers its value");
        outputs[0].data.copy_from(value.view().data)
    }
}

#[derive(Debug)]
struct Expand;

impl Op for Expand {
    fn op_type(&self) -> &str {
        "Expand"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Expand")?;
        let dims = known(inputs, 1, "Expand", "shape")?.ok_or_else(|| Error::shape("Expand", "needs a shape"))?;
        let target: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| Error::shape("Expand", format!("negative dim in {dims:?}"))))
            .collect::<Result<_>>()?;
        let shape = broadcast_shapes(&[&x.shape, &target], "Expand")?;
        checked_numel(&shape)?;
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Expand")?;
        let out = &mut outputs[0];
        let shape = out.shape;
        super::elementwise::broadcast_copy(&x, shape, out)
    }
}

#[derive(Debug)]
struct Tile;

impl Op for Tile {
    fn op_type(&self) -> &str {
        "Tile"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Tile")?;
        let reps = known(inputs, 1, "Tile", "repeats")?.ok_or_else(|| Error::shape("Tile", "needs repeats"))?;
        if reps.len() != x.rank() || reps.iter().any(|&r| r < 0) {
            bail_shape!("Tile", "repeats {reps:?} must be {} non-negative values", x.rank());
        }
        let shape: Vec<usize> = x
            .shape
            .iter()
            .zip(&reps)
            .map(|(&d, &r)| d.checked_mul(r as usize).ok_or_else(|| Error::TooLarge("Tile".into())))
            .collect::<Result<_>>()?;
        checked_numel(&shape)?;
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Tile")?;
        let out = &mut outputs[0];
        // Output index i along dim k reads input index i % d: walk with an odometer.
        let shape = out.shape.to_vec();
        let cs = contiguous_strides(x.shape);
        let total: usize = shape.iter().product();
        let mut counter = vec![0usize; shape.len()];
        let mut src_index = Vec::with_capacity(total);
        for _ in 0..total {
            src_index.push(counter.iter().zip(x.shape).zip(&cs).map(|((&c, &d), &s)| (c % d) * s).sum::<usize>());
            for k in (0..shape.len()).rev() {
                counter[k] += 1;
                if counter[k] < shape[k] {
                    break;
                }
                counter[k] = 0;
            }
        }
        for (i, &s) in src_index.iter().enumerate() {
            copy_run(x.data, s, &mut out.data, i, 1)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Pad {
    mode: String,
    /// Opset < 11: pads and value as attributes.
    attrs: Option<(Vec<i64>, f32)>,
}

impl Pad {
    fn pads(&self, inputs: &[Option<&Fact>]) -> Result<Vec<i64>> {
        let x = required(inputs, 0, "Pad")?;
        let r = x.rank();
        let raw = match &self.attrs {
            Some((p, _)) => p.clone(),
            None => known(inputs, 1, "Pad", "pads")?.ok_or_else(|| Error::shape("Pad", "needs pads"))?,
        };
        let axes = known(inputs, 3, "Pad", "axes")?;
        let mut pads = vec![0i64; 2 * r];
        match axes {
            None if raw.len() == 2 * r => pads = raw,
            Some(axes) if raw.len() == 2 * axes.len() => {
                for (i, &a) in axes.iter().enumerate() {
                    let a = normalize_axis(a, r, "Pad")?;
                    pads[a] = raw[i];
                    pads[a + r] = raw[i + axes.len()];
                }
            }
            _ => bail_shape!("Pad", "pads {raw:?} do not fit rank {r}"),
        }
        Ok(pads)
    }
}

impl Op for Pad {
    fn op_type(&self) -> &str {
        "Pad"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Pad")?;
        let pads = self.pads(inputs)?;
        let r = x.rank();
        let shape: Vec<usize> = (0..r)
            .map(|i| {
                let d = x.shape[i] as i64 + pads[i] + pads[i + r];
                if d < 0 || (self.mode != "constant" && x.shape[i] == 0 && d > 0) {
                    Err(Error::shape("Pad", format!("pads {pads:?} do not fit {:?}", x.shape)))
                } else {
                    Ok(d as usize)
                }
            })
            .collect::<Result<_>>()?;
        checked_numel(&shape)?;
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Pad")?;
        let facts: Vec<Option<Fact>> = inputs.iter().map(|t| t.map(|t| Fact::from_tensor(Arc::new(t.to_tensor())))).collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
        let pads = self.pads(&refs)?;
        let r = x.rank();
        let value = match &self.attrs {
            Some((_, v)) => TensorData::F32(vec![*v]),
            None => match inputs.get(2).copied().flatten() {
                Some(v) if v.len() == 1 => v.data.to_owned(),
                Some(_) => bail_shape!("Pad", "constant_value must be a scalar"),
                None => TensorData::zeros(x.dtype(), 1),
            },
        };
        let out = &mut outputs[0];
        let shape = out.shape.to_vec();
        let cs = contiguous_strides(x.shape);
        let total: usize = shape.iter().product();
        let mut counter = vec![0usize; r];
        for o in 0..total {
            // Source index per dim, or None where constant padding applies.
            let mut src = Some(0usize);
            for k in 0..r {
                let d = x.shape[k] as i64;
                let mut i = counter[k] as i64 - pads[k];
                if i < 0 || i >= d {
                    i = match self.mode.as_str() {
                        "edge" => i.clamp(0, d - 1),
                        "wrap" => i.rem_euclid(d),
                        "reflect" if d > 1 => {
                            let period = 2 * (d - 1);
                            let m = i.rem_euclid(period);
                            if m < d {
                                m
                            } else {
                                period - m
                            }
                        }
                        "reflect" => 0,
                        _ => {
                            src = None;
                            break;
                        }
                    };
                }
                src = src.map(|s| s + i as usize * cs[k]);
            }
            match src {
                Some(s) => copy_run(x.data, s, &mut out.data, o, 1)?,
                None => copy_run(value.as_ref(), 0, &mut out.data, o, 1).or_else(|_| {
                    let v = TensorRef { shape: &[], data: value.as_ref() }.to_f32_vec()[0];
                    match &mut out.data {
                        DataMut::F32(d) => {
                            d[o] = v;
                            Ok(())
                        }
                        _ => Err(Error::shape("Pad", "constant_value dtype differs from the input")),
                    }
                })?,
            }
            for k in (0..r).rev() {
                counter[k] += 1;
                if counter[k] < shape[k] {
                    break;
                }
                counter[k] = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod dropout_tests {
    use super::*;

    fn run(ratio: Option<f32>, training: Option<bool>) -> Result<Vec<Tensor>> {
        let x = Tensor::from_f32(vec![2, 2], vec![1.0, -2.0, 3.0, 4.0])?;
        let r = ratio.map(Tensor::scalar_f32);
        let t = training.map(|b| Tensor::new(vec![], TensorData::Bool(vec![b as u8])).unwrap());
        let inputs = [Some(x.view()), r.as_ref().map(|r| r.view()), t.as_ref().map(|t| t.view())];
        let mut y = Tensor::zeros(DType::F32, vec![2, 2])?;
        let mut mask = Tensor::zeros(DType::Bool, vec![2, 2])?;
        View::Dropout.run(&inputs, &mut [y.view_mut(), mask.view_mut()])?;
        Ok(vec![y, mask])
    }

    #[test]
    fn training_with_ratio_zero_is_identity_with_a_full_mask() {
        let out = run(Some(0.0), Some(true)).unwrap();
        assert_eq!(out[0].view().to_f32_vec(), [1.0, -2.0, 3.0, 4.0]);
        assert_eq!(out[1].data(), &TensorData::Bool(vec![1; 4]));
    }

    #[test]
    fn inference_ignores_the_ratio() {
        assert!(run(Some(0.7), Some(false)).is_ok());
        assert!(run(Some(0.7), None).is_ok());
        assert!(run(None, None).is_ok());
    }

    #[test]
    fn training_with_a_positive_ratio_is_refused_clearly() {
        let e = run(Some(0.5), Some(true)).unwrap_err().to_string();
        assert!(e.contains("training_mode is true with ratio 0.5") && e.contains("eval mode"), "{e}");
        // The default ratio (0.5) applies when the input is omitted.
        assert!(run(None, Some(true)).is_err());
        assert!(run(Some(1.5), Some(true)).unwrap_err().to_string().contains("[0, 1)"));
    }

    #[test]
    fn a_known_random_dropout_is_refused_at_plan_time() {
        let x = Fact::new(DType::F32, vec![2]);
        let r = Fact::from_tensor(Arc::new(Tensor::scalar_f32(0.3)));
        let t = Fact::from_tensor(Arc::new(Tensor::new(vec![], TensorData::Bool(vec![1])).unwrap()));
        assert!(View::Dropout.infer(&[Some(&x), Some(&r), Some(&t)]).is_err());
        // Unknown until run time: planned, checked when it runs.
        let t = Fact::new(DType::Bool, vec![]);
        assert_eq!(View::Dropout.infer(&[Some(&x), Some(&r), Some(&t)]).unwrap().len(), 2);
    }
}
