//! Bundle errors. Every message names the file or shard at fault and, where it
//! helps, what to do about it.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("manifest: {0}")]
    Manifest(String),

    #[error("shard {path} is {got} bytes, the manifest says {expected} (truncated or wrong file); fetch it again")]
    ShardSize { path: String, expected: u64, got: u64 },

    #[error("shard {path} fails its sha256 check (got {got}); it is corrupted: fetch it again")]
    ShardHash { path: String, got: String },

    #[error("shard {path}: {detail}")]
    ShardContent { path: String, detail: String },

    #[error("level '{level}' is not complete yet: {missing} shard(s) missing")]
    LevelIncomplete { level: String, missing: usize },

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    #[error("graph: {0}")]
    Graph(#[from] cairn_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn manifest_err(msg: impl Into<String>) -> Error {
    Error::Manifest(msg.into())
}
