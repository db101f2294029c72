//! The operator interface every kernel family implements, and what shape inference knows.

use crate::attrs::{missing, wrong_kind};
use crate::eager::EvalContext;
use crate::{Attr, Attrs, DType, Error, Result, Subgraph, Tensor, TensorMut, TensorRef, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

/// What is known about a value before running: dtype, concrete shape and,
/// for constants and small shape-like tensors, the value itself.
///
/// Shapes are concrete because Cairn plans memory per binding of the symbolic
/// dims (batch, sequence): see docs/adr/0001-concrete-shapes-per-binding.md.
#[derive(Clone, Debug)]
pub struct Fact {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub value: Option<Arc<Tensor>>,
}

impl Fact {
    pub fn new(dtype: DType, shape: Vec<usize>) -> Fact {
        Fact { dtype, shape, value: None }
    }

    pub fn from_tensor(t: Arc<Tensor>) -> Fact {
        Fact { dtype: t.dtype(), shape: t.shape().to_vec(), value: Some(t) }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The value as i64s, if known (shape-like inputs such as Reshape's `shape`).
    pub fn known_i64s(&self) -> Option<Vec<i64>> {
        self.value.as_ref().and_then(|t| t.view().to_i64_vec().ok())
    }
}

/// One operator instance, built from attributes by its registry builder.
///
/// `infer` and `run` see inputs positionally; an omitted optional input is `None`.
/// `run` gets one writable output per output the node declares, already sized
/// to the shapes `infer` returned.
pub trait Op: Send + Sync + Debug {
    /// The ONNX op type name, for messages.
    fn op_type(&self) -> &str;

    /// Output facts (dtype and shape; a value only if the op computes it cheaply here).
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>>;

    /// Computes outputs into the preallocated views.
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()>;

    /// The input whose buffer output 0 may overwrite: set by elementwise ops that read
    /// each element before writing the same index, with output 0 of that input's dtype and
    /// shape. When that input is read by nothing later, the planner gives output 0 its
    /// buffer and the executor calls [`Op::run_in_place`] instead of `run`: an unfused
    /// chain Conv -> BatchNormalization -> Clip then needs one buffer, not three.
    fn in_place_input(&self) -> Option<usize> {
        None
    }

    /// `run` for a planned in-place step: `outputs[0]` already holds the values of input
    /// `in_place_input()`, whose slot in `inputs` is `None`. Only called on ops that
    /// return `Some` from [`Op::in_place_input`].
    fn run_in_place(&self, _inputs: &[Option<TensorRef>], _outputs: &mut [TensorMut]) -> Result<()> {
        Err(Error::shape(self.op_type(), "cannot run in place"))
    }

    /// Multiply-accumulate count for `inspect` (0 for data movement and cheap elementwise ops).
    fn macs(&self, _inputs: &[Option<&Fact>], _outputs: &[Fact]) -> u64 {
        0
    }

    /// Parameters the op holds itself (fused ops keep their prepacked weights):
    /// (element count of the original weights, bytes held in memory).
    fn owned_parameters(&self) -> (usize, usize) {
        (0, 0)
    }

    /// For nodes built by the fusion pass, what was folded in (e.g. "+BatchNormalization+Clip").
    fn fused(&self) -> &str {
        ""
    }

    /// True for ops the planned arena cannot run: they take or produce sequences or
    /// optionals, or run subgraphs. A graph with one of them runs on the eager interpreter
    /// (docs/adr/0010-control-flow-and-dynamic-shapes.md).
    fn runs_eagerly(&self) -> bool {
        false
    }

    /// Evaluates the op on owned values (the eager interpreter's entry point). The default
    /// takes tensors only and runs `infer` + `run`, so every tensor op works eagerly as is;
    /// ops on sequences, optionals or subgraphs override it.
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        crate::eager::eval_tensors(self, inputs, cx)
    }

    /// True for ops whose `eval` takes string tensors itself (the string ops, Cast). The
    /// eager interpreter runs the others on strings through [`crate::eval_interned`].
    fn takes_strings(&self) -> bool {
        false
    }

    /// True for ops that can bring string tensors into a graph that has no string input: a
    /// string constant, the string ops, Cast to string. By default the ops that take strings;
    /// Cast takes them (to parse) but makes them only when its target is string, so a plain
    /// numeric Cast does not mark a model as a string model.
    fn makes_strings(&self) -> bool {
        self.takes_strings()
    }

    /// True for ops whose outputs differ from run to run (the random generators): no pass
    /// folds them into a constant, even when every input is known.
    fn is_random(&self) -> bool {
        false
    }

    /// True for ops a graph pass built (fused, prepacked): their node's attributes and
    /// inputs no longer describe a standard operator, so such a graph cannot be saved.
    fn built_by_pass(&self) -> bool {
        false
    }
}

/// Everything a builder may look at to construct an op. Tracks which
/// attributes were read so that unread ones can be reported as unsupported.
pub struct OpContext<'a> {
    pub op_type: &'a str,
    pub opset: i64,
    pub n_inputs: usize,
    pub n_outputs: usize,
    attrs: &'a Attrs,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> OpContext<'a> {
    pub fn new(op_type: &'a str, opset: i64, attrs: &'a Attrs, n_inputs: usize, n_outputs: usize) -> OpContext<'a> {
        OpContext { op_type, opset, n_inputs, n_outputs, attrs, read: RefCell::new(BTreeSet::new()) }
    }

    fn get(&self, name: &str) -> Option<&'a Attr> {
        self.read.borrow_mut().insert(name.to_string());
        self.attrs.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.attrs.contains_key(name)
    }

    /// Marks an attribute as deliberately ignored (e.g. Dropout's `seed` at inference).
    pub fn ignore(&self, name: &str) {
        self.read.borrow_mut().insert(name.to_string());
    }

    pub fn int_opt(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(wrong_kind(name, "int", other)),
        }
    }
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }
    pub fn int_req(&self, name: &str) -> Result<i64> {
        self.int_opt(name)?.ok_or_else(|| missing(name))
    }

    pub fn float_opt(&self, name: &str) -> Result<Option<f32>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(other) => Err(wrong_kind(name, "float", other)),
        }
    }
    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.float_opt(name)?.unwrap_or(default))
    }
    pub fn float_req(&self, name: &str) -> Result<f32> {
        self.float_opt(name)?.ok_or_else(|| missing(name))
    }

    pub fn string_opt(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Str(v)) => Ok(Some(v.clone())),
            Some(other) => Err(wrong_kind(name, "string", other)),
        }
    }
    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.string_opt(name)?.unwrap_or_else(|| default.to_string()))
    }
    pub fn string_req(&self, name: &str) -> Result<String> {
        self.string_opt(name)?.ok_or_else(|| missing(name))
    }

    pub fn ints_opt(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => Err(wrong_kind(name, "ints", other)),
        }
    }
    /// An ints attribute of sizes, strides or pads: every value must be >= 0.
    pub fn usizes_opt(&self, name: &str) -> Result<Option<Vec<usize>>> {
        let non_negative =
            |x: i64| usize::try_from(x).map_err(|_| Error::InvalidAttr { attr: name.into(), detail: format!("{x} must not be negative") });
        self.ints_opt(name)?.map(|v| v.into_iter().map(non_negative).collect()).transpose()
    }
    pub fn strings_opt(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Strs(v)) => Ok(Some(v.clone())),
            Some(other) => Err(wrong_kind(name, "strings", other)),
        }
    }
    pub fn floats_opt(&self, name: &str) -> Result<Option<Vec<f32>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(other) => Err(wrong_kind(name, "floats", other)),
        }
    }
    pub fn graph_opt(&self, name: &str) -> Result<Option<Subgraph>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Graph(g)) => Ok(Some(g.clone())),
            Some(other) => Err(wrong_kind(name, "graph", other)),
        }
    }
    pub fn graph_req(&self, name: &str) -> Result<Subgraph> {
        self.graph_opt(name)?.ok_or_else(|| missing(name))
    }

    pub fn tensor_opt(&self, name: &str) -> Result<Option<Tensor>> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(v)) => Ok(Some(v.clone())),
            Some(other) => Err(wrong_kind(name, "tensor", other)),
        }
    }

    /// An error for an attribute value Cairn doesn't implement (e.g. `mode = "cubic"`).
    /// The registry adds node name and opset.
    pub fn unsupported(&self, attr: &str, detail: impl Into<String>) -> Error {
        Error::UnsupportedAttr {
            node: String::new(),
            op_type: self.op_type.to_string(),
            opset: self.opset,
            attr: attr.to_string(),
            detail: detail.into(),
        }
    }

    /// Names of attributes present on the node that the builder never read.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.attrs.keys().filter(|k| !read.contains(*k)).cloned().collect()
    }
}

/// Constructs an op from its attributes.
pub type OpBuilder = fn(&OpContext) -> Result<Box<dyn Op>>;

/// The `i`-th input, which the op requires: an error naming the op if it is missing.
/// Works for both facts (`infer`) and views (`run`).
pub fn required<T: Copy>(inputs: &[Option<T>], i: usize, op_type: &str) -> Result<T> {
    inputs.get(i).copied().flatten().ok_or_else(|| Error::shape(op_type, format!("input {i} is required")))
}

/// Resolves a possibly negative axis against `rank` (ONNX allows `-rank..rank`). The result
/// indexes a dimension, so a scalar has no valid axis (this once let axis 0 through for rank
/// 0, and CumSum and Scan of a scalar indexed an empty shape: found by fuzzing).
pub fn normalize_axis(axis: i64, rank: usize, op_type: &str) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(Error::shape(op_type, format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}
