//! The importer's error type: one line a person can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The bytes are not a well-formed TFLite flatbuffer (the verifier's finding).
    #[error("not a valid TFLite model: {0} (is this a .tflite flatbuffer, complete and uncorrupted?)")]
    Decode(String),

    #[error("tensor {index} ('{name}'): {detail}")]
    Tensor { index: usize, name: String, detail: String },

    #[error("operator {index} ({op}): {detail}")]
    Operator { index: usize, op: String, detail: String },

    #[error(
        "the model uses operators Cairn does not import: {list} (hint: `cairn ops` lists what Cairn runs; open an issue with the model)"
    )]
    UnsupportedOps { list: String },

    #[error("{0}")]
    Model(String),

    #[error(transparent)]
    Core(#[from] cairn_core::Error),
}

impl Error {
    pub(crate) fn op(index: usize, op: &str, detail: impl Into<String>) -> Error {
        Error::Operator { index, op: op.to_string(), detail: detail.into() }
    }
}
