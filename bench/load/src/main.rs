//! `cairn-load`: a bounded, closed-loop load generator for `cairn serve`.
//!
//! Each of `--clients` tasks sends one request, waits for the answer, and sends the
//! next, for `--seconds`. It reports throughput, status counts (200 / 503 / other /
//! transport errors / timeouts), latency percentiles of successful requests, and (with
//! `--server-pid`) the server's resident memory sampled every second, so a leak or an
//! unbounded queue shows up as RSS that keeps growing.

use anyhow::{bail, Context, Result};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Closed-loop HTTP load against cairn serve (infer or static files)")]
struct Args {
    /// Target URL, e.g. http://127.0.0.1:8080/v1/models/mobilenetv2/infer
    url: String,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// POST a random f32 tensor of this shape as application/octet-stream (else GET).
    #[arg(long, value_name = "1,3,224,224")]
    shape: Option<String>,
    /// POST this file's bytes as application/json instead (e.g. a multi-input request).
    #[arg(long, value_name = "FILE", conflicts_with = "shape")]
    json: Option<std::path::PathBuf>,
    /// A request not answered within this many seconds counts as a timeout.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Sample this process's VmRSS every second.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Label for the JSON summary.
    #[arg(long, default_value = "run")]
    label: String,
}

#[derive(Default)]
struct Tally {
    ok_latencies_ms: Vec<f64>,
    status_503: u64,
    other_status: u64,
    transport_errors: u64,
    timeouts: u64,
    bytes: u64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.seconds <= 0.0 {
        bail!("--clients and --seconds must be positive");
    }
    let body: Option<Bytes> = match &args.shape {
        Some(s) => {
            let shape: Vec<usize> = s
                .split(',')
                .map(|d| d.trim().parse())
                .collect::<Result<_, _>>()
                .context("--shape must be sizes separated by commas")?;
            let n: usize = shape.iter().product();
            // Deterministic values in [-1, 1): a typical normalized image.
            let mut x = 0x9E37_79B9u32;
            let bytes: Vec<u8> = (0..n)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    ((x >> 8) as f32 / (1u32 << 23) as f32 - 1.0).to_le_bytes()
                })
                .collect();
            Some(Bytes::from(bytes))
        }
        None => match &args.json {
            Some(p) => Some(Bytes::from(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)),
            None => None,
        },
    };
    let content_type = if args.json.is_some() { "application/json" } else { "application/octet-stream" };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.clients)
        .build_http();
    let uri: hyper::Uri = args.url.parse().context("bad URL")?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let timeout = Duration::from_secs_f64(args.timeout);

    let rss_samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = args.server_pid.map(|pid| {
        let samples = rss_samples.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid) {
                    samples.lock().unwrap().push(kib);
                }
                if Instant::now() >= end {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });

    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, uri, body, tally) = (client.clone(), uri.clone(), body.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let req = match &body {
                    Some(b) => Request::builder()
                        .method(Method::POST)
                        .uri(uri.clone())
                        .header("content-type", content_type)
                        .body(Full::new(b.clone())),
                    None => Request::builder()
                        .method(Method::GET)
                        .uri(uri.clone())
                        .body(Full::new(Bytes::new())),
                }
                .expect("valid request");
                let t0 = Instant::now();
                let outcome = tokio::time::timeout(timeout, async {
                    let res = client.request(req).await?;
                    let status = res.status();
                    let retry_after = res.headers().get("retry-after").is_some();
                    let body = res.into_body().collect().await?.to_bytes();
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
                        status,
                        retry_after,
                        body.len(),
                    ))
                })
                .await;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let backoff = matches!(&outcome, Ok(Ok((s, _, _))) if s.as_u16() == 503);
                {
                    let mut t = tally.lock().unwrap();
                    match outcome {
                        Err(_) => t.timeouts += 1,
                        Ok(Err(_)) => t.transport_errors += 1,
                        Ok(Ok((status, retry_after, n))) => {
                            t.bytes += n as u64;
                            match status.as_u16() {
                                200 => t.ok_latencies_ms.push(ms),
                                503 if retry_after => t.status_503 += 1,
                                _ => t.other_status += 1,
                            }
                        }
                    }
                }
                if backoff {
                    // A real client would honor Retry-After; here the load is meant to stay on,
                    // so wait only a little before asking again.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(s) = sampler {
        s.abort();
    }
    let mut t = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("clients still running"))?
        .into_inner()
        .unwrap();
    t.ok_latencies_ms.sort_by(f64::total_cmp);
    let ok = t.ok_latencies_ms.len() as u64;
    let rss = rss_samples.lock().unwrap().clone();
    // Memory: compare the second half of the run with the first (after warm-up).
    let half = rss.len() / 2;
    let (first_max, second_max) = (
        rss[..half.max(1).min(rss.len())].iter().max().copied(),
        rss[half..].iter().max().copied(),
    );
    let summary = serde_json::json!({
        "label": args.label,
        "url": args.url,
        "clients": args.clients,
        "seconds": elapsed,
        "ok": ok,
        "ok_per_s": ok as f64 / elapsed,
        "mib_per_s": t.bytes as f64 / elapsed / (1 << 20) as f64,
        "status_503": t.status_503,
        "other_status": t.other_status,
        "transport_errors": t.transport_errors,
        "timeouts": t.timeouts,
        "p50_ms": percentile(&t.ok_latencies_ms, 0.5),
        "p90_ms": percentile(&t.ok_latencies_ms, 0.9),
        "p99_ms": percentile(&t.ok_latencies_ms, 0.99),
        "max_ms": t.ok_latencies_ms.last().copied().unwrap_or(f64::NAN),
        "rss_mib": { "start": rss.first().map(|k| *k as f64 / 1024.0), "max_first_half": first_max.map(|k| k as f64 / 1024.0), "max_second_half": second_max.map(|k| k as f64 / 1024.0), "end": rss.last().map(|k| *k as f64 / 1024.0), "samples": rss.len() },
    });
    println!(
        "{}: {} clients {:.0} s | {} ok ({:.1}/s, {:.1} MiB/s) | 503 {} | other {} | errors {} | timeouts {} | p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms | RSS MiB {}",
        args.label,
        args.clients,
        elapsed,
        ok,
        ok as f64 / elapsed,
        t.bytes as f64 / elapsed / (1 << 20) as f64,
        t.status_503,
        t.other_status,
        t.transport_errors,
        t.timeouts,
        percentile(&t.ok_latencies_ms, 0.5),
        percentile(&t.ok_latencies_ms, 0.9),
        percentile(&t.ok_latencies_ms, 0.99),
        if rss.is_empty() { "n/a".to_string() } else { format!("start {:.0}, end {:.0}, max {:.0}", rss[0] as f64 / 1024.0, *rss.last().unwrap() as f64 / 1024.0, *rss.iter().max().unwrap() as f64 / 1024.0) },
    );
    println!("{summary}");
    Ok(())
}
