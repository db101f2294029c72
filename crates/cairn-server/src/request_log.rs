//! One structured log line per request (`tracing`; text or JSON, `--log-format`), with a
//! request id echoed in `x-request-id`, and the request metrics. Inference handlers add
//! what they know (model, batch size, queue and compute time, idempotency outcome) as a
//! response extension; access control adds the caller's key *name*. Headers are never
//! logged, so neither are keys.

use crate::access::Caller;
use crate::App;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub const REQUEST_ID: &str = "x-request-id";

/// What an inference answer adds to its request's log line.
#[derive(Clone, Debug, Default)]
pub struct InferLog {
    pub model: String,
    pub version: String,
    pub batch_rows: usize,
    pub queue_ms: f64,
    pub compute_ms: f64,
    /// `computed` or `replayed` when the request had an Idempotency-Key.
    pub idempotency: Option<&'static str>,
    pub idempotency_key: Option<String>,
}

/// Request ids: a per-process prefix and a counter (unique across replicas and restarts).
pub struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> RequestIds {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        RequestIds { prefix: format!("{:x}{:04x}", nanos & 0xffff_ffff_ffff, std::process::id() & 0xffff), next: AtomicU64::new(0) }
    }
}

impl RequestIds {
    /// The caller's id when it is a plausible one (a load balancer's or a client's), else a new one.
    fn for_request(&self, req: &Request) -> String {
        let given = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
        match given {
            Some(id) if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) => {
                id.to_string()
            }
            _ => format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

pub async fn record(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "static".to_string(), |p| p.as_str().to_string());
    let id = app.request_ids.for_request(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let mut res = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    app.metrics.record_request(&route, status, seconds);
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    if app.is_draining() {
        // Tell keep-alive clients (the load balancer) to take their next request elsewhere.
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let caller = res.extensions().get::<Caller>().map(|c| c.0.as_str());
    let ms = seconds * 1e3;
    match res.extensions().get::<InferLog>() {
        Some(i) => tracing::info!(
            target: "cairn::request",
            request_id = %id, %method, %path, %route, status, ms, caller, model = %i.model, version = %i.version,
            batch_rows = i.batch_rows, queue_ms = i.queue_ms, compute_ms = i.compute_ms,
            idempotency = i.idempotency, idempotency_key = i.idempotency_key.as_deref(),
            "request"
        ),
        None if route != "static" => {
            tracing::info!(target: "cairn::request", request_id = %id, %method, %path, %route, status, ms, caller, "request")
        }
        // Static files are many and cheap: debug level.
        None => tracing::debug!(target: "cairn::request", request_id = %id, %method, %path, status, ms, "request"),
    }
    res
}

/// Installs the process's log subscriber: `text` (human) or `json` (one object per line),
/// filtered by `RUST_LOG` (default `info`). Call once, from the binary.
pub fn init_logging(format: &str) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        "json" => builder.json().flatten_event(true).try_init(),
        "text" => builder.try_init(),
        other => return Err(format!("unknown log format '{other}': use text or json")),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}
