//! The eager interpreter: runs a graph node by node on owned [`Value`]s.
//!
//! Graphs with control flow, sequences or optionals, and bindings whose shapes depend on
//! values computed at run time, run here; static graphs keep the planned arena path
//! (`exec`). Each value is freed after its last reader, and the bytes alive at once are
//! counted against [`PlanLimits::max_arena_bytes`] before anything is allocated.
//! See docs/adr/0010-control-flow-and-dynamic-shapes.md.

use crate::plan::{infer_owned, run_inferred, PlanLimits};
use crate::{Error, Graph, Op, Result, Subgraph, Tensor, Value, MAX_SUBGRAPH_DEPTH};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What every op evaluation may consult: the limits, the shared live-byte count, the nesting depth.
pub struct EvalContext<'a> {
    pub limits: &'a PlanLimits,
    live_bytes: &'a Cell<usize>,
    peak_bytes: &'a Cell<usize>,
    /// Subgraph levels entered so far (0 in the main graph).
    pub depth: usize,
}

/// The counters one eager run shares between all its (nested) graphs.
#[derive(Default)]
pub struct EvalBudget {
    live_bytes: Cell<usize>,
    peak_bytes: Cell<usize>,
}

impl EvalBudget {
    pub fn context<'a>(&'a self, limits: &'a PlanLimits) -> EvalContext<'a> {
        EvalContext { limits, live_bytes: &self.live_bytes, peak_bytes: &self.peak_bytes, depth: 0 }
    }

    /// The most bytes alive at once during the run.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes.get()
    }
}

impl EvalContext<'_> {
    /// Fails if `bytes` more would exceed the memory limit (call before allocating them).
    pub fn check_room(&self, bytes: usize, what: &str) -> Result<()> {
        let total = self.live_bytes.get().saturating_add(bytes);
        if total > self.limits.max_arena_bytes {
            return Err(Error::TooLarge(format!(
                "{what} would raise working memory to {total} bytes, over the limit of {} (PlanLimits::max_arena_bytes)",
                self.limits.max_arena_bytes
            )));
        }
        Ok(())
    }

    fn hold(&self, bytes: usize) {
        let now = self.live_bytes.get().saturating_add(bytes);
        self.live_bytes.set(now);
        self.peak_bytes.set(self.peak_bytes.get().max(now));
    }

    fn release(&self, bytes: usize) {
        self.live_bytes.set(self.live_bytes.get().saturating_sub(bytes));
    }

    /// Fails once a loop has run `done` iterations and the limit allows no more.
    pub fn check_iterations(&self, op: &str, done: u64) -> Result<()> {
        if done >= self.limits.max_loop_iterations {
            return Err(Error::TooLarge(format!(
                "{op} ran {done} iterations without finishing; the limit is {} (PlanLimits::max_loop_iterations). \
                 Check the trip count and the loop condition, or raise the limit if the model really needs more",
                self.limits.max_loop_iterations
            )));
        }
        Ok(())
    }

    fn child(&self) -> EvalContext<'_> {
        EvalContext { limits: self.limits, live_bytes: self.live_bytes, peak_bytes: self.peak_bytes, depth: self.depth + 1 }
    }
}

/// The default [`Op::eval`]: tensors in, `infer` then `run`, tensors out; the outputs'
/// size is checked against the memory limit before they are allocated.
pub fn eval_tensors<O: Op + ?Sized>(op: &O, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
    let tensors = inputs.iter().map(|v| v.as_ref().map(|v| v.as_tensor(op.op_type()).cloned()).transpose()).collect::<Result<Vec<_>>>()?;
    let facts = infer_owned(op, &tensors)?;
    // Outputs `infer` already computed (data-dependent shapes) count too: they will be held.
    let mut new_bytes = 0usize;
    for f in &facts {
        new_bytes = new_bytes.saturating_add(crate::checked_numel(&f.shape)?.saturating_mul(f.dtype.size()));
    }
    cx.check_room(new_bytes, "the outputs")?;
    Ok(run_inferred(op, &tensors, facts)?.into_iter().map(Value::Tensor).collect())
}

/// Per-node wall time of an eager run (native only), indexed like `graph.nodes`.
pub type NodeTimes = Vec<(usize, f64)>;

/// Runs `graph` with its inputs (and, for a subgraph, its captures) bound by name.
/// Returns the graph outputs in order.
pub fn run_graph(graph: &Graph, bound: Vec<(String, Value)>, cx: &EvalContext, mut times: Option<&mut NodeTimes>) -> Result<Vec<Value>> {
    // The last node reading each value; graph outputs are never freed.
    let keep: HashSet<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    let mut last_read: HashMap<&str, usize> = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        for name in node.inputs.iter().flatten() {
            last_read.insert(name, i);
        }
    }
    let mut env: HashMap<String, Value> = HashMap::with_capacity(bound.len() + graph.nodes.len());
    let mut held = 0usize;
    let release_all = |held: usize| cx.release(held);
    for (name, v) in bound {
        let bytes = v.byte_len();
        cx.hold(bytes);
        held += bytes;
        if let Some(old) = env.insert(name, v) {
            cx.release(old.byte_len());
            held -= old.byte_len();
        }
    }
    let result = (|| {
        for (i, node) in graph.nodes.iter().enumerate() {
            let located = |e: Error| e.at_node(&node.name, &node.op_type);
            let inputs = node
                .inputs
                .iter()
                .map(|name| match name {
                    Some(n) if !n.is_empty() => lookup(graph, &env, n).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<Vec<_>>>()
                .map_err(located)?;
            let start = times.is_some().then(crate::clock::now).flatten();
            let strings = inputs.iter().flatten().any(|v| matches!(v, Value::Strings(_)));
            let outputs = if strings && !node.op.takes_strings() {
                crate::eval_interned(node.op.as_ref(), &inputs, node.outputs.len(), cx)
            } else {
                node.op.eval(&inputs, cx)
            }
            .map_err(located)?;
            if let (Some(times), Some(start)) = (times.as_deref_mut(), start) {
                times.push((i, crate::clock::now().unwrap_or(start) - start));
            }
            drop(inputs);
            let declared = node.outputs.iter().filter(|o| !o.is_empty()).count();
            if outputs.len() < node.outputs.len() && declared > 0 {
                return Err(located(Error::Graph(format!(
                    "declares {} outputs but the op produced {}",
                    node.outputs.len(),
                    outputs.len()
                ))));
            }
            for (name, v) in node.outputs.iter().zip(outputs) {
                if name.is_empty() || (!keep.contains(name.as_str()) && !last_read.contains_key(name.as_str())) {
                    continue; // nobody reads it
                }
                let bytes = v.byte_len();
                cx.hold(bytes);
                held += bytes;
                env.insert(name.clone(), v);
            }
            for name in node.inputs.iter().flatten() {
                if last_read.get(name.as_str()) == Some(&i) && !keep.contains(name.as_str()) {
                    if let Some(v) = env.remove(name) {
                        cx.release(v.byte_len());
                        held -= v.byte_len();
                    }
                }
            }
        }
        graph.outputs.iter().map(|o| lookup(graph, &env, &o.name)).collect::<Result<Vec<_>>>()
    })();
    release_all(held);
    result
}

fn lookup(graph: &Graph, env: &HashMap<String, Value>, name: &str) -> Result<Value> {
    if let Some(v) = env.get(name) {
        return Ok(v.clone());
    }
    match graph.initializers.get(name) {
        Some(t) => Ok(Value::Tensor(t.clone())),
        None => Err(Error::Graph(format!("value '{name}' is read before it is defined"))),
    }
}

impl Subgraph {
    /// Runs the body with its formal inputs (by position) and the node's trailing capture
    /// inputs (bound to `captures` by position). `op` names the caller in errors.
    pub fn run(&self, op: &str, formal: Vec<Value>, captured: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        if cx.depth + 1 >= MAX_SUBGRAPH_DEPTH {
            return Err(Error::TooLarge(format!("{op}: subgraphs nest deeper than {MAX_SUBGRAPH_DEPTH} levels")));
        }
        if formal.len() != self.graph.inputs.len() {
            return Err(Error::shape(op, format!("the body declares {} inputs but is given {}", self.graph.inputs.len(), formal.len())));
        }
        let mut bound: Vec<(String, Value)> = Vec::with_capacity(formal.len() + captured.len());
        for (name, v) in self.captures.iter().zip(captured) {
            if let Some(v) = v {
                bound.push((name.clone(), v.clone()));
            }
        }
        // Formal inputs last: a body input shadows an outer value of the same name.
        bound.extend(self.graph.inputs.iter().map(|i| i.name.clone()).zip(formal));
        run_graph(&self.graph, bound, &cx.child(), None)
    }
}

/// Splits a node's inputs into its own (`n - captures`) and the trailing captured ones.
pub fn split_captures<'v>(op: &str, inputs: &'v [Option<Value>], n_captures: usize) -> Result<(&'v [Option<Value>], &'v [Option<Value>])> {
    let own = inputs.len().checked_sub(n_captures).ok_or_else(|| Error::shape(op, "fewer inputs than the subgraph captures"))?;
    Ok(inputs.split_at(own))
}

/// Owned tensor from a value, cloning only if the value is shared.
pub fn into_tensor(op: &str, v: Value) -> Result<Tensor> {
    match v {
        Value::Tensor(t) => Ok(Arc::unwrap_or_clone(t)),
        other => Err(Error::shape(op, format!("expected a tensor, got {}", other.describe()))),
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::PlanLimits;
    use crate::{Attrs, DType, Error, Graph, Node, NodeSpec, Registry, Session, Tensor, ValueInfo};
    use std::collections::HashMap;

    /// x -> NonZero -> Transpose -> y: a shape only known from x's values.
    fn nonzero_graph() -> Graph {
        let node = |op: &str, i: &str, o: &str| {
            let spec = NodeSpec {
                name: op.into(),
                domain: String::new(),
                op_type: op.into(),
                attrs: Attrs::new(),
                inputs: vec![Some(i.into())],
                outputs: vec![o.into()],
            };
            Node::build(spec, 17, Registry::global()).unwrap()
        };
        Graph {
            inputs: vec![ValueInfo { name: "x".into(), dtype: DType::F32, dims: None }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: DType::I64, dims: None }],
            initializers: HashMap::new(),
            nodes: vec![node("NonZero", "x", "nz"), node("Transpose", "nz", "y")],
            opset: 17,
        }
        .validated()
        .unwrap()
    }

    fn x(v: Vec<f32>) -> HashMap<String, Tensor> {
        HashMap::from([("x".to_string(), Tensor::from_f32(vec![v.len()], v).unwrap())])
    }

    #[test]
    fn a_value_dependent_shape_falls_back_to_the_eager_path_for_every_value() {
        // 100 elements: above the size whose values a plan may fold in (VALUE_BINDING_MAX_ELEMENTS).
        let s = Session::new(nonzero_graph());
        assert!(s.plan(&x(vec![0.0; 100])).is_err(), "NonZero of a run-time input cannot be planned");
        for want in [vec![1, 3, 99], vec![0], vec![]] {
            let mut input = vec![0.0; 100];
            want.iter().for_each(|&i| input[i as usize] = 2.0);
            let (out, stats) = s.run_with_stats(x(input)).unwrap();
            assert_eq!(out[0].1.shape(), &[want.len(), 1]);
            assert_eq!(out[0].1.i64s().unwrap(), &want[..]);
            assert_eq!(stats.steps, 2);
        }
    }

    #[test]
    fn the_eager_path_keeps_the_memory_limit() {
        let limits = PlanLimits { max_arena_bytes: 1024, ..PlanLimits::default() };
        let err = Session::with_limits(nonzero_graph(), limits).run(x(vec![1.0; 1000])).unwrap_err();
        let root = match &err {
            Error::AtNode { source, .. } => source.as_ref(),
            e => e,
        };
        assert!(matches!(root, Error::TooLarge(_)), "{err}");
    }
}
