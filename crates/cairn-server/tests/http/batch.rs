//! The batch endpoint over real HTTP: NDJSON in, NDJSON results streamed back as they
//! finish (several chunks, not one document at the end), every input answered once with
//! the logits native Cairn computes, a bad line reported on its own line.

use crate::common::{app_dir, image, reference_logits, Server, CLASSES, SIDE};
use axum::http::StatusCode;
use cairn_server::Config;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

fn line(img: &[f32]) -> String {
    serde_json::json!({ "inputs": { "x": { "shape": [1, 3, SIDE, SIDE], "data": img } } }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_streams_ndjson_results_as_they_finish() {
    let root = app_dir("batch");
    let mut config = Config::new(&root);
    config.batch.max_batch = 2;
    config.batch.max_wait = Duration::from_millis(30);
    let server = Server::start(config).await;
    let images: Vec<Vec<f32>> = (0..12).map(image).collect();
    let want = reference_logits(&images);
    let mut body: Vec<String> = images.iter().map(|i| line(i)).collect();
    body.insert(5, "{\"inputs\": {\"x\": {\"shape\": [1, 3, 8, 8], \"data\": [0]}}}".to_string());
    body.insert(7, String::new()); // blank lines are skipped

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::post(format!("http://{}/v1/models/tiny/batch?top=2", server.addr))
        .header("content-type", "application/x-ndjson")
        .body(Full::new(Bytes::from(body.join("\n"))))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let mut body = res.into_body();
    let (mut chunks, mut text) = (0, String::new());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            chunks += 1;
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(chunks >= 3, "results arrive as they finish, not at the end ({chunks} chunks)");
    let done = lines.last().unwrap();
    assert_eq!(done["done"], true);
    assert_eq!((done["inputs"].as_u64(), done["failed"].as_u64()), (Some(13), Some(1)), "{done}");
    let mut seen = [false; 13];
    for l in &lines[..lines.len() - 1] {
        let index = l["index"].as_u64().unwrap() as usize;
        assert!(!seen[index], "index {index} answered twice");
        seen[index] = true;
        if index == 5 {
            assert!(l["error"].as_str().unwrap().contains("input 'x'"), "{l}");
            continue;
        }
        let k = if index > 5 { index - 1 } else { index };
        let got: Vec<f32> = l["outputs"]["logits"]["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let expect = &want[k * CLASSES..(k + 1) * CLASSES];
        assert!(got.iter().zip(expect).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())), "input {k}: {got:?} vs {expect:?}");
        assert_eq!(l["top"][0].as_array().unwrap().len(), 2);
    }
    assert!(seen.iter().all(|s| *s));

    let empty = server.post("/v1/models/tiny/batch", &[("content-type", "application/x-ndjson")], b"\n\n".to_vec()).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.text().contains("NDJSON"), "{}", empty.text());
}
