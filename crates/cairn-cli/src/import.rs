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
    /// A TensorFlow Lite flatbuffer (`.tflite`, or any file with the `TFL3` identifier).
    Tflite,
    /// A TensorFlow.js `model.json` (layers or graph model) with its weight shards beside it,
    /// or a directory holding one (and no Cairn `manifest.json`).
    Tfjs,
}

/// Which importer reads `path`. Decided by the file's name, since the formats Cairn reads
/// have no common magic number (ONNX protobuf has none at all).
pub fn detect_format(path: &Path) -> ModelFormat {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tflite")) || has_tflite_identifier(path) {
        return ModelFormat::Tflite;
    }
    if is_tfjs(path) {
        return ModelFormat::Tfjs;
    }
    ModelFormat::Onnx
}

/// TFLite flatbuffers carry `TFL3` at bytes 4..8 (read without loading the whole file).
fn has_tflite_identifier(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && cairn_tflite::has_identifier(&head)
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
        ModelFormat::Tflite => {
            let m = cairn_tflite::load(path).with_context(|| format!("cannot load {}", path.display()))?;
            let ops = m.meta.op_counts.iter().map(|(op, n)| format!("{op} x{n}")).collect::<Vec<_>>().join(", ");
            let meta = cairn_onnx::ModelMeta {
                producer_name: "TensorFlow Lite".into(),
                producer_version: format!("schema {}", m.meta.schema_version),
                doc_string: format!("{} ({ops})", m.meta.description),
                ..Default::default()
            };
            Ok(cairn_onnx::Model { graph: m.graph, meta })
        }
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
