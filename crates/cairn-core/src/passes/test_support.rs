//! Helpers the passes' unit tests share to build small graphs.

use crate::{Attr, Graph, Node, NodeSpec, Registry, Tensor, ValueInfo};
use std::collections::HashMap;
use std::sync::Arc;

/// A default-domain node at opset 17 with one output.
pub(crate) fn node(name: &str, op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) -> Node {
    node_with_outputs(name, op, inputs, &[output], attrs)
}

/// The same with several outputs (DynamicQuantizeLinear's value, scale and zero point).
pub(crate) fn node_with_outputs(name: &str, op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<(&str, Attr)>) -> Node {
    let spec = NodeSpec {
        name: name.into(),
        domain: String::new(),
        op_type: op.into(),
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        inputs: inputs.iter().map(|i| Some(i.to_string())).collect(),
        outputs: outputs.iter().map(|o| o.to_string()).collect(),
    };
    Node::build(spec, 17, Registry::global()).unwrap()
}

/// A validated opset-17 graph of these parts.
pub(crate) fn graph(
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    initializers: HashMap<String, Arc<Tensor>>,
    nodes: Vec<Node>,
) -> Graph {
    Graph { inputs, outputs, initializers, nodes, opset: 17 }.validated().unwrap()
}
