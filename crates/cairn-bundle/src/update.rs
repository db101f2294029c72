//! Update plans: what a client holding one version must fetch to get another.

use crate::manifest::{Manifest, ShardEntry};
use serde::Serialize;
use std::collections::HashSet;

#[derive(Clone, Debug, Serialize)]
pub struct UpdatePlan {
    /// Shards of the new version the client does not have.
    pub fetch: Vec<ShardEntry>,
    /// Shards of the new version the client already holds.
    pub reuse: Vec<ShardEntry>,
    /// Shards of the old version the new one no longer needs (safe to evict after the switch).
    pub evict: Vec<ShardEntry>,
    pub fetch_bytes: u64,
    pub reuse_bytes: u64,
    pub manifest_changed: bool,
}

impl UpdatePlan {
    pub fn between(old: &Manifest, new: &Manifest) -> UpdatePlan {
        let have: HashSet<&str> = old.shards.iter().map(|s| s.sha256.as_str()).collect();
        let need: HashSet<&str> = new.shards.iter().map(|s| s.sha256.as_str()).collect();
        let (reuse, fetch): (Vec<ShardEntry>, Vec<ShardEntry>) = new.shards.iter().cloned().partition(|s| have.contains(s.sha256.as_str()));
        let evict = old.shards.iter().filter(|s| !need.contains(s.sha256.as_str())).cloned().collect();
        UpdatePlan {
            fetch_bytes: fetch.iter().map(|s| s.bytes).sum(),
            reuse_bytes: reuse.iter().map(|s| s.bytes).sum(),
            fetch,
            reuse,
            evict,
            manifest_changed: old != new,
        }
    }
}
