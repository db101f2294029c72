//! The graph IR: named values, nodes in topological order, initializers.
//!
//! Values are referred to by name (as in ONNX), which keeps importers and
//! passes simple; the planner turns names into dense indices once.

use crate::{Attrs, DType, Error, Op, Registry, Result, Tensor};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// One dimension of a declared input or output shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    /// A named symbolic dim such as "batch" or "sequence"; bound at run time.
    Sym(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// A declared graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub dtype: DType,
    /// `None` when the model doesn't declare a shape (allowed for outputs).
    pub dims: Option<Vec<Dim>>,
}

/// One operator application.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub domain: String,
    pub op_type: String,
    pub attrs: Attrs,
    /// Input value names; `None` for an omitted optional input.
    pub inputs: Vec<Option<String>>,
    pub outputs: Vec<String>,
    pub op: Arc<dyn Op>,
}

#[derive(Clone, Debug)]
pub struct Graph {
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub initializers: HashMap<String, Arc<Tensor>>,
    pub nodes: Vec<Node>,
    /// Default-domain opset the model was built for.
    pub opset: i64,
}

/// A graph attribute (the body of If, Loop, Scan, SequenceMap) with the outer-scope values it reads.
///
/// The importer appends `captures` to the node's inputs (after its own inputs, in this order),
/// so ordering and dead-code passes see the dependency; the op binds the trailing inputs to
/// these names *by position*, which keeps working if a pass renames the outer values.
/// See docs/adr/0010-control-flow-and-dynamic-shapes.md.
#[derive(Clone, Debug)]
pub struct Subgraph {
    pub graph: Arc<Graph>,
    /// Names read by the body (or a body nested in it) that the body does not define.
    pub captures: Vec<String>,
}

impl PartialEq for Subgraph {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.graph, &other.graph) && self.captures == other.captures
    }
}

/// How deeply subgraphs may nest (graph levels, the main graph being 1). Real exporters nest
/// two or three levels; the bound keeps hostile files from exhausting the stack.
pub const MAX_SUBGRAPH_DEPTH: usize = 16;

/// A node as an importer describes it, before its op is built.
pub struct NodeSpec {
    pub name: String,
    pub domain: String,
    pub op_type: String,
    pub attrs: Attrs,
    pub inputs: Vec<Option<String>>,
    pub outputs: Vec<String>,
}

impl Node {
    /// Builds the op through the registry.
    pub fn build(spec: NodeSpec, opset: i64, registry: &Registry) -> Result<Node> {
        let op = registry.build(&spec.name, &spec.domain, &spec.op_type, opset, &spec.attrs, spec.inputs.len(), spec.outputs.len())?;
        Ok(Node {
            name: spec.name,
            domain: spec.domain,
            op_type: spec.op_type,
            attrs: spec.attrs,
            inputs: spec.inputs,
            outputs: spec.outputs,
            op: Arc::from(op),
        })
    }

    /// True for a BatchNormalization that normalizes with its constant running statistics
    /// (inference form), which passes may fold into a convolution. `training_mode = 1`
    /// normalizes with the batch's own statistics instead and must not be folded.
    pub fn is_inference_batch_norm(&self) -> bool {
        self.op_type == "BatchNormalization"
            && (self.domain.is_empty() || self.domain == "ai.onnx")
            && !matches!(self.attrs.get("training_mode"), Some(crate::Attr::Int(t)) if *t != 0)
    }
}

impl Graph {
    /// Checks the graph and puts nodes in topological order.
    ///
    /// Errors on: a value defined twice, an input no one defines, a graph output
    /// no one defines, and cycles. Never panics on malformed graphs.
    pub fn validated(self) -> Result<Graph> {
        self.validated_in_scope(&[])
    }

    /// [`Graph::validated`] for a subgraph, which may also read the outer-scope names in `outer`.
    pub fn validated_in_scope(mut self, outer: &[String]) -> Result<Graph> {
        let mut defined: HashSet<&str> = HashSet::new();
        for i in &self.inputs {
            if !defined.insert(&i.name) {
                return Err(Error::Graph(format!("input '{}' declared twice", i.name)));
            }
        }
        defined.extend(outer.iter().map(String::as_str));
        for name in self.initializers.keys() {
            // ONNX allows an initializer to double as an input's default; the input wins.
            defined.insert(name);
        }
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (idx, node) in self.nodes.iter().enumerate() {
            for out in &node.outputs {
                if out.is_empty() {
                    continue;
                }
                if defined.contains(out.as_str()) || producer.insert(out, idx).is_some() {
                    return Err(Error::Graph(format!("value '{}' is defined twice (again by node '{}')", out, node.name)));
                }
            }
        }
        for node in &self.nodes {
            for inp in node.inputs.iter().flatten() {
                if !defined.contains(inp.as_str()) && !producer.contains_key(inp.as_str()) {
                    return Err(Error::Graph(format!("node '{}' ({}) reads '{}', which nothing defines", node.name, node.op_type, inp)));
                }
            }
        }
        for out in &self.outputs {
            if !defined.contains(out.name.as_str()) && !producer.contains_key(out.name.as_str()) {
                return Err(Error::Graph(format!("graph output '{}' is not produced by any node", out.name)));
            }
        }

        // Stable: keeps the file's order where it is already valid.
        let mut reads = Vec::new();
        for (idx, node) in self.nodes.iter().enumerate() {
            let mut deps: Vec<usize> = node.inputs.iter().flatten().filter_map(|i| producer.get(i.as_str()).copied()).collect();
            deps.sort_unstable();
            deps.dedup();
            reads.extend(deps.into_iter().map(|d| (idx, d)));
        }
        let order = crate::run_order(self.nodes.len(), reads).map_err(|stuck| {
            Error::Graph(format!("the graph has a cycle (through node '{}')", self.nodes.get(stuck).map_or("", |n| n.name.as_str())))
        })?;
        if order.iter().enumerate().any(|(pos, &i)| pos != i) {
            let mut slots: Vec<Option<Node>> = self.nodes.into_iter().map(Some).collect();
            self.nodes = order.into_iter().map(|i| slots[i].take().expect("each index once")).collect();
        }
        Ok(self)
    }

    /// Names the graph reads (node inputs, graph outputs) without defining them (as an input,
    /// initializer or node output), in order of first use: a subgraph's outer-scope values.
    pub fn free_names(&self) -> Vec<String> {
        let mut defined: HashSet<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
        defined.extend(self.initializers.keys().map(String::as_str));
        defined.extend(self.nodes.iter().flat_map(|n| n.outputs.iter().map(String::as_str)));
        let mut seen = HashSet::new();
        let reads = self.nodes.iter().flat_map(|n| n.inputs.iter().flatten()).chain(self.outputs.iter().map(|o| &o.name));
        reads.filter(|name| !name.is_empty() && !defined.contains(name.as_str()) && seen.insert(name.as_str())).cloned().collect()
    }

    /// True if the graph takes, makes or returns string tensors (docs/adr/0031): bundles,
    /// the browser engine and the server refuse such graphs by this test.
    pub fn uses_strings(&self) -> bool {
        let strings = |v: &ValueInfo| v.dtype == DType::Str;
        self.inputs.iter().any(strings) || self.outputs.iter().any(strings) || self.nodes.iter().any(|n| n.op.makes_strings())
    }

    /// True if any node needs the eager interpreter (control flow, sequences, optionals).
    /// Strings always do (docs/adr/0031): a string input, output or op.
    pub fn runs_eagerly(&self) -> bool {
        let strings = |v: &ValueInfo| v.dtype == DType::Str;
        self.inputs.iter().any(strings) || self.outputs.iter().any(strings) || self.nodes.iter().any(|n| n.op.runs_eagerly())
    }

    /// Total parameter count and bytes: initializers, plus weights fused ops hold
    /// (prepacked, so their bytes may exceed the original's by tile padding).
    pub fn parameter_stats(&self) -> (usize, usize) {
        let init = self.initializers.values().fold((0, 0), |(n, b), t| (n + t.len(), b + t.byte_len()));
        self.nodes.iter().map(|node| node.op.owned_parameters()).fold(init, |(n, b), (n2, b2)| (n + n2, b + b2))
    }

    /// Graph inputs that are not also initializers (the ones a caller must feed).
    pub fn runtime_inputs(&self) -> impl Iterator<Item = &ValueInfo> {
        self.inputs.iter().filter(|i| !self.initializers.contains_key(&i.name))
    }
}
