//! Shape inference, plan-time folding and the liveness-based memory plan.
//!
//! A [`Plan`] is built for one binding of the graph inputs (concrete shapes, and
//! values of small integer inputs when shapes depend on them). Every value whose
//! inputs are all known at plan time (constants, `Shape` of a known shape, the
//! Gather/Concat/Reshape chains exporters emit around it) is computed here once;
//! the rest become steps whose outputs live in one arena, at offsets chosen so
//! that values alive at the same time never overlap.

use crate::{checked_numel, DType, Error, Fact, Graph, Op, Result, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Arena offsets are multiples of this (cache line; also enough for any SIMD load).
pub const ARENA_ALIGN: usize = 64;

/// Plan-time folding only computes outputs up to this many elements: enough for
/// every shape computation, small enough that planning stays cheap.
pub const PLAN_FOLD_MAX_ELEMENTS: usize = 1 << 16;

/// Where a value lives while the plan runs.
#[derive(Clone, Debug)]
pub enum Location {
    /// Known before running: an initializer or a value folded at plan time.
    Const(Arc<Tensor>),
    /// Computed (or fed) at run time, at this byte offset of the arena.
    Arena(usize),
}

#[derive(Clone, Debug)]
pub struct PlannedValue {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub location: Location,
}

impl PlannedValue {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }
}

/// One node to execute: its index in the graph and the values it reads and writes.
#[derive(Clone, Debug)]
pub struct Step {
    pub node: usize,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
    /// Output 0 shares the buffer of input `Op::in_place_input` (see `assign_offsets`).
    pub in_place: bool,
}

/// A graph input as bound for this plan.
#[derive(Clone, Debug)]
pub struct InputBinding {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Known value (only for small integer inputs that shapes depend on).
    pub value: Option<Arc<Tensor>>,
}

#[derive(Debug)]
pub struct Plan {
    pub values: Vec<PlannedValue>,
    pub steps: Vec<Step>,
    /// (input name, value index) for each fed input.
    pub inputs: Vec<(String, usize)>,
    /// Value index of each graph output, in graph order.
    pub outputs: Vec<usize>,
    /// Bytes of the arena: the peak of intermediate memory.
    pub arena_bytes: usize,
    /// Nodes computed at plan time (shape chains, constant subgraphs).
    pub folded_nodes: usize,
    /// Multiply-accumulates of one run.
    pub macs: u64,
}

/// Limits that keep a hostile model from planning absurd allocations.
#[derive(Clone, Debug)]
pub struct PlanLimits {
    pub max_arena_bytes: usize,
    /// Iterations one `Loop` (or `Scan`, `SequenceMap`) may run before the run fails: a
    /// hostile trip count such as `i64::MAX` with a condition that never turns false ends
    /// with an error instead of a hang (docs/adr/0010).
    pub max_loop_iterations: u64,
}

/// The default of [`PlanLimits::max_loop_iterations`]: far more than decoders and beam
/// searches run (hundreds to thousands), and a few seconds of a trivial body at most.
pub const DEFAULT_MAX_LOOP_ITERATIONS: u64 = 1 << 20;

impl Default for PlanLimits {
    fn default() -> Self {
        // 4 GiB: more than any model Cairn targets, far less than a hostile shape asks for.
        // 4 GiB natively; on 32-bit targets (wasm32) half the address space, since
        // `4 << 30` does not fit a 32-bit usize.
        PlanLimits { max_arena_bytes: (4u64 << 30).min(usize::MAX as u64 / 2) as usize, max_loop_iterations: DEFAULT_MAX_LOOP_ITERATIONS }
    }
}

/// Runs `op` on owned tensors: the path for folding (at load and at plan time).
pub fn run_owned(op: &dyn Op, inputs: &[Option<Arc<Tensor>>]) -> Result<Vec<Tensor>> {
    let out_facts = infer_owned(op, inputs)?;
    Ok(run_inferred(op, inputs, out_facts)?.into_iter().map(Arc::unwrap_or_clone).collect())
}

/// `op.infer` on the facts of known tensors (their values included).
pub(crate) fn infer_owned<O: Op + ?Sized>(op: &O, inputs: &[Option<Arc<Tensor>>]) -> Result<Vec<Fact>> {
    let facts: Vec<Option<Fact>> = inputs.iter().map(|t| t.clone().map(Fact::from_tensor)).collect();
    let fact_refs: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
    op.infer(&fact_refs)
}

/// Produces the outputs `infer` described: the values it computed, the rest by `op.run`.
pub(crate) fn run_inferred<O: Op + ?Sized>(op: &O, inputs: &[Option<Arc<Tensor>>], out_facts: Vec<Fact>) -> Result<Vec<Arc<Tensor>>> {
    if out_facts.iter().all(|f| f.value.is_some()) {
        return Ok(out_facts.into_iter().filter_map(|f| f.value).collect());
    }
    let mut outputs = Vec::with_capacity(out_facts.len());
    for f in &out_facts {
        match &f.value {
            Some(v) => outputs.push((**v).clone()),
            None => outputs.push(Tensor::zeros(f.dtype, f.shape.clone())?),
        }
    }
    let views: Vec<_> = inputs.iter().map(|t| t.as_ref().map(|t| t.view())).collect();
    let mut outs: Vec<_> = outputs.iter_mut().map(|t| t.view_mut()).collect();
    op.run(&views, &mut outs)?;
    Ok(outputs.into_iter().map(Arc::new).collect())
}

struct Planner<'g> {
    graph: &'g Graph,
    values: Vec<PlannedValue>,
    facts: Vec<Fact>,
    by_name: HashMap<String, usize>,
}

impl Planner<'_> {
    fn add(&mut self, name: String, fact: Fact, location: Location) -> usize {
        let idx = self.values.len();
        self.values.push(PlannedValue { name: name.clone(), dtype: fact.dtype, shape: fact.shape.clone(), location });
        self.facts.push(fact);
        if !name.is_empty() {
            self.by_name.insert(name, idx);
        }
        idx
    }

    /// Index of a named value; initializers enter the plan on first use.
    fn lookup(&mut self, name: &str) -> Result<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return Ok(i);
        }
        match self.graph.initializers.get(name) {
            Some(t) => Ok(self.add(name.to_string(), Fact::from_tensor(t.clone()), Location::Const(t.clone()))),
            None => Err(Error::Graph(format!("value '{name}' is read before it is defined"))),
        }
    }
}

impl Plan {
    pub fn build(graph: &Graph, bindings: &[InputBinding], limits: &PlanLimits) -> Result<Plan> {
        let mut p = Planner { graph, values: Vec::new(), facts: Vec::new(), by_name: HashMap::new() };
        let mut inputs = Vec::new();
        for b in bindings {
            checked_numel(&b.shape)?;
            let fact = Fact { dtype: b.dtype, shape: b.shape.clone(), value: b.value.clone() };
            let idx = p.add(b.name.clone(), fact, Location::Arena(0));
            inputs.push((b.name.clone(), idx));
        }

        let mut steps = Vec::new();
        let mut folded_nodes = 0;
        let mut macs = 0u64;
        for (node_idx, node) in graph.nodes.iter().enumerate() {
            let located = |e: Error| e.at_node(&node.name, &node.op_type);
            let mut in_idx = Vec::with_capacity(node.inputs.len());
            for name in &node.inputs {
                in_idx.push(match name {
                    Some(n) if !n.is_empty() => Some(p.lookup(n).map_err(located)?),
                    _ => None,
                });
            }
            let in_facts: Vec<Option<&Fact>> = in_idx.iter().map(|i| i.map(|i| &p.facts[i])).collect();
            let mut out_facts = node.op.infer(&in_facts).map_err(located)?;
            if out_facts.len() < node.outputs.len() {
                return Err(located(Error::Graph(format!(
                    "declares {} outputs but the op produces {}",
                    node.outputs.len(),
                    out_facts.len()
                ))));
            }
            out_facts.truncate(node.outputs.len());
            let mut out_elements = 0usize;
            for f in &out_facts {
                out_elements = out_elements.saturating_add(checked_numel(&f.shape).map_err(located)?);
            }

            let inputs_known = in_facts.iter().all(|f| f.is_none_or(|f| f.value.is_some()));
            let outputs_known = out_facts.iter().all(|f| f.value.is_some());
            if !node.op.is_random() && (outputs_known || (inputs_known && out_elements <= PLAN_FOLD_MAX_ELEMENTS)) {
                if !outputs_known {
                    let in_values: Vec<Option<Arc<Tensor>>> = in_facts.iter().map(|f| f.and_then(|f| f.value.clone())).collect();
                    let computed = run_owned(node.op.as_ref(), &in_values).map_err(located)?;
                    for (f, t) in out_facts.iter_mut().zip(computed) {
                        f.value = Some(Arc::new(t));
                    }
                }
                for (name, f) in node.outputs.iter().zip(out_facts) {
                    let t = f.value.clone().expect("every output known here");
                    p.add(name.clone(), f, Location::Const(t));
                }
                folded_nodes += 1;
                continue;
            }
            macs += node.op.macs(&in_facts, &out_facts);
            let outputs = node
                .outputs
                .iter()
                .zip(out_facts)
                .map(|(name, f)| p.add(name.clone(), Fact { value: None, ..f }, Location::Arena(0)))
                .collect();
            let in_place = false; // decided with the offsets, once liveness is known
            steps.push(Step { node: node_idx, inputs: in_idx, outputs, in_place });
        }

        let mut outputs = Vec::with_capacity(graph.outputs.len());
        for o in &graph.outputs {
            outputs.push(p.lookup(&o.name)?);
        }
        let mut plan = Plan { values: p.values, steps, inputs, outputs, arena_bytes: 0, folded_nodes, macs };
        plan.assign_offsets(graph, limits)?;
        Ok(plan)
    }

    /// Liveness-based offset assignment: each arena value gets the best-fitting
    /// gap among the values still alive when it is defined, except that output 0 of
    /// an in-place-capable step takes over the buffer of an input read for the last time.
    fn assign_offsets(&mut self, graph: &Graph, limits: &PlanLimits) -> Result<()> {
        let n_steps = self.steps.len();
        // Positions: 0 = before the first step (graph inputs), step i at i + 1,
        // n_steps + 1 = after the last (graph outputs stay alive until copied out).
        let mut def = vec![0usize; self.values.len()];
        let mut last_use = vec![0usize; self.values.len()];
        for (i, step) in self.steps.iter().enumerate() {
            for &o in &step.outputs {
                def[o] = i + 1;
                last_use[o] = i + 1;
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            for &v in step.inputs.iter().flatten() {
                last_use[v] = last_use[v].max(i + 1);
            }
        }
        for &o in &self.outputs {
            last_use[o] = n_steps + 1;
        }
        // Which value each in-place step's output 0 takes the buffer of.
        let mut inherits: HashMap<usize, usize> = HashMap::new();
        for (i, step) in self.steps.iter_mut().enumerate() {
            let Some(k) = graph.nodes[step.node].op.in_place_input() else { continue };
            let (Some(Some(src)), Some(&out)) = (step.inputs.get(k), step.outputs.first()) else { continue };
            let (s, o) = (&self.values[*src], &self.values[out]);
            let read_once_here = step.inputs.iter().filter(|x| **x == Some(*src)).count() == 1;
            if matches!(s.location, Location::Arena(_))
                && last_use[*src] == i + 1
                && read_once_here
                && s.dtype == o.dtype
                && s.shape == o.shape
                && s.bytes() > 0
            {
                step.in_place = true;
                inherits.insert(out, *src);
            }
        }

        let mut order: Vec<usize> = (0..self.values.len()).filter(|&v| matches!(self.values[v].location, Location::Arena(_))).collect();
        order.sort_by_key(|&v| def[v]);

        // Live blocks: (offset, size, last_use), kept sorted by offset.
        let mut live: Vec<(usize, usize, usize)> = Vec::new();
        let mut peak = 0usize;
        for v in order {
            let size = self.values[v].bytes().div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
            if size == 0 {
                // Empty tensors occupy nothing; any aligned offset will do.
                self.values[v].location = Location::Arena(0);
                continue;
            }
            let now = def[v];
            live.retain(|&(_, _, last)| last >= now);
            if let Some(&src) = inherits.get(&v) {
                // The input dies at this step (its last use is `now`): extend its block's life.
                let Location::Arena(offset) = self.values[src].location else { unreachable!("checked above") };
                let block = live.iter_mut().find(|b| b.0 == offset && b.2 == now).expect("the input is alive at its last use");
                block.2 = last_use[v];
                self.values[v].location = Location::Arena(offset);
                continue;
            }
            let mut best: Option<(usize, usize)> = None; // (gap size, offset)
            let mut cursor = 0usize;
            for &(off, sz, _) in &live {
                let gap = off - cursor;
                if gap >= size && best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
                cursor = off + sz;
            }
            let offset = best.map_or(cursor, |(_, off)| off);
            let end = offset.checked_add(size).filter(|&e| e <= limits.max_arena_bytes).ok_or_else(|| {
                Error::TooLarge(format!(
                    "intermediate '{}' of shape {:?} would need more than {} bytes of working memory",
                    self.values[v].name, self.values[v].shape, limits.max_arena_bytes
                ))
            })?;
            peak = peak.max(end);
            let pos = live.partition_point(|&(off, _, _)| off < offset);
            live.insert(pos, (offset, size, last_use[v]));
            self.values[v].location = Location::Arena(offset);
        }
        self.arena_bytes = peak;
        Ok(())
    }

    /// Sum of bytes of every arena value, as if nothing were shared: the figure the plan improves on.
    pub fn unshared_bytes(&self) -> usize {
        self.values.iter().filter(|v| matches!(v.location, Location::Arena(_))).map(|v| v.bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attrs, DType, Graph, Node, NodeSpec, Registry, Session, ValueInfo};
    use std::collections::HashMap;

    fn unary(op_type: &str, name: &str, input: &str, output: &str) -> Node {
        let spec = NodeSpec {
            name: name.into(),
            domain: String::new(),
            op_type: op_type.into(),
            attrs: Attrs::new(),
            inputs: vec![Some(input.into())],
            outputs: vec![output.into()],
        };
        Node::build(spec, 17, Registry::global()).unwrap()
    }

    fn chain(len: usize) -> Graph {
        chain_of("Relu", len)
    }

    fn chain_of(op_type: &str, len: usize) -> Graph {
        let nodes = (0..len).map(|i| unary(op_type, &format!("r{i}"), &format!("v{i}"), &format!("v{}", i + 1))).collect();
        Graph {
            inputs: vec![ValueInfo { name: "v0".into(), dtype: DType::F32, dims: None }],
            outputs: vec![ValueInfo { name: format!("v{len}"), dtype: DType::F32, dims: None }],
            initializers: HashMap::new(),
            nodes,
            opset: 17,
        }
        .validated()
        .unwrap()
    }

    fn binding(n: usize) -> Vec<InputBinding> {
        vec![InputBinding { name: "v0".into(), dtype: DType::F32, shape: vec![n], value: None }]
    }

    /// At every step, no output may overlap any value that is alive at that step.
    fn assert_no_live_overlap(plan: &Plan) {
        let range = |v: usize| match plan.values[v].location {
            Location::Arena(off) => Some(off..off + plan.values[v].bytes()),
            Location::Const(_) => None,
        };
        for (i, step) in plan.steps.iter().enumerate() {
            let live: Vec<usize> = (0..plan.values.len())
                .filter(|&v| {
                    let defined_before = plan.inputs.iter().any(|(_, x)| *x == v) || plan.steps[..i].iter().any(|s| s.outputs.contains(&v));
                    let used_later = plan.steps[i..].iter().any(|s| s.inputs.contains(&Some(v))) || plan.outputs.contains(&v);
                    defined_before && used_later
                })
                .collect();
            // An in-place step's output 0 is meant to take its (dying) input's buffer.
            let shared =
                step.in_place.then(|| step.inputs.iter().flatten().copied().find(|v| range(*v) == range(step.outputs[0]))).flatten();
            assert_eq!(step.in_place, shared.is_some(), "step {i}: an in-place output sits exactly on an input");
            for &o in &step.outputs {
                let ro = range(o).unwrap();
                for &l in live.iter().filter(|&&l| !(o == step.outputs[0] && Some(l) == shared)) {
                    if let Some(rl) = range(l) {
                        assert!(ro.end <= rl.start || rl.end <= ro.start, "step {i}: output {o} overlaps live value {l}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_chain_needs_two_buffers_not_one_per_node() {
        let g = chain_of("Softmax", 10);
        let plan = Plan::build(&g, &binding(1000), &PlanLimits::default()).unwrap();
        assert_eq!(plan.steps.len(), 10);
        assert_eq!(plan.arena_bytes, 2 * 4032, "input + one ping-pong buffer");
        assert_eq!(plan.unshared_bytes(), 11 * 4000);
        assert!(plan.steps.iter().all(|s| !s.in_place));
        assert_no_live_overlap(&plan);
    }

    #[test]
    fn an_elementwise_chain_runs_in_one_buffer() {
        let g = chain(10);
        let plan = Plan::build(&g, &binding(1000), &PlanLimits::default()).unwrap();
        assert!(plan.steps.iter().all(|s| s.in_place));
        assert_eq!(plan.arena_bytes, 4032, "every Relu overwrites its input");
        assert_no_live_overlap(&plan);
        let x = Tensor::from_f32(vec![1000], (0..1000).map(|i| i as f32 - 500.0).collect()).unwrap();
        let out = Session::new(g).run(HashMap::from([("v0".to_string(), x)])).unwrap();
        assert_eq!(out[0].1.f32s().unwrap()[0], 0.0);
        assert_eq!(out[0].1.f32s().unwrap()[999], 499.0);
    }

    #[test]
    fn an_input_read_again_later_is_not_overwritten() {
        // v1 is read by r1 (in place would clobber it) and is a graph output: r1 must not reuse it.
        let mut g = chain(2);
        g.outputs.push(ValueInfo { name: "v1".into(), dtype: DType::F32, dims: None });
        let plan = Plan::build(&g, &binding(16), &PlanLimits::default()).unwrap();
        assert!(plan.steps[0].in_place, "v0 dies at r0");
        assert!(!plan.steps[1].in_place, "v1 outlives r1");
        assert_no_live_overlap(&plan);
    }

    #[test]
    fn a_value_read_late_stays_alive() {
        // v0 -> r0 -> v1 -> r1 -> v2, and v1 is also a graph output: it must survive r1.
        let mut g = chain(2);
        g.outputs.push(ValueInfo { name: "v1".into(), dtype: DType::F32, dims: None });
        let plan = Plan::build(&g, &binding(16), &PlanLimits::default()).unwrap();
        assert_no_live_overlap(&plan);
        let s = Session::new(g);
        let x = Tensor::from_f32(vec![16], (0..16).map(|i| i as f32 - 8.0).collect()).unwrap();
        let out = s.run(HashMap::from([("v0".to_string(), x)])).unwrap();
        assert_eq!(out[1].0, "v1");
        assert_eq!(out[0].1, out[1].1);
        assert_eq!(out[0].1.f32s().unwrap()[0], 0.0);
        assert_eq!(out[0].1.f32s().unwrap()[15], 7.0);
    }

    #[test]
    fn absurd_shapes_are_refused_before_allocating() {
        let g = chain(1);
        let err = Plan::build(&g, &binding(1 << 40), &PlanLimits::default()).unwrap_err();
        assert!(matches!(err, Error::TooLarge(_)), "{err}");
        let err = Plan::build(
            &g,
            &[InputBinding { name: "v0".into(), dtype: DType::F32, shape: vec![usize::MAX, 4], value: None }],
            &PlanLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::TooLarge(_)), "{err}");
    }

    #[test]
    fn cycles_and_dangling_inputs_are_graph_errors() {
        let mut g = chain(2);
        g.nodes[0].inputs = vec![Some("v2".into())];
        assert!(matches!(g.validated(), Err(Error::Graph(m)) if m.contains("cycle")));
        let mut g = chain(1);
        g.nodes[0].inputs = vec![Some("nowhere".into())];
        assert!(matches!(g.validated(), Err(Error::Graph(m)) if m.contains("nothing defines")));
    }
}
