//! `cairn serve`: the edge server over a directory holding the app and its bundles.

use anyhow::{bail, Context, Result};
use cairn_server::{App, BatchConfig, Config};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Serve a web app and its model bundles, and run the models at full precision.
///
/// DIR holds the app (index.html, sw.js, ...) and bundles in DIR/models/NAME/ (as
/// written by `cairn pack -o DIR/models/NAME`). Shards are served as immutable, manifests,
/// HTML and the service worker as always-revalidate; the API lives under /v1.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn serve dist\n  cairn serve dist --addr 0.0.0.0:8080 --max-batch 16 --max-wait-ms 4\n  curl localhost:8080/v1/models"
)]
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
    /// Threads for the kernels (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub fn main(args: ServeArgs) -> Result<()> {
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
        let names = app.model_names();
        println!(
            "serving {} on http://{local} | models: {} | batch wait {} ms, queue {}",
            args.dir.display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") },
            args.max_wait_ms,
            args.queue
        );
        cairn_server::serve(listener, app, cairn_server::shutdown_signal()).await.context("the server failed")?;
        println!("stopped: requests in flight were answered");
        Ok(())
    })
}
