//! `cairn serve`: the edge server over a directory holding the app and its bundles.

use anyhow::{bail, Context, Result};
use cairn_server::{AccessConfig, App, BatchConfig, Config};
use clap::Args;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// Where `--api-keys` is read from when the flag is absent (same format, commas allowed).
const KEYS_ENV: &str = "CAIRN_API_KEYS";

/// Serve a web app and its model bundles, and run the models at full precision.
///
/// DIR holds the app (index.html, sw.js, ...) and bundles in DIR/models/NAME/ (as
/// written by `cairn pack -o DIR/models/NAME`). Shards are served as immutable, manifests,
/// HTML and the service worker as always-revalidate; the API lives under /v1.
///
/// To run several replicas behind a load balancer: share idempotency keys through Redis
/// (--idempotency redis://...), route on /readyz (503 while warming and while draining
/// after SIGTERM), and give the balancer --drain-seconds to notice. See deploy/README.md.
#[derive(Args)]
#[command(after_help = r#"Examples:
  cairn serve dist
  cairn serve dist --addr 0.0.0.0:8080 --max-batch 16 --max-wait-ms 4
  cairn serve dist --idempotency redis://127.0.0.1:6379 --api-keys keys.txt --rate-limit 20 \
      --max-in-flight 8 --cors-origin https://app.example --log-format json --drain-seconds 2
  curl -H 'Authorization: Bearer KEY' localhost:8080/v1/models

API keys file: one 'NAME SHA256HEX' per line, the key's SHA-256 (never the key itself):
  echo "app $(printf %s "$KEY" | sha256sum | cut -d' ' -f1)" >> keys.txt"#)]
pub struct ServeArgs {
    /// The app directory; bundles in DIR/models/*/manifest.json are loaded and served.
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Most rows stacked into one model run (1 turns batching off); --calibrate may pick fewer.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Measure at load, on an idle server, which batch size up to --max-batch runs the most
    /// rows per second, and use it. Off by default: under sustained load batches of 8 ran
    /// MobileNetV2 1.85x faster here although one row at a time was faster when idle.
    #[arg(long)]
    calibrate: bool,
    /// Longest a request waits for others to batch with, in milliseconds.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Requests that may wait per model; beyond it the server answers 503 + Retry-After.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Batches computing at once.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = 16 << 20)]
    max_body: usize,
    /// Most bytes all /v1 request bodies (and the tensors parsed from them) may hold at once;
    /// a request that does not fit gets 503 + Retry-After. This is what bounds the server's
    /// memory under many clients (see deploy/README.md).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    max_inflight_bytes: usize,
    /// Threads for the kernels (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Where Idempotency-Keys live: `memory` (this process) or `redis://HOST:PORT[/DB]`
    /// (shared by every replica). With Redis down, requests with a key get 503 + Retry-After.
    #[arg(long, default_value = "memory", value_name = "memory|redis://...")]
    idempotency: String,
    /// API keys for /v1 ('NAME SHA256HEX' per line); also read from $CAIRN_API_KEYS. Without
    /// keys /v1 is open. Static files and bundles are always public.
    #[arg(long, value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// Requests per second per API key (429 + Retry-After beyond it).
    #[arg(long, value_name = "N")]
    rate_limit: Option<NonZeroU32>,
    /// Burst allowed above --rate-limit (default: the rate).
    #[arg(long, value_name = "N", requires = "rate_limit")]
    burst: Option<NonZeroU32>,
    /// Requests one API key may have in flight (429 + Retry-After beyond it).
    #[arg(long, value_name = "N")]
    max_in_flight: Option<usize>,
    /// An origin (https://app.example) whose pages may call /v1 cross-origin; repeat for more.
    /// Other cross-origin callers get 403; same-origin pages always may.
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<String>,
    /// Request logs on stderr: `text` or `json` (one object per line). RUST_LOG filters.
    #[arg(long, default_value = "text", value_name = "text|json")]
    log_format: String,
    /// After SIGTERM, answer /readyz 503 for this long (still serving) before closing the
    /// listener; set it above the load balancer's check interval x fall count.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    drain_seconds: f64,
    /// Look for new bundle versions under DIR/models this often (0: never).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    reload_seconds: f64,
    /// How long a replaced model version keeps answering clients pinned to it
    /// (Cairn-Model-Version header or ?version=).
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    reload_grace: f64,
}

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{flag} must be a number of seconds >= 0, got {v}"))
}

fn access_config(args: &ServeArgs) -> Result<AccessConfig> {
    let text = match &args.api_keys {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("cannot read the API keys file {}", path.display()))?),
        None => std::env::var(KEYS_ENV).ok(),
    };
    let keys = match text {
        Some(t) => cairn_server::parse_keys(&t).map_err(anyhow::Error::msg).context("bad API keys")?,
        None => Vec::new(),
    };
    if args.max_in_flight == Some(0) {
        bail!("--max-in-flight must be at least 1");
    }
    for o in &args.cors_origin {
        if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
            bail!("--cors-origin '{o}' is not an origin: write scheme://host[:port], e.g. https://app.example");
        }
    }
    Ok(AccessConfig {
        keys,
        rate_per_second: args.rate_limit,
        burst: args.burst,
        max_concurrent: args.max_in_flight,
        cors_origins: args.cors_origin.clone(),
    })
}

pub fn main(args: ServeArgs) -> Result<()> {
    // Before any thread starts: arenas are assigned as threads first allocate.
    crate::malloc_tuning::apply();
    if args.max_batch == 0 || args.queue == 0 || args.workers == 0 {
        bail!("--max-batch, --queue and --workers must be at least 1");
    }
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("cannot start the thread pool")?;
    }
    let mut config = Config::new(&args.dir);
    config.batch = BatchConfig {
        max_batch: args.max_batch,
        max_wait: Duration::from_millis(args.max_wait_ms),
        queue_capacity: args.queue,
        calibrate: args.calibrate,
    };
    config.workers = args.workers;
    config.max_body_bytes = args.max_body;
    config.max_inflight_bytes = args.max_inflight_bytes;
    config.access = access_config(&args)?;
    config.idempotency_redis = match args.idempotency.as_str() {
        "memory" => None,
        url if url.starts_with("redis://") || url.starts_with("rediss://") => Some(url.to_string()),
        other => bail!("--idempotency '{other}': use memory or redis://HOST:PORT[/DB]"),
    };
    config.drain_delay = seconds("drain-seconds", args.drain_seconds)?;
    config.reload_interval = Some(seconds("reload-seconds", args.reload_seconds)?).filter(|d| !d.is_zero());
    config.reload_grace = seconds("reload-grace", args.reload_grace)?;
    cairn_server::init_logging(&args.log_format).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (app, problems) = App::load(config).map_err(anyhow::Error::msg)?;
        for p in &problems {
            eprintln!("warning: {p}");
        }
        for line in app.batching_summary() {
            println!("{line}");
        }
        let listener = tokio::net::TcpListener::bind(&args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr()?;
        // Listen while warming: /healthz answers, /readyz says 503 until the models are warm.
        let server = tokio::spawn(cairn_server::serve(listener, app.clone(), cairn_server::shutdown_signal()));
        for p in app.warm_up().await {
            eprintln!("warning: {p}");
        }
        let names = app.model_names();
        println!(
            "serving {} on http://{local} | models: {} | batch wait {} ms, queue {} | idempotency: {} | API keys: {}",
            args.dir.display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") },
            args.max_wait_ms,
            args.queue,
            app.idempotency_backend(),
            if app.config.access.keys.is_empty() { "none (/v1 is open)".to_string() } else { app.config.access.keys.len().to_string() },
        );
        server.await.context("the server task failed")?.context("the server failed")?;
        println!("stopped: requests in flight were answered");
        Ok(())
    })
}
