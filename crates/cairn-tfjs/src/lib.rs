//! TensorFlow.js import: `model.json` (+ weight shards) to Cairn's IR. Nothing TF.js-specific
//! leaves this crate.
//!
//! Both kinds of TF.js model are read: layers models (a Keras topology, Keras 2 or Keras 3)
//! and graph models (a GraphDef written as JSON). Model files are untrusted: every size is
//! checked against the bytes present before anything is allocated, and every failure is an
//! [`Error`] naming the layer, node or weight at fault, never a panic.

mod activation;
mod builder;
mod error;
mod graph_def;
mod graph_model;
mod layers;
pub mod manifest;
mod topology;
pub mod weights;

pub use error::Error;
pub use weights::ShardSource;

use std::path::{Component, Path, PathBuf};

/// The file name TF.js gives a model's topology and manifest.
pub const MODEL_FILE: &str = "model.json";

/// An imported model: the graph and what the file says about itself.
#[derive(Debug)]
pub struct Model {
    pub graph: cairn_core::Graph,
    pub meta: ModelMeta,
}

#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    /// `layers-model` or `graph-model`.
    pub format: String,
    /// The Keras or TF version that made it (`generatedBy`).
    pub generated_by: String,
    /// The converter that wrote it (`convertedBy`).
    pub converted_by: String,
}

/// Shards read from the model's directory; a manifest path may not leave it.
pub struct DirShards(pub PathBuf);

impl DirShards {
    fn path(&self, rel: &str) -> Result<PathBuf, Error> {
        let p = Path::new(rel);
        if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::Weights(format!("shard path '{rel}' must be a plain relative path inside the model's directory")));
        }
        Ok(self.0.join(p))
    }
}

impl ShardSource for DirShards {
    fn len(&self, rel: &str) -> Result<u64, Error> {
        let path = self.path(rel)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(Error::Weights(format!("shard '{rel}' is not a file"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(weights::missing_shard(rel)),
            Err(source) => Err(Error::Io { path, source }),
        }
    }
    fn read(&self, rel: &str) -> Result<Vec<u8>, Error> {
        let path = self.path(rel)?;
        std::fs::read(&path).map_err(|source| Error::Io { path, source })
    }
}

/// Whether `path` is a TF.js model: a `.json` file, or a directory holding `model.json`.
pub fn model_json_path(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        let p = path.join(MODEL_FILE);
        return p.is_file().then_some(p);
    }
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")).then(|| path.to_path_buf())
}

/// Loads `model.json` (or a directory holding one); shards are read from beside it.
pub fn load(path: &Path) -> Result<Model, Error> {
    let file = model_json_path(path).unwrap_or_else(|| path.to_path_buf());
    let bytes = std::fs::read(&file).map_err(|source| Error::Io { path: file.clone(), source })?;
    let dir = file.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
    load_bytes(&bytes, &DirShards(dir.unwrap_or(Path::new(".")).to_path_buf()))
}

/// Loads a model from its model.json bytes, reading shards from `shards`.
pub fn load_bytes(json: &[u8], shards: &dyn ShardSource) -> Result<Model, Error> {
    let m = manifest::parse(json)?;
    let weights = weights::decode(&m.weights_manifest, shards)?;
    let format = m.format.clone().unwrap_or_default();
    let is_graph = match format.as_str() {
        "graph-model" => true,
        "layers-model" => false,
        // Older files omit `format`: a GraphDef has `node`, a Keras topology does not.
        _ => m.model_topology.get("node").is_some(),
    };
    let graph = if is_graph { graph_model::import(&m, &weights)? } else { layers::import(&m.model_topology, &weights)? };
    let meta = ModelMeta {
        format: if is_graph { "graph-model".into() } else { "layers-model".into() },
        generated_by: m.generated_by.unwrap_or_default(),
        converted_by: m.converted_by.unwrap_or_default(),
    };
    Ok(Model { graph, meta })
}
