//! The executor: binds inputs, picks (or builds) a plan, runs its steps over one arena.

use crate::eager::{run_graph, EvalBudget, NodeTimes};
use crate::plan::{InputBinding, Location, Plan, PlanLimits, ARENA_ALIGN};
use crate::{DType, DataMut, DataRef, Dim, Error, Graph, Result, Tensor, TensorMut, TensorRef, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Inputs up to this many elements may have their values folded into a plan when
/// shapes depend on them (a `shape` input of Reshape, `scales` of Resize). This path is
/// only taken when planning without values fails.
const VALUE_BINDING_MAX_ELEMENTS: usize = 64;

/// How many distinct input bindings keep a cached plan.
const PLAN_CACHE_CAPACITY: usize = 8;

/// Cache-line aligned arena storage.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Chunk([u8; ARENA_ALIGN]);

#[derive(Default)]
struct Arena {
    chunks: Vec<Chunk>,
}

impl Arena {
    fn ensure(&mut self, bytes: usize) {
        let need = bytes.div_ceil(ARENA_ALIGN);
        if self.chunks.len() < need {
            self.chunks.resize(need, Chunk([0; ARENA_ALIGN]));
        }
    }
}

/// The exact value of a small tensor as comparable integers (float bits for floats).
fn value_key(t: &Tensor) -> Vec<i64> {
    t.view().to_i64_vec().unwrap_or_else(|_| t.view().to_f32_vec().iter().map(|v| v.to_bits() as i64).collect())
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    shapes: Vec<Vec<usize>>,
    values: Option<Vec<Vec<i64>>>,
}

/// A loaded model ready to run; cheap to share between threads.
///
/// Static graphs run on a cached plan over one arena. Graphs with control flow, sequences
/// or optionals, and input shapes whose plan fails because a shape depends on a value
/// computed at run time, run on the eager interpreter (docs/adr/0010).
pub struct Session {
    graph: Arc<Graph>,
    limits: PlanLimits,
    /// Some op needs the eager interpreter: every run takes it.
    eager_graph: bool,
    plans: Mutex<Vec<(PlanKey, Arc<Plan>)>>,
    /// Input shapes whose plan failed on a run-time value: they run eagerly without re-planning.
    eager_shapes: Mutex<Vec<Vec<Vec<usize>>>>,
    arenas: Mutex<Vec<Arena>>,
}

/// What a graph input may be checked against: a dtype (none for an empty optional) and a
/// shape (none for sequences, whose tensors may differ).
trait Bindable {
    fn dtype_shape(&self) -> Option<(DType, Option<&[usize]>)>;
}

impl Bindable for Tensor {
    fn dtype_shape(&self) -> Option<(DType, Option<&[usize]>)> {
        Some((self.dtype(), Some(self.shape())))
    }
}

impl Bindable for Value {
    fn dtype_shape(&self) -> Option<(DType, Option<&[usize]>)> {
        match self {
            Value::Tensor(t) => t.dtype_shape(),
            Value::Sequence(s) => Some((s.elem, None)),
            Value::Optional(v) => v.as_ref().and_then(|v| v.dtype_shape()),
            Value::Strings(s) => Some((DType::Str, Some(s.shape()))),
        }
    }
}

/// True for plan errors the eager interpreter may get past: a shape that depends on a
/// value known only at run time. Bad inputs and memory limits fail either way.
fn may_run_eagerly(e: &Error) -> bool {
    match e {
        Error::AtNode { source, .. } => may_run_eagerly(source),
        Error::Input(_) | Error::TooLarge(_) | Error::UnsupportedOp { .. } | Error::UnsupportedAttr { .. } => false,
        _ => true,
    }
}

/// Timing and memory of one run, for the CLI and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub arena_bytes: usize,
    pub steps: usize,
    /// Per-step wall time, when the run was profiled.
    pub profile: Vec<StepTime>,
}

/// How long one step of a profiled run took.
#[derive(Clone, Debug)]
pub struct StepTime {
    pub node: String,
    pub op_type: String,
    pub seconds: f64,
}

impl Session {
    pub fn new(graph: Graph) -> Session {
        Session::with_limits(graph, PlanLimits::default())
    }

    pub fn with_limits(graph: Graph, limits: PlanLimits) -> Session {
        let eager_graph = graph.runs_eagerly();
        Session {
            graph: Arc::new(graph),
            limits,
            eager_graph,
            plans: Mutex::new(Vec::new()),
            eager_shapes: Mutex::new(Vec::new()),
            arenas: Mutex::new(Vec::new()),
        }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Checks the given inputs against the graph's declared inputs and binds symbolic dims.
    fn bind<T: Bindable>(&self, inputs: &HashMap<String, T>) -> Result<Vec<(String, DType, Vec<usize>)>> {
        for name in inputs.keys() {
            if !self.graph.inputs.iter().any(|i| &i.name == name) {
                let known: Vec<&str> = self.graph.runtime_inputs().map(|i| i.name.as_str()).collect();
                return Err(Error::Input(format!("the model has no input '{name}' (its inputs: {})", known.join(", "))));
            }
        }
        let mut symbols: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for info in &self.graph.inputs {
            let Some(t) = inputs.get(&info.name) else {
                if self.graph.initializers.contains_key(&info.name) {
                    continue; // an initializer-backed input keeps its default
                }
                return Err(Error::Input(format!("missing input '{}'", info.name)));
            };
            let Some((dtype, shape)) = t.dtype_shape() else { continue };
            if dtype != info.dtype {
                return Err(Error::Input(format!("input '{}' must be {}, got {}", info.name, info.dtype, dtype)));
            }
            let Some(shape) = shape else { continue };
            if let Some(dims) = &info.dims {
                let ok = dims.len() == shape.len()
                    && dims.iter().zip(shape).all(|(d, &n)| match d {
                        Dim::Known(k) => *k == n,
                        Dim::Sym(s) => *symbols.entry(s.as_str()).or_insert(n) == n,
                    });
                if !ok {
                    let want: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
                    return Err(Error::Input(format!("input '{}' must have shape [{}], got {:?}", info.name, want.join(", "), shape)));
                }
            }
            out.push((info.name.clone(), info.dtype, shape.to_vec()));
        }
        Ok(out)
    }

    /// The plan for these input shapes (and, if shapes depend on them, small integer input values).
    pub fn plan(&self, inputs: &HashMap<String, Tensor>) -> Result<Arc<Plan>> {
        let bound = self.bind(inputs)?;
        let shapes: Vec<Vec<usize>> = bound.iter().map(|(_, _, s)| s.clone()).collect();
        let shape_key = PlanKey { shapes: shapes.clone(), values: None };
        if let Some(p) = self.cached(&shape_key) {
            return Ok(p);
        }
        let small_values: Vec<Option<Arc<Tensor>>> = bound
            .iter()
            .map(|(name, _, shape)| {
                let small = shape.iter().product::<usize>() <= VALUE_BINDING_MAX_ELEMENTS;
                small.then(|| Arc::new(inputs[name].clone()))
            })
            .collect();
        let value_key =
            PlanKey { shapes, values: Some(small_values.iter().map(|v| v.as_ref().map_or(Vec::new(), |t| value_key(t))).collect()) };
        if let Some(p) = self.cached(&value_key) {
            return Ok(p);
        }
        let bindings = |with_values: bool| -> Vec<InputBinding> {
            bound
                .iter()
                .zip(&small_values)
                .map(|((name, dtype, shape), v)| InputBinding {
                    name: name.clone(),
                    dtype: *dtype,
                    shape: shape.clone(),
                    value: if with_values { v.clone() } else { None },
                })
                .collect()
        };
        // First try without input values so one plan serves every value; fall back
        // to folding the small integer inputs in when shapes depend on them.
        match Plan::build(&self.graph, &bindings(false), &self.limits) {
            Ok(plan) => Ok(self.remember(shape_key, plan)),
            Err(first) => {
                if small_values.iter().all(|v| v.is_none()) {
                    return Err(first);
                }
                let plan = Plan::build(&self.graph, &bindings(true), &self.limits).map_err(|_| first)?;
                Ok(self.remember(value_key, plan))
            }
        }
    }

    fn cached(&self, key: &PlanKey) -> Option<Arc<Plan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        let pos = plans.iter().position(|(k, _)| k == key)?;
        let entry = plans.remove(pos);
        let plan = entry.1.clone();
        plans.push(entry); // most recently used last
        Some(plan)
    }

    fn remember(&self, key: PlanKey, plan: Plan) -> Arc<Plan> {
        let plan = Arc::new(plan);
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if plans.len() >= PLAN_CACHE_CAPACITY {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
        plan
    }

    /// Runs the model. Outputs come back in the graph's output order.
    pub fn run(&self, inputs: HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
        self.run_with_stats(inputs).map(|(o, _)| o)
    }

    pub fn run_with_stats(&self, inputs: HashMap<String, Tensor>) -> Result<(Vec<(String, Tensor)>, RunStats)> {
        self.run_inner(inputs, false)
    }

    /// Runs and times every step. On wasm32-unknown-unknown the embedder first installs a
    /// clock ([`crate::install_profile_clock`]): std has none there.
    pub fn run_profiled(&self, inputs: HashMap<String, Tensor>) -> Result<(Vec<(String, Tensor)>, RunStats)> {
        if crate::clock::now().is_none() {
            return Err(Error::Graph("a profiled run needs a clock: install one with cairn_core::install_profile_clock".into()));
        }
        self.run_inner(inputs, true)
    }

    /// Runs a model whose inputs or outputs may be sequences or optionals (any model works).
    pub fn run_values(&self, inputs: HashMap<String, Value>) -> Result<Vec<(String, Value)>> {
        if !self.eager_graph && inputs.values().all(|v| matches!(v, Value::Tensor(_))) {
            let tensors = inputs.into_iter().map(|(k, v)| (k, crate::eager::into_tensor("input", v).expect("checked above"))).collect();
            return Ok(self.run(tensors)?.into_iter().map(|(n, t)| (n, Value::tensor(t))).collect());
        }
        self.bind(&inputs)?;
        let (outputs, _) = self.run_eager(inputs.into_iter().collect(), None)?;
        Ok(self.graph.outputs.iter().map(|o| o.name.clone()).zip(outputs).collect())
    }

    /// The eager interpreter over the whole graph; returns the outputs and the peak bytes.
    fn run_eager(&self, inputs: Vec<(String, Value)>, times: Option<&mut NodeTimes>) -> Result<(Vec<Value>, usize)> {
        let budget = EvalBudget::default();
        let outputs = run_graph(&self.graph, inputs, &budget.context(&self.limits), times)?;
        Ok((outputs, budget.peak_bytes()))
    }

    fn run_eager_tensors(&self, inputs: HashMap<String, Tensor>, profile: bool) -> Result<(Vec<(String, Tensor)>, RunStats)> {
        self.bind(&inputs)?;
        let mut times = Vec::new();
        let values = inputs.into_iter().map(|(k, t)| (k, Value::tensor(t))).collect();
        let (outputs, peak) = self.run_eager(values, profile.then_some(&mut times))?;
        let mut named = Vec::with_capacity(outputs.len());
        for (info, v) in self.graph.outputs.iter().zip(outputs) {
            let t = match v {
                Value::Tensor(t) => Arc::unwrap_or_clone(t),
                other => {
                    return Err(Error::Input(format!(
                        "output '{}' is a {} ({}): use Session::run_values for models with sequence or optional outputs",
                        info.name,
                        other.kind(),
                        other.describe()
                    )))
                }
            };
            named.push((info.name.clone(), t));
        }
        let profile = times
            .into_iter()
            .map(|(i, seconds)| {
                let node = &self.graph.nodes[i];
                StepTime { node: node.name.clone(), op_type: format!("{}{}", node.op_type, node.op.fused()), seconds }
            })
            .collect();
        Ok((named, RunStats { arena_bytes: peak, steps: self.graph.nodes.len(), profile }))
    }

    /// True if these input shapes already failed to plan on a run-time value.
    fn known_eager(&self, inputs: &HashMap<String, Tensor>) -> bool {
        let eager = self.eager_shapes.lock().unwrap_or_else(|e| e.into_inner());
        !eager.is_empty() && eager.contains(&self.input_shapes(inputs))
    }

    fn input_shapes(&self, inputs: &HashMap<String, Tensor>) -> Vec<Vec<usize>> {
        self.graph.inputs.iter().filter_map(|i| inputs.get(&i.name).map(|t| t.shape().to_vec())).collect()
    }

    fn run_inner(&self, inputs: HashMap<String, Tensor>, profile: bool) -> Result<(Vec<(String, Tensor)>, RunStats)> {
        cairn_kernels::parallel::wake_pool();
        if self.eager_graph || self.known_eager(&inputs) {
            return self.run_eager_tensors(inputs, profile);
        }
        let plan = match self.plan(&inputs) {
            Ok(plan) => plan,
            Err(e) if may_run_eagerly(&e) => {
                let shapes = self.input_shapes(&inputs);
                let mut eager = self.eager_shapes.lock().unwrap_or_else(|e| e.into_inner());
                if eager.len() >= PLAN_CACHE_CAPACITY {
                    eager.remove(0);
                }
                eager.push(shapes);
                drop(eager);
                return self.run_eager_tensors(inputs, profile);
            }
            Err(e) => return Err(e),
        };
        let mut arena = self.arenas.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        arena.ensure(plan.arena_bytes);
        let mut times = Vec::new();
        let result = self.execute(&plan, &inputs, &mut arena, profile.then_some(&mut times));
        self.arenas.lock().unwrap_or_else(|e| e.into_inner()).push(arena);
        let profile = plan
            .steps
            .iter()
            .zip(times)
            .map(|(step, seconds)| {
                let node = &self.graph.nodes[step.node];
                StepTime { node: node.name.clone(), op_type: format!("{}{}", node.op_type, node.op.fused()), seconds }
            })
            .collect();
        let stats = RunStats { arena_bytes: plan.arena_bytes, steps: plan.steps.len(), profile };
        result.map(|o| (o, stats))
    }

    fn execute(
        &self,
        plan: &Plan,
        inputs: &HashMap<String, Tensor>,
        arena: &mut Arena,
        mut times: Option<&mut Vec<f64>>,
    ) -> Result<Vec<(String, Tensor)>> {
        let base = arena.chunks.as_mut_ptr() as *mut u8;
        let arena_len = arena.chunks.len() * ARENA_ALIGN;
        let view = |v: usize| -> TensorRef<'_> {
            let pv = &plan.values[v];
            match &pv.location {
                Location::Const(t) => t.view(),
                // SAFETY: offsets and sizes come from `assign_offsets`, which keeps every
                // arena value inside `arena_bytes` (<= arena_len) and aligned to 64 bytes.
                Location::Arena(off) => unsafe { arena_ref(base, arena_len, *off, pv.dtype, &pv.shape) },
            }
        };
        for (name, v) in &plan.inputs {
            let pv = &plan.values[*v];
            if let Location::Arena(off) = pv.location {
                // SAFETY: as above; no other view exists yet.
                let mut dst = unsafe { arena_mut(base, arena_len, off, pv.dtype, &pv.shape) };
                dst.data.copy_from(inputs[name].view().data)?;
            }
        }
        for step in &plan.steps {
            let node = &self.graph.nodes[step.node];
            // An in-place step's output 0 is its input's buffer: that input is not viewed.
            let shared = if step.in_place { node.op.in_place_input() } else { None };
            let ins: Vec<Option<TensorRef>> =
                step.inputs.iter().enumerate().map(|(k, i)| if Some(k) == shared { None } else { i.map(view) }).collect();
            let mut outs: Vec<TensorMut> = step
                .outputs
                .iter()
                .map(|&o| {
                    let pv = &plan.values[o];
                    match pv.location {
                        // SAFETY: the planner never lets an output overlap a value alive at
                        // its step, and every input of the step is alive at it, so this
                        // writable slice aliases none of `ins` nor the other outputs. (An
                        // in-place output sits on its input's buffer, which `ins` left out.)
                        Location::Arena(off) => unsafe { arena_mut(base, arena_len, off, pv.dtype, &pv.shape) },
                        Location::Const(_) => unreachable!("step outputs are always in the arena"),
                    }
                })
                .collect();
            let start = times.is_some().then(crate::clock::now).flatten();
            let ran = if shared.is_some() { node.op.run_in_place(&ins, &mut outs) } else { node.op.run(&ins, &mut outs) };
            ran.map_err(|e| e.at_node(&node.name, &node.op_type))?;
            if let (Some(times), Some(start)) = (times.as_deref_mut(), start) {
                times.push(crate::clock::now().unwrap_or(start) - start);
            }
        }
        Ok(plan.outputs.iter().zip(&self.graph.outputs).map(|(&v, info)| (info.name.clone(), view(v).to_tensor())).collect())
    }
}

macro_rules! arena_slice {
    ($from:ident, $ptr:expr, $n:expr, $dtype:expr, $ty:ident) => {
        match $dtype {
            DType::F32 => $ty::F32(std::slice::$from($ptr as _, $n)),
            DType::F16 => $ty::F16(std::slice::$from($ptr as _, $n)),
            DType::I8 => $ty::I8(std::slice::$from($ptr as _, $n)),
            DType::U8 => $ty::U8(std::slice::$from($ptr as _, $n)),
            DType::I32 => $ty::I32(std::slice::$from($ptr as _, $n)),
            DType::I64 => $ty::I64(std::slice::$from($ptr as _, $n)),
            DType::Bool => $ty::Bool(std::slice::$from($ptr as _, $n)),
            DType::BF16 => $ty::BF16(std::slice::$from($ptr as _, $n)),
            DType::F64 => $ty::F64(std::slice::$from($ptr as _, $n)),
            DType::I16 => $ty::I16(std::slice::$from($ptr as _, $n)),
            DType::U16 => $ty::U16(std::slice::$from($ptr as _, $n)),
            DType::U32 => $ty::U32(std::slice::$from($ptr as _, $n)),
            DType::U64 => $ty::U64(std::slice::$from($ptr as _, $n)),
            narrow => $ty::Narrow(narrow, std::slice::$from($ptr as _, $n)),
        }
    };
}

/// A read view of `shape` elements of `dtype` at byte `off` of the arena.
///
/// # Safety
/// `off + bytes <= arena_len`, `off` aligned for `dtype`, and no writable view of the range exists.
unsafe fn arena_ref<'a>(base: *mut u8, arena_len: usize, off: usize, dtype: DType, shape: &'a [usize]) -> TensorRef<'a> {
    let n: usize = shape.iter().product();
    debug_assert!(off + n * dtype.size() <= arena_len);
    let ptr = base.add(off) as *const u8;
    TensorRef { shape, data: arena_slice!(from_raw_parts, ptr, n, dtype, DataRef) }
}

/// A writable view; see [`arena_ref`], and no other view of the range may exist.
unsafe fn arena_mut<'a>(base: *mut u8, arena_len: usize, off: usize, dtype: DType, shape: &'a [usize]) -> TensorMut<'a> {
    let n: usize = shape.iter().product();
    debug_assert!(off + n * dtype.size() <= arena_len);
    let ptr = base.add(off);
    TensorMut { shape, data: arena_slice!(from_raw_parts_mut, ptr, n, dtype, DataMut) }
}
