//! One entry point from a model file on disk to Cairn's IR, whatever its format.
//!
//! Every command that takes a model (`inspect`, `run`, `optimize`, `eval`, `pack`, `app build`)
//! loads it through [`import_model`], so a new importer is one [`ModelFormat`] variant, one arm
//! in [`detect_format`] and one in [`import_model`].

use anyhow::{Context, Result};
use std::path::Path;

/// The file formats Cairn imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    /// An ONNX protobuf file (`.onnx`).
    Onnx,
}

/// Which importer reads `path`. Decided by the file's name, since the formats Cairn reads
/// have no common magic number (ONNX protobuf has none at all).
pub fn detect_format(_path: &Path) -> ModelFormat {
    ModelFormat::Onnx
}

/// Imports the model at `path` into Cairn's IR, as the file describes it (no folding yet).
pub fn import_model(path: &Path) -> Result<cairn_onnx::Model> {
    match detect_format(path) {
        ModelFormat::Onnx => cairn_onnx::load(path).with_context(|| format!("cannot load {}", path.display())),
    }
}
