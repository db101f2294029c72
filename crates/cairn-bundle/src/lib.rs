//! Cairn model bundles (`cairn-bundle/1`): a JSON manifest and content-addressed
//! safetensors shards, with progressive levels and update plans.
//!
//! ```text
//! DIR/manifest.json                       graph, inputs (+ preprocessing), outputs (+ labels),
//!                                         weights table, levels, shard list in fetch order
//! DIR/shards/<sha256>.safetensors         immutable; any safetensors tool opens them
//! ```
//! [`pack`] builds one from a graph, [`Loader`] takes shards as they arrive (verified,
//! placed straight into the final weight buffers), [`UpdatePlan`] says what changed.

mod dir;
mod error;
mod graph_doc;
mod levels;
mod load;
mod manifest;
mod nibbles;
mod pack;
mod preprocess;
mod shard;
pub mod text_task;
mod update;

pub use dir::{check_dir, load_dir, read_manifest, read_tokenizer, verify_tokenizer, write_bundle, Checked, WriteReport, MANIFEST_FILE};
pub use error::{Error, Result};
pub use graph_doc::{DimDoc, NodeDoc};
pub use levels::split_f32;
pub use load::{has_int8_levels, is_progressive, Loader};
pub use manifest::{
    Encoding, Fidelity, GraphDoc, InputDoc, Level, Manifest, OutputDoc, Part, Preprocess, ShardEntry, TensorEntry, FORMAT,
    MAX_MANIFEST_BYTES,
};
pub use pack::{pack, PackOptions, Packed};
pub use preprocess::rgba_to_input;
pub use shard::sha256_hex;
pub use update::UpdatePlan;
