//! ONNX sequence and optional operators, on the eager interpreter's [`Value`]s
//! (docs/adr/0010-control-flow-and-dynamic-shapes.md).

use super::cast::onnx_dtype;
use super::control::eager_only;
use super::pieces::{join, narrow, scalar_i64};
use crate::eager::{split_captures, EvalContext};
use crate::{
    normalize_axis, DType, Error, Fact, Op, Registry, Result, Sequence, Subgraph, Tensor, TensorData, TensorMut, TensorRef, Value,
};
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    r.register("SequenceEmpty", |ctx| {
        let code = ctx.int("dtype", 1)?;
        let elem = onnx_dtype(code).ok_or_else(|| ctx.unsupported("dtype", format!("ONNX data type {code} is not supported")))?;
        Ok(Box::new(SequenceEmpty { elem }))
    });
    r.register("SequenceConstruct", |_| Ok(Box::new(SequenceConstruct)));
    r.register("SequenceAt", |_| Ok(Box::new(SequenceAt)));
    r.register("SequenceInsert", |_| Ok(Box::new(SequenceInsert)));
    r.register("SequenceErase", |_| Ok(Box::new(SequenceErase)));
    r.register("SequenceLength", |_| Ok(Box::new(SequenceLength)));
    r.register("SplitToSequence", |ctx| {
        Ok(Box::new(SplitToSequence { axis: ctx.int("axis", 0)?, keepdims: ctx.int("keepdims", 1)? != 0 }))
    });
    r.register("ConcatFromSequence", |ctx| {
        Ok(Box::new(ConcatFromSequence { axis: ctx.int_req("axis")?, new_axis: ctx.int("new_axis", 0)? != 0 }))
    });
    r.register("SequenceMap", |ctx| Ok(Box::new(SequenceMap { body: ctx.graph_req("body")? })));
    r.register("Optional", |ctx| {
        ctx.ignore("type"); // an empty optional carries no type at run time
        Ok(Box::new(OptionalOp))
    });
    r.register("OptionalHasElement", |_| Ok(Box::new(OptionalHasElement)));
    r.register("OptionalGetElement", |_| Ok(Box::new(OptionalGetElement)));
}

fn input<'v>(op: &str, inputs: &'v [Option<Value>], i: usize) -> Result<&'v Value> {
    inputs.get(i).and_then(|v| v.as_ref()).ok_or_else(|| Error::shape(op, format!("input {i} is required")))
}

/// An optional position input (an integer scalar tensor).
fn position(op: &str, inputs: &[Option<Value>], i: usize) -> Result<Option<i64>> {
    match inputs.get(i).and_then(|v| v.as_ref()) {
        Some(v) => Ok(Some(scalar_i64(op, "the position", v.as_tensor(op)?)?)),
        None => Ok(None),
    }
}

fn bool_scalar(v: bool) -> Result<Value> {
    Ok(Value::tensor(Tensor::new(vec![], TensorData::Bool(vec![u8::from(v)]))?))
}

#[derive(Debug)]
struct SequenceEmpty {
    elem: DType,
}

impl Op for SequenceEmpty {
    eager_only!("SequenceEmpty");
    fn eval(&self, _inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        Ok(vec![Value::Sequence(Sequence { elem: self.elem, items: Vec::new() })])
    }
}

#[derive(Debug)]
struct SequenceConstruct;

impl Op for SequenceConstruct {
    eager_only!("SequenceConstruct");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        let items: Vec<Arc<Tensor>> = (0..inputs.len())
            .map(|i| input("SequenceConstruct", inputs, i)?.as_tensor("SequenceConstruct").cloned())
            .collect::<Result<_>>()?;
        let elem = items.first().ok_or_else(|| Error::shape("SequenceConstruct", "needs at least one tensor"))?.dtype();
        Ok(vec![Value::Sequence(Sequence::new(elem, items)?)])
    }
}

#[derive(Debug)]
struct SequenceAt;

impl Op for SequenceAt {
    eager_only!("SequenceAt");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        let seq = input("SequenceAt", inputs, 0)?.as_sequence("SequenceAt")?;
        let pos = position("SequenceAt", inputs, 1)?.ok_or_else(|| Error::shape("SequenceAt", "the position input is required"))?;
        let at = seq.position("SequenceAt", pos, seq.items.len())?;
        Ok(vec![Value::Tensor(seq.items[at].clone())])
    }
}

#[derive(Debug)]
struct SequenceInsert;

impl Op for SequenceInsert {
    eager_only!("SequenceInsert");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        let op = "SequenceInsert";
        let mut seq = input(op, inputs, 0)?.as_sequence(op)?.clone();
        let t = input(op, inputs, 1)?.as_tensor(op)?.clone();
        let n = seq.items.len();
        // Insertion accepts one slot past the end: positions -n..=n.
        let at = match position(op, inputs, 2)? {
            None => n,
            Some(p) if p == n as i64 => n,
            Some(p) => seq.position(op, p, n)?,
        };
        if t.dtype() != seq.elem {
            return Err(Error::DType { expected: seq.elem, got: t.dtype(), context: "SequenceInsert into a sequence".into() });
        }
        seq.items.insert(at, t);
        Ok(vec![Value::Sequence(seq)])
    }
}

#[derive(Debug)]
struct SequenceErase;

impl Op for SequenceErase {
    eager_only!("SequenceErase");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        let op = "SequenceErase";
        let mut seq = input(op, inputs, 0)?.as_sequence(op)?.clone();
        let at = seq.position(op, position(op, inputs, 1)?.unwrap_or(-1), seq.items.len())?;
        seq.items.remove(at);
        Ok(vec![Value::Sequence(seq)])
    }
}

#[derive(Debug)]
struct SequenceLength;

impl Op for SequenceLength {
    eager_only!("SequenceLength");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        let seq = input("SequenceLength", inputs, 0)?.as_sequence("SequenceLength")?;
        Ok(vec![Value::tensor(Tensor::from_i64(vec![], vec![seq.items.len() as i64])?)])
    }
}

#[derive(Debug)]
struct SplitToSequence {
    axis: i64,
    keepdims: bool,
}

impl Op for SplitToSequence {
    eager_only!("SplitToSequence");
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let op = "SplitToSequence";
        let x = input(op, inputs, 0)?.as_tensor(op)?;
        let axis = normalize_axis(self.axis, x.rank(), op)?;
        let dim = x.shape()[axis];
        let split = match inputs.get(1).and_then(|v| v.as_ref()) {
            Some(v) => Some(v.as_tensor(op)?.clone()),
            None => None,
        };
        let sizes: Vec<usize> = match &split {
            None => vec![1; dim],
            Some(s) if s.rank() == 0 => {
                let chunk = scalar_i64(op, "split", s)?;
                let chunk = usize::try_from(chunk)
                    .ok()
                    .filter(|&c| c > 0)
                    .ok_or_else(|| Error::shape(op, format!("split {chunk} must be positive")))?;
                (0..dim).step_by(chunk).map(|start| chunk.min(dim - start)).collect()
            }
            Some(s) => {
                let sizes = s.view().to_i64_vec()?;
                if sizes.iter().any(|&v| v < 0) || sizes.iter().sum::<i64>() != dim as i64 {
                    return Err(Error::shape(
                        op,
                        format!("split sizes {sizes:?} must be non-negative and sum to {dim}, the length of axis {axis}"),
                    ));
                }
                sizes.into_iter().map(|v| v as usize).collect()
            }
        };
        cx.check_room(x.byte_len(), "the split pieces")?;
        let mut items = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for len in sizes {
            let mut piece = narrow(op, x, axis, start, len)?;
            if split.is_none() && !self.keepdims {
                let mut shape = piece.shape().to_vec();
                shape.remove(axis);
                piece = piece.reshaped(shape)?;
            }
            items.push(Arc::new(piece));
            start += len;
        }
        Ok(vec![Value::Sequence(Sequence { elem: x.dtype(), items })])
    }
}

#[derive(Debug)]
struct ConcatFromSequence {
    axis: i64,
    new_axis: bool,
}

impl Op for ConcatFromSequence {
    eager_only!("ConcatFromSequence");
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let op = "ConcatFromSequence";
        let seq = input(op, inputs, 0)?.as_sequence(op)?;
        let parts: Vec<&Tensor> = seq.items.iter().map(|t| t.as_ref()).collect();
        cx.check_room(parts.iter().map(|t| t.byte_len()).sum(), "the joined tensor")?;
        Ok(vec![Value::tensor(join(op, seq.elem, &parts, self.axis, self.new_axis)?)])
    }
}

#[derive(Debug)]
struct SequenceMap {
    body: Subgraph,
}

impl Op for SequenceMap {
    eager_only!("SequenceMap");
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let op = "SequenceMap";
        let (own, captured) = split_captures(op, inputs, self.body.captures.len())?;
        let seq = input(op, own, 0)?.as_sequence(op)?;
        let n = seq.items.len();
        let extra: Vec<&Value> = (1..own.len()).map(|i| input(op, own, i)).collect::<Result<_>>()?;
        if let Some(bad) = extra.iter().filter_map(|v| v.as_sequence(op).ok()).find(|s| s.items.len() != n) {
            return Err(Error::shape(op, format!("an additional sequence has {} tensors but the input sequence has {n}", bad.items.len())));
        }
        let outputs = &self.body.graph.outputs;
        let mut results: Vec<Sequence> = outputs.iter().map(|o| Sequence { elem: o.dtype, items: Vec::with_capacity(n) }).collect();
        for i in 0..n {
            cx.check_iterations(op, i as u64)?;
            let mut formal = vec![Value::Tensor(seq.items[i].clone())];
            formal.extend(extra.iter().map(|v| match v {
                Value::Sequence(s) => Value::Tensor(s.items[i].clone()),
                other => (*other).clone(),
            }));
            for (k, v) in self.body.run(op, formal, captured, cx)?.into_iter().enumerate() {
                let t = v.as_tensor(op)?.clone();
                let out = results.get_mut(k).ok_or_else(|| Error::shape(op, "the body produced more outputs than it declares"))?;
                if out.items.is_empty() {
                    out.elem = t.dtype();
                }
                out.items.push(t);
            }
        }
        results.into_iter().map(|s| Sequence::new(s.elem, s.items).map(Value::Sequence)).collect()
    }
}

#[derive(Debug)]
struct OptionalOp;

impl Op for OptionalOp {
    eager_only!("Optional");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        Ok(vec![Value::Optional(inputs.first().cloned().flatten().map(Box::new))])
    }
}

#[derive(Debug)]
struct OptionalHasElement;

impl Op for OptionalHasElement {
    eager_only!("OptionalHasElement");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        let has = match inputs.first().and_then(|v| v.as_ref()) {
            None | Some(Value::Optional(None)) => false,
            Some(_) => true,
        };
        Ok(vec![bool_scalar(has)?])
    }
}

#[derive(Debug)]
struct OptionalGetElement;

impl Op for OptionalGetElement {
    eager_only!("OptionalGetElement");
    fn eval(&self, inputs: &[Option<Value>], _cx: &EvalContext) -> Result<Vec<Value>> {
        match input("OptionalGetElement", inputs, 0)? {
            Value::Optional(Some(v)) => Ok(vec![(**v).clone()]),
            Value::Optional(None) => Err(Error::shape("OptionalGetElement", "the optional is empty (check OptionalHasElement first)")),
            other => Ok(vec![other.clone()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eager::EvalBudget;
    use crate::plan::PlanLimits;
    use crate::{Attr, Attrs};

    fn eval(op_type: &str, attrs: &[(&str, Attr)], inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let op = Registry::global().build("t", "", op_type, 17, &attrs, inputs.len(), 1)?;
        let (limits, budget) = (PlanLimits::default(), EvalBudget::default());
        op.eval(inputs, &budget.context(&limits))
    }

    fn t(v: &[f32]) -> Option<Value> {
        Some(Value::tensor(Tensor::from_f32(vec![v.len()], v.to_vec()).unwrap()))
    }

    fn i(v: i64) -> Option<Value> {
        Some(Value::tensor(Tensor::from_i64(vec![], vec![v]).unwrap()))
    }

    fn one(r: Result<Vec<Value>>) -> Value {
        r.unwrap().into_iter().next().unwrap()
    }

    fn f32s(v: &Value) -> Vec<f32> {
        v.as_tensor("t").unwrap().f32s().unwrap().to_vec()
    }

    #[test]
    fn construct_insert_erase_at_length_and_concat_agree() {
        let seq = Some(one(eval("SequenceConstruct", &[], &[t(&[1.0, 2.0]), t(&[3.0, 4.0])])));
        let seq = Some(one(eval("SequenceInsert", &[], &[seq, t(&[0.0, 0.5]), i(0)])));
        let len = one(eval("SequenceLength", &[], std::slice::from_ref(&seq)));
        assert_eq!(len.as_tensor("t").unwrap().i64s().unwrap(), &[3]);
        assert_eq!(f32s(&one(eval("SequenceAt", &[], &[seq.clone(), i(-3)]))), [0.0, 0.5]);
        let erased = Some(one(eval("SequenceErase", &[], &[seq.clone(), None])));
        assert_eq!(f32s(&one(eval("SequenceAt", &[], &[erased.clone(), i(-1)]))), [1.0, 2.0]);
        let joined = one(eval("ConcatFromSequence", &[("axis", Attr::Int(0))], std::slice::from_ref(&erased)));
        assert_eq!(f32s(&joined), [0.0, 0.5, 1.0, 2.0]);
        let stacked = one(eval("ConcatFromSequence", &[("axis", Attr::Int(-1)), ("new_axis", Attr::Int(1))], &[erased]));
        assert_eq!(stacked.as_tensor("t").unwrap().shape(), &[2, 2]);
        assert_eq!(f32s(&stacked), [0.0, 1.0, 0.5, 2.0]);
    }

    #[test]
    fn empty_sequences_and_bad_positions_are_errors_not_panics() {
        let empty = Some(one(eval("SequenceEmpty", &[("dtype", Attr::Int(7))], &[])));
        assert_eq!(one(eval("SequenceLength", &[], std::slice::from_ref(&empty))).as_tensor("t").unwrap().i64s().unwrap(), &[0]);
        assert!(eval("SequenceErase", &[], &[empty.clone(), None]).is_err());
        assert!(eval("SequenceAt", &[], &[empty.clone(), i(0)]).is_err());
        assert!(eval("ConcatFromSequence", &[("axis", Attr::Int(0))], std::slice::from_ref(&empty)).is_err());
        // An f32 tensor into an i64 sequence.
        assert!(eval("SequenceInsert", &[], &[empty.clone(), t(&[1.0])]).is_err());
        let seq = Some(one(eval("SequenceConstruct", &[], &[t(&[1.0])])));
        assert!(eval("SequenceInsert", &[], &[seq.clone(), t(&[2.0]), i(2)]).is_err());
        assert!(eval("SequenceInsert", &[], &[seq.clone(), t(&[2.0]), i(1)]).is_ok());
        assert!(eval("SequenceAt", &[], &[t(&[1.0]), i(0)]).is_err(), "a tensor is not a sequence");
        assert!(eval("SequenceConstruct", &[], &[t(&[1.0]), Some(Value::tensor(Tensor::from_i64(vec![1], vec![1]).unwrap()))]).is_err());
    }

    #[test]
    fn split_to_sequence_by_chunk_by_sizes_and_one_by_one() {
        let x = t(&[0.0, 1.0, 2.0, 3.0, 4.0]);
        let lens = |v: Value| match v {
            Value::Sequence(s) => s.items.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>(),
            other => panic!("{}", other.describe()),
        };
        assert_eq!(lens(one(eval("SplitToSequence", &[], &[x.clone(), i(2)]))), [vec![2], vec![2], vec![1]]);
        let sizes = Some(Value::tensor(Tensor::from_i64(vec![2], vec![1, 4]).unwrap()));
        assert_eq!(lens(one(eval("SplitToSequence", &[], &[x.clone(), sizes]))), [vec![1], vec![4]]);
        assert_eq!(
            lens(one(eval("SplitToSequence", &[("keepdims", Attr::Int(0))], std::slice::from_ref(&x)))),
            vec![Vec::<usize>::new(); 5]
        );
        let bad = Some(Value::tensor(Tensor::from_i64(vec![2], vec![1, 1]).unwrap()));
        assert!(eval("SplitToSequence", &[], &[x.clone(), bad]).is_err());
        assert!(eval("SplitToSequence", &[], &[x, i(0)]).is_err());
    }

    #[test]
    fn optionals_wrap_test_and_unwrap() {
        let some = Some(one(eval("Optional", &[], &[t(&[1.0])])));
        let none = Some(one(eval("Optional", &[("type", Attr::Type("tensor(float)".into()))], &[None])));
        let has = |v: Option<Value>| one(eval("OptionalHasElement", &[], &[v])).as_tensor("t").unwrap().bools().unwrap()[0];
        assert_eq!((has(some.clone()), has(none.clone()), has(None)), (1, 0, 0));
        assert_eq!(f32s(&one(eval("OptionalGetElement", &[], &[some]))), [1.0]);
        assert!(eval("OptionalGetElement", &[], &[none]).unwrap_err().to_string().contains("empty"));
    }
}
