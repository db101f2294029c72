//! The Redis idempotency store against a real `redis-server`: two replicas (two stores,
//! two servers) share keys; concurrent duplicates across replicas compute once; a key
//! outlives a replica restart and a Redis restart; a replica that dies mid-compute lets
//! the key go after one lease; Redis down is a 503 + Retry-After for requests with a key
//! (requests without a key are still answered).

use crate::common::{app_dir, f32_bytes, image, metric, Redis, Server};
use axum::http::StatusCode;
use cairn_server::idempotency::{Compute, IdempotencyStore, Outcome, RedisStore, Stored};
use cairn_server::{Config, REPLAYED_HEADER};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn answer(runs: &Arc<AtomicUsize>, text: &'static str, delay_ms: u64) -> Compute<'static> {
    let runs = runs.clone();
    Box::pin(async move {
        runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        Ok(Stored { body: Arc::new(text.as_bytes().to_vec()) })
    })
}

fn body(o: &Outcome) -> (&'static str, String) {
    match o {
        Outcome::Computed(s) => ("computed", String::from_utf8_lossy(&s.body).into_owned()),
        Outcome::Replayed(s) => ("replayed", String::from_utf8_lossy(&s.body).into_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_keys_and_compute_once() {
    let redis = Redis::start("store");
    let ttl = Duration::from_secs(60);
    let replicas: Vec<Arc<RedisStore>> = (0..2).map(|_| Arc::new(RedisStore::connect(&redis.url(), ttl).unwrap())).collect();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (store, runs) = (replicas[i % 2].clone(), runs.clone());
        tasks.push(tokio::spawn(async move { body(&store.run("dup", [7; 32], answer(&runs, "the answer", 150)).await.unwrap()) }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one computation for 12 duplicates on 2 replicas");
    assert_eq!(outcomes.iter().filter(|(o, _)| *o == "computed").count(), 1);
    assert!(outcomes.iter().all(|(_, b)| b == "the answer"), "{outcomes:?}");

    // Another request under the same key: 422, on either replica.
    let reused = replicas[1].run("dup", [8; 32], answer(&runs, "other", 0)).await;
    assert_eq!(reused.err().unwrap().status, StatusCode::UNPROCESSABLE_ENTITY);

    // A failed computation lets the key go at once.
    let failed = replicas[0].run("fails", [1; 32], Box::pin(async { Err(cairn_server_error()) })).await;
    assert!(failed.is_err());
    let t0 = Instant::now();
    assert_eq!(body(&replicas[1].run("fails", [1; 32], answer(&runs, "second try", 0)).await.unwrap()).0, "computed");
    assert!(t0.elapsed() < Duration::from_millis(500));
}

fn cairn_server_error() -> cairn_server::ApiError {
    cairn_server::ApiError::internal("the model failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owner_lets_the_key_go_after_one_lease_and_answers_expire() {
    let redis = Redis::start("lease");
    let store = RedisStore::connect(&redis.url(), Duration::from_millis(400)).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    // The owner "dies": its computation is dropped mid-way, so nobody extends its claim.
    let dying = tokio::time::timeout(Duration::from_millis(100), store.run("orphan", [3; 32], answer(&runs, "never", 60_000))).await;
    assert!(dying.is_err());
    let t0 = Instant::now();
    let (how, text) = body(&store.run("orphan", [3; 32], answer(&runs, "recovered", 0)).await.unwrap());
    let waited = t0.elapsed();
    assert_eq!((how, text.as_str()), ("computed", "recovered"));
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(4), "waited {waited:?} for a 3 s lease");

    // The answer lives for the TTL (400 ms here), then the key computes again.
    assert_eq!(body(&store.run("orphan", [3; 32], answer(&runs, "x", 0)).await.unwrap()).0, "replayed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(body(&store.run("orphan", [3; 32], answer(&runs, "again", 0)).await.unwrap()), ("computed", "again".to_string()));
}

fn redis_config(root: &std::path::Path, redis: &Redis) -> Config {
    let mut c = Config::new(root);
    c.idempotency_redis = Some(redis.url());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_keys_survive_replica_and_redis_restarts_and_redis_down_is_503() {
    let mut redis = Redis::start("http");
    let root = app_dir("redis-http");
    let a = Server::start(redis_config(&root, &redis)).await;
    let b = Server::start(redis_config(&root, &redis)).await;
    let octet = [("content-type", "application/octet-stream"), ("idempotency-key", "k-1")];
    let img = f32_bytes(&image(5));

    let first = a.post("/v1/models/tiny/infer", &octet, img.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.header(REPLAYED_HEADER), "");
    let again = b.post("/v1/models/tiny/infer", &octet, img.clone()).await;
    assert_eq!(again.header(REPLAYED_HEADER), "true", "replica B replays replica A's answer");
    assert_eq!(again.body, first.body, "byte for byte");
    let other = b.post("/v1/models/tiny/infer", &octet, f32_bytes(&image(6))).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A replica restart: a new process (server) still knows the key.
    drop(a);
    let c = Server::start(redis_config(&root, &redis)).await;
    assert_eq!(c.post("/v1/models/tiny/infer", &octet, img.clone()).await.header(REPLAYED_HEADER), "true");

    // Redis down: requests with a key fail closed (503 + Retry-After, counted); without a key they are served.
    redis.stop();
    let down = c.post("/v1/models/tiny/infer", &octet, img.clone()).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{}", down.text());
    assert_eq!(down.header("retry-after"), "1");
    assert!(down.text().contains("idempotency store"), "{}", down.text());
    let keyless = c.post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream")], img.clone()).await;
    assert_eq!(keyless.status, StatusCode::OK);
    assert!(metric(&c.metrics().await, "cairn_idempotency_store_errors_total") >= 1.0);

    // Redis back (append-only file): the key is still answered from the store.
    redis.restart();
    let mut replayed = None;
    for _ in 0..40 {
        let r = c.post("/v1/models/tiny/infer", &octet, img.clone()).await;
        if r.status == StatusCode::OK {
            replayed = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replayed = replayed.expect("the server reconnects to Redis");
    assert_eq!(replayed.header(REPLAYED_HEADER), "true");
    assert_eq!(replayed.body, first.body);
    let computed =
        metric(&b.metrics().await, "cairn_idempotent_computed_total") + metric(&c.metrics().await, "cairn_idempotent_computed_total");
    assert_eq!(computed, 0.0, "only replica A (gone) computed k-1");
}
