//! `Idempotency-Key`: the first request with a key computes; a replay gets the stored
//! answer without computing, and a duplicate that arrives while the first is still
//! running waits for it. Keys are bound to a hash of the request, so reusing one for a
//! different request is refused (422) instead of answering the wrong question.
//!
//! Two stores keep these semantics: in memory (one process, the default) and Redis
//! (shared by every replica, surviving their restarts). When Redis cannot be reached,
//! requests *with* a key fail closed (503 + Retry-After, counted in
//! `cairn_idempotency_store_errors_total` and logged): answering without the shared
//! store could compute a key twice, which is what the key promises never happens.
//! Requests without a key never touch the store.

mod memory;
mod redis;

pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::error::ApiError;
use axum::http::StatusCode;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Longest key accepted; clients use UUIDs.
pub const MAX_KEY_LEN: usize = 255;

/// A finished answer, kept byte for byte.
#[derive(Clone, Debug)]
pub struct Stored {
    pub body: Arc<Vec<u8>>,
}

pub enum Outcome {
    Computed(Stored),
    Replayed(Stored),
}

/// The work behind a key, run at most once per key.
pub type Compute<'a> = Pin<Box<dyn Future<Output = Result<Stored, ApiError>> + Send + 'a>>;
/// What a store answers for a key.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<Outcome, ApiError>> + Send + 'a>>;

/// A place where answers live by key. Implementations must give the semantics in this
/// module's documentation; `run` is the whole contract.
pub trait IdempotencyStore: Send + Sync {
    /// Answers `key`: replays the stored answer, waits for one being computed, or runs
    /// `compute` and keeps its answer. A failed computation is not kept, so a retry
    /// computes again. A key stored with another `request_hash` is a 422.
    fn run<'a>(&'a self, key: &'a str, request_hash: [u8; 32], compute: Compute<'a>) -> Reply<'a>;

    /// `memory` or `redis`, for `/v1/models`-style reports and logs.
    fn backend(&self) -> &'static str;

    /// Times the store could not be reached (each answered 503).
    fn errors(&self) -> u64 {
        0
    }
}

/// Checks a key header's value.
pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            ApiError::bad_request(format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters")).hint("use a UUID")
        );
    }
    Ok(())
}

fn conflict() -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "this Idempotency-Key was already used for a different request")
        .hint("use a new key for every new request; reuse a key only to retry the same request")
}
