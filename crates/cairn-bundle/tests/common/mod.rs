//! What the bundle tests share: a deterministic random stream, a node builder and the
//! loader's memory limit.

use cairn_core::{Attr, Node, NodeSpec, Registry};

/// The loader's memory limit in these tests: far above any test model.
pub const LIMIT: u64 = 1 << 30;

/// Deterministic pseudo-random numbers (xorshift), so every test is reproducible.
pub fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// A default-domain node at opset 17 with one output.
pub fn node(name: &str, op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) -> Node {
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
