//! The /v1 API over real HTTP: inference (JSON and binary) matching native Cairn,
//! validation (400/404/413/415), batching, the bounded queue (503 + Retry-After),
//! idempotency keys, explanations, metrics, and graceful shutdown.

use crate::common;

use crate::common::{app_dir, f32_bytes, image, metric, reference_logits, Server, CLASSES, SIDE};
use axum::http::StatusCode;
use cairn_server::{Config, REPLAYED_HEADER};
use std::time::Duration;

fn binary(image: &[f32]) -> (Vec<u8>, [(&'static str, &'static str); 1]) {
    (f32_bytes(image), [("content-type", "application/octet-stream")])
}

fn logits(reply: &common::Reply) -> Vec<f32> {
    let v = reply.json();
    v["outputs"]["logits"]["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_json_and_binary_match_native_cairn() {
    let root = app_dir("infer");
    let server = Server::start(Config::new(&root)).await;
    let models = server.get("/v1/models", &[]).await.json();
    let tiny = &models["models"][0];
    assert_eq!(tiny["name"], "tiny");
    assert_eq!(tiny["inputs"][0]["dims"], serde_json::json!(["batch", 3, SIDE, SIDE]));
    assert_eq!(tiny["batching"]["enabled"], true);
    assert_eq!(tiny["manifest"], "/models/tiny/manifest.json");

    let (a, b) = (image(1), image(2));
    let want = reference_logits(&[a.clone(), b.clone()]);
    let (body, headers) = binary(&a);
    let r = server.post("/v1/models/tiny/infer", &headers, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(close(&logits(&r), &want[..CLASSES]), "{:?} vs {:?}", logits(&r), &want[..CLASSES]);
    let v = r.json();
    assert_eq!(v["where"], "edge");
    assert_eq!(v["top"][0].as_array().unwrap().len(), 5);
    assert!(v["top"][0][0]["label"].as_str().unwrap().starts_with("class "));

    // Two rows in one JSON request, dtype named NumPy's way.
    let both: Vec<f32> = [a.clone(), b.clone()].concat();
    let json = serde_json::json!({ "inputs": { "x": { "dtype": "float32", "shape": [2, 3, SIDE, SIDE], "data": both } } });
    let r = server.post("/v1/models/tiny/infer?top=3", &[("content-type", "application/json")], serde_json::to_vec(&json).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(close(&logits(&r), &want));
    assert_eq!(r.json()["outputs"]["logits"]["shape"], serde_json::json!([2, CLASSES]));
    assert_eq!(r.json()["top"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["top"][1].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let root = app_dir("errors");
    let mut config = Config::new(&root);
    config.max_body_bytes = 64 << 10;
    let server = Server::start(config).await;
    let post_json = |v: serde_json::Value| {
        server.post("/v1/models/tiny/infer", &[("content-type", "application/json")], serde_json::to_vec(&v).unwrap())
    };
    let cases = [
        (
            post_json(serde_json::json!({ "inputs": { "x": { "shape": [1, 3, 8, 8], "data": vec![0.0; 192] } } })).await,
            StatusCode::BAD_REQUEST,
            "must have shape [batch, 3, 16, 16], got [1, 3, 8, 8]",
        ),
        (
            post_json(serde_json::json!({ "inputs": { "x": { "dtype": "i64", "shape": [1, 3, 16, 16], "data": vec![0; 768] } } })).await,
            StatusCode::BAD_REQUEST,
            "input 'x' must be f32, got i64",
        ),
        (
            post_json(serde_json::json!({ "inputs": { "x": { "shape": [1, 3, 16, 16], "data": [1.0] } } })).await,
            StatusCode::BAD_REQUEST,
            "holds 768 values but data has 1",
        ),
        (
            post_json(serde_json::json!({ "inputs": { "y": { "shape": [1], "data": [1.0] } } })).await,
            StatusCode::BAD_REQUEST,
            "has no input 'y'",
        ),
        (post_json(serde_json::json!({ "nonsense": true })).await, StatusCode::BAD_REQUEST, "not a tensor request"),
        (
            server.post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream")], vec![0; 1001]).await,
            StatusCode::BAD_REQUEST,
            "not a whole number of f32 values",
        ),
        (
            server.post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream")], vec![0; 1000]).await,
            StatusCode::BAD_REQUEST,
            "not a whole number of rows of 768",
        ),
        (
            server
                .post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream"), ("cairn-dtype", "i32")], vec![0; 3072])
                .await,
            StatusCode::BAD_REQUEST,
            "input 'x' must be f32, got i32",
        ),
        (
            server
                .post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream"), ("cairn-shape", "1,3,16,8")], vec![0; 1536])
                .await,
            StatusCode::BAD_REQUEST,
            "must have shape [batch, 3, 16, 16]",
        ),
        (
            server.post("/v1/models/tiny/infer", &[("content-type", "text/plain")], vec![0; 8]).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "cannot read a 'text/plain' body",
        ),
        (server.post("/v1/models/nope/infer", &[], vec![]).await, StatusCode::NOT_FOUND, "there is no model 'nope'"),
        (
            server.post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream")], vec![0; 100 << 10]).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than this server's limit of 65536 bytes",
        ),
        (server.get("/v1/nothing", &[]).await, StatusCode::NOT_FOUND, "no such API endpoint"),
        (
            server.post("/v1/models/tiny/explain?target=99", &[("content-type", "application/octet-stream")], f32_bytes(&image(1))).await,
            StatusCode::BAD_REQUEST,
            "target class 99 does not exist",
        ),
    ];
    for (reply, status, message) in cases {
        assert_eq!(reply.status, status, "{}", reply.text());
        let v = reply.json();
        assert!(v["error"].as_str().unwrap().contains(message), "expected '{message}' in {v}");
        assert_eq!(v["error"].as_str().unwrap().lines().count(), 1);
    }
    assert_eq!(server.get("/healthz", &[]).await.json()["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_a_full_queue_answers_503() {
    let root = app_dir("queue");
    let mut config = Config::new(&root);
    // A long wait window and a short queue: the first four requests are admitted and
    // wait together for company; everything past the queue's capacity is refused at once.
    config.batch.max_batch = 16;
    config.batch.max_wait = Duration::from_millis(400);
    config.batch.queue_capacity = 4;
    let server = Server::start(config).await;
    let images: Vec<Vec<f32>> = (0..12).map(image).collect();
    let want = reference_logits(&images);
    let replies = futures_join(images.iter().map(|img| {
        let (body, headers) = binary(img);
        let addr = server.addr;
        async move { common::send(addr, axum::http::Method::POST, "/v1/models/tiny/infer", &headers, body).await }
    }))
    .await;
    let ok: Vec<usize> = (0..12).filter(|&i| replies[i].status == StatusCode::OK).collect();
    let busy: Vec<usize> = (0..12).filter(|&i| replies[i].status == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert_eq!((ok.len(), busy.len()), (4, 8), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    for &i in &ok {
        assert_eq!(replies[i].json()["batch_rows"], 4, "the admitted requests ran as one batch");
        assert!(close(&logits(&replies[i]), &want[i * CLASSES..(i + 1) * CLASSES]), "request {i} got another request's rows");
    }
    for &i in &busy {
        assert_eq!(replies[i].header("retry-after"), "1");
        assert!(replies[i].json()["hint"].as_str().unwrap().contains("Retry-After"));
    }
    let m = server.metrics().await;
    assert_eq!(metric(&m, "cairn_infer_batch_size_count{model=\"tiny\"}"), 1.0, "{m}");
    assert_eq!(metric(&m, "cairn_infer_batch_size_bucket{model=\"tiny\",le=\"2\"}"), 0.0, "{m}");
    assert_eq!(metric(&m, "cairn_infer_batch_size_bucket{model=\"tiny\",le=\"4\"}"), 1.0, "{m}");
    assert_eq!(metric(&m, "cairn_http_requests_total{route=\"/v1/models/{name}/infer\",status=\"503\"}"), 8.0, "{m}");
    assert_eq!(metric(&m, "cairn_http_requests_total{route=\"/v1/models/{name}/infer\",status=\"200\"}"), 4.0, "{m}");
    assert_eq!(metric(&m, "cairn_infer_queue_depth{model=\"tiny\"}"), 0.0, "{m}");
    assert_eq!(metric(&m, "cairn_infer_queue_capacity{model=\"tiny\"}"), 4.0, "{m}");
    assert!(m.contains("cairn_http_request_duration_seconds_bucket{route=\"/v1/models/{name}/infer\",le=\"+Inf\"} 12"), "{m}");
    // After the batch, the queue admits again.
    let (body, headers) = binary(&images[0]);
    assert_eq!(server.post("/v1/models/tiny/infer", &headers, body).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_off_runs_one_request_per_batch() {
    let root = app_dir("unbatched");
    let mut config = Config::new(&root);
    config.batch.max_batch = 1;
    let server = Server::start(config).await;
    let replies = futures_join((0..6).map(|i| {
        let (body, headers) = binary(&image(i));
        let addr = server.addr;
        async move { common::send(addr, axum::http::Method::POST, "/v1/models/tiny/infer", &headers, body).await }
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK && r.json()["batch_rows"] == 1));
    let m = server.metrics().await;
    assert_eq!(metric(&m, "cairn_infer_batch_size_count{model=\"tiny\"}"), 6.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_compute_exactly_once() {
    let root = app_dir("idempotency");
    let mut config = Config::new(&root);
    config.batch.max_wait = Duration::from_millis(200); // the first stays in flight while duplicates arrive
    let server = Server::start(config).await;
    let (body, headers) = binary(&image(5));
    let with_key = [headers[0], ("idempotency-key", "4b1d2c9e-0001")];
    let replies = futures_join((0..5).map(|_| {
        let (addr, body) = (server.addr, body.clone());
        async move { common::send(addr, axum::http::Method::POST, "/v1/models/tiny/infer", &with_key, body).await }
    }))
    .await;
    let later = server.post("/v1/models/tiny/infer", &with_key, body.clone()).await;
    let all: Vec<&common::Reply> = replies.iter().chain([&later]).collect();
    assert!(all.iter().all(|r| r.status == StatusCode::OK));
    assert!(all.iter().all(|r| r.body == all[0].body), "every duplicate gets the first answer byte for byte");
    assert_eq!(all.iter().filter(|r| r.header(REPLAYED_HEADER) == "true").count(), 5);
    let m = server.metrics().await;
    assert_eq!(metric(&m, "cairn_infer_batch_size_count{model=\"tiny\"}"), 1.0, "computed once: {m}");
    assert_eq!(metric(&m, "cairn_idempotent_replays_total"), 5.0, "{m}");
    // The same key for a different request is refused; a new key computes again.
    let (other, _) = binary(&image(6));
    let reused = server.post("/v1/models/tiny/infer", &with_key, other.clone()).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reused.text());
    let fresh = server.post("/v1/models/tiny/infer", &[headers[0], ("idempotency-key", "4b1d2c9e-0002")], other).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.header(REPLAYED_HEADER), "");
    assert_eq!(metric(&server.metrics().await, "cairn_infer_batch_size_count{model=\"tiny\"}"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_returns_an_occlusion_heatmap() {
    let root = app_dir("explain");
    let server = Server::start(Config::new(&root)).await;
    let img = image(3);
    let r = server
        .post("/v1/models/tiny/explain?patch=4&stride=4&top=3", &[("content-type", "application/octet-stream")], f32_bytes(&img))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let heat = &v["heatmap"];
    assert_eq!((heat["rows"].as_u64(), heat["cols"].as_u64()), (Some(4), Some(4)));
    assert_eq!(v["forward_passes"], 17);
    assert_eq!(v["top"].as_array().unwrap().len(), 3);
    let target = v["target"]["index"].as_u64().unwrap() as usize;
    assert_eq!(v["top"][0]["index"].as_u64().unwrap() as usize, target);
    // Check one cell against an occluded copy run through native Cairn.
    let mut occluded = img.clone();
    for c in 0..3 {
        for y in 4..8 {
            for x in 8..12 {
                occluded[(c * SIDE + y) * SIDE + x] = 0.0;
            }
        }
    }
    let softmax = |l: &[f32]| {
        let m = l.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = l.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect::<Vec<f32>>()
    };
    let base = softmax(&reference_logits(&[img]))[target];
    let hidden = softmax(&reference_logits(&[occluded]))[target];
    let cell = heat["drop"][1][2].as_f64().unwrap() as f32;
    assert!((cell - (base - hidden)).abs() < 1e-5, "cell (1, 2): {cell} vs {}", base - hidden);
    assert_eq!(metric(&server.metrics().await, "cairn_explanations_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_requests_in_flight() {
    let root = app_dir("shutdown");
    let mut config = Config::new(&root);
    config.batch.max_wait = Duration::from_millis(300);
    let mut server = Server::start(config).await;
    let (body, headers) = binary(&image(9));
    let addr = server.addr;
    let in_flight =
        tokio::spawn(async move { common::send(addr, axum::http::Method::POST, "/v1/models/tiny/infer", &headers, body).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown();
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "the request in flight is answered");
    tokio::time::timeout(Duration::from_secs(5), server.task.take().unwrap()).await.expect("the server stops").unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
}

/// Runs the futures concurrently, answers in order.
async fn futures_join<F: std::future::Future<Output = common::Reply> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<common::Reply> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibration_picks_a_measured_batch_size() {
    let root = app_dir("calibrate");
    let mut config = Config::new(&root);
    config.batch.max_batch = 4;
    config.batch.calibrate = true;
    let server = Server::start(config).await;
    let models = server.get("/v1/models", &[]).await.json();
    let batching = &models["models"][0]["batching"];
    let measured: Vec<(u64, f64)> =
        batching["ms_per_row_by_batch"].as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect();
    assert_eq!(measured[0].0, 1, "{batching}");
    assert!(measured.iter().all(|&(_, ms)| ms > 0.0 && ms.is_finite()), "{batching}");
    let chosen = batching["max_batch"].as_u64().unwrap();
    assert!(measured.iter().any(|&(b, _)| b == chosen) && chosen <= 4, "{batching}");
    let (body, headers) = binary(&image(1));
    assert_eq!(server.post("/v1/models/tiny/infer", &headers, body).await.status, StatusCode::OK);
}
