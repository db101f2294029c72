//! Streaming load: shards arrive one at a time (in any order), are verified,
//! and their bytes go straight into the weights' final buffers.
//!
//! A shard that fails its size, hash or content check changes nothing: the
//! caller fetches it again. The loader can hand out a graph as soon as level 0
//! is complete and refine the same buffers when later levels arrive.

use crate::error::{Error, Result};
use crate::graph_doc::build_graph;
use crate::levels::{apply, CoarseContext};
use crate::manifest::{parse_dtype, Encoding, Manifest};
use crate::shard::{stored_dtype, ShardReader};
use cairn_core::{DType, Graph, Tensor, TensorData};
use std::collections::HashMap;
use std::sync::Arc;

/// Coarse values for a nibble-split tensor without a table (`Manifest::check` refuses
/// that; this only keeps placement total): each bucket's middle.
const MIDPOINTS: crate::nibbles::CoarseValues = [8, 24, 40, 56, 72, 88, 104, 120, -120, -104, -88, -72, -56, -40, -24, -8];

pub struct Loader {
    manifest: Manifest,
    weights: Vec<Arc<Tensor>>,
    received: Vec<bool>,
    /// For each shard, the (tensor, part) pairs it fills.
    parts_by_shard: Vec<Vec<(usize, usize)>>,
}

impl Loader {
    /// Checks the manifest and allocates every weight at its final size (zeroed).
    /// `max_weight_bytes` bounds what a manifest may make us allocate.
    pub fn new(manifest: Manifest, max_weight_bytes: u64) -> Result<Loader> {
        manifest.check()?;
        let weight_bytes = manifest.weight_bytes();
        if weight_bytes > max_weight_bytes {
            return Err(Error::Manifest(format!("the weights need {weight_bytes} bytes, more than the {max_weight_bytes} allowed here")));
        }
        let mut parts_by_shard = vec![Vec::new(); manifest.shards.len()];
        let mut weights = Vec::with_capacity(manifest.tensors.len());
        for (t, entry) in manifest.tensors.iter().enumerate() {
            for (p, part) in entry.parts.iter().enumerate() {
                parts_by_shard[part.shard].push((t, p));
            }
            let dtype = parse_dtype(&entry.dtype).expect("checked by Manifest::check");
            let numel = entry.shape.iter().product();
            weights.push(Arc::new(Tensor::new(entry.shape.clone(), TensorData::zeros(dtype, numel))?));
        }
        parts_by_shard.iter_mut().for_each(|p| p.shrink_to_fit());
        Ok(Loader { received: vec![false; manifest.shards.len()], manifest, weights, parts_by_shard })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Verifies shard `index` and places its parts. Accepting a shard twice is a no-op.
    /// While a graph from [`Loader::graph`] is alive, refining copies the weights it
    /// shares (correct, but it costs memory): drop the old session first.
    pub fn accept_shard(&mut self, index: usize, bytes: &[u8]) -> Result<()> {
        let entry = self.manifest.shards.get(index).ok_or_else(|| Error::Manifest(format!("there is no shard {index}")))?;
        if self.received[index] {
            return Ok(());
        }
        let reader = ShardReader::open(&entry.path, &entry.sha256, entry.bytes, bytes)?;
        // Look every part up first, so that a bad shard leaves the weights untouched.
        let mut sources = Vec::with_capacity(self.parts_by_shard[index].len());
        for &(t, p) in &self.parts_by_shard[index] {
            let tensor = &self.manifest.tensors[t];
            let part = &tensor.parts[p];
            let dtype = self.weights[t].dtype();
            let src = reader.part(&part.key, stored_dtype(part.encoding, dtype), part.encoding.stored_len(part.len))?;
            if dtype == DType::Bool && src.iter().any(|&b| b > 1) {
                return Err(Error::ShardContent {
                    path: entry.path.clone(),
                    detail: format!("bool weight '{}' holds bytes other than 0 and 1", tensor.name),
                });
            }
            sources.push((t, part.encoding, part.start, part.len, src));
        }
        for (t, encoding, start, len, src) in sources {
            // Coarse nibbles keep the low nibble of elements already refined (levels may
            // arrive in any order): those are the received refinement parts' ranges.
            let refined: Vec<(usize, usize)> = match encoding {
                Encoding::I8High4 => self.manifest.tensors[t]
                    .parts
                    .iter()
                    .filter(|p| p.encoding == Encoding::I8Low4 && self.received[p.shard])
                    .map(|p| (p.start.saturating_sub(start), (p.start + p.len).saturating_sub(start)))
                    .collect(),
                _ => Vec::new(),
            };
            let values = self.manifest.tensors[t].coarse_values.unwrap_or(MIDPOINTS);
            let is_refined = |i: usize| refined.iter().any(|&(s, e)| s <= i && i < e);
            let coarse = CoarseContext { values: &values, refined: &is_refined };
            let weight = Arc::make_mut(&mut self.weights[t]);
            let size = weight.dtype().size();
            apply(encoding, src, &mut weight.bytes_mut()[start * size..(start + len) * size], &coarse);
        }
        self.received[index] = true;
        Ok(())
    }

    /// Shards not yet accepted, in fetch order.
    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.received.iter().enumerate().filter(|(_, r)| !**r).map(|(i, _)| i)
    }

    /// The highest level whose shards, and all lower levels', have all arrived.
    pub fn level_reached(&self) -> Option<usize> {
        let complete = |level: usize| self.manifest.shards.iter().zip(&self.received).all(|(s, r)| s.level != level || *r);
        (0..self.manifest.levels.len()).take_while(|&l| complete(l)).last()
    }

    /// A graph over the weights as they are now (level 0 must be complete).
    /// It shares the buffers: no copy is made.
    pub fn graph(&self) -> Result<Graph> {
        self.require_level(0)?;
        build_graph(&self.manifest, self.initializers())
    }

    /// The graph, handing the weights over (after the last level, the usual path).
    pub fn into_graph(self) -> Result<Graph> {
        self.require_level(self.manifest.levels.len() - 1)?;
        let initializers = self.manifest.tensors.iter().map(|t| t.name.clone()).zip(self.weights).collect();
        build_graph(&self.manifest, initializers)
    }

    fn initializers(&self) -> HashMap<String, Arc<Tensor>> {
        self.manifest.tensors.iter().map(|t| t.name.clone()).zip(self.weights.iter().cloned()).collect()
    }

    fn require_level(&self, level: usize) -> Result<()> {
        if self.level_reached().is_some_and(|l| l >= level) {
            return Ok(());
        }
        let missing = self.manifest.shards.iter().zip(&self.received).filter(|(s, r)| s.level <= level && !**r).count();
        Err(Error::LevelIncomplete { level: self.manifest.levels[level].name.clone(), missing })
    }
}

/// Whether any part of the bundle is sent in more than one level.
pub fn is_progressive(manifest: &Manifest) -> bool {
    manifest.tensors.iter().any(|t| t.parts.iter().any(|p| p.encoding != Encoding::Raw))
}

/// Whether int8 weights are sent as nibbles in two levels (the coarse level then runs
/// best prepared, on the int8 kernels).
pub fn has_int8_levels(manifest: &Manifest) -> bool {
    manifest.tensors.iter().any(|t| t.parts.iter().any(|p| p.encoding == Encoding::I8High4))
}
