//! The in-memory idempotency store (the default): one process, bounded in entries and
//! age. A second replica would not see its keys, and a restart forgets them: replica sets
//! use the Redis store (`redis.rs`).

use super::{conflict, Compute, IdempotencyStore, Outcome, Reply, Stored};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

struct Entry {
    request_hash: [u8; 32],
    created: Instant,
    answer: OnceCell<Stored>,
}

/// Entries by key, and keys oldest first (for eviction).
type Entries = (HashMap<String, Arc<Entry>>, VecDeque<String>);

pub struct MemoryStore {
    entries: Mutex<Entries>,
    capacity: usize,
    ttl: Duration,
}

impl MemoryStore {
    pub fn new(capacity: usize, ttl: Duration) -> MemoryStore {
        MemoryStore { entries: Mutex::new((HashMap::new(), VecDeque::new())), capacity: capacity.max(1), ttl }
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
    async fn answer(&self, key: &str, request_hash: [u8; 32], compute: Compute<'_>) -> Result<Outcome, crate::error::ApiError> {
        let entry = self.entry(key, request_hash);
        if entry.request_hash != request_hash {
            return Err(conflict());
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

impl IdempotencyStore for MemoryStore {
    fn run<'a>(&'a self, key: &'a str, request_hash: [u8; 32], compute: Compute<'a>) -> Reply<'a> {
        Box::pin(self.answer(key, request_hash, compute))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use std::sync::atomic::AtomicUsize;

    fn stored(s: &str) -> Stored {
        Stored { body: Arc::new(s.as_bytes().to_vec()) }
    }

    #[tokio::test]
    async fn concurrent_duplicates_compute_once() {
        let store = Arc::new(MemoryStore::new(16, Duration::from_secs(60)));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, runs) = (store.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                let out = store
                    .run(
                        "k",
                        [1; 32],
                        Box::pin(async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(stored("answer"))
                        }),
                    )
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
        let store = MemoryStore::new(2, Duration::from_secs(60));
        assert!(store.run("k", [1; 32], Box::pin(async { Err(crate::error::ApiError::internal("boom")) })).await.is_err());
        assert!(matches!(store.run("k", [2; 32], Box::pin(async { Ok(stored("a")) })).await, Ok(Outcome::Computed(_))));
        let reused = store.run("k", [3; 32], Box::pin(async { Ok(stored("b")) })).await;
        assert_eq!(reused.err().unwrap().status, StatusCode::UNPROCESSABLE_ENTITY);
        // Bounded: a third key evicts the oldest.
        store.run("k2", [1; 32], Box::pin(async { Ok(stored("c")) })).await.unwrap();
        store.run("k3", [1; 32], Box::pin(async { Ok(stored("d")) })).await.unwrap();
        assert!(matches!(store.run("k", [9; 32], Box::pin(async { Ok(stored("e")) })).await, Ok(Outcome::Computed(_))));
    }
}
