//! The importer's error type: one line a person can act on, with a hint where one helps.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("not a TensorFlow.js model.json: {0} (expected the JSON that tensorflowjs_converter or save_keras_model writes)")]
    Json(String),

    #[error("weights manifest: {0}")]
    Weights(String),

    #[error("weight '{name}': {detail}")]
    Weight { name: String, detail: String },

    #[error("layer '{layer}' ({class}): {detail}")]
    Layer { layer: String, class: String, detail: String },

    #[error("node '{node}' ({op}): {detail}")]
    GraphNode { node: String, op: String, detail: String },

    #[error("the model uses {kind} Cairn does not import yet: {list}")]
    Unsupported { kind: &'static str, list: String },

    #[error("{0}")]
    Model(String),

    #[error(transparent)]
    Core(#[from] cairn_core::Error),
}

impl Error {
    pub(crate) fn layer(layer: &str, class: &str, detail: impl Into<String>) -> Error {
        Error::Layer { layer: layer.to_string(), class: class.to_string(), detail: detail.into() }
    }
    pub(crate) fn node(node: &str, op: &str, detail: impl Into<String>) -> Error {
        Error::GraphNode { node: node.to_string(), op: op.to_string(), detail: detail.into() }
    }
    pub(crate) fn weight(name: &str, detail: impl Into<String>) -> Error {
        Error::Weight { name: name.to_string(), detail: detail.into() }
    }
}
