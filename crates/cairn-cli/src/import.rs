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
    /// A TensorFlow.js `model.json` (layers or graph model) with its weight shards beside it,
    /// or a directory holding one (and no Cairn `manifest.json`).
    Tfjs,
}

/// Which importer reads `path`. Decided by the file's name, since the formats Cairn reads
/// have no common magic number (ONNX protobuf has none at all).
pub fn detect_format(path: &Path) -> ModelFormat {
    if is_tfjs(path) {
        return ModelFormat::Tfjs;
    }
    ModelFormat::Onnx
}

/// A `.json` file that is not a Cairn bundle manifest, or a directory with `model.json` and no `manifest.json`.
pub fn is_tfjs(path: &Path) -> bool {
    if path.is_dir() {
        return path.join(cairn_tfjs::MODEL_FILE).is_file() && !path.join(cairn_bundle::MANIFEST_FILE).exists();
    }
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) && path.file_name().is_some_and(|n| n != cairn_bundle::MANIFEST_FILE)
}

/// Imports the model at `path` into Cairn's IR, as the file describes it (no folding yet).
pub fn import_model(path: &Path) -> Result<cairn_onnx::Model> {
    match detect_format(path) {
        ModelFormat::Onnx => cairn_onnx::load(path).with_context(|| format!("cannot load {}", path.display())),
        ModelFormat::Tfjs => {
            let m = cairn_tfjs::load(path).with_context(|| format!("cannot load the TF.js model {}", path.display()))?;
            let meta = cairn_onnx::ModelMeta {
                producer_name: format!("TensorFlow.js {} ({})", m.meta.format, m.meta.converted_by),
                producer_version: m.meta.generated_by,
                opsets: vec![(String::new(), m.graph.opset)],
                ..Default::default()
            };
            Ok(cairn_onnx::Model { graph: m.graph, meta })
        }
    }
}
