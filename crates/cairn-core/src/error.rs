//! The one error type of the engine.

use crate::DType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The op type (or domain) has no implementation in Cairn.
    #[error("unsupported operator {op_type} (opset {opset}) at node '{node}'")]
    UnsupportedOp { node: String, op_type: String, opset: i64 },

    /// An attribute Cairn does not implement, or a value of it that it does not implement.
    #[error("unsupported attribute '{attr}' on {op_type} (opset {opset}) at node '{node}': {detail}")]
    UnsupportedAttr { node: String, op_type: String, opset: i64, attr: String, detail: String },

    /// An attribute is missing or has the wrong kind or value.
    #[error("invalid attribute '{attr}': {detail}")]
    InvalidAttr { attr: String, detail: String },

    /// Shapes or dtypes of a node's inputs don't fit the operator.
    #[error("{op_type}: {detail}")]
    Shape { op_type: String, detail: String },

    #[error("dtype mismatch: expected {expected}, got {got} ({context})")]
    DType { expected: DType, got: DType, context: String },

    /// The graph itself is malformed: dangling references, cycles, duplicate names.
    #[error("invalid graph: {0}")]
    Graph(String),

    /// An input given to `run` does not match the model.
    #[error("invalid input: {0}")]
    Input(String),

    /// A tensor or intermediate would need more memory than allowed.
    #[error("too large: {0}")]
    TooLarge(String),

    /// Wraps an error with the node it happened at.
    #[error("node '{node}' ({op_type}): {source}")]
    AtNode {
        node: String,
        op_type: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Shorthand for the shape/type errors ops return.
    pub fn shape(op_type: &str, detail: impl Into<String>) -> Error {
        Error::Shape { op_type: op_type.to_string(), detail: detail.into() }
    }

    pub fn at_node(self, node: &str, op_type: &str) -> Error {
        match self {
            // Already located: don't nest twice.
            e @ Error::AtNode { .. } | e @ Error::UnsupportedOp { .. } | e @ Error::UnsupportedAttr { .. } => e,
            e => Error::AtNode { node: node.to_string(), op_type: op_type.to_string(), source: Box::new(e) },
        }
    }
}

/// Early-return a shape error: `bail_shape!("Conv", "expected 4-D input, got {:?}", shape)`.
#[macro_export]
macro_rules! bail_shape {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::Error::shape($op, format!($($arg)*)))
    };
}
