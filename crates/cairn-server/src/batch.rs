//! `POST /v1/models/{name}/batch`: many inputs in one request, results streamed back as
//! they finish. The body is NDJSON, one infer request document per line (the JSON form
//! of `/infer`); the answer is NDJSON too, one line per input in the order they finish:
//! `{"index": 3, "outputs": ..., "top": ..., "timings": ...}`, or
//! `{"index": 3, "error": ..., "hint": ...}` for an input that failed, then a last line
//! `{"done": true, "inputs": N, "failed": M}`.
//!
//! Items go through the model's batcher like any request, so they batch with each other
//! and with other clients' requests. At most `window` items are in the queue at once, so a
//! large batch neither fills the queue (other clients would get 503s) nor holds every
//! parsed input in memory: lines are parsed as the window moves.
//! A batch has no Idempotency-Key: its answer is a stream, not a stored document.

use crate::api::{answer_doc, model_and_body};
use crate::batcher::SubmitError;
use crate::error::ApiError;
use crate::models::ServedModel;
use crate::request_log::InferLog;
use crate::wire;
use crate::App;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

/// Most inputs in one batch request.
pub const MAX_ITEMS: usize = 4096;

#[derive(Deserialize, Default)]
pub struct BatchQuery {
    top: Option<usize>,
    version: Option<String>,
}

pub async fn batch(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<BatchQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (model, body) = match model_and_body(&app, &name, &headers, q.version.as_deref(), body) {
        Ok(found) => found,
        Err(res) => return res,
    };
    let lines: Vec<(usize, Bytes)> = split_lines(&body);
    if lines.is_empty() {
        return ApiError::bad_request("the batch is empty")
            .hint("send NDJSON: one infer request per line, e.g. {\"inputs\": {\"x\": {\"shape\": [1, 3, 224, 224], \"data\": [...]}}}")
            .into_response();
    }
    if lines.len() > MAX_ITEMS {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("{} inputs in one batch; at most {MAX_ITEMS}", lines.len()))
            .hint("split the inputs over several batch requests")
            .into_response();
    }
    let top = q.top.unwrap_or(5).min(100);
    let window = (model.batcher.config().max_batch * 2).max(2);
    let (reader, writer) = tokio::io::duplex(64 << 10);
    let count = lines.len();
    tokio::spawn(stream_results(model.clone(), lines, top, window, writer));
    let mut res = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(reader)));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.extensions_mut().insert(InferLog {
        model: model.name.clone(),
        version: model.manifest.version.clone(),
        batch_rows: count,
        ..Default::default()
    });
    res
}

/// Non-empty lines with their index (blank lines are skipped, not counted).
fn split_lines(body: &Bytes) -> Vec<(usize, Bytes)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in body.iter().enumerate().chain(std::iter::once((body.len(), &b'\n'))) {
        if b == b'\n' {
            let line = body.slice(start..i);
            if line.iter().any(|c| !c.is_ascii_whitespace()) {
                out.push((out.len(), line));
            }
            start = i + 1;
        }
    }
    out
}

/// Runs every line through the batcher, `window` at a time, writing each result as it lands.
async fn stream_results(model: Arc<ServedModel>, lines: Vec<(usize, Bytes)>, top: usize, window: usize, mut out: tokio::io::DuplexStream) {
    let total = lines.len();
    let mut failed = 0;
    let mut pending = lines.into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < window {
            let Some((index, line)) = pending.next() else { break };
            let model = model.clone();
            running.spawn(async move { (index, run_one(&model, &line, top).await) });
        }
        let Some(done) = running.join_next().await else { break };
        let line = match done {
            Ok((index, Ok(mut doc))) => {
                doc["index"] = index.into();
                doc
            }
            Ok((index, Err(e))) => {
                failed += 1;
                serde_json::json!({ "index": index, "error": e.message, "hint": e.hint })
            }
            Err(e) => {
                failed += 1;
                serde_json::json!({ "error": format!("an input's task failed: {e}") })
            }
        };
        if write_line(&mut out, &line).await.is_err() {
            // The client went away: stop computing for it.
            running.abort_all();
            return;
        }
    }
    let _ = write_line(&mut out, &serde_json::json!({ "done": true, "inputs": total, "failed": failed })).await;
}

async fn write_line(out: &mut tokio::io::DuplexStream, v: &serde_json::Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    out.write_all(&bytes).await
}

/// One input: parsed as an infer request, queued (waiting while the queue is full, since
/// the batch as a whole was admitted), answered as `/infer` answers.
async fn run_one(model: &ServedModel, line: &[u8], top: usize) -> Result<serde_json::Value, ApiError> {
    let mut json = HeaderMap::new();
    json.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let inputs = wire::parse(model, &json, line)?;
    loop {
        match model.batcher.infer(inputs.tensors.clone(), inputs.rows).await {
            Ok(answer) => return Ok(answer_doc(model, &answer, top)),
            Err(SubmitError::Busy) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(SubmitError::Failed(msg)) => return Err(ApiError::internal(format!("the model failed: {msg}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blanks_and_keep_order() {
        let body = Bytes::from_static(b"{\"a\":1}\n\n  \n{\"b\":2}\r\n{\"c\":3}");
        let lines = split_lines(&body);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], (1, Bytes::from_static(b"{\"b\":2}\r")));
        assert_eq!(&lines[2].1[..], b"{\"c\":3}");
    }
}
