//! Loading a model for the CLI: import, load-time folding, binding symbolic dims.

use anyhow::{bail, Context, Result};
use cairn_core::{passes::prepare_for_inference, Dim, Graph, Session, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub struct Loaded {
    pub meta: cairn_onnx::ModelMeta,
    /// Node count and op histogram of the file as imported, before folding.
    pub imported_nodes: usize,
    pub op_histogram: BTreeMap<String, usize>,
    pub session: Session,
    pub folded_at_load: usize,
    /// What the fusion pass did (BatchNorms folded, epilogues fused).
    pub fuse: cairn_core::passes::fuse::FuseStats,
}

pub fn load(path: &Path) -> Result<Loaded> {
    Ok(load_at_width(path, 1.0)?.0)
}

/// Loads a model cut to a run-time width (1: the full model); returns the width that runs.
pub fn load_at_width(path: &Path, width: f32) -> Result<(Loaded, f32)> {
    if !path.exists() {
        bail!("model file {} does not exist", path.display());
    }
    let mut model = if is_bundle(path) { load_bundle(path)? } else { crate::import::import_model(path)? };
    let plan = crate::widths::plan_of(&model.meta)?;
    let (graph, ran) = crate::widths::at_width(&model.graph, plan.as_ref(), width)?;
    model.graph = graph;
    let imported_nodes = model.graph.nodes.len();
    let mut op_histogram = BTreeMap::new();
    for node in &model.graph.nodes {
        let name = if node.domain.is_empty() { node.op_type.clone() } else { format!("{}.{}", node.domain, node.op_type) };
        *op_histogram.entry(name).or_insert(0) += 1;
    }
    let (graph, stats) = prepare_for_inference(model.graph).context("preparing the graph for inference failed")?;
    let loaded = Loaded {
        meta: model.meta,
        imported_nodes,
        op_histogram,
        session: Session::new(graph),
        folded_at_load: stats.fold.folded_nodes,
        fuse: stats.fuse,
    };
    Ok((loaded, ran))
}

/// A bundle directory (or its manifest.json) rather than a model file (a directory holding a
/// TF.js model.json and no manifest.json is a TF.js model, not a bundle).
pub fn is_bundle(path: &Path) -> bool {
    (path.is_dir() && !crate::import::is_tfjs(path)) || path.file_name().is_some_and(|n| n == cairn_bundle::MANIFEST_FILE)
}

/// Loads every shard of a bundle (verified) into a graph, described like an imported model.
fn load_bundle(path: &Path) -> Result<cairn_onnx::Model> {
    let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
    let loader = cairn_bundle::load_dir(dir, u64::MAX).with_context(|| format!("cannot load the bundle in {}", dir.display()))?;
    let m = loader.manifest();
    let mut meta = cairn_onnx::ModelMeta {
        producer_name: format!("cairn bundle '{}'", m.name),
        producer_version: m.version.clone(),
        opsets: vec![(String::new(), m.graph.opset)],
        ..Default::default()
    };
    if let Some(plan) = &m.widths {
        crate::widths::set_plan(&mut meta, plan)?;
    }
    Ok(cairn_onnx::Model { meta, graph: loader.into_graph()? })
}

/// Parses `--dim name=value` flags.
pub fn parse_dims(flags: &[String]) -> Result<BTreeMap<String, usize>> {
    flags
        .iter()
        .map(|f| {
            let (name, value) = f.split_once('=').with_context(|| format!("--dim '{f}' must look like name=value, e.g. batch=1"))?;
            let value = value.parse().with_context(|| format!("--dim '{f}': '{value}' is not a size"))?;
            Ok((name.to_string(), value))
        })
        .collect()
}

/// The concrete shape of a declared input: symbolic dims from `dims`, else 1.
/// Returns the shape and the symbolic names that were defaulted.
pub fn bind_shape(dims: &[Dim], bound: &BTreeMap<String, usize>) -> (Vec<usize>, Vec<String>) {
    let mut defaulted = Vec::new();
    let shape = dims
        .iter()
        .map(|d| match d {
            Dim::Known(n) => *n,
            Dim::Sym(s) => bound.get(s).copied().unwrap_or_else(|| {
                defaulted.push(s.clone());
                1
            }),
        })
        .collect();
    (shape, defaulted)
}

/// Zero-filled inputs for every runtime input (for planning in `inspect`).
pub fn zero_inputs(graph: &Graph, bound: &BTreeMap<String, usize>) -> Result<HashMap<String, Tensor>> {
    graph
        .runtime_inputs()
        .map(|i| {
            let dims = i.dims.as_deref().with_context(|| format!("input '{}' declares no shape", i.name))?;
            let (shape, _) = bind_shape(dims, bound);
            Ok((i.name.clone(), Tensor::zeros(i.dtype, shape)?))
        })
        .collect()
}

pub fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
