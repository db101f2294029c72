//! The Redis idempotency store: every replica sees every key, and keys outlive replica
//! restarts (and Redis restarts, when Redis persists, e.g. `appendonly yes`).
//!
//! One Redis string per key, `<prefix><key>`, holding a tag byte, the 32-byte request
//! hash, then either the owner's token (`P`ending: a replica is computing) or the
//! answer's bytes (`D`one). The first replica claims a key with `SET NX PX lease`; while
//! it computes it extends the lease, so a replica that dies (`kill -9`) lets the key go
//! after one lease and a retry computes it elsewhere. Duplicates poll until the marker
//! turns into an answer. Owner-only updates are Lua scripts (check-and-set in one step).

use super::{conflict, Compute, IdempotencyStore, Outcome, Reply, Stored};
use crate::error::ApiError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PENDING: u8 = b'P';
const DONE: u8 = b'D';
const HASH_LEN: usize = 32;

/// How long a claim lives without its owner extending it: the wait a duplicate has when
/// the owner died mid-compute. Extended every third of it while computing.
const LEASE: Duration = Duration::from_secs(3);
/// How often a duplicate looks whether the first request has finished.
const POLL: Duration = Duration::from_millis(15);
/// Longest any one Redis command may take before the store counts as down.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// Claims the key, or returns what it holds (nil when it expired meanwhile).
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return redis.call('GET', KEYS[1])";
/// Replaces the owner's claim by `ARGV[2]` (PX `ARGV[3]`); 0 when the claim was lost.
const FINISH: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0";
/// Extends the owner's claim by `ARGV[2]` ms.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";
/// Lets go of the owner's claim (its computation failed).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
    /// A per-process part of claim tokens, so two replicas never hold the same token.
    instance: String,
    claims: AtomicU64,
    errors: Arc<AtomicU64>,
    scripts: Scripts,
}

struct Scripts {
    claim: Script,
    finish: Script,
    extend: Script,
    release: Script,
}

/// What a key holds.
enum State {
    Pending { hash: [u8; HASH_LEN] },
    Done { hash: [u8; HASH_LEN], body: Vec<u8> },
}

fn parse(bytes: &[u8]) -> Option<State> {
    let (&tag, rest) = bytes.split_first()?;
    let hash: [u8; HASH_LEN] = rest.get(..HASH_LEN)?.try_into().ok()?;
    match tag {
        PENDING => Some(State::Pending { hash }),
        DONE => Some(State::Done { hash, body: rest[HASH_LEN..].to_vec() }),
        _ => None,
    }
}

fn value(tag: u8, hash: &[u8; HASH_LEN], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + HASH_LEN + payload.len());
    v.push(tag);
    v.extend_from_slice(hash);
    v.extend_from_slice(payload);
    v
}

impl RedisStore {
    /// Connects lazily to `url` (`redis://host:port/db`): the server starts even when Redis
    /// is down, and requests with a key get 503 until it is back. Must run in a tokio runtime.
    pub fn connect(url: &str, ttl: Duration) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL '{url}': {e} (expected redis://HOST:PORT[/DB])"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| format!("cannot use Redis at {url}: {e}"))?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(RedisStore {
            conn,
            prefix: "cairn:idem:".to_string(),
            ttl,
            instance: format!("{}-{nanos:x}", std::process::id()),
            claims: AtomicU64::new(0),
            errors: Arc::new(AtomicU64::new(0)),
            scripts: Scripts {
                claim: Script::new(CLAIM),
                finish: Script::new(FINISH),
                extend: Script::new(EXTEND),
                release: Script::new(RELEASE),
            },
        })
    }

    /// Whether Redis answers a PING now (startup checks and readiness reports).
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| e.to_string())
    }

    fn down(&self, e: redis::RedisError) -> ApiError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "idempotency store (Redis) unreachable: answering 503");
        ApiError::unavailable("the idempotency store (Redis) cannot be reached", 1)
            .hint("retry with the same Idempotency-Key after Retry-After seconds; the request was not computed")
    }

    async fn answer(&self, key: &str, request_hash: [u8; HASH_LEN], compute: Compute<'_>) -> Result<Outcome, ApiError> {
        let redis_key = format!("{}{key}", self.prefix);
        let token = format!("{}-{}", self.instance, self.claims.fetch_add(1, Ordering::Relaxed));
        let claim = value(PENDING, &request_hash, token.as_bytes());
        loop {
            let mut conn = self.conn.clone();
            let held: Value = self
                .scripts
                .claim
                .key(&redis_key)
                .arg(&claim)
                .arg(LEASE.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.down(e))?;
            let bytes = match held {
                Value::Int(1) => return self.compute_as_owner(&redis_key, &claim, compute).await,
                Value::BulkString(b) => b,
                // Expired between SET and GET: claim again.
                _ => continue,
            };
            match parse(&bytes) {
                Some(State::Done { hash, body }) if hash == request_hash => return Ok(Outcome::Replayed(Stored { body: Arc::new(body) })),
                Some(State::Pending { hash }) if hash == request_hash => tokio::time::sleep(POLL).await,
                Some(_) => return Err(conflict()),
                None => return Err(ApiError::internal(format!("the idempotency store holds an unreadable value under '{redis_key}'"))),
            }
        }
    }

    /// Computes while extending the claim, then stores the answer. Once computed, the
    /// answer is returned even if storing it fails: computing again is what the key
    /// exists to prevent, and this client is waiting for exactly this answer.
    async fn compute_as_owner(&self, redis_key: &str, claim: &[u8], mut compute: Compute<'_>) -> Result<Outcome, ApiError> {
        let mut extend = tokio::time::interval_at(tokio::time::Instant::now() + LEASE / 3, LEASE / 3);
        let result = loop {
            tokio::select! {
                r = &mut compute => break r,
                _ = extend.tick() => {
                    let mut conn = self.conn.clone();
                    let extended: Result<i64, _> =
                        self.scripts.extend.key(redis_key).arg(claim).arg(LEASE.as_millis() as u64).invoke_async(&mut conn).await;
                    if let Err(e) = extended {
                        tracing::warn!(error = %e, "cannot extend an idempotency claim in Redis");
                    }
                }
            }
        };
        let mut conn = self.conn.clone();
        match result {
            Ok(stored) => {
                let hash: [u8; HASH_LEN] = claim[1..1 + HASH_LEN].try_into().expect("claims start with tag and hash");
                let done = value(DONE, &hash, &stored.body);
                let kept: Result<i64, _> =
                    self.scripts.finish.key(redis_key).arg(claim).arg(done).arg(self.ttl.as_millis() as u64).invoke_async(&mut conn).await;
                match kept {
                    Ok(1) => {}
                    Ok(_) => tracing::warn!(key = redis_key, "idempotency claim expired before the answer was stored"),
                    Err(e) => {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, key = redis_key, "cannot store an answer in Redis; a retry would compute again");
                    }
                }
                Ok(Outcome::Computed(stored))
            }
            Err(e) => {
                let _: Result<i64, _> = self.scripts.release.key(redis_key).arg(claim).invoke_async(&mut conn).await;
                Err(e)
            }
        }
    }
}

impl IdempotencyStore for RedisStore {
    fn run<'a>(&'a self, key: &'a str, request_hash: [u8; 32], compute: Compute<'a>) -> Reply<'a> {
        Box::pin(self.answer(key, request_hash, compute))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
