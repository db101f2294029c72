//! The manifest schema (`manifest.json`): what a bundle holds and where every
//! byte of every weight lives.
//!
//! A manifest is untrusted input (it comes over the network): [`Manifest::parse`]
//! checks every index, range and size before a loader allocates anything.

use crate::error::{manifest_err, Result};
use crate::graph_doc::{DimDoc, NodeDoc};
use cairn_core::{checked_numel, DType};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "cairn-bundle/1";

/// Largest manifest a loader accepts; a real one is tens of KiB.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub name: String,
    /// Changes whenever the graph or any weight byte changes (a hash of both by default).
    pub version: String,
    pub inputs: Vec<InputDoc>,
    pub outputs: Vec<OutputDoc>,
    pub graph: GraphDoc,
    /// Every weight, in the order the graph first reads it.
    pub tensors: Vec<TensorEntry>,
    /// Level 0 runs on its own; each further level refines the weights in place.
    pub levels: Vec<Level>,
    /// Level 0's shards first, each level's in execution order: fetch in this order.
    pub shards: Vec<ShardEntry>,
    /// Set for text models: the tokenizer file the bundle carries and the task it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<crate::text_task::TextTask>,
    /// Run-time widths (docs/adr/0018-run-time-widths.md): hidden channels stored in
    /// importance order and, per narrower width, the channels kept and the compensation
    /// tensors (listed in `tensors` like any weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widths: Option<cairn_core::WidthPlan>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InputDoc {
    pub name: String,
    pub dtype: String,
    pub dims: Vec<DimDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<Preprocess>,
}

/// How to turn an image into this input: resize to `size`, take channels in
/// `color` order, then `(pixel / 255 - mean) / std` per channel, laid out as `layout`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Preprocess {
    /// `[height, width]`.
    pub size: [u32; 2],
    /// `"nchw"` or `"nhwc"`.
    pub layout: String,
    /// `"rgb"` or `"bgr"`.
    pub color: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutputDoc {
    pub name: String,
    pub dtype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<Vec<DimDoc>>,
    /// Class names for the last axis of a classifier's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GraphDoc {
    /// Default-domain opset the nodes follow.
    pub opset: i64,
    pub nodes: Vec<NodeDoc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub parts: Vec<Part>,
    /// For int8 weights sent as nibbles: the value each high nibble (as unsigned, 0..=15)
    /// stands for until the refinement arrives. Each lies in its own bucket
    /// (`value >> 4 == nibble`), which the refinement relies on (checked by `parse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coarse_values: Option<crate::nibbles::CoarseValues>,
}

/// How a part's bytes become tensor elements.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The elements themselves, in the tensor's dtype.
    Raw,
    /// f32 rounded to bfloat16 (its high 16 bits, rounded to nearest): the coarse level.
    F32Bf16,
    /// The signed 16-bit difference between the f32 bits and the bf16 rounding's:
    /// adding it to the coarse weight restores the exact f32, so no byte is sent twice.
    F32Residual16,
    /// The high nibble (`w >> 4`) of each int8 weight, two per byte: the coarse level.
    /// The loader fills each weight with the tensor's `coarse_values` entry for it.
    I8High4,
    /// The low nibble (`w & 15`) of each int8 weight, two per byte: completes it exactly.
    I8Low4,
}

impl Encoding {
    /// Elements a part of `len` tensor elements is stored as (in `stored_dtype`).
    pub fn stored_len(self, len: usize) -> usize {
        match self {
            Encoding::I8High4 | Encoding::I8Low4 => crate::nibbles::packed_len(len),
            _ => len,
        }
    }

    /// Bytes a part of `len` elements of `dtype` takes in a shard.
    pub fn stored_bytes(self, dtype: DType, len: usize) -> u64 {
        let element = match self {
            Encoding::Raw => dtype.size(),
            Encoding::F32Bf16 | Encoding::F32Residual16 => 2,
            Encoding::I8High4 | Encoding::I8Low4 => 1,
        };
        (self.stored_len(len) as u64).saturating_mul(element as u64)
    }

    /// The dtype this encoding applies to (`None`: any).
    fn applies_to(self) -> Option<DType> {
        match self {
            Encoding::Raw => None,
            Encoding::F32Bf16 | Encoding::F32Residual16 => Some(DType::F32),
            Encoding::I8High4 | Encoding::I8Low4 => Some(DType::I8),
        }
    }

    /// The (coarse, refinement) pair this encoding belongs to; `None` for raw.
    fn family(self) -> Option<(Encoding, Encoding)> {
        match self {
            Encoding::Raw => None,
            Encoding::F32Bf16 | Encoding::F32Residual16 => Some((Encoding::F32Bf16, Encoding::F32Residual16)),
            Encoding::I8High4 | Encoding::I8Low4 => Some((Encoding::I8High4, Encoding::I8Low4)),
        }
    }
}

/// Elements `start .. start + len` of a tensor, stored under `key` in shard `shard`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Part {
    pub shard: usize,
    pub key: String,
    pub level: usize,
    pub encoding: Encoding,
    pub start: usize,
    pub len: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Level {
    pub name: String,
    /// Shard bytes of this level alone.
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
}

/// How closely a model cut at this level follows the full model, measured by `cairn pack`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fidelity {
    /// Share of inputs where the top-1 class equals the full model's.
    pub top1_agreement: f64,
    /// Largest |difference| of the first output, relative to the full output's largest magnitude.
    pub max_relative_error: f64,
    pub inputs: usize,
    /// Where the inputs came from (a directory, or "synthetic" for seeded random inputs).
    pub input_source: String,
    /// Inputs where the full model is decisive (softmax top-1 minus top-2 >= 0.1), and the
    /// agreement on those: what a user sees as "the answer changed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisive_inputs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisive_top1_agreement: Option<f64>,
    /// Mean KL divergence of the softmaxed outputs, full model to this level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_kl: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardEntry {
    /// Relative to the manifest: `shards/<sha256>.safetensors`.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub level: usize,
}

pub fn parse_dtype(name: &str) -> Option<DType> {
    DType::from_name(name)
}

impl Manifest {
    /// Parses and checks a manifest: format, indices, ranges and sizes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(manifest_err(format!("{} bytes is more than the {} a manifest may have", bytes.len(), MAX_MANIFEST_BYTES)));
        }
        let mut manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| manifest_err(format!("not valid manifest JSON: {e}")))?;
        manifest.check()?;
        manifest.shrink_to_fit();
        Ok(manifest)
    }

    /// Drops the spare capacity JSON parsing leaves in every list (it grows them by
    /// doubling): a loader keeps the manifest for the whole load, in a heap that
    /// also has to hold the model.
    pub fn shrink_to_fit(&mut self) {
        self.tensors.shrink_to_fit();
        for t in &mut self.tensors {
            t.parts.shrink_to_fit();
            t.shape.shrink_to_fit();
        }
        self.graph.nodes.shrink_to_fit();
        for n in &mut self.graph.nodes {
            n.inputs.shrink_to_fit();
            n.outputs.shrink_to_fit();
            n.attrs.values_mut().for_each(crate::graph_doc::AttrDoc::shrink_to_fit);
        }
        self.shards.shrink_to_fit();
        self.inputs.shrink_to_fit();
        self.outputs.shrink_to_fit();
        self.levels.shrink_to_fit();
        if let Some(w) = &mut self.widths {
            w.blocks.shrink_to_fit();
            w.widths.shrink_to_fit();
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }

    /// The consistency checks `parse` runs (also run on manifests built in memory).
    pub fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(manifest_err(format!(
                "format is '{}', this Cairn reads '{FORMAT}' (update Cairn or re-pack the model)",
                self.format
            )));
        }
        if self.levels.is_empty() {
            return Err(manifest_err("no levels"));
        }
        if let Some(text) = &self.text {
            text.check().map_err(manifest_err)?;
        }
        for (i, shard) in self.shards.iter().enumerate() {
            if shard.level >= self.levels.len() {
                return Err(manifest_err(format!("shard {i} is in level {}, there are {} levels", shard.level, self.levels.len())));
            }
            let expected_path = format!("shards/{}.safetensors", shard.sha256);
            if shard.sha256.len() != 64 || !shard.sha256.bytes().all(|b| b.is_ascii_hexdigit()) || shard.path != expected_path {
                return Err(manifest_err(format!("shard {i} must be named shards/<sha256 hex>.safetensors, got '{}'", shard.path)));
            }
        }
        // Payload bytes each shard must hold, from the parts placed in it: a shard that
        // claims fewer bytes than its parts need is a lie caught before any allocation.
        let mut payload = vec![0u64; self.shards.len()];
        let mut names = std::collections::HashSet::new();
        for t in &self.tensors {
            if !names.insert(t.name.as_str()) {
                return Err(manifest_err(format!("tensor '{}' is listed twice", t.name)));
            }
            let dtype =
                parse_dtype(&t.dtype).ok_or_else(|| manifest_err(format!("tensor '{}' has unknown dtype '{}'", t.name, t.dtype)))?;
            let numel =
                checked_numel(&t.shape).map_err(|_| manifest_err(format!("tensor '{}' has an overflowing shape {:?}", t.name, t.shape)))?;
            for p in &t.parts {
                let shard = self
                    .shards
                    .get(p.shard)
                    .ok_or_else(|| manifest_err(format!("tensor '{}' names shard {}, which does not exist", t.name, p.shard)))?;
                if shard.level != p.level {
                    return Err(manifest_err(format!(
                        "tensor '{}': a level-{} part sits in a level-{} shard",
                        t.name, p.level, shard.level
                    )));
                }
                if p.encoding.applies_to().is_some_and(|d| d != dtype) {
                    return Err(manifest_err(format!("tensor '{}': encoding {:?} does not apply to {}", t.name, p.encoding, t.dtype)));
                }
                payload[p.shard] = payload[p.shard].saturating_add(p.encoding.stored_bytes(dtype, p.len));
            }
            // Either raw parts cover every element once, or the coarse parts of one split
            // do and its refinement parts, all in later levels, do too.
            let family = |e: Encoding| -> Vec<&Part> { t.parts.iter().filter(|p| p.encoding == e).collect() };
            let split = t.parts.iter().find_map(|p| p.encoding.family());
            let complete = match split {
                None => tiles_exactly(&family(Encoding::Raw), numel),
                Some((coarse, fine)) => {
                    let (hi, lo) = (family(coarse), family(fine));
                    hi.len() + lo.len() == t.parts.len()
                        && tiles_exactly(&hi, numel)
                        && tiles_exactly(&lo, numel)
                        && hi.iter().map(|p| p.level).max() < lo.iter().map(|p| p.level).min()
                }
            };
            if !complete {
                return Err(manifest_err(format!(
                    "tensor '{}': its parts do not cover its {} elements exactly once per level",
                    t.name, numel
                )));
            }
            let nibbles = split == Some((Encoding::I8High4, Encoding::I8Low4));
            match &t.coarse_values {
                Some(v) if !nibbles => {
                    return Err(manifest_err(format!("tensor '{}' has coarse values but is not sent as nibbles ({v:?})", t.name)))
                }
                Some(v) if !crate::nibbles::coarse_values_valid(v) => {
                    return Err(manifest_err(format!(
                        "tensor '{}': coarse value k must lie in [16k, 16k + 15] (as a signed nibble), got {v:?}",
                        t.name
                    )))
                }
                None if nibbles => return Err(manifest_err(format!("tensor '{}' is sent as nibbles but has no coarse values", t.name))),
                _ => {}
            }
        }
        if let Some(plan) = &self.widths {
            let slices = plan.blocks.iter().flat_map(|b| b.slices.iter().map(|s| s.tensor.as_str()));
            if let Some(missing) = slices.chain(plan.tensors()).find(|n| !names.contains(n)) {
                return Err(manifest_err(format!("the width plan names tensor '{missing}', which the bundle does not hold")));
            }
        }
        for (i, (shard, need)) in self.shards.iter().zip(&payload).enumerate() {
            if *need > shard.bytes {
                return Err(manifest_err(format!("shard {i} is said to be {} bytes but its parts need {need}", shard.bytes)));
            }
        }
        Ok(())
    }

    /// Bytes of all weights once loaded (what a loader allocates).
    pub fn weight_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.shape.iter().product::<usize>() as u64 * parse_dtype(&t.dtype).map_or(0, |d| d.size() as u64)).sum()
    }

    /// Shard bytes of levels `0..=level`: what a client downloads to run at `level`.
    pub fn bytes_through(&self, level: usize) -> u64 {
        self.shards.iter().filter(|s| s.level <= level).map(|s| s.bytes).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }
}

/// Whether the parts' element ranges, sorted, are `0..numel` without gap or overlap.
fn tiles_exactly(parts: &[&Part], numel: usize) -> bool {
    let mut ranges: Vec<(usize, usize)> = parts.iter().map(|p| (p.start, p.len)).collect();
    ranges.sort_unstable();
    let mut next = 0usize;
    for (start, len) in ranges {
        if start != next {
            return false;
        }
        match start.checked_add(len) {
            Some(end) => next = end,
            None => return false,
        }
    }
    next == numel
}
