//! Element-level indexing: GatherElements, GatherND, ScatterElements (and its
//! pre-opset-11 name Scatter), ScatterND. Every dtype; indices i32 or i64,
//! negative indices count from the end, out-of-range indices are an error.
//!
//! Reference kernels: each computes, per output (or update) element, the flat
//! offset it reads (or writes), then moves elements with one typed loop.

use super::broadcast::contiguous_strides;
use crate::{
    bail_shape, normalize_axis, required, DType, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef,
};
use half::f16;

pub fn register(r: &mut Registry) {
    r.register("GatherElements", |ctx| Ok(Box::new(GatherElements { axis: ctx.int("axis", 0)? })));
    r.register("GatherND", |ctx| Ok(Box::new(GatherNd { batch_dims: ctx.int("batch_dims", 0)? })));
    r.register("ScatterElements", |ctx| {
        Ok(Box::new(ScatterElements { name: "ScatterElements", axis: ctx.int("axis", 0)?, reduction: Reduction::parse(ctx)? }))
    });
    r.register("Scatter", |ctx| Ok(Box::new(ScatterElements { name: "Scatter", axis: ctx.int("axis", 0)?, reduction: Reduction::None })));
    r.register("ScatterND", |ctx| Ok(Box::new(ScatterNd { reduction: Reduction::parse(ctx)? })));
    r.register("ReverseSequence", |ctx| {
        Ok(Box::new(ReverseSequence { batch_axis: ctx.int("batch_axis", 1)?, time_axis: ctx.int("time_axis", 0)? }))
    });
    r.register("OneHot", |ctx| Ok(Box::new(OneHot { axis: ctx.int("axis", -1)? })));
}

/// How a scatter combines an update with the value already there.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    fn parse(ctx: &OpContext) -> Result<Reduction> {
        Ok(match ctx.string("reduction", "none")?.as_str() {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            other => return Err(ctx.unsupported("reduction", format!("'{other}' (expected none, add, mul, max or min)"))),
        })
    }
}

/// The arithmetic a scatter reduction needs, per element type.
trait Combine: Copy {
    fn combine(self, update: Self, r: Reduction) -> Self;
}

macro_rules! combine_num {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            #[inline]
            fn combine(self, u: $t, r: Reduction) -> $t {
                match r {
                    Reduction::None => u,
                    Reduction::Add => self + u,
                    Reduction::Mul => self * u,
                    Reduction::Max => if u > self { u } else { self },
                    Reduction::Min => if u < self { u } else { self },
                }
            }
        }
    )*};
}
combine_num!(f32, f64);

macro_rules! combine_int {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            #[inline]
            fn combine(self, u: $t, r: Reduction) -> $t {
                match r {
                    Reduction::None => u,
                    Reduction::Add => self.wrapping_add(u),
                    Reduction::Mul => self.wrapping_mul(u),
                    Reduction::Max => self.max(u),
                    Reduction::Min => self.min(u),
                }
            }
        }
    )*};
}
combine_int!(i8, u8, i32, i64);

impl Combine for f16 {
    fn combine(self, u: f16, r: Reduction) -> f16 {
        f16::from_f32(self.to_f32().combine(u.to_f32(), r))
    }
}

/// Bools are bytes (ADR 0003): add is `or`, mul is `and`, as numpy does on bool arrays.
fn combine_bool(a: u8, u: u8, r: Reduction) -> u8 {
    match r {
        Reduction::None => u,
        Reduction::Add | Reduction::Max => a | u,
        Reduction::Mul | Reduction::Min => a & u,
    }
}

/// `dst[i] = src[offsets[i]]` for every element of `dst`.
pub(crate) fn gather_offsets(src: DataRef, dst: &mut DataMut, offsets: &[usize]) -> Result<()> {
    crate::with_same_dtype!(src, dst, |s, d| d.iter_mut().zip(offsets).for_each(|(d, &o)| *d = s[o]))
}

/// Copies `data` into `dst`, then combines `updates[j]` into `dst[offsets[j]]` in order.
fn scatter_offsets(data: DataRef, updates: DataRef, dst: &mut DataMut, offsets: &[usize], inner: usize, r: Reduction) -> Result<()> {
    dst.copy_from(data)?;
    macro_rules! apply {
        ($d:expr, $u:expr, $f:expr) => {{
            for (j, &o) in offsets.iter().enumerate() {
                for k in 0..inner {
                    $d[o + k] = $f($d[o + k], $u[j * inner + k], r);
                }
            }
            Ok(())
        }};
    }
    match (dst, updates) {
        (DataMut::F32(d), DataRef::F32(u)) => apply!(d, u, f32::combine),
        (DataMut::F16(d), DataRef::F16(u)) => apply!(d, u, f16::combine),
        (DataMut::I8(d), DataRef::I8(u)) => apply!(d, u, i8::combine),
        (DataMut::U8(d), DataRef::U8(u)) => apply!(d, u, u8::combine),
        (DataMut::I32(d), DataRef::I32(u)) => apply!(d, u, i32::combine),
        (DataMut::I64(d), DataRef::I64(u)) => apply!(d, u, i64::combine),
        (DataMut::Bool(d), DataRef::Bool(u)) => apply!(d, u, combine_bool),
        (d, u) => Err(Error::DType { expected: d.dtype(), got: u.dtype(), context: "scatter updates".into() }),
    }
}

fn check_indices(f: &Fact, op: &str) -> Result<()> {
    if !matches!(f.dtype, DType::I64 | DType::I32) {
        bail_shape!(op, "indices must be i32 or i64, got {}", f.dtype);
    }
    Ok(())
}

/// Resolves a possibly negative index against a dim of size `dim`.
fn resolve(i: i64, dim: usize, op: &str) -> Result<usize> {
    let d = dim as i64;
    let j = if i < 0 { i + d } else { i };
    if !(0..d).contains(&j) {
        bail_shape!(op, "index {i} is out of range for a dim of size {dim}");
    }
    Ok(j as usize)
}

/// For GatherElements/ScatterElements: the flat offset in `data` of every element of
/// `indices` (same rank as data, index replaced along `axis`).
fn element_offsets(data_shape: &[usize], idx_shape: &[usize], idx: &[i64], axis: usize, op: &str) -> Result<Vec<usize>> {
    if idx_shape.len() != data_shape.len() {
        bail_shape!(op, "indices must have the rank of data ({:?}), got {:?}", data_shape, idx_shape);
    }
    if idx_shape.iter().zip(data_shape).enumerate().any(|(d, (&i, &s))| d != axis && i > s) {
        bail_shape!(op, "indices shape {:?} exceeds data shape {:?} outside the axis", idx_shape, data_shape);
    }
    let dstrides = contiguous_strides(data_shape);
    let istrides = contiguous_strides(idx_shape);
    idx.iter()
        .enumerate()
        .map(|(flat, &i)| {
            let mut off = 0;
            for d in 0..idx_shape.len() {
                let coord = (flat / istrides[d]) % idx_shape[d];
                let coord = if d == axis { resolve(i, data_shape[axis], op)? } else { coord };
                off += coord * dstrides[d];
            }
            Ok(off)
        })
        .collect()
}

#[derive(Debug)]
struct GatherElements {
    axis: i64,
}

impl Op for GatherElements {
    fn op_type(&self) -> &str {
        "GatherElements"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "GatherElements")?;
        let idx = required(inputs, 1, "GatherElements")?;
        check_indices(idx, "GatherElements")?;
        normalize_axis(self.axis, x.rank(), "GatherElements")?;
        if idx.rank() != x.rank() {
            bail_shape!("GatherElements", "indices must have the rank of data ({:?}), got {:?}", x.shape, idx.shape);
        }
        Ok(vec![Fact::new(x.dtype, idx.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "GatherElements")?;
        let idx = required(inputs, 1, "GatherElements")?;
        let axis = normalize_axis(self.axis, x.rank(), "GatherElements")?;
        let offsets = element_offsets(x.shape, idx.shape, &idx.to_i64_vec()?, axis, "GatherElements")?;
        gather_offsets(x.data, &mut outputs[0].data, &offsets)
    }
}

#[derive(Debug)]
struct ScatterElements {
    name: &'static str,
    axis: i64,
    reduction: Reduction,
}

impl Op for ScatterElements {
    fn op_type(&self) -> &str {
        self.name
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name)?;
        let idx = required(inputs, 1, self.name)?;
        let upd = required(inputs, 2, self.name)?;
        check_indices(idx, self.name)?;
        normalize_axis(self.axis, x.rank(), self.name)?;
        if upd.shape != idx.shape || upd.dtype != x.dtype {
            bail_shape!(
                self.name,
                "updates ({} {:?}) must match indices' shape {:?} and data's dtype {}",
                upd.dtype,
                upd.shape,
                idx.shape,
                x.dtype
            );
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name)?;
        let idx = required(inputs, 1, self.name)?;
        let upd = required(inputs, 2, self.name)?;
        let axis = normalize_axis(self.axis, x.rank(), self.name)?;
        let offsets = element_offsets(x.shape, idx.shape, &idx.to_i64_vec()?, axis, self.name)?;
        scatter_offsets(x.data, upd.data, &mut outputs[0].data, &offsets, 1, self.reduction)
    }
}

/// For GatherND/ScatterND: the flat offset in `data` of each index tuple (the last dim of
/// `indices`), with `batch_dims` leading dims shared by data and indices; the slice each
/// tuple selects has `inner` elements.
fn nd_offsets(data_shape: &[usize], idx_shape: &[usize], idx: &[i64], batch_dims: usize, op: &str) -> Result<(Vec<usize>, usize)> {
    let Some(&k) = idx_shape.last() else { bail_shape!(op, "indices must have rank >= 1") };
    if batch_dims + k > data_shape.len() || batch_dims >= idx_shape.len() || data_shape[..batch_dims] != idx_shape[..batch_dims] {
        bail_shape!(op, "indices {:?} (batch_dims {batch_dims}) do not index data {:?}", idx_shape, data_shape);
    }
    let dstrides = contiguous_strides(data_shape);
    let inner: usize = data_shape[batch_dims + k..].iter().product();
    let batch: usize = data_shape[..batch_dims].iter().product();
    let tuples = idx.len() / k.max(1);
    let per_batch = tuples / batch.max(1);
    let batch_stride: usize = data_shape[batch_dims..].iter().product();
    let mut offsets = Vec::with_capacity(tuples);
    for t in 0..tuples {
        let mut off = (t / per_batch.max(1)) * batch_stride;
        for (j, &i) in idx[t * k..(t + 1) * k].iter().enumerate() {
            off += resolve(i, data_shape[batch_dims + j], op)? * dstrides[batch_dims + j];
        }
        offsets.push(off);
    }
    Ok((offsets, inner))
}

#[derive(Debug)]
struct GatherNd {
    batch_dims: i64,
}

impl GatherNd {
    fn batch_dims(&self) -> Result<usize> {
        usize::try_from(self.batch_dims).map_err(|_| Error::shape("GatherND", format!("batch_dims must be >= 0, got {}", self.batch_dims)))
    }
}

impl Op for GatherNd {
    fn op_type(&self) -> &str {
        "GatherND"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "GatherND")?;
        let idx = required(inputs, 1, "GatherND")?;
        check_indices(idx, "GatherND")?;
        let b = self.batch_dims()?;
        let Some(&k) = idx.shape.last() else { bail_shape!("GatherND", "indices must have rank >= 1") };
        if b + k > x.rank() || b >= idx.rank() || x.shape[..b] != idx.shape[..b] {
            bail_shape!("GatherND", "indices {:?} (batch_dims {b}) do not index data {:?}", idx.shape, x.shape);
        }
        let mut shape = idx.shape[..idx.rank() - 1].to_vec();
        shape.extend(&x.shape[b + k..]);
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "GatherND")?;
        let idx = required(inputs, 1, "GatherND")?;
        let (starts, inner) = nd_offsets(x.shape, idx.shape, &idx.to_i64_vec()?, self.batch_dims()?, "GatherND")?;
        let offsets: Vec<usize> = starts.iter().flat_map(|&s| s..s + inner).collect();
        gather_offsets(x.data, &mut outputs[0].data, &offsets)
    }
}

#[derive(Debug)]
struct ScatterNd {
    reduction: Reduction,
}

impl Op for ScatterNd {
    fn op_type(&self) -> &str {
        "ScatterND"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "ScatterND")?;
        let idx = required(inputs, 1, "ScatterND")?;
        let upd = required(inputs, 2, "ScatterND")?;
        check_indices(idx, "ScatterND")?;
        let Some(&k) = idx.shape.last() else { bail_shape!("ScatterND", "indices must have rank >= 1") };
        let mut want = idx.shape[..idx.rank() - 1].to_vec();
        want.extend(x.shape.get(k..).unwrap_or(&[]));
        if k > x.rank() || upd.shape != want || upd.dtype != x.dtype {
            bail_shape!(
                "ScatterND",
                "updates must be {} {:?} for data {:?} and indices {:?}, got {} {:?}",
                x.dtype,
                want,
                x.shape,
                idx.shape,
                upd.dtype,
                upd.shape
            );
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "ScatterND")?;
        let idx = required(inputs, 1, "ScatterND")?;
        let upd = required(inputs, 2, "ScatterND")?;
        let (starts, inner) = nd_offsets(x.shape, idx.shape, &idx.to_i64_vec()?, 0, "ScatterND")?;
        scatter_offsets(x.data, upd.data, &mut outputs[0].data, &starts, inner, self.reduction)
    }
}

/// ReverseSequence(input, sequence_lens): reverses the first `sequence_lens[b]` steps
/// along `time_axis` of each batch entry `b` (along `batch_axis`); the rest is copied.
#[derive(Debug)]
struct ReverseSequence {
    batch_axis: i64,
    time_axis: i64,
}

impl ReverseSequence {
    fn axes(&self, rank: usize) -> Result<(usize, usize)> {
        let (b, t) = (normalize_axis(self.batch_axis, rank, "ReverseSequence")?, normalize_axis(self.time_axis, rank, "ReverseSequence")?);
        if rank < 2 || b == t || b > 1 || t > 1 {
            bail_shape!("ReverseSequence", "batch_axis and time_axis must be 0 and 1 in some order, of a rank >= 2 input");
        }
        Ok((b, t))
    }
}

impl Op for ReverseSequence {
    fn op_type(&self) -> &str {
        "ReverseSequence"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "ReverseSequence")?;
        let lens = required(inputs, 1, "ReverseSequence")?;
        let (b, _) = self.axes(x.rank())?;
        if lens.shape != [x.shape[b]] {
            bail_shape!("ReverseSequence", "sequence_lens must be [{}], got {:?}", x.shape[b], lens.shape);
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "ReverseSequence")?;
        let lens = required(inputs, 1, "ReverseSequence")?.to_i64_vec()?;
        let (b_axis, t_axis) = self.axes(x.rank())?;
        let strides = contiguous_strides(x.shape);
        let steps = x.shape[t_axis];
        let inner: usize = x.shape[2..].iter().product();
        let mut offsets: Vec<usize> = (0..x.len()).collect();
        for (b, &len) in lens.iter().enumerate() {
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= steps)
                .ok_or_else(|| Error::shape("ReverseSequence", format!("sequence length {len} is outside 0..={steps}")))?;
            for t in 0..len {
                for i in 0..inner {
                    let at = |t: usize| b * strides[b_axis] + t * strides[t_axis] + i;
                    offsets[at(t)] = at(len - 1 - t);
                }
            }
        }
        gather_offsets(x.data, &mut outputs[0].data, &offsets)
    }
}

/// OneHot(indices, depth, values): `values[1]` where the index along the new axis equals
/// the element's index (negative ones count from `depth`), `values[0]` elsewhere. Indices
/// may be any numeric dtype (floats truncate); `depth` must be known when planning.
#[derive(Debug)]
struct OneHot {
    axis: i64,
}

impl OneHot {
    fn depth(inputs: &[Option<&Fact>]) -> Result<usize> {
        let d = required(inputs, 1, "OneHot")?;
        let v = d.value.as_ref().map(|t| t.view().to_f64_vec());
        match v.as_deref() {
            Some([d]) if *d >= 1.0 && *d <= (1u64 << 32) as f64 => Ok(*d as usize),
            Some(v) => bail_shape!("OneHot", "depth must be one value >= 1, got {v:?}"),
            None => bail_shape!("OneHot", "depth must be known before running (a constant or computable from shapes)"),
        }
    }
}

impl Op for OneHot {
    fn op_type(&self) -> &str {
        "OneHot"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let idx = required(inputs, 0, "OneHot")?;
        let values = required(inputs, 2, "OneHot")?;
        if values.numel() != 2 {
            bail_shape!("OneHot", "values must hold [off, on], got shape {:?}", values.shape);
        }
        let depth = OneHot::depth(inputs)?;
        let axis = normalize_axis(self.axis, idx.rank() + 1, "OneHot")?;
        let mut shape = idx.shape.clone();
        shape.insert(axis, depth);
        crate::checked_numel(&shape)?;
        Ok(vec![Fact::new(values.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let idx = required(inputs, 0, "OneHot")?;
        let values = required(inputs, 2, "OneHot")?;
        let out = &mut outputs[0];
        let axis = normalize_axis(self.axis, idx.rank() + 1, "OneHot")?;
        let depth = out.shape[axis];
        let outer: usize = idx.shape[..axis].iter().product();
        let inner: usize = idx.shape[axis..].iter().product();
        let idx = idx.to_f64_vec();
        // Offset 1 of `values` where hot, 0 elsewhere.
        let mut picks = vec![0usize; out.len()];
        for o in 0..outer {
            for i in 0..inner {
                let v = idx[o * inner + i].trunc();
                let hot = if v < 0.0 { v + depth as f64 } else { v };
                if hot >= 0.0 && hot < depth as f64 {
                    picks[(o * depth + hot as usize) * inner + i] = 1;
                }
            }
        }
        gather_offsets(values.data, &mut out.data, &picks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    fn run_op(op: &dyn Op, inputs: &[Tensor]) -> Result<Tensor> {
        let facts: Vec<Fact> = inputs.iter().map(|t| Fact::new(t.dtype(), t.shape().to_vec())).collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(Some).collect();
        let out = op.infer(&refs)?.remove(0);
        let mut y = Tensor::zeros(out.dtype, out.shape)?;
        let views: Vec<Option<TensorRef>> = inputs.iter().map(|t| Some(t.view())).collect();
        op.run(&views, &mut [y.view_mut()])?;
        Ok(y)
    }

    #[test]
    fn one_hot_on_a_middle_axis_with_negative_indices() {
        let op = OneHot { axis: 0 };
        let idx = Tensor::from_i64(vec![2], vec![1, -1]).unwrap();
        let depth = std::sync::Arc::new(Tensor::from_i64(vec![], vec![3]).unwrap());
        let values = Tensor::from_f32(vec![2], vec![0., 5.]).unwrap();
        let facts = [Fact::new(DType::I64, vec![2]), Fact::from_tensor(depth.clone()), Fact::new(DType::F32, vec![2])];
        let out = op.infer(&[Some(&facts[0]), Some(&facts[1]), Some(&facts[2])]).unwrap().remove(0);
        assert_eq!(out.shape, vec![3, 2]);
        let mut y = Tensor::zeros(DType::F32, out.shape).unwrap();
        op.run(&[Some(idx.view()), Some(depth.view()), Some(values.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0., 0., 5., 0., 0., 5.]);
    }

    #[test]
    fn gather_elements_follows_the_spec_example() {
        let x = Tensor::from_f32(vec![2, 2], vec![1., 2., 3., 4.]).unwrap();
        let i = Tensor::from_i64(vec![2, 2], vec![0, 0, 1, -2]).unwrap();
        let y = run_op(&GatherElements { axis: 1 }, &[x, i]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1., 1., 4., 3.]);
    }

    #[test]
    fn scatter_elements_reduces_duplicates_in_order() {
        let x = Tensor::from_f32(vec![1, 5], vec![1., 2., 3., 4., 5.]).unwrap();
        let i = Tensor::from_i64(vec![1, 2], vec![1, 1]).unwrap();
        let u = Tensor::from_f32(vec![1, 2], vec![1.1, 2.1]).unwrap();
        let op = ScatterElements { name: "ScatterElements", axis: 1, reduction: Reduction::Add };
        let y = run_op(&op, &[x, i, u]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1., 5.2, 3., 4., 5.]);
    }

    #[test]
    fn gather_nd_with_batch_dims() {
        let x = Tensor::from_i64(vec![2, 2, 2], (0..8).collect()).unwrap();
        let i = Tensor::from_i64(vec![2, 1], vec![1, 0]).unwrap();
        let y = run_op(&GatherNd { batch_dims: 1 }, &[x, i]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(y.i64s().unwrap(), &[2, 3, 4, 5]);
    }

    #[test]
    fn scatter_nd_writes_slices_and_rejects_bad_indices() {
        let x = Tensor::from_i64(vec![4, 2], vec![0; 8]).unwrap();
        let i = Tensor::from_i64(vec![2, 1], vec![3, 1]).unwrap();
        let u = Tensor::from_i64(vec![2, 2], vec![1, 2, 3, 4]).unwrap();
        let y = run_op(&ScatterNd { reduction: Reduction::None }, &[x.clone(), i, u.clone()]).unwrap();
        assert_eq!(y.i64s().unwrap(), &[0, 0, 3, 4, 0, 0, 1, 2]);
        let bad = Tensor::from_i64(vec![2, 1], vec![4, 0]).unwrap();
        assert!(run_op(&ScatterNd { reduction: Reduction::None }, &[x, bad, u]).is_err());
    }
}
