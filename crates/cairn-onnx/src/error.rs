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

    #[error("the model uses operators Cairn does not implement: {list}; first at {first}")]
    UnsupportedOps { list: String, first: Box<cairn_core::Error> },

    #[error("{0}")]
    Model(String),

    #[error(transparent)]
    Core(#[from] cairn_core::Error),
}

impl Error {
    pub(crate) fn tensor(name: &str, detail: impl Into<String>) -> Error {
        Error::Tensor { name: name.to_string(), detail: detail.into() }
    }
}
