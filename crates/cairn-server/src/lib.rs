//! The Cairn edge server (`cairn serve DIR`): serves a PWA and its model bundles with
//! the caching and isolation headers they need, runs the bundles' full-precision
//! models for clients that should not run them (dynamic batching, bounded queue,
//! idempotent requests, in memory or shared through Redis), and explains predictions
//! with occlusion heatmaps. Built to run as one of several replicas behind a load
//! balancer: readiness, draining, access control, structured logs, live model updates.
//!
//! ```text
//! GET  /v1/models                    the bundles under DIR/models, as loaded (and versions retiring)
//! POST /v1/models/{name}/infer       JSON or binary tensors -> outputs (+ top classes)
//! POST /v1/models/{name}/batch       NDJSON, one input per line -> NDJSON results as they finish
//! POST /v1/models/{name}/explain     one image -> occlusion heatmap + top classes
//! GET  /healthz, /readyz, /metrics   liveness; readiness (models loaded and warmed, not draining); Prometheus
//! GET  /*                            static files from DIR (public: no key needed)
//! ```

mod access;
mod api;
mod batch;
mod batcher;
mod budget;
mod calibrate;
mod error;
mod explain;
pub mod idempotency;
mod json_tensor;
mod live;
mod metrics;
mod models;
mod request_log;
mod security;
mod static_files;
mod text;
mod wire;

pub use access::{hash_key, parse_keys, AccessConfig, ApiKey};
pub use api::{REPLAYED_HEADER, VERSION_HEADER};
pub use batcher::BatchConfig;
pub use error::ApiError;
pub use request_log::{init_logging, REQUEST_ID};
pub use static_files::{IMMUTABLE, REVALIDATE};

use access::Access;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use batcher::ComputePool;
use idempotency::{IdempotencyStore, MemoryStore, RedisStore};
use metrics::Metrics;
use models::ModelSet;
use request_log::RequestIds;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
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
    /// Most bytes all `/v1` request bodies (and their tensors) may hold at once; beyond it 503.
    pub max_inflight_bytes: usize,
    /// Largest total weight size a bundle may ask the loader to allocate.
    pub max_weight_bytes: u64,
    /// Idempotency store: entries kept (in memory) and how long (both stores).
    pub idempotency_entries: usize,
    pub idempotency_ttl: Duration,
    /// `redis://HOST:PORT[/DB]`: keep idempotency keys in Redis, shared by every replica.
    pub idempotency_redis: Option<String>,
    /// API keys, rate and concurrency limits, CORS origins for `/v1`.
    pub access: AccessConfig,
    /// On SIGTERM: how long to answer not-ready (while still serving) before closing the
    /// listener, so the load balancer has seen it and sends new requests elsewhere.
    pub drain_delay: Duration,
    /// How often to look for new bundle versions (None: never).
    pub reload_interval: Option<Duration>,
    /// How long a replaced version keeps answering clients pinned to it.
    pub reload_grace: Duration,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            batch: BatchConfig { max_batch: 8, max_wait: Duration::from_millis(5), queue_capacity: 256, calibrate: false },
            workers: 1,
            max_body_bytes: 16 << 20,
            max_inflight_bytes: 256 << 20,
            max_weight_bytes: 2 << 30,
            idempotency_entries: 10_000,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_redis: None,
            access: AccessConfig::default(),
            drain_delay: Duration::ZERO,
            reload_interval: None,
            reload_grace: Duration::from_secs(300),
        }
    }
}

/// Everything a request handler needs.
pub struct App {
    pub config: Config,
    root: PathBuf,
    models: RwLock<Arc<ModelSet>>,
    pool: ComputePool,
    metrics: Arc<Metrics>,
    idempotency: Box<dyn IdempotencyStore>,
    access: Access,
    budget: budget::BodyBudget,
    request_ids: RequestIds,
    /// Models loaded and warmed.
    ready: AtomicBool,
    /// SIGTERM received: not ready, finishing what is in flight.
    draining: AtomicBool,
}

impl App {
    /// An app serving `config.root` with no models yet (`load_models` adds them), so the
    /// listener can answer `/healthz` and a not-ready `/readyz` while models load. Must run
    /// inside a tokio runtime.
    pub fn new(config: Config) -> Result<Arc<App>, String> {
        let root = config.root.canonicalize().map_err(|e| format!("cannot serve {}: {e}", config.root.display()))?;
        if !root.is_dir() {
            return Err(format!("cannot serve {}: not a directory", root.display()));
        }
        let metrics = Arc::new(Metrics::default());
        let pool = ComputePool::new(config.workers, metrics.clone());
        let idempotency: Box<dyn IdempotencyStore> = match &config.idempotency_redis {
            Some(url) => Box::new(RedisStore::connect(url, config.idempotency_ttl)?),
            None => Box::new(MemoryStore::new(config.idempotency_entries, config.idempotency_ttl)),
        };
        let access = Access::new(&config.access);
        let budget = budget::BodyBudget::new(config.max_inflight_bytes.max(2 * config.max_body_bytes));
        Ok(Arc::new(App {
            config,
            root,
            models: RwLock::new(Arc::default()),
            pool,
            metrics,
            idempotency,
            access,
            budget,
            request_ids: RequestIds::default(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }))
    }

    /// Loads every bundle under `root/models` (blocking: verifies and prepares every model).
    /// Returns one line per bundle that failed.
    pub fn load_models(&self) -> Vec<String> {
        let (current, problems) = models::discover(&self.root, self.config.max_weight_bytes, &self.config.batch, &self.pool);
        self.swap_models(|_| ModelSet { current: current.clone(), retiring: Vec::new() });
        problems
    }

    /// `new` + `load_models`; the app turns ready after `warm_up`.
    pub fn load(config: Config) -> Result<(Arc<App>, Vec<String>), String> {
        let app = App::new(config)?;
        let problems = app.load_models();
        Ok((app, problems))
    }

    /// Runs one request through every model, then reports ready. Returns one line per
    /// model that could not be warmed (it is served anyway).
    pub async fn warm_up(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for m in self.models().current.values() {
            if let Err(e) = models::warm(m).await {
                problems.push(format!("model '{}' was not warmed: {e}", m.name));
            }
        }
        self.ready.store(true, Ordering::SeqCst);
        problems
    }

    /// Ready for traffic: models loaded and warmed, and not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.is_draining()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts draining: `/readyz` answers 503 from now on; requests are still served.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The models now (a snapshot: a live update swaps in a new set, never edits one).
    pub fn models(&self) -> Arc<ModelSet> {
        self.models.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn swap_models(&self, next: impl FnOnce(&ModelSet) -> ModelSet) {
        let mut guard = self.models.write().unwrap_or_else(|e| e.into_inner());
        let new = Arc::new(next(&guard));
        *guard = new;
    }

    /// Forgets versions whose grace period has ended.
    fn prune_retired(&self) {
        let now = Instant::now();
        if self.models().retiring.iter().any(|r| r.until <= now) {
            self.swap_models(|set| ModelSet {
                current: set.current.clone(),
                retiring: set.retiring.iter().filter(|r| r.until > now).cloned().collect(),
            });
        }
    }

    /// Names of the loaded models.
    pub fn model_names(&self) -> Vec<String> {
        self.models().current.keys().cloned().collect()
    }

    /// `memory` or `redis`.
    pub fn idempotency_backend(&self) -> &'static str {
        self.idempotency.backend()
    }

    /// One line per model: how many rows its batches stack, and the measurements behind it.
    pub fn batching_summary(&self) -> Vec<String> {
        self.models()
            .current
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

    /// Every route, in one place. `/v1` passes access control (CORS preflights are answered
    /// before it); everything else is public.
    pub fn router(self: &Arc<App>) -> Router {
        let mut api = Router::new()
            .route("/models", get(api::list_models))
            .route("/models/{name}/infer", post(api::infer))
            .route("/models/{name}/batch", post(batch::batch))
            .route("/models/{name}/explain", post(api::explain))
            .route("/models/{name}/embed", post(text::embed))
            .route("/models/{name}/classify", post(text::classify))
            .route("/models/{name}/tokenize", post(text::tokenize))
            .fallback(api::api_not_found)
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .layer(middleware::from_fn_with_state(self.clone(), budget::reserve))
            .layer(middleware::from_fn_with_state(self.clone(), access::guard));
        if let Some(cors) = self.access.cors() {
            api = api.layer(cors);
        }
        Router::new()
            .nest("/v1", api)
            .route("/healthz", get(api::healthz))
            .route("/readyz", get(api::readyz))
            .route("/metrics", get(api::metrics))
            .fallback(static_file)
            .layer(middleware::from_fn_with_state(self.clone(), request_log::record))
            .layer(security::compression())
            .layer(middleware::from_fn(security::headers))
            .with_state(self.clone())
    }
}

async fn static_file(State(app): State<Arc<App>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    static_files::serve(&app.root, &method, uri.path(), &headers).await
}

/// Serves `app` on `listener` until `shutdown` resolves; then drains: not ready for
/// `config.drain_delay` (still serving, so the load balancer moves on), then the listener
/// closes and requests in flight finish. Watches for new bundle versions meanwhile when
/// `config.reload_interval` is set.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(every) = app.config.reload_interval {
        tokio::spawn(live::watch(app.clone(), every));
    }
    let draining = app.clone();
    let drain = async move {
        shutdown.await;
        draining.begin_drain();
        tracing::info!(delay_s = draining.config.drain_delay.as_secs_f64(), "draining: not ready; finishing requests in flight");
        tokio::time::sleep(draining.config.drain_delay).await;
    };
    axum::serve(listener, app.router()).with_graceful_shutdown(drain).await
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
