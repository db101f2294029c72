//! A bound on the memory that request bodies may hold at once, across all `/v1` requests.
//!
//! Under load, bodies are what grows: each request's bytes are buffered whole, then copied
//! into tensors, and both live until its batch has run. The queue bounds requests waiting
//! for compute, but not bodies being read. So each `/v1` request reserves its body's size
//! (twice: bytes + tensors; `Content-Length`, or the body limit when it is not known) from
//! one budget before its body is read, and gives it back when its answer is ready. A
//! request that does not fit now gets 503 + Retry-After at once; one that could never fit
//! was already refused by the body limit (413).

use crate::error::ApiError;
use crate::App;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Budget units are KiB (a semaphore counts in u32).
const UNIT: usize = 1024;

pub struct BodyBudget {
    kib: Arc<Semaphore>,
    total_kib: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let total_kib = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget { kib: Arc::new(Semaphore::new(total_kib)), total_kib }
    }

    /// KiB reserved now (for the metrics gauge).
    pub fn in_use_bytes(&self) -> usize {
        (self.total_kib - self.kib.available_permits()) * UNIT
    }
}

pub async fn reserve(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let body = declared.unwrap_or(app.config.max_body_bytes).min(app.config.max_body_bytes);
    let kib = (2 * body).div_ceil(UNIT).clamp(1, app.budget.total_kib) as u32;
    let Ok(permit) = app.budget.kib.clone().try_acquire_many_owned(kib) else {
        app.metrics.access_refused("memory");
        return ApiError::unavailable("the server holds as many request bodies as its memory budget allows", 1)
            .hint("retry after Retry-After seconds (another replica may have room); the operator sets the budget with --max-inflight-bytes")
            .into_response();
    };
    let res = next.run(req).await;
    drop(permit);
    res
}
