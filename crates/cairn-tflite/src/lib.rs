//! TensorFlow Lite import: a `.tflite` flatbuffer to Cairn's IR. Nothing TFLite-specific
//! leaves this crate.
//!
//! - The file is untrusted: the flatbuffers verifier checks every offset before any field is
//!   read, every size is checked against the bytes present before anything is allocated, and
//!   every failure is an [`Error`], never a panic.
//! - TFLite is NHWC, Cairn's kernels are NCHW: 4-D activations are carried in NCHW inside the
//!   graph, weights are transposed once here, and one layout change sits at the graph's
//!   4-D inputs and outputs (see [`layout`]). Graph inputs and outputs keep TFLite's shapes.
//! - Quantized tensors become standard QDQ (`DequantizeLinear`/`QuantizeLinear` around the
//!   float operator), which `cairn_core::passes::qdq` fuses onto the int8 kernels at load:
//!   convolutions, fully connected layers and adds run on integers (see docs/adr/0007).
//!   int8 activations inside the graph are carried as uint8 (zero point + 128, the same
//!   values), the form Cairn's int8 kernels take the direct way (see [`unsigned`]).

mod builder;
mod error;
mod layout;
mod ops;
mod reader;
mod sparse;
mod unsigned;
#[allow(clippy::all, clippy::pedantic, unused_imports, dead_code, non_camel_case_types, non_snake_case, non_upper_case_globals)]
#[allow(unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes)]
#[rustfmt::skip]
#[doc(hidden)]
pub mod schema_generated;

pub use error::Error;

use std::path::Path;

/// The 4-byte file identifier at offset 4 of every TFLite flatbuffer.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// An imported model: the graph and what the file says about itself.
#[derive(Debug)]
pub struct Model {
    pub graph: cairn_core::Graph,
    pub meta: ModelMeta,
}

#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    /// The schema version the file declares (3 for every current converter).
    pub schema_version: u32,
    /// The file's description (e.g. "MLIR Converted.").
    pub description: String,
    /// Operator names with their counts, as in the file (builtin or custom).
    pub op_counts: Vec<(String, usize)>,
}

/// Loads a `.tflite` file.
pub fn load(path: &Path) -> Result<Model, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    load_bytes(&bytes)
}

/// Whether `bytes` carry TFLite's file identifier (`TFL3` at offset 4).
pub fn has_identifier(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(FILE_IDENTIFIER.as_slice())
}

/// Loads a model from memory.
pub fn load_bytes(bytes: &[u8]) -> Result<Model, Error> {
    let model = reader::verified_model(bytes)?;
    builder::import(model)
}
