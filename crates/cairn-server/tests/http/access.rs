//! Access control over real HTTP: no key / a wrong key (401), a disallowed origin (403),
//! over the rate or concurrency limit (429 + Retry-After), CORS for allowed origins,
//! public static files; request ids echoed; keys never in the logs.

use crate::common::{app_dir, f32_bytes, image, metric, Server};
use axum::http::StatusCode;
use cairn_server::{hash_key, parse_keys, AccessConfig, Config, REQUEST_ID};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const KEY: &str = "ck_live_7f3a9b2e41d8c6aa";

/// Every log line of this test binary, as JSON, in memory.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || Sink(sink.clone()))
            .with_max_level(tracing::Level::DEBUG)
            .init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn keyed(root: &std::path::Path, access: AccessConfig) -> Config {
    let mut c = Config::new(root);
    c.access = AccessConfig { keys: parse_keys(&format!("app {}", hash_key(KEY))).unwrap(), ..access };
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_origins_and_rate_limits() {
    let logs = logs();
    let root = app_dir("access");
    let access =
        AccessConfig { rate_per_second: NonZeroU32::new(5), cors_origins: vec!["https://app.example".into()], ..Default::default() };
    let server = Server::start(keyed(&root, access)).await;
    let bearer = format!("Bearer {KEY}");
    let auth = [("authorization", bearer.as_str())];

    let none = server.get("/v1/models", &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{}", none.text());
    assert_eq!(none.header("www-authenticate"), "Bearer");
    assert!(none.json()["hint"].as_str().unwrap().contains("Authorization: Bearer"));
    let wrong = server.get("/v1/models", &[("authorization", "Bearer ck_live_guess")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let evil = server.get("/v1/models", &[auth[0], ("origin", "https://evil.example")]).await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN, "{}", evil.text());

    let ok = server.get("/v1/models", &[auth[0], ("origin", "https://app.example"), (REQUEST_ID, "lb-42")]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.header("access-control-allow-origin"), "https://app.example");
    assert_eq!(ok.header(REQUEST_ID), "lb-42", "a load balancer's request id is kept");
    let preflight = server
        .send(
            axum::http::Method::OPTIONS,
            "/v1/models/tiny/infer",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization,idempotency-key,cairn-tensors,cairn-model-version"),
            ],
        )
        .await;
    assert!(preflight.status.is_success(), "{}", preflight.status);
    // Typed inputs (Cairn-Tensors) and version-pinned clients (Cairn-Model-Version) may call cross-origin.
    for h in ["authorization", "idempotency-key", "cairn-tensors", "cairn-model-version"] {
        assert!(preflight.header("access-control-allow-headers").contains(h), "{h}: {:?}", preflight.headers);
    }

    // Static files and bundles stay public.
    assert_eq!(server.get("/index.html", &[]).await.status, StatusCode::OK);
    assert_eq!(server.get("/models/tiny/manifest.json", &[]).await.status, StatusCode::OK);

    // 5 per second, burst 5: a quick run of 12 is partly refused, with Retry-After.
    let mut refused = 0;
    for _ in 0..12 {
        let r = server.get("/v1/models", &auth).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.header("retry-after").parse::<u32>().unwrap() >= 1);
            refused += 1;
        }
    }
    assert!(refused >= 5, "{refused} of 12 refused");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(server.get("/v1/models", &auth).await.status, StatusCode::OK, "the limit refills");

    let m = server.metrics().await;
    assert_eq!(metric(&m, "cairn_access_refused_total{reason=\"key\"}"), 2.0, "{m}");
    assert_eq!(metric(&m, "cairn_access_refused_total{reason=\"origin\"}"), 1.0, "{m}");
    assert!(metric(&m, "cairn_access_refused_total{reason=\"rate\"}") >= 5.0, "{m}");

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains("\"request_id\":\"lb-42\""), "{text}");
    assert!(text.contains("\"caller\":\"app\""), "{text}");
    assert!(!text.contains(KEY) && !text.contains("ck_live_guess"), "a key reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_per_key_and_infer_logs() {
    let logs = logs();
    let root = app_dir("inflight");
    let mut config = keyed(&root, AccessConfig { max_concurrent: Some(2), ..Default::default() });
    // Requests wait for company for 300 ms, so 6 sent together are all in flight at once.
    config.batch.max_wait = Duration::from_millis(300);
    let server = Arc::new(Server::start(config).await);
    let bearer = format!("Bearer {KEY}");
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (server, bearer) = (server.clone(), bearer.clone());
        tasks.push(tokio::spawn(async move {
            let headers = [("authorization", bearer.as_str()), ("content-type", "application/octet-stream")];
            let r = server.post("/v1/models/tiny/infer", &headers, f32_bytes(&image(i))).await;
            (r.status, r.header("retry-after").to_string(), r.header(REQUEST_ID).to_string())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let ok = results.iter().filter(|r| r.0 == StatusCode::OK).count();
    let limited: Vec<_> = results.iter().filter(|r| r.0 == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(ok, 2, "{results:?}");
    assert_eq!(limited.len(), 4, "{results:?}");
    assert!(limited.iter().all(|r| r.1 == "1"));
    assert!(results.iter().all(|r| !r.2.is_empty()), "every answer carries a request id");

    // The infer log line has the model, the batch and the times.
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        // The log sink is shared by the tests of this file, which run in parallel: this test's
        // requests are the ones made with the key named "app".
        .find(|v| v["route"] == "/v1/models/{name}/infer" && v["method"] == "POST" && v["status"] == 200 && v["caller"] == "app")
        .unwrap_or_else(|| panic!("no infer log line: {text}"));
    assert_eq!(line["model"], "tiny", "{line}");
    assert_eq!(line["batch_rows"], 2, "{line}");
    assert!(line["queue_ms"].as_f64().unwrap() >= 250.0, "{line}");
    assert!(line["compute_ms"].as_f64().is_some() && line["request_id"].as_str().is_some(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_stay_within_the_memory_budget() {
    let root = app_dir("budget");
    let mut config = Config::new(&root);
    // One 3 KiB image reserves 6 KiB (bytes + tensor); the budget holds 8 KiB: one at a time.
    config.max_body_bytes = 4096;
    config.max_inflight_bytes = 8192;
    config.batch.max_wait = Duration::from_millis(300);
    let server = Arc::new(Server::start(config).await);
    let mut tasks = Vec::new();
    for i in 0..3 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let r = server.post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream")], f32_bytes(&image(i))).await;
            (r.status, r.header("retry-after").to_string(), r.text())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.0 == StatusCode::OK).count(), 1, "{results:?}");
    let refused: Vec<_> = results.iter().filter(|r| r.0 == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert_eq!(refused.len(), 2, "{results:?}");
    assert!(refused.iter().all(|r| r.1 == "1" && r.2.contains("memory budget")), "{refused:?}");
    let m = server.metrics().await;
    assert_eq!(metric(&m, "cairn_access_refused_total{reason=\"memory\"}"), 2.0, "{m}");
    assert_eq!(metric(&m, "cairn_inflight_body_bytes"), 0.0, "every reservation is given back: {m}");
    // Afterwards the budget is free again.
    let r = server.post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream")], f32_bytes(&image(9))).await;
    assert_eq!(r.status, StatusCode::OK);
}
