//! `Idempotency-Key`: the first request with a key computes; a replay gets the stored
//! answer without computing, and a duplicate that arrives while the first is still
//! running waits for it. Keys are bound to a hash of the request, so reusing one for a
//! different request is refused (422) instead of answering the wrong question.
//!
//! The store is in memory, bounded in entries and age: the server is stateless apart
//! from it (see DESIGN.md), and a replica set would move it to a shared store.

use crate::error::ApiError;
use axum::http::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

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

struct Entry {
    request_hash: [u8; 32],
    created: Instant,
    answer: OnceCell<Stored>,
}

/// Entries by key, and keys oldest first (for eviction).
type Entries = (HashMap<String, Arc<Entry>>, VecDeque<String>);

pub struct IdempotencyStore {
    entries: Mutex<Entries>,
    capacity: usize,
    ttl: Duration,
}

impl IdempotencyStore {
    pub fn new(capacity: usize, ttl: Duration) -> IdempotencyStore {
        IdempotencyStore { entries: Mutex::new((HashMap::new(), VecDeque::new())), capacity: capacity.max(1), ttl }
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

    fn entry(&self, key: &str, request_hash: [u8; 32]) -> Arc<Entry> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if let Some(e) = map.get(key) {
            if e.created.elapsed() < self.ttl {
                return e.clone();
            }
        }
        while map.len() >= self.capacity {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        let e = Arc::new(Entry { request_hash, created: Instant::now(), answer: OnceCell::new() });
        if map.insert(key.to_string(), e.clone()).is_none() {
            order.push_back(key.to_string());
        }
        e
    }

    /// Answers `key` once: runs `compute` if no answer is stored (or being computed) yet.
    /// A failed computation is not stored, so a retry computes again.
    pub async fn run<F>(&self, key: &str, request_hash: [u8; 32], compute: F) -> Result<Outcome, ApiError>
    where
        F: Future<Output = Result<Stored, ApiError>>,
    {
        let entry = self.entry(key, request_hash);
        if entry.request_hash != request_hash {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "this Idempotency-Key was already used for a different request")
                .hint("use a new key for every new request; reuse a key only to retry the same request"));
        }
        let computed = AtomicBool::new(false);
        let result = entry
            .answer
            .get_or_try_init(|| async {
                computed.store(true, Ordering::Relaxed);
                compute.await
            })
            .await;
        match result {
            Ok(stored) if computed.load(Ordering::Relaxed) => Ok(Outcome::Computed(stored.clone())),
            Ok(stored) => Ok(Outcome::Replayed(stored.clone())),
            Err(e) => {
                self.forget_unanswered(key, &entry);
                Err(e)
            }
        }
    }

    /// Drops a key whose computation failed, unless someone has answered it meanwhile.
    fn forget_unanswered(&self, key: &str, entry: &Arc<Entry>) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry) && !e.answer.initialized()) {
            map.remove(key);
            order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn stored(s: &str) -> Stored {
        Stored { body: Arc::new(s.as_bytes().to_vec()) }
    }

    #[tokio::test]
    async fn concurrent_duplicates_compute_once() {
        let store = Arc::new(IdempotencyStore::new(16, Duration::from_secs(60)));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, runs) = (store.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                let out = store
                    .run("k", [1; 32], async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(stored("answer"))
                    })
                    .await
                    .unwrap();
                matches!(out, Outcome::Replayed(_))
            }));
        }
        let mut replays = 0;
        for t in tasks {
            replays += t.await.unwrap() as usize;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(replays, 7);
    }

    #[tokio::test]
    async fn failures_are_not_stored_and_keys_bind_to_the_request() {
        let store = IdempotencyStore::new(2, Duration::from_secs(60));
        assert!(store.run("k", [1; 32], async { Err(ApiError::internal("boom")) }).await.is_err());
        assert!(matches!(store.run("k", [2; 32], async { Ok(stored("a")) }).await, Ok(Outcome::Computed(_))));
        let reused = store.run("k", [3; 32], async { Ok(stored("b")) }).await;
        assert_eq!(reused.err().unwrap().status, StatusCode::UNPROCESSABLE_ENTITY);
        // Bounded: a third key evicts the oldest.
        store.run("k2", [1; 32], async { Ok(stored("c")) }).await.unwrap();
        store.run("k3", [1; 32], async { Ok(stored("d")) }).await.unwrap();
        assert!(matches!(store.run("k", [9; 32], async { Ok(stored("e")) }).await, Ok(Outcome::Computed(_))));
    }
}
