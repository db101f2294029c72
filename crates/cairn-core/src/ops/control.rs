//! Control flow: If, Loop and Scan, whose bodies are subgraphs run by the eager
//! interpreter (docs/adr/0010-control-flow-and-dynamic-shapes.md).

use super::pieces::{join, scalar_bool, scalar_i64, take};
use crate::eager::{split_captures, EvalContext};
use crate::{normalize_axis, DType, Error, Fact, Op, OpContext, Registry, Result, Subgraph, Tensor, TensorMut, TensorRef, Value};
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    r.register("If", |ctx| Ok(Box::new(If { then_branch: ctx.graph_req("then_branch")?, else_branch: ctx.graph_req("else_branch")? })));
    r.register("Loop", |ctx| Ok(Box::new(Loop { body: ctx.graph_req("body")? })));
    r.register("Scan", |ctx| Scan::build(ctx).map(|s| Box::new(s) as Box<dyn Op>));
}

/// The planned-path entry points of an eager-only op: they explain instead of running.
macro_rules! eager_only {
    ($name:literal) => {
        fn op_type(&self) -> &str {
            $name
        }
        fn infer(&self, _inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
            Err(Error::shape($name, "runs on the eager interpreter only (its outputs are known only at run time)"))
        }
        fn run(&self, _inputs: &[Option<TensorRef>], _outputs: &mut [TensorMut]) -> Result<()> {
            Err(Error::shape($name, "runs on the eager interpreter only"))
        }
        fn runs_eagerly(&self) -> bool {
            true
        }
    };
}
pub(crate) use eager_only;

/// A required input that must be a tensor.
fn tensor_input<'v>(op: &str, inputs: &'v [Option<Value>], i: usize, what: &str) -> Result<&'v Arc<Tensor>> {
    inputs.get(i).and_then(|v| v.as_ref()).ok_or_else(|| Error::shape(op, format!("missing input {i} ({what})")))?.as_tensor(op)
}

#[derive(Debug)]
struct If {
    then_branch: Subgraph,
    else_branch: Subgraph,
}

impl Op for If {
    eager_only!("If");

    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let (own, captured) = split_captures("If", inputs, self.then_branch.captures.len())?;
        let cond = scalar_bool("If", "the condition", tensor_input("If", own, 0, "cond")?)?;
        let branch = if cond { &self.then_branch } else { &self.else_branch };
        branch.run("If", Vec::new(), captured, cx)
    }
}

#[derive(Debug)]
struct Loop {
    body: Subgraph,
}

/// Scan outputs of a loop, one list of per-iteration tensors each, checked as they grow.
struct Stacks {
    op: &'static str,
    items: Vec<Vec<Arc<Tensor>>>,
    bytes: usize,
}

impl Stacks {
    fn new(op: &'static str, k: usize) -> Stacks {
        Stacks { op, items: vec![Vec::new(); k], bytes: 0 }
    }

    /// Adds one iteration's outputs; every iteration must give the same shape and dtype.
    fn push(&mut self, outs: impl Iterator<Item = Value>, cx: &EvalContext) -> Result<()> {
        for (k, v) in outs.enumerate() {
            let t = v.as_tensor(self.op)?.clone();
            if let Some(first) = self.items[k].first() {
                if first.shape() != t.shape() || first.dtype() != t.dtype() {
                    return Err(Error::shape(
                        self.op,
                        format!(
                            "scan output {k} is {} {:?} at iteration {} but was {} {:?} before: every iteration must give one shape",
                            t.dtype(),
                            t.shape(),
                            self.items[k].len(),
                            first.dtype(),
                            first.shape()
                        ),
                    ));
                }
            }
            self.bytes = self.bytes.saturating_add(t.byte_len());
            self.items[k].push(t);
        }
        cx.check_room(self.bytes, "the scan outputs gathered so far")
    }

    /// Stacks each list along `axes[k]` (reversed where `reverse[k]`); an empty list gives
    /// shape [0, ...declared dims] of the body's declared dtype.
    fn finish(self, body: &Subgraph, first_output: usize, axes: &[i64], reverse: &[bool]) -> Result<Vec<Value>> {
        let op = self.op;
        let mut out = Vec::with_capacity(self.items.len());
        for (k, mut items) in self.items.into_iter().enumerate() {
            let Some(first) = items.first() else {
                let info = &body.graph.outputs[first_output + k];
                let mut shape = vec![0];
                shape.extend(info.dims.iter().flatten().map(|d| match d {
                    crate::Dim::Known(n) => *n,
                    crate::Dim::Sym(_) => 0,
                }));
                out.push(Value::tensor(Tensor::zeros(info.dtype, shape)?));
                continue;
            };
            let dtype = first.dtype();
            if reverse.get(k).copied().unwrap_or(false) {
                items.reverse();
            }
            let refs: Vec<&Tensor> = items.iter().map(|t| t.as_ref()).collect();
            out.push(Value::tensor(join(op, dtype, &refs, axes.get(k).copied().unwrap_or(0), true)?));
        }
        Ok(out)
    }
}

impl Op for Loop {
    eager_only!("Loop");

    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let (own, captured) = split_captures("Loop", inputs, self.body.captures.len())?;
        let trip_count = match own.first().and_then(|v| v.as_ref()) {
            Some(v) => Some(scalar_i64("Loop", "the trip count M", v.as_tensor("Loop")?)?),
            None => None,
        };
        let mut keep_going = match own.get(1).and_then(|v| v.as_ref()) {
            Some(v) => scalar_bool("Loop", "the condition", v.as_tensor("Loop")?)?,
            None => true,
        };
        let mut carried: Vec<Value> = own
            .iter()
            .skip(2)
            .enumerate()
            .map(|(k, v)| v.clone().ok_or_else(|| Error::shape("Loop", format!("loop-carried input {k} is missing"))))
            .collect::<Result<_>>()?;
        let n = carried.len();
        let body_outputs = self.body.graph.outputs.len();
        if body_outputs < 1 + n {
            return Err(Error::shape(
                "Loop",
                format!("the body has {body_outputs} outputs; it needs the condition and {n} loop-carried values"),
            ));
        }
        let mut stacks = Stacks::new("Loop", body_outputs - 1 - n);
        let mut i: i64 = 0;
        while keep_going && trip_count.is_none_or(|m| i < m) {
            cx.check_iterations("Loop", i as u64)?;
            let mut formal = Vec::with_capacity(2 + n);
            formal.push(Value::tensor(Tensor::from_i64(vec![], vec![i])?));
            formal.push(Value::tensor(Tensor::new(vec![], crate::TensorData::Bool(vec![1]))?));
            formal.append(&mut carried);
            let mut outs = self.body.run("Loop", formal, captured, cx)?.into_iter();
            let cond = outs.next().ok_or_else(|| Error::shape("Loop", "the body produced no condition"))?;
            keep_going = scalar_bool("Loop", "the body's condition output", cond.as_tensor("Loop")?)?;
            carried = outs.by_ref().take(n).collect();
            stacks.push(outs, cx)?;
            i += 1;
        }
        carried.extend(stacks.finish(&self.body, 1 + n, &[], &[])?);
        Ok(carried)
    }
}

#[derive(Debug)]
struct Scan {
    body: Subgraph,
    /// Opset 8's form: a batch axis first, an optional `sequence_lens` input.
    batched: bool,
    num_scan_inputs: usize,
    input_axes: Vec<i64>,
    input_reverse: Vec<bool>,
    output_axes: Vec<i64>,
    output_reverse: Vec<bool>,
}

impl Scan {
    fn build(ctx: &OpContext) -> Result<Scan> {
        let body = ctx.graph_req("body")?;
        let num_scan_inputs = usize::try_from(ctx.int_req("num_scan_inputs")?)
            .map_err(|_| Error::InvalidAttr { attr: "num_scan_inputs".into(), detail: "must not be negative".into() })?;
        let flags = |name: &str| -> Result<Vec<bool>> { Ok(ctx.ints_opt(name)?.unwrap_or_default().into_iter().map(|d| d == 1).collect()) };
        let batched = ctx.opset < 9;
        let (input_reverse, input_axes, output_reverse, output_axes) = if batched {
            (flags("directions")?, Vec::new(), Vec::new(), Vec::new())
        } else {
            (
                flags("scan_input_directions")?,
                ctx.ints_opt("scan_input_axes")?.unwrap_or_default(),
                flags("scan_output_directions")?,
                ctx.ints_opt("scan_output_axes")?.unwrap_or_default(),
            )
        };
        Ok(Scan { body, batched, num_scan_inputs, input_axes, input_reverse, output_axes, output_reverse })
    }

    /// One scan over unbatched state and scan inputs; returns final state then scan outputs.
    fn scan(&self, state: Vec<Value>, xs: &[Arc<Tensor>], captured: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let n = state.len();
        let body_outputs = self.body.graph.outputs.len();
        if body_outputs < n {
            return Err(Error::shape("Scan", format!("the body has {body_outputs} outputs, fewer than the {n} state values")));
        }
        let mut axes = Vec::with_capacity(xs.len());
        let mut len: Option<usize> = None;
        for (j, x) in xs.iter().enumerate() {
            let axis = normalize_axis(self.input_axes.get(j).copied().unwrap_or(0), x.rank(), "Scan")?;
            let l = x.shape()[axis];
            if len.is_some_and(|len| len != l) {
                return Err(Error::shape(
                    "Scan",
                    format!(
                        "scan input {j} has {l} entries along its scan axis {axis} but scan input 0 has {}: they must match",
                        len.unwrap_or(0)
                    ),
                ));
            }
            len = Some(l);
            axes.push(axis);
        }
        let len = len.ok_or_else(|| Error::shape("Scan", "needs at least one scan input"))?;
        let mut state = state;
        let mut stacks = Stacks::new("Scan", body_outputs - n);
        for t in 0..len {
            cx.check_iterations("Scan", t as u64)?;
            let mut formal = std::mem::take(&mut state);
            for (j, x) in xs.iter().enumerate() {
                let at = if self.input_reverse.get(j).copied().unwrap_or(false) { len - 1 - t } else { t };
                formal.push(Value::tensor(take("Scan", x, axes[j], at)?));
            }
            let mut outs = self.body.run("Scan", formal, captured, cx)?.into_iter();
            state = outs.by_ref().take(n).collect();
            stacks.push(outs, cx)?;
        }
        state.extend(stacks.finish(&self.body, n, &self.output_axes, &self.output_reverse)?);
        Ok(state)
    }
}

impl Op for Scan {
    eager_only!("Scan");

    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let (own, captured) = split_captures("Scan", inputs, self.body.captures.len())?;
        // Opset 8 puts `sequence_lens` first.
        let (seq_lens, own) = if self.batched { (own.first().and_then(|v| v.as_ref()), own.get(1..).unwrap_or(&[])) } else { (None, own) };
        let n = own.len().checked_sub(self.num_scan_inputs).ok_or_else(|| {
            Error::shape("Scan", format!("num_scan_inputs is {} but the node has {} inputs", self.num_scan_inputs, own.len()))
        })?;
        let tensors: Vec<Arc<Tensor>> =
            (0..own.len()).map(|i| tensor_input("Scan", own, i, "state or scan input").cloned()).collect::<Result<_>>()?;
        let (state, xs) = tensors.split_at(n);
        if !self.batched {
            return self.scan(state.iter().cloned().map(Value::Tensor).collect(), xs, captured, cx);
        }
        // Opset 8: scan each batch entry (axis 0) separately, then stack the results.
        let batch =
            xs.first().and_then(|x| x.shape().first().copied()).ok_or_else(|| Error::shape("Scan", "needs a batched scan input"))?;
        if let Some(lens) = seq_lens {
            let full = xs[0].shape().get(1).copied().unwrap_or(0) as i64;
            if lens.as_tensor("Scan")?.view().to_i64_vec()?.iter().any(|&l| l != full) {
                return Err(Error::UnsupportedAttr {
                    node: String::new(),
                    op_type: "Scan".into(),
                    opset: 8,
                    attr: "sequence_lens".into(),
                    detail: "sequences shorter than the scan axis are not implemented".into(),
                });
            }
        }
        let mut per_batch: Vec<Vec<Value>> = Vec::with_capacity(batch);
        for b in 0..batch {
            let st = state.iter().map(|s| take("Scan", s, 0, b).map(Value::tensor)).collect::<Result<_>>()?;
            let x: Vec<Arc<Tensor>> = xs.iter().map(|x| take("Scan", x, 0, b).map(Arc::new)).collect::<Result<_>>()?;
            per_batch.push(self.scan(st, &x, captured, cx)?);
        }
        let outputs = per_batch.first().map_or(0, |o| o.len());
        (0..outputs)
            .map(|k| {
                let parts: Vec<&Tensor> = per_batch.iter().map(|o| o[k].as_tensor("Scan").map(|t| t.as_ref())).collect::<Result<_>>()?;
                let dtype = parts.first().map_or(DType::F32, |t| t.dtype());
                join("Scan", dtype, &parts, 0, true).map(Value::tensor)
            })
            .collect()
    }
}
