//! Reductions over axes: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd,
//! ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp; ArgMax, ArgMin.

use crate::{bail_shape, normalize_axis, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

const REDUCES: [(&str, Kind); 10] = [
    ("ReduceMean", Kind::Mean),
    ("ReduceSum", Kind::Sum),
    ("ReduceMax", Kind::Max),
    ("ReduceMin", Kind::Min),
    ("ReduceProd", Kind::Prod),
    ("ReduceL1", Kind::L1),
    ("ReduceL2", Kind::L2),
    ("ReduceSumSquare", Kind::SumSquare),
    ("ReduceLogSum", Kind::LogSum),
    ("ReduceLogSumExp", Kind::LogSumExp),
];

pub fn register(r: &mut Registry) {
    for (name, _) in REDUCES {
        r.register(name, build_reduce);
    }
    r.register("ArgMax", |ctx| build_arg(ctx, true));
    r.register("ArgMin", |ctx| build_arg(ctx, false));
}

fn build_reduce(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let (name, kind) = *REDUCES.iter().find(|(n, _)| *n == ctx.op_type).ok_or_else(|| Error::shape(ctx.op_type, "unknown reduce"))?;
    // Axes moved from attribute to input at opset 13 for ReduceSum, 18 for the rest.
    let axes_is_input = ctx.opset >= if kind == Kind::Sum { 13 } else { 18 };
    let axes = if axes_is_input { None } else { ctx.ints_opt("axes")? };
    Ok(Box::new(Reduce {
        name,
        kind,
        axes,
        keepdims: ctx.int("keepdims", 1)? == 1,
        noop_with_empty_axes: ctx.int("noop_with_empty_axes", 0)? == 1,
    }))
}

#[derive(Debug)]
struct Reduce {
    name: &'static str,
    kind: Kind,
    axes: Option<Vec<i64>>,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

impl Reduce {
    /// Sorted reduced axes; empty means "no reduction" (noop) only when noop_with_empty_axes.
    fn axes(&self, rank: usize, axes_input: Option<&Fact>) -> Result<Option<Vec<usize>>> {
        let given = match (&self.axes, axes_input) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(f)) => Some(f.known_i64s().ok_or_else(|| Error::shape(self.name, "the axes input must be a constant"))?),
            (None, None) => None,
        };
        match given {
            Some(a) if !a.is_empty() => {
                let mut v: Vec<usize> = a.iter().map(|&x| normalize_axis(x, rank, self.name)).collect::<Result<_>>()?;
                v.sort_unstable();
                v.dedup();
                Ok(Some(v))
            }
            _ if self.noop_with_empty_axes => Ok(None),
            _ => Ok(Some((0..rank).collect())),
        }
    }
}

impl Op for Reduce {
    fn op_type(&self) -> &str {
        self.name
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name)?;
        // Every numeric dtype (read as f64, written back narrowed); bools for ReduceMax/Min.
        let bool_ok = x.dtype == DType::Bool && matches!(self.kind, Kind::Max | Kind::Min);
        if !(x.dtype.is_float() || x.dtype.is_integer() || bool_ok) {
            bail_shape!(self.name, "is not defined for {}", x.dtype);
        }
        let axes = self.axes(x.rank(), inputs.get(1).copied().flatten())?;
        let shape = match axes {
            None => x.shape.clone(),
            Some(axes) => reduced_shape(&x.shape, &axes, self.keepdims),
        };
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name)?;
        let axes_fact = inputs.get(1).copied().flatten().map(|t| Fact::from_tensor(std::sync::Arc::new(t.to_tensor())));
        let axes = self.axes(x.rank(), axes_fact.as_ref())?;
        let vals = x.to_f64_vec();
        let mut out = match axes {
            None => vals,
            Some(axes) => reduce(&vals, x.shape, &axes, self.kind),
        };
        if x.dtype() == DType::Bool {
            // An empty bool Max is false and an empty Min true (the ±inf identities, clamped).
            out.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        }
        super::cast::convert(crate::DataRef::F64(&out), &mut outputs[0].data)
    }
}

fn reduced_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Vec<usize> {
    shape.iter().enumerate().filter_map(|(i, &d)| if axes.contains(&i) { keepdims.then_some(1) } else { Some(d) }).collect()
}

/// Reduces values in f64 over `axes`, output in row-major order of the kept dims.
fn reduce(x: &[f64], shape: &[usize], axes: &[usize], kind: Kind) -> Vec<f64> {
    let kept: Vec<usize> = (0..shape.len()).filter(|i| !axes.contains(i)).collect();
    let out_len: usize = kept.iter().map(|&i| shape[i]).product();
    let count: usize = axes.iter().map(|&i| shape[i]).product();
    let init = match kind {
        Kind::Max => f64::NEG_INFINITY,
        Kind::Min => f64::INFINITY,
        Kind::Prod => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![init; out_len];
    // Output strides of each input dim (0 on reduced dims): an odometer maps input to output.
    let mut ostride = vec![0usize; shape.len()];
    let mut s = 1;
    for &i in kept.iter().rev() {
        ostride[i] = s;
        s *= shape[i];
    }
    let lse_max: Vec<f64> = if kind == Kind::LogSumExp {
        let mut m = vec![f64::NEG_INFINITY; out_len];
        super::broadcast::for_each_offset(shape, [&ostride], |i, [o]| m[o] = m[o].max(x[i]));
        m
    } else {
        Vec::new()
    };
    super::broadcast::for_each_offset(shape, [&ostride], |i, [o]| {
        let v = x[i];
        let a = &mut acc[o];
        match kind {
            Kind::Mean | Kind::Sum | Kind::LogSum => *a += v,
            Kind::Max => *a = if v.is_nan() { v } else { a.max(v) },
            Kind::Min => *a = if v.is_nan() { v } else { a.min(v) },
            Kind::Prod => *a *= v,
            Kind::L1 => *a += v.abs(),
            Kind::L2 | Kind::SumSquare => *a += v * v,
            Kind::LogSumExp => *a += (v - lse_max[o]).exp(),
        }
    });
    acc.iter()
        .enumerate()
        .map(|(o, &a)| match kind {
            Kind::Mean => a / count.max(1) as f64,
            Kind::L2 => a.sqrt(),
            Kind::LogSum => a.ln(),
            Kind::LogSumExp => a.ln() + lse_max[o],
            _ => a,
        })
        .collect()
}

fn build_arg(ctx: &OpContext, max: bool) -> Result<Box<dyn Op>> {
    Ok(Box::new(Arg {
        max,
        axis: ctx.int("axis", 0)?,
        keepdims: ctx.int("keepdims", 1)? == 1,
        last: ctx.int("select_last_index", 0)? == 1,
    }))
}

#[derive(Debug)]
struct Arg {
    max: bool,
    axis: i64,
    keepdims: bool,
    last: bool,
}

impl Op for Arg {
    fn op_type(&self) -> &str {
        if self.max {
            "ArgMax"
        } else {
            "ArgMin"
        }
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        let axis = normalize_axis(self.axis, x.rank(), self.op_type())?;
        Ok(vec![Fact::new(DType::I64, reduced_shape(&x.shape, &[axis], self.keepdims))])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let axis = normalize_axis(self.axis, x.rank(), self.op_type())?;
        let v = x.to_f32_vec();
        let (outer, n, inner) = (x.shape[..axis].iter().product::<usize>(), x.shape[axis], x.shape[axis + 1..].iter().product::<usize>());
        let out = outputs[0].i64s_mut()?;
        for o in 0..outer {
            for i in 0..inner {
                let mut best = 0usize;
                for k in 1..n {
                    let (cand, cur) = (v[(o * n + k) * inner + i], v[(o * n + best) * inner + i]);
                    let better = if self.max { cand > cur } else { cand < cur };
                    if better || (self.last && cand == cur) {
                        best = k;
                    }
                }
                out[o * inner + i] = best as i64;
            }
        }
        Ok(())
    }
}
