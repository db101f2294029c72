//! ONNX import: protobuf bytes to Cairn's IR. Nothing ONNX-specific leaves this crate.
//!
//! Model files are untrusted: every size is checked against the bytes present
//! before anything is allocated, and every failure is an [`Error`], never a panic.

mod error;
mod export;
mod import;
mod opset_floor;
pub mod proto;
mod tensor;
mod value;

pub use error::{Error, LegacyNode, MissingOp};
pub use export::save_bytes;
pub use value::value_from_bytes;

use prost::Message;
use std::path::Path;

/// An imported model: the graph and what the file says about itself.
#[derive(Debug)]
pub struct Model {
    pub graph: cairn_core::Graph,
    pub meta: ModelMeta,
}

#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    pub ir_version: i64,
    pub producer_name: String,
    pub producer_version: String,
    /// (domain, version) of every opset the model imports.
    pub opsets: Vec<(String, i64)>,
    pub doc_string: String,
    /// The model's `metadata_props` (key, value), in file order; Cairn keeps its run-time
    /// width plan here (`cairn_core::width::ONNX_METADATA_KEY`).
    pub metadata: Vec<(String, String)>,
}

/// Loads a model file; external data is resolved relative to its directory.
pub fn load(path: &Path) -> Result<Model, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let dir = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    load_bytes(&bytes, dir)
}

/// Loads a model from memory. Without `external_data_dir`, models with external data fail clearly.
pub fn load_bytes(bytes: &[u8], external_data_dir: Option<&Path>) -> Result<Model, Error> {
    let proto = decode_model(bytes)?;
    import::model(proto, external_data_dir)
}

/// [`load_bytes`] taking ownership: the serialized bytes are freed right after decoding,
/// before the weights are converted (what a browser wants, where the wasm heap keeps
/// its high-water mark for good).
pub fn load_owned(bytes: Vec<u8>, external_data_dir: Option<&Path>) -> Result<Model, Error> {
    let proto = decode_model(&bytes)?;
    drop(bytes);
    import::model(proto, external_data_dir)
}

/// Decodes the protobuf, refusing things that are plainly not an ONNX model.
pub fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto, Error> {
    if bytes.is_empty() {
        return Err(Error::Decode("the file is empty".into()));
    }
    let proto = proto::ModelProto::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    if proto.graph.is_none() && proto.opset_import.is_empty() {
        return Err(Error::Decode("no graph and no opset: this does not look like an ONNX model".into()));
    }
    Ok(proto)
}

/// Decodes a serialized `TensorProto` (the `.pb` files of ONNX test data).
pub fn tensor_from_bytes(bytes: &[u8]) -> Result<(String, cairn_core::Tensor), Error> {
    let t = proto::TensorProto::decode(bytes).map_err(|e| Error::Decode(format!("not a TensorProto: {e}")))?;
    Ok((t.name.clone(), tensor::convert(&t, None)?))
}
