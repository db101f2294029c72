//! The models the server runs: every bundle under `DIR/models/*/manifest.json`, loaded
//! at full precision (every level, every shard verified) and prepared for this machine.

use crate::batcher::{BatchConfig, Batcher, ComputePool};
use crate::calibrate::{calibrate, Calibration};
use cairn_bundle::Manifest;
use cairn_core::{passes::prepare_for_inference, DType, Dim, Session, ValueInfo};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub struct ServedModel {
    /// The bundle's directory name: the `{name}` of `/v1/models/{name}/...`.
    pub name: String,
    pub manifest: Manifest,
    pub session: Arc<Session>,
    /// Inputs the caller supplies, in the graph's order.
    pub inputs: Vec<ValueInfo>,
    /// Every input's first dimension is the same symbolic one, so requests can be
    /// stacked along it and run as one batch.
    pub batchable: bool,
    pub batcher: Batcher,
    /// Per-row times measured at load, when batch sizes were calibrated.
    pub calibration: Option<Calibration>,
}

impl ServedModel {
    /// Class names of output `name`, when the bundle has them.
    pub fn labels(&self, output: &str) -> Option<&[String]> {
        self.manifest.outputs.iter().find(|o| o.name == output)?.labels.as_deref()
    }
}

/// The models being served: the current version of each, and older versions still
/// answered for clients pinned to them until their grace period ends (live updates).
#[derive(Default)]
pub struct ModelSet {
    pub current: BTreeMap<String, Arc<ServedModel>>,
    pub retiring: Vec<Retiring>,
}

#[derive(Clone)]
pub struct Retiring {
    pub model: Arc<ServedModel>,
    pub until: Instant,
}

impl ModelSet {
    /// Model `name`: the current version, or (when the client pins one) the version it asks
    /// for while that is still served.
    pub fn find(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, crate::error::ApiError> {
        use crate::error::ApiError;
        let Some(current) = self.current.get(name) else {
            let names: Vec<&str> = self.current.keys().map(String::as_str).collect();
            return Err(ApiError::not_found(format!("there is no model '{name}'"))
                .hint(format!("models here: {}", if names.is_empty() { "none".to_string() } else { names.join(", ") })));
        };
        let Some(version) = version.filter(|v| *v != current.manifest.version) else { return Ok(current.clone()) };
        let now = Instant::now();
        self.retiring
            .iter()
            .find(|r| r.model.name == name && r.model.manifest.version == version && r.until > now)
            .map(|r| r.model.clone())
            .ok_or_else(|| {
                ApiError::new(axum::http::StatusCode::GONE, format!("model '{name}' version '{version}' is no longer served"))
                    .hint(format!("reload the model's manifest: the current version is '{}'", current.manifest.version))
            })
    }

    /// Every served model, current versions first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ServedModel>> {
        let now = Instant::now();
        self.current.values().chain(self.retiring.iter().filter(move |r| r.until > now).map(|r| &r.model))
    }
}

/// Loads every bundle under `root/models`. A bundle that fails to load is reported
/// (one line each) and skipped, so one broken upload does not take the others down.
pub fn discover(
    root: &Path,
    max_weight_bytes: u64,
    batch: &BatchConfig,
    pool: &ComputePool,
) -> (BTreeMap<String, Arc<ServedModel>>, Vec<String>) {
    let mut models = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, path) in bundle_dirs(root) {
        match load(&path, &name, max_weight_bytes, batch, pool) {
            Ok(m) => {
                models.insert(name, Arc::new(m));
            }
            Err(e) => problems.push(format!("model '{name}' in {} was not loaded: {e}", path.display())),
        }
    }
    (models, problems)
}

/// Bundle directories under `root/models` (those with a manifest), by name, sorted.
pub fn bundle_dirs(root: &Path) -> Vec<(String, std::path::PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root.join("models")) else { return Vec::new() };
    let mut dirs: Vec<(String, std::path::PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join(cairn_bundle::MANIFEST_FILE).is_file())
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .collect();
    dirs.sort();
    dirs
}

pub fn load(path: &Path, name: &str, max_weight_bytes: u64, batch: &BatchConfig, pool: &ComputePool) -> Result<ServedModel, String> {
    let loader = cairn_bundle::load_dir(path, max_weight_bytes).map_err(|e| e.to_string())?;
    let manifest = loader.manifest().clone();
    let graph = loader.into_graph().map_err(|e| e.to_string())?;
    let (graph, _) = prepare_for_inference(graph).map_err(|e| format!("preparing the graph failed: {e}"))?;
    let inputs: Vec<ValueInfo> = graph.runtime_inputs().cloned().collect();
    let batchable = leading_symbol(&inputs).is_some();
    let mut config = if batchable { batch.clone() } else { batch.unbatched() };
    let calibration = (config.calibrate && config.max_batch > 1).then(|| calibrate(&graph, &inputs, config.max_batch)).flatten();
    if let Some(c) = &calibration {
        config.max_batch = c.chosen;
    }
    let session = Arc::new(Session::new(graph));
    let batcher = Batcher::start(name, session.clone(), config, pool.clone());
    Ok(ServedModel { name: name.to_string(), manifest, session, inputs, batchable, batcher, calibration })
}

/// The symbolic first dimension every input shares, if there is one.
fn leading_symbol(inputs: &[ValueInfo]) -> Option<&str> {
    let mut symbol = None;
    for i in inputs {
        match i.dims.as_deref()?.first()? {
            Dim::Sym(s) if symbol.is_none_or(|seen| seen == s.as_str()) => symbol = Some(s.as_str()),
            _ => return None,
        }
    }
    symbol
}

/// Dims for JSON: numbers, or the symbol's name.
pub fn dims_json(dims: Option<&[Dim]>) -> serde_json::Value {
    match dims {
        None => serde_json::Value::Null,
        Some(dims) => dims
            .iter()
            .map(|d| match d {
                Dim::Known(n) => serde_json::json!(n),
                Dim::Sym(s) => serde_json::json!(s),
            })
            .collect(),
    }
}

/// Accepts the manifest's names (`f32`) and NumPy's (`float32`).
pub fn parse_dtype(name: &str) -> Option<DType> {
    let canonical = match name {
        "float32" => "f32",
        "float16" => "f16",
        "int8" => "i8",
        "uint8" => "u8",
        "int32" => "i32",
        "int64" => "i64",
        "float64" => "f64",
        "bfloat16" => "bf16",
        "int16" => "i16",
        "uint16" => "u16",
        "uint32" => "u32",
        "uint64" => "u64",
        other => other,
    };
    DType::from_name(canonical)
}

/// Runs one row of zeros through the model, so its first real request does not
/// pay for first-touch allocations and cold caches. Inputs with unknown sizes past the
/// batch dim cannot be made up: such models are not warmed (and say so).
pub async fn warm(model: &ServedModel) -> Result<(), String> {
    let mut tensors = Vec::with_capacity(model.inputs.len());
    for input in &model.inputs {
        let dims = input.dims.as_deref().ok_or_else(|| format!("input '{}' has no known shape", input.name))?;
        let shape: Vec<usize> = dims
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(n) => Some(*n),
                Dim::Sym(_) if i == 0 => Some(1),
                Dim::Sym(_) => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| format!("input '{}' has symbolic sizes past the batch dim", input.name))?;
        let numel = shape.iter().product();
        tensors.push(cairn_core::Tensor::new(shape, cairn_core::TensorData::zeros(input.dtype, numel)).map_err(|e| e.to_string())?);
    }
    // Alone on a compute slot, beside the batcher: a warm-up is not a request and must not
    // show in the batch metrics.
    model
        .batcher
        .exclusive(true, move |session, _| crate::batcher::session_run(session, &tensors).map(|_| ()))
        .await
        .map_err(|e| format!("{e:?}"))
}
