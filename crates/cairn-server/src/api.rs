//! The `/v1` API: list models, infer (batched, idempotent), explain; health, readiness
//! and metrics.

use crate::batcher::{Answer, SubmitError};
use crate::error::ApiError;
use crate::explain::{self, ExplainParams};
use crate::idempotency::{self, Outcome, Stored};
use crate::models::{dims_json, ServedModel};
use crate::request_log::InferLog;
use crate::wire;
use crate::App;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;

pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Pins a request to a model version (the manifest's `version`), e.g. a client that
/// loaded the previous bundle and has not reloaded yet; `?version=` does the same.
pub const VERSION_HEADER: &str = "cairn-model-version";

pub async fn list_models(State(app): State<Arc<App>>) -> Response {
    let set = app.models();
    let now = Instant::now();
    let mut models: Vec<serde_json::Value> = set.current.values().map(|m| describe(m)).collect();
    for r in set.retiring.iter().filter(|r| r.until > now) {
        let mut d = describe(&r.model);
        d["status"] = "retiring".into();
        d["retiring_in_s"] = (r.until - now).as_secs_f64().into();
        models.push(d);
    }
    json_response(StatusCode::OK, &serde_json::json!({ "models": models }))
}

fn describe(m: &ServedModel) -> serde_json::Value {
    let inputs: Vec<_> = m
        .inputs
        .iter()
        .map(|i| serde_json::json!({ "name": i.name, "dtype": i.dtype.name(), "dims": dims_json(i.dims.as_deref()) }))
        .collect();
    let graph = m.session.graph();
    let outputs: Vec<_> = graph
        .outputs
        .iter()
        .map(|o| serde_json::json!({ "name": o.name, "dtype": o.dtype.name(), "dims": dims_json(o.dims.as_deref()), "labels": m.labels(&o.name).map(|l| l.len()) }))
        .collect();
    let cfg = m.batcher.config();
    serde_json::json!({
        "name": m.name,
        "version": m.manifest.version,
        "manifest": format!("/models/{}/manifest.json", m.name),
        "inputs": inputs,
        "outputs": outputs,
        "preprocess": m.manifest.inputs.iter().find_map(|i| i.preprocess.as_ref()),
        "levels": m.manifest.levels.iter().map(|l| &l.name).collect::<Vec<_>>(),
        "weight_bytes": m.manifest.weight_bytes(),
        "precision": "full",
        "status": "current",
        "batching": {
            "enabled": m.batchable && cfg.max_batch > 1,
            "max_batch": cfg.max_batch,
            "max_wait_ms": cfg.max_wait.as_secs_f64() * 1e3,
            "ms_per_row_by_batch": m.calibration.as_ref().map(|c| c.ms_per_row.clone()),
        },
    })
}

#[derive(Deserialize, Default)]
pub struct InferQuery {
    /// Classes to list per row for outputs with labels.
    top: Option<usize>,
    /// The model version the client was built against (see `VERSION_HEADER`).
    version: Option<String>,
}

/// The version a request pins, from the header or the query.
fn pinned<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok()).or(query)
}

/// The model a request names (in the version it pins) and its body, or the error answer.
// The error is the finished HTTP answer, built at most once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn model_and_body(
    app: &App,
    name: &str,
    headers: &HeaderMap,
    version: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Arc<ServedModel>, Bytes), Response> {
    let model = app.models().find(name, pinned(headers, version)).map_err(IntoResponse::into_response)?;
    let body = body.map_err(|e| body_error(e, app.config.max_body_bytes).into_response())?;
    Ok((model, body))
}

pub async fn infer(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<InferQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (model, body) = match model_and_body(&app, &name, &headers, q.version.as_deref(), body) {
        Ok(found) => found,
        Err(res) => return res,
    };
    let top = q.top.unwrap_or(5).min(100);
    let log = std::sync::Mutex::new(InferLog { model: model.name.clone(), version: model.manifest.version.clone(), ..Default::default() });
    let compute = async {
        let inputs = wire::parse(&model, &headers, &body)?;
        let answer = model.batcher.infer(inputs.tensors, inputs.rows).await.map_err(submit_error)?;
        if let Ok(mut l) = log.lock() {
            (l.batch_rows, l.queue_ms, l.compute_ms) = (answer.batch_rows, answer.queue_ms, answer.compute_ms);
        }
        let doc = answer_doc(&model, &answer, top);
        Ok(Stored { body: Arc::new(serde_json::to_vec(&doc).map_err(|e| ApiError::internal(e.to_string()))?) })
    };
    let mut res = once(&app, &headers, &name, "infer", &format!("top={top}"), &body, compute).await;
    with_log(&mut res, log.into_inner().unwrap_or_default(), &headers);
    res
}

/// The JSON answer to one infer request: outputs, top classes of labelled outputs, timings.
pub fn answer_doc(model: &ServedModel, answer: &Answer, top: usize) -> serde_json::Value {
    let mut outputs = serde_json::Map::new();
    let mut top_rows = Vec::new();
    for (out_name, t) in &answer.outputs {
        if let Some(labels) = model.labels(out_name) {
            for row in 0..t.shape().first().copied().unwrap_or(0) {
                if let Some(p) = wire::probabilities(t, row) {
                    top_rows.push(wire::top_k(&p, top, Some(labels)));
                }
            }
        }
        outputs.insert(out_name.clone(), wire::tensor_json(t));
    }
    serde_json::json!({
        "model": model.name,
        "version": model.manifest.version,
        "where": "edge",
        "level": "full",
        "outputs": outputs,
        "top": top_rows,
        "batch_rows": answer.batch_rows,
        "timings": { "queue_ms": answer.queue_ms, "compute_ms": answer.compute_ms },
    })
}

/// Attaches what the request log should say about this answer.
fn with_log(res: &mut Response, mut log: InferLog, headers: &HeaderMap) {
    log.idempotency = res.extensions().get::<IdempotencyOutcome>().map(|o| o.0);
    if log.idempotency.is_some() {
        log.idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    }
    res.extensions_mut().insert(log);
}

/// `computed` or `replayed`, for the log.
#[derive(Clone, Copy)]
struct IdempotencyOutcome(&'static str);

pub async fn explain(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(params): Query<ExplainParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (model, body) = match model_and_body(&app, &name, &headers, None, body) {
        Ok(found) => found,
        Err(res) => return res,
    };
    let compute = async {
        let inputs = wire::parse(&model, &headers, &body)?;
        let job = Arc::new(explain::Job::new(&model, inputs, &params)?);
        let started = std::time::Instant::now();
        let j = job.clone();
        let base = model.batcher.exclusive(true, move |session, _| j.base(session)).await.map_err(submit_error)?;
        let (target, p_target) = job.target(&base).map_err(ApiError::bad_request)?;
        // One batch of occluded copies per compute slot turn, so inference is not held up
        // for the whole explanation.
        let mut drops = Vec::new();
        for cells in job.cells().chunks(model.batcher.config().max_batch.max(1)) {
            let (j, cells) = (job.clone(), cells.to_vec());
            drops.extend(
                model.batcher.exclusive(false, move |session, _| j.drops(session, &cells, target, p_target)).await.map_err(submit_error)?,
            );
        }
        let doc = job.report(&base, target, &drops, started);
        app.metrics.explanation();
        Ok(Stored { body: Arc::new(serde_json::to_vec(&doc).map_err(|e| ApiError::internal(e.to_string()))?) })
    };
    let options = serde_json::to_string(&params).unwrap_or_default();
    let mut res = once(&app, &headers, &name, "explain", &options, &body, compute).await;
    let log = InferLog { model: model.name.clone(), version: model.manifest.version.clone(), ..Default::default() };
    with_log(&mut res, log, &headers);
    res
}

/// Runs `compute` at most once per Idempotency-Key (when the header is present).
async fn once<F>(app: &App, headers: &HeaderMap, model: &str, action: &str, options: &str, body: &[u8], compute: F) -> Response
where
    F: std::future::Future<Output = Result<Stored, ApiError>> + Send,
{
    let Some(key) = headers.get("idempotency-key") else {
        return match compute.await {
            Ok(s) => stored_response(&s, false),
            Err(e) => e.into_response(),
        };
    };
    let Ok(key) = key.to_str() else { return ApiError::bad_request("Idempotency-Key must be visible ASCII").into_response() };
    if let Err(e) = idempotency::check_key(key) {
        return e.into_response();
    }
    let hash = request_hash(headers, model, action, options, body);
    // Recorded the moment the computation finishes, before the store is awaited: a handler
    // cancelled (client gone) or a replica killed while the answer is being stored or sent
    // has still computed it, and the exactly-once audit (deploy/test/scale.py) counts these
    // records. Logging after the store left a stored answer without a record when the
    // handler was dropped inside the store's await.
    let recorded = async {
        let result = compute.await;
        if result.is_ok() {
            tracing::info!(idempotency_computed = key, "idempotent answer computed");
        }
        result
    };
    match app.idempotency.run(&format!("{model}/{action}/{key}"), hash, Box::pin(recorded)).await {
        Ok(Outcome::Computed(s)) => {
            app.metrics.idempotent_computed();
            let mut res = stored_response(&s, false);
            res.extensions_mut().insert(IdempotencyOutcome("computed"));
            res
        }
        Ok(Outcome::Replayed(s)) => {
            app.metrics.idempotent_replay();
            let mut res = stored_response(&s, true);
            res.extensions_mut().insert(IdempotencyOutcome("replayed"));
            res
        }
        Err(e) => e.into_response(),
    }
}

/// What makes two requests "the same": target, options, body encoding and body.
fn request_hash(headers: &HeaderMap, model: &str, action: &str, options: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [model, action, options] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for name in [header::CONTENT_TYPE.as_str(), "cairn-shape", "cairn-dtype", "cairn-input", crate::wire::TENSORS_HEADER] {
        h.update(headers.get(name).map(|v| v.as_bytes()).unwrap_or(b""));
        h.update([0]);
    }
    h.update(body);
    h.finalize().into()
}

fn stored_response(s: &Stored, replayed: bool) -> Response {
    let mut res = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], s.body.as_ref().clone()).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if replayed {
        res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    res
}

fn body_error(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than this server's limit of {limit} bytes"))
            .hint("send fewer rows per request, or raise `cairn serve --max-body`")
    } else {
        ApiError::bad_request(format!("cannot read the body: {}", e.body_text()))
    }
}

pub(crate) fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Busy => ApiError::busy(1),
        SubmitError::Failed(msg) => ApiError::internal(format!("the model failed: {msg}")),
    }
}

/// Liveness: the process answers.
pub async fn healthz(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "status": "ok", "models": app.models().current.len() }))
}

/// Readiness: models loaded and warmed, not draining. Load balancers route on this.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let (status, state) = match (app.is_ready(), app.is_draining()) {
        (true, _) => (StatusCode::OK, "ready"),
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "loading"),
    };
    json_response(status, &serde_json::json!({ "status": state, "models": app.model_names(), "idempotency": app.idempotency_backend() }))
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let queues: Vec<(String, usize, usize)> =
        app.models().current.values().map(|m| (m.name.clone(), m.batcher.depth(), m.batcher.config().queue_capacity)).collect();
    let text = app.metrics.render(&queues, app.idempotency.errors(), app.is_ready(), app.budget.in_use_bytes());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], text).into_response()
}

pub async fn api_not_found() -> Response {
    ApiError::not_found("no such API endpoint")
        .hint("endpoints: GET /v1/models, POST /v1/models/{name}/infer, POST /v1/models/{name}/batch, POST /v1/models/{name}/explain")
        .into_response()
}

pub(crate) fn json_response(status: StatusCode, v: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], serde_json::to_vec(v).unwrap_or_default())
        .into_response()
}
