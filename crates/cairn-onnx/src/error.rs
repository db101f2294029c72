//! The importer's error type: one line a person can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("not an ONNX model: {0} (is this file a .onnx protobuf?)")]
    Decode(String),

    #[error("tensor '{name}': {detail}")]
    Tensor { name: String, detail: String },

    #[error(
        "tensor '{name}' has dtype {dtype}, which Cairn does not support (it supports float32, float16, bfloat16, double, int8/16/32/64, uint8/16/32/64, bool)"
    )]
    UnsupportedDType { name: String, dtype: &'static str },

    #[error("external data of tensor '{name}': {detail}")]
    ExternalData { name: String, detail: String },

    #[error("the model imports opset {version} of the default domain; Cairn supports opsets {min} to {max}")]
    Opset { version: i64, min: i64, max: i64 },

    #[error(
        "the model imports opset {opset} of the default domain, and Cairn implements these operators only as defined from a later opset: {}",
        LegacyNode::list(nodes)
    )]
    LegacyOpset { opset: i64, nodes: Vec<LegacyNode> },

    #[error("the model uses {} operator(s) Cairn does not implement: {}; first at node '{}'", ops.len(), MissingOp::list(ops), first_node(first))]
    UnsupportedOps { ops: Vec<MissingOp>, first: Box<cairn_core::Error> },

    #[error("{0}")]
    Model(String),

    #[error(transparent)]
    Core(#[from] cairn_core::Error),
}

/// One operator a model uses that Cairn lacks, with the opset of its domain the model imports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingOp {
    /// `ai.onnx` for the default domain.
    pub domain: String,
    pub op_type: String,
    pub opset: i64,
    /// How many nodes use it.
    pub count: usize,
}

impl MissingOp {
    /// `LSTM (ai.onnx opset 16) x1, DynamicQuantizeLSTM (com.microsoft opset 1) x3`.
    pub fn list(ops: &[MissingOp]) -> String {
        ops.iter().map(|m| format!("{} ({} opset {}) x{}", m.op_type, m.domain, m.opset, m.count)).collect::<Vec<_>>().join(", ")
    }
}

/// A node of a model importing a default-domain opset below 7 whose operator's definition
/// at that opset differs from the one Cairn implements (or that the opset does not define).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyNode {
    pub node: String,
    pub op_type: String,
    /// The opset from which the definition Cairn implements applies.
    pub since: i64,
    /// How many nodes use the operator (`node` is the first).
    pub count: usize,
}

impl LegacyNode {
    /// `Gemm at node 'fc' (x2; Cairn's definition applies from opset 7)`.
    pub fn list(nodes: &[LegacyNode]) -> String {
        nodes
            .iter()
            .map(|n| format!("{} at node '{}' (x{}; Cairn's definition applies from opset {})", n.op_type, n.node, n.count, n.since))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn first_node(e: &cairn_core::Error) -> &str {
    match e {
        cairn_core::Error::UnsupportedOp { node, .. } => node,
        _ => "?",
    }
}

impl Error {
    pub(crate) fn tensor(name: &str, detail: impl Into<String>) -> Error {
        Error::Tensor { name: name.to_string(), detail: detail.into() }
    }
}
