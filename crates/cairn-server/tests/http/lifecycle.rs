//! A replica's life behind a load balancer, over real HTTP: not ready until warmed,
//! draining on shutdown (not ready, still answering, in-flight requests finished), and
//! live model updates (a new bundle version swapped in under load with no failed request,
//! pinned clients answered by the old version until the grace period ends).

use crate::common;

use crate::common::{app_dir, f32_bytes, image, pack_tiny, send, Server};
use axum::http::StatusCode;
use cairn_server::{App, Config, VERSION_HEADER};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_warm_up_then_drains() {
    let root = app_dir("drain");
    let mut config = Config::new(&root);
    config.drain_delay = Duration::from_millis(600);
    // Requests wait 300 ms for company: one is surely in flight when the drain starts.
    config.batch.max_wait = Duration::from_millis(300);
    let (app, problems) = App::load(config).unwrap();
    assert!(problems.is_empty());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(cairn_server::serve(listener, app.clone(), async move {
        let _ = stopped.await;
    }));
    let get = |path: &'static str| send(addr, axum::http::Method::GET, path, &[], Vec::new());

    let loading = get("/readyz").await;
    assert_eq!((loading.status, loading.json()["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("loading")));
    assert_eq!(get("/healthz").await.status, StatusCode::OK, "alive while not ready");
    assert!(app.warm_up().await.is_empty());
    assert_eq!(get("/readyz").await.status, StatusCode::OK);

    const OCTET: &[(&str, &str)] = &[("content-type", "application/octet-stream")];
    let in_flight = tokio::spawn(send(addr, axum::http::Method::POST, "/v1/models/tiny/infer", OCTET, f32_bytes(&image(1))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let draining = get("/readyz").await;
    assert_eq!((draining.status, draining.json()["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("draining")));
    let late = get("/v1/models").await;
    assert_eq!(late.status, StatusCode::OK, "still answering while the balancer notices");
    assert_eq!(late.header("connection"), "close");
    assert_eq!(in_flight.await.unwrap().status, StatusCode::OK, "the request in flight is answered");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the server stops after draining").unwrap().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(600), "stopped after the drain delay, not before");
}

fn version_of(r: &common::Reply) -> String {
    r.json()["version"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_swaps_in_under_load_and_pinned_clients_keep_theirs() {
    let root = app_dir("live");
    pack_tiny(&root, Some("v1"));
    let mut config = Config::new(&root);
    config.reload_interval = Some(Duration::from_millis(100));
    config.reload_grace = Duration::from_millis(1500);
    let server = Arc::new(Server::start(config).await);
    let octet = [("content-type", "application/octet-stream")];
    assert_eq!(version_of(&server.post("/v1/models/tiny/infer", &octet, f32_bytes(&image(1))).await), "v1");

    // Four clients keep asking while the new version lands.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for c in 0..4u64 {
        let (server, stop, answered, failed) = (server.clone(), stop.clone(), answered.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = server.post("/v1/models/tiny/infer", &[("content-type", "application/octet-stream")], f32_bytes(&image(c))).await;
                let counter = if r.status == StatusCode::OK { &answered } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    pack_tiny(&root, Some("v2"));
    let t0 = Instant::now();
    loop {
        let models = server.get("/v1/models", &[]).await.json();
        if models["models"].as_array().unwrap().len() == 2 {
            assert_eq!(models["models"][0]["version"], "v2");
            assert_eq!(models["models"][0]["status"], "current");
            assert_eq!(models["models"][1]["version"], "v1");
            assert_eq!(models["models"][1]["status"], "retiring");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the new version was not picked up: {models}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed across the swap");
    assert!(answered.load(Ordering::Relaxed) > 10);

    assert_eq!(version_of(&server.post("/v1/models/tiny/infer", &octet, f32_bytes(&image(1))).await), "v2");
    let pinned = [octet[0], (VERSION_HEADER, "v1")];
    assert_eq!(version_of(&server.post("/v1/models/tiny/infer", &pinned, f32_bytes(&image(1))).await), "v1");
    assert_eq!(version_of(&server.post("/v1/models/tiny/infer?version=v1", &octet, f32_bytes(&image(1))).await), "v1");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let gone = server.post("/v1/models/tiny/infer", &pinned, f32_bytes(&image(1))).await;
    assert_eq!(gone.status, StatusCode::GONE, "{}", gone.text());
    assert!(gone.text().contains("current version is 'v2'"), "{}", gone.text());
}
