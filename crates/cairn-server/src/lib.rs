//! The Cairn edge server (`cairn serve DIR`): serves a PWA and its model bundles with
//! the caching and isolation headers they need, runs the bundles' full-precision
//! models for clients that should not run them (dynamic batching, bounded queue,
//! idempotent requests), and explains predictions with occlusion heatmaps.
//!
//! ```text
//! GET  /v1/models                    the bundles under DIR/models, as loaded
//! POST /v1/models/{name}/infer       JSON or binary tensors -> outputs (+ top classes)
//! POST /v1/models/{name}/explain     one image -> occlusion heatmap + top classes
//! GET  /healthz, /metrics            liveness; Prometheus text
//! GET  /*                            static files from DIR
//! ```

mod api;
mod batcher;
mod calibrate;
mod error;
mod explain;
mod idempotency;
mod metrics;
mod models;
mod security;
mod static_files;
mod text;
mod wire;

pub use api::REPLAYED_HEADER;
pub use batcher::BatchConfig;
pub use static_files::{IMMUTABLE, REVALIDATE};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use batcher::ComputePool;
use idempotency::IdempotencyStore;
use metrics::Metrics;
use models::ServedModel;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Config {
    /// The app directory; bundles live in `root/models/<name>/`.
    pub root: PathBuf,
    pub batch: BatchConfig,
    /// Batches computing at once (each uses the kernels' thread pool).
    pub workers: usize,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest total weight size a bundle may ask the loader to allocate.
    pub max_weight_bytes: u64,
    /// Idempotency store: entries kept and how long.
    pub idempotency_entries: usize,
    pub idempotency_ttl: Duration,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            batch: BatchConfig { max_batch: 8, max_wait: Duration::from_millis(5), queue_capacity: 256, calibrate: false },
            workers: 1,
            max_body_bytes: 16 << 20,
            max_weight_bytes: 2 << 30,
            idempotency_entries: 10_000,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Everything a request handler needs.
pub struct App {
    pub config: Config,
    root: PathBuf,
    models: BTreeMap<String, Arc<ServedModel>>,
    metrics: Arc<Metrics>,
    idempotency: IdempotencyStore,
}

impl App {
    /// Loads every bundle under `config.root/models`. Must run inside a tokio runtime (each
    /// model starts its batcher task). Returns the app and one line per bundle that failed.
    pub fn load(config: Config) -> Result<(Arc<App>, Vec<String>), String> {
        let root = config.root.canonicalize().map_err(|e| format!("cannot serve {}: {e}", config.root.display()))?;
        if !root.is_dir() {
            return Err(format!("cannot serve {}: not a directory", root.display()));
        }
        let metrics = Arc::new(Metrics::default());
        let pool = ComputePool::new(config.workers, metrics.clone());
        let (models, problems) = models::discover(&root, config.max_weight_bytes, &config.batch, &pool);
        let idempotency = IdempotencyStore::new(config.idempotency_entries, config.idempotency_ttl);
        Ok((Arc::new(App { config, root, models, metrics, idempotency }), problems))
    }

    /// Names of the loaded models.
    pub fn model_names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// One line per model: how many rows its batches stack, and the measurements behind it.
    pub fn batching_summary(&self) -> Vec<String> {
        self.models
            .values()
            .map(|m| {
                let measured = m.calibration.as_ref().map_or(String::new(), |c| {
                    let per: Vec<String> = c.ms_per_row.iter().map(|(b, ms)| format!("{b}: {ms:.2}")).collect();
                    format!(" (measured ms/row at batch {})", per.join(", "))
                });
                format!("{}: batches of up to {} rows{measured}", m.name, m.batcher.config().max_batch)
            })
            .collect()
    }

    pub fn router(self: &Arc<App>) -> Router {
        let api = Router::new()
            .route("/models", get(api::list_models))
            .route("/models/{name}/infer", post(api::infer))
            .route("/models/{name}/explain", post(api::explain))
            .route("/models/{name}/embed", post(text::embed))
            .route("/models/{name}/classify", post(text::classify))
            .fallback(api::api_not_found)
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes));
        Router::new()
            .nest("/v1", api)
            .route("/healthz", get(api::healthz))
            .route("/metrics", get(api::metrics))
            .fallback(static_file)
            .layer(middleware::from_fn_with_state(self.clone(), record_request))
            .layer(security::compression())
            .layer(middleware::from_fn(security::headers))
            .with_state(self.clone())
    }
}

async fn static_file(State(app): State<Arc<App>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    static_files::serve(&app.root, &method, uri.path(), &headers).await
}

/// Counts every answered request by route and status, with its latency.
async fn record_request(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "static".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let res = next.run(req).await;
    app.metrics.record_request(&route, res.status().as_u16(), started.elapsed().as_secs_f64());
    res
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.router()).with_graceful_shutdown(shutdown).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
