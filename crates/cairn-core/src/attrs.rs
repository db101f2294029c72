//! Operator attributes, format-neutral (importers convert into these).
//!
//! Builders read attributes through [`OpContext`](crate::OpContext), which records
//! every name read; any attribute a builder never looked at is reported as
//! unsupported, so a model never runs with an attribute silently ignored.

use crate::{Error, Subgraph, Tensor};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Str(String),
    Tensor(Tensor),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strs(Vec<String>),
    /// A subgraph (If/Loop/Scan/SequenceMap bodies), imported, with its outer-scope captures.
    Graph(Subgraph),
    /// A type (the `type` of `Optional`), as ONNX writes it: "tensor(float)", "seq(tensor(int64))".
    Type(String),
}

impl Attr {
    pub fn kind(&self) -> &'static str {
        match self {
            Attr::Int(_) => "int",
            Attr::Float(_) => "float",
            Attr::Str(_) => "string",
            Attr::Tensor(_) => "tensor",
            Attr::Ints(_) => "ints",
            Attr::Floats(_) => "floats",
            Attr::Strs(_) => "strings",
            Attr::Graph(_) => "graph",
            Attr::Type(_) => "type",
        }
    }
}

/// Attributes of one node, by name. Ordered so printing and hashing are stable.
pub type Attrs = BTreeMap<String, Attr>;

pub(crate) fn wrong_kind(name: &str, want: &str, got: &Attr) -> Error {
    Error::InvalidAttr { attr: name.to_string(), detail: format!("expected {want}, got {}", got.kind()) }
}

pub(crate) fn missing(name: &str) -> Error {
    Error::InvalidAttr { attr: name.to_string(), detail: "required but missing".to_string() }
}
