//! Helpers the passes' unit tests share to build small graphs.

use crate::{Attr, Node, NodeSpec, Registry};

/// A default-domain node at opset 17 with one output.
pub(crate) fn node(name: &str, op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) -> Node {
    let spec = NodeSpec {
        name: name.into(),
        domain: String::new(),
        op_type: op.into(),
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        inputs: inputs.iter().map(|i| Some(i.to_string())).collect(),
        outputs: vec![output.into()],
    };
    Node::build(spec, 17, Registry::global()).unwrap()
}
