//! Packing a graph into a bundle: manifest + shards, in memory.
//!
//! Weights are laid out in the order the graph first reads them, level by level,
//! filling shards up to a target size (a large weight continues in the next
//! shard). The layout depends only on shapes and order, so a new version whose
//! weights changed in one layer changes only the shards holding that layer.

use crate::error::{manifest_err, Result};
use crate::graph_doc::describe;
use crate::levels::encode;
use crate::manifest::{Encoding, Level, Manifest, Part, ShardEntry, TensorEntry, FORMAT};
use crate::shard::{sha256_hex, stored_dtype, write_shard, ShardEntryData};
use crate::text_task::{TextTask, TokenizerFile, TOKENIZER_PATH};
use cairn_core::{DType, Graph, Tensor};
use std::collections::HashSet;

#[derive(Clone, Debug)]
pub struct PackOptions {
    pub name: String,
    /// Defaults to a hash of the graph and every shard.
    pub version: Option<String>,
    /// Target shard size; shards end up between half of it and it.
    pub shard_bytes: usize,
    /// Split large weights into a coarse and a refinement level: f32 as bf16 + residual,
    /// int8 as high + low nibbles.
    pub progressive: bool,
    /// Weights smaller than this many elements stay whole in level 0.
    pub min_split_elements: usize,
    /// Split int8 weights of grouped (depthwise) convolutions too. Off by default: they
    /// are few bytes (4% of EfficientNet-Lite0's) with few taps per channel, so each
    /// coarse error weighs more; measured, splitting them saves 2 points of wire bytes
    /// for 1 point of agreement (docs/adr/0023).
    pub split_grouped_int8: bool,
    /// A text model's task and the bytes of its tokenizer.json (the task's `tokenizer`
    /// field is filled in by `pack` from those bytes).
    pub text: Option<(TextTask, Vec<u8>)>,
    /// Run-time widths: the plan goes into the manifest and its compensation tensors
    /// (initializers no node reads) into the shards, after the weights.
    pub widths: Option<cairn_core::WidthPlan>,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            name: "model".into(),
            version: None,
            shard_bytes: 2 << 20,
            progressive: true,
            min_split_elements: 4096,
            split_grouped_int8: false,
            text: None,
            widths: None,
        }
    }
}

/// A packed bundle: `shards[i]` holds the bytes of `manifest.shards[i]`.
pub struct Packed {
    pub manifest: Manifest,
    pub shards: Vec<Vec<u8>>,
    /// The tokenizer.json named by `manifest.text`, if any.
    pub tokenizer: Option<Vec<u8>>,
}

/// One level's worth of one weight, before it is cut into shards.
struct Piece<'a> {
    tensor: usize,
    weight: &'a Tensor,
    encoding: Encoding,
}

pub fn pack(graph: &Graph, opts: &PackOptions) -> Result<Packed> {
    if opts.shard_bytes < 1024 {
        return Err(manifest_err("shard size must be at least 1 KiB"));
    }
    if let Some(node) = graph.nodes.iter().find(|n| n.op.built_by_pass()) {
        return Err(manifest_err(format!(
            "node '{}' is a fused op; pack the graph before fusion (bundles store standard operators)",
            node.name
        )));
    }
    let (graph_doc, inputs, outputs) = describe(graph)?;
    let mut order = weights_in_first_use_order(graph);
    if let Some(plan) = &opts.widths {
        plan.check(graph).map_err(|e| manifest_err(e.to_string()))?;
        for name in plan.tensors() {
            let (key, t) = graph.initializers.get_key_value(name).expect("checked by the plan");
            order.push((key.as_str(), t.as_ref()));
        }
    }

    let grouped = if opts.split_grouped_int8 { HashSet::new() } else { grouped_conv_weights(graph) };
    let split = |name: &str, t: &Tensor| -> Option<(Encoding, Encoding)> {
        if !opts.progressive || t.len() < opts.min_split_elements {
            return None;
        }
        match t.dtype() {
            DType::F32 => Some((Encoding::F32Bf16, Encoding::F32Residual16)),
            DType::I8 if !grouped.contains(name) => Some((Encoding::I8High4, Encoding::I8Low4)),
            _ => None,
        }
    };
    let any_split = order.iter().any(|(name, t)| split(name, t).is_some());
    let level_names: &[&str] = if any_split { &["coarse", "full"] } else { &["full"] };

    let mut tensors: Vec<TensorEntry> = order
        .iter()
        .map(|(name, t)| TensorEntry {
            name: name.to_string(),
            dtype: t.dtype().name().into(),
            shape: t.shape().to_vec(),
            parts: Vec::new(),
            coarse_values: match split(name, t) {
                Some((Encoding::I8High4, _)) => {
                    Some(crate::nibbles::coarse_values(&t.bytes().iter().map(|&b| b as i8).collect::<Vec<_>>()))
                }
                _ => None,
            },
        })
        .collect();
    let mut writer = ShardWriter { target: opts.shard_bytes, open: Vec::new(), open_bytes: 0, entries: Vec::new(), shards: Vec::new() };

    for level in 0..level_names.len() {
        let pieces: Vec<Piece> = order
            .iter()
            .enumerate()
            .filter_map(|(i, (name, t))| {
                let encoding = match (split(name, t), level) {
                    (None, 0) => Encoding::Raw,
                    (None, _) => return None,
                    (Some((coarse, _)), 0) => coarse,
                    (Some((_, fine)), _) => fine,
                };
                Some(Piece { tensor: i, weight: t, encoding })
            })
            .collect();
        for piece in pieces {
            writer.add(piece, level, &mut tensors)?;
        }
        writer.flush(level)?;
    }

    let levels = level_names
        .iter()
        .enumerate()
        .map(|(i, name)| Level {
            name: name.to_string(),
            bytes: writer.entries.iter().filter(|s| s.level == i).map(|s| s.bytes).sum(),
            fidelity: None,
        })
        .collect();
    let mut manifest = Manifest {
        format: FORMAT.into(),
        name: opts.name.clone(),
        version: String::new(),
        inputs,
        outputs,
        graph: graph_doc,
        tensors,
        levels,
        shards: writer.entries,
        text: None,
        widths: opts.widths.clone(),
    };
    let mut tokenizer = None;
    if let Some((task, bytes)) = &opts.text {
        let file = TokenizerFile { path: TOKENIZER_PATH.into(), sha256: sha256_hex(bytes), bytes: bytes.len() as u64 };
        manifest.text = Some(TextTask { tokenizer: file, ..task.clone() });
        tokenizer = Some(bytes.clone());
    }
    manifest.version = match &opts.version {
        Some(v) => v.clone(),
        None => sha256_hex(manifest.to_json().as_bytes())[..16].to_string(),
    };
    manifest.check()?;
    Ok(Packed { manifest, shards: writer.shards, tokenizer })
}

/// Int8 initializers that are the weights of grouped convolutions (depthwise), read
/// through a DequantizeLinear as `cairn optimize` writes them, or directly.
fn grouped_conv_weights(graph: &Graph) -> HashSet<String> {
    let dequantized: std::collections::HashMap<&str, &str> = graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
        .filter_map(|n| Some((n.outputs.first()?.as_str(), n.inputs.first()?.as_deref()?)))
        .collect();
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "Conv" | "ConvInteger" | "QLinearConv"))
        .filter(|n| matches!(n.attrs.get("group"), Some(cairn_core::Attr::Int(g)) if *g > 1))
        .filter_map(|n| {
            let w = if n.op_type == "QLinearConv" { n.inputs.get(3) } else { n.inputs.get(1) };
            let w = w?.as_deref()?;
            Some(dequantized.get(w).copied().unwrap_or(w).to_string())
        })
        .collect()
}

/// Initializers the graph reads (or outputs), in the order nodes first read them.
fn weights_in_first_use_order(graph: &Graph) -> Vec<(&str, &Tensor)> {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let names = graph.nodes.iter().flat_map(|n| n.inputs.iter().flatten()).chain(graph.outputs.iter().map(|o| &o.name));
    for name in names {
        if let Some((key, t)) = graph.initializers.get_key_value(name) {
            if seen.insert(key.as_str()) {
                order.push((key.as_str(), t.as_ref()));
            }
        }
    }
    order
}

struct ShardWriter {
    target: usize,
    open: Vec<ShardEntryData>,
    open_bytes: usize,
    entries: Vec<ShardEntry>,
    shards: Vec<Vec<u8>>,
}

impl ShardWriter {
    /// Adds a weight's piece, cutting it across shards where it does not fit.
    fn add(&mut self, piece: Piece, level: usize, tensors: &mut [TensorEntry]) -> Result<()> {
        let dtype = piece.weight.dtype();
        // Bytes per element, times two for nibbles: a cut keeps whole stored bytes.
        let (per, unit) = match piece.encoding.stored_bytes(dtype, 2) {
            1 => (1, 2),
            b => (b as usize / 2, 1),
        };
        let raw = piece.weight.bytes();
        let n = piece.weight.len();
        let mut start = 0;
        while start < n {
            let room = self.target.saturating_sub(self.open_bytes) / per * unit;
            // Close a nearly full shard rather than leave a sliver of a weight in it.
            if !self.open.is_empty() && (room == 0 || (room < n - start && self.open_bytes > self.target / 2)) {
                self.flush(level)?;
                continue;
            }
            let take = (n - start).min(room.max(unit));
            let whole = take == n;
            let name = &tensors[piece.tensor].name;
            let key = match (piece.encoding, whole) {
                (Encoding::Raw, true) => name.clone(),
                (Encoding::Raw, false) => format!("{name}[{start}..{}]", start + take),
                (e, true) => format!("{name}@{}", suffix(e)),
                (e, false) => format!("{name}@{}[{start}..{}]", suffix(e), start + take),
            };
            let src = &raw[start * dtype.size()..(start + take) * dtype.size()];
            let shape = match (whole, piece.encoding.stored_len(take)) {
                (true, len) if len == take => piece.weight.shape().to_vec(),
                (_, len) => vec![len],
            };
            let bytes = encode(piece.encoding, src);
            self.open_bytes += bytes.len();
            self.open.push(ShardEntryData { key: key.clone(), dtype: stored_dtype(piece.encoding, dtype), shape, bytes });
            tensors[piece.tensor].parts.push(Part { shard: self.entries.len(), key, level, encoding: piece.encoding, start, len: take });
            start += take;
        }
        Ok(())
    }

    fn flush(&mut self, level: usize) -> Result<()> {
        if self.open.is_empty() {
            return Ok(());
        }
        let bytes = write_shard(&self.open, level)?;
        let sha256 = sha256_hex(&bytes);
        self.entries.push(ShardEntry { path: format!("shards/{sha256}.safetensors"), sha256, bytes: bytes.len() as u64, level });
        self.shards.push(bytes);
        self.open.clear();
        self.open_bytes = 0;
        Ok(())
    }
}

fn suffix(e: Encoding) -> &'static str {
    match e {
        Encoding::Raw => "raw",
        Encoding::F32Bf16 => "bf16",
        Encoding::F32Residual16 => "res16",
        Encoding::I8High4 => "hi4",
        Encoding::I8Low4 => "lo4",
    }
}
