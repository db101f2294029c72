//! `cairn-load`: a bounded, closed-loop load generator for `cairn serve`.
//!
//! Each of `--clients` tasks sends one request, waits for the answer, and sends the
//! next, for `--seconds`. It reports throughput, status counts (200 / 503 / other /
//! transport errors / timeouts), latency percentiles of successful requests, and (with
//! `--server-pid`) the server's resident memory sampled every second, so a leak or an
//! unbounded queue shows up as RSS that keeps growing.
//!
//! For a replica set behind a load balancer: `--idempotency` gives every request its own
//! Idempotency-Key, and `--retries N` retries it (same key) after 429/502/503/504, a
//! transport error or a timeout, honoring Retry-After; a request that never succeeds is
//! `failed`. `--keys-out` lists the keys answered, so a harness can check from the
//! servers' logs that each was computed exactly once. `--api-key` sends a Bearer key.

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
    /// Label for the JSON summary (and the prefix of idempotency keys).
    #[arg(long, default_value = "run")]
    label: String,
    /// Send an Idempotency-Key with every request (retries reuse it).
    #[arg(long)]
    idempotency: bool,
    /// Retries of one request after 429/502/503/504, a transport error or a timeout.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Send `Authorization: Bearer KEY` (or set CAIRN_LOAD_API_KEY).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Write the Idempotency-Keys that were answered 200 here, one per line.
    #[arg(long, value_name = "FILE", requires = "idempotency")]
    keys_out: Option<std::path::PathBuf>,
    /// Stop early when this file appears (a harness ends a run without killing it).
    #[arg(long, value_name = "FILE")]
    stop_file: Option<std::path::PathBuf>,
}

/// Attempts are counted by outcome; latencies and failures are per request (all its attempts).
#[derive(Default)]
struct Tally {
    ok_latencies_ms: Vec<f64>,
    status_503: u64,
    other_status: u64,
    transport_errors: u64,
    timeouts: u64,
    bytes: u64,
    /// Every non-200 status seen, by code (attempts).
    statuses: std::collections::BTreeMap<u16, u64>,
    /// Requests that never got a 200 (after all retries).
    failed: u64,
    /// Requests that needed more than one attempt, and the longest such wait.
    retried: u64,
    max_recovery_ms: f64,
    /// Seconds since the start of the first and last failed attempt.
    first_error_s: Option<f64>,
    last_error_s: Option<f64>,
    ok_keys: Vec<String>,
}

/// How one attempt ended.
enum Attempt {
    Ok(usize),
    Status(u16, Option<f64>),
    Transport,
    Timeout,
}

impl Attempt {
    /// Whether another attempt may succeed, and how long to wait first.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Attempt::Ok(_) => None,
            Attempt::Status(429 | 502 | 503 | 504, after) => Some(Duration::from_secs_f64(after.unwrap_or(0.05).clamp(0.02, 1.0))),
            Attempt::Status(..) => None,
            Attempt::Transport | Attempt::Timeout => Some(Duration::from_millis(50)),
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
            let shape: Vec<usize> =
                s.split(',').map(|d| d.trim().parse()).collect::<Result<_, _>>().context("--shape must be sizes separated by commas")?;
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
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.clients).build_http();
    // hyper parses "notaurl" as a bare path: every request would then fail as a transport
    // error, which reads like a dead server. Say so before sending anything.
    let uri = match args.url.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => uri,
        _ => bail!(
            "bad URL {:?}: give an http:// URL with a host, e.g. http://127.0.0.1:8080/v1/models/NAME/infer (https is not supported)",
            args.url
        ),
    };
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

    let api_key = args.api_key.clone().or_else(|| std::env::var("CAIRN_LOAD_API_KEY").ok());
    let auth = api_key.map(|k| format!("Bearer {k}"));
    let stop_file = args.stop_file.clone();
    let mut tasks = Vec::new();
    for client_no in 0..args.clients {
        let (client, uri, body, tally, auth, stop_file) =
            (client.clone(), uri.clone(), body.clone(), tally.clone(), auth.clone(), stop_file.clone());
        let (label, idempotency, retries) = (args.label.clone(), args.idempotency, args.retries);
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while Instant::now() < end && !stop_file.as_ref().is_some_and(|f| f.exists()) {
                seq += 1;
                let key = idempotency.then(|| format!("{label}-{client_no}-{seq}"));
                let t0 = Instant::now();
                let mut attempts = 0;
                let ok = loop {
                    attempts += 1;
                    let mut req = Request::builder().uri(uri.clone());
                    req = match &body {
                        Some(_) => req.method(Method::POST).header("content-type", content_type),
                        None => req.method(Method::GET),
                    };
                    if let Some(k) = &key {
                        req = req.header("idempotency-key", k);
                    }
                    if let Some(a) = &auth {
                        req = req.header("authorization", a);
                    }
                    let req = req.body(Full::new(body.clone().unwrap_or_default())).expect("valid request");
                    let outcome = match tokio::time::timeout(timeout, async {
                        let res = client.request(req).await?;
                        let status = res.status();
                        let after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
                        let body = res.into_body().collect().await?.to_bytes();
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, after, body.len()))
                    })
                    .await
                    {
                        Err(_) => Attempt::Timeout,
                        Ok(Err(_)) => Attempt::Transport,
                        Ok(Ok((s, _, n))) if s.as_u16() == 200 => Attempt::Ok(n),
                        Ok(Ok((s, after, _))) => Attempt::Status(s.as_u16(), after),
                    };
                    let since_start = start.elapsed().as_secs_f64();
                    {
                        let mut t = tally.lock().unwrap();
                        match &outcome {
                            Attempt::Ok(n) => t.bytes += *n as u64,
                            Attempt::Timeout => t.timeouts += 1,
                            Attempt::Transport => t.transport_errors += 1,
                            Attempt::Status(s, after) => {
                                *t.statuses.entry(*s).or_default() += 1;
                                if *s == 503 && after.is_some() {
                                    t.status_503 += 1;
                                } else {
                                    t.other_status += 1;
                                }
                            }
                        }
                        if !matches!(outcome, Attempt::Ok(_)) {
                            t.first_error_s.get_or_insert(since_start);
                            t.last_error_s = Some(since_start);
                        }
                    }
                    match outcome.retry_after() {
                        _ if matches!(outcome, Attempt::Ok(_)) => break true,
                        Some(wait) if attempts <= retries => tokio::time::sleep(wait).await,
                        // Without retries, a 503 is the expected answer above capacity: back
                        // off a little and move on, so the load stays on.
                        Some(_) if retries == 0 => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            break false;
                        }
                        _ => break false,
                    }
                };
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let mut t = tally.lock().unwrap();
                if ok {
                    t.ok_latencies_ms.push(ms);
                    if attempts > 1 {
                        t.retried += 1;
                        t.max_recovery_ms = t.max_recovery_ms.max(ms);
                    }
                    if let Some(k) = key {
                        t.ok_keys.push(k);
                    }
                } else {
                    t.failed += 1;
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
    let mut t = Arc::try_unwrap(tally).map_err(|_| anyhow::anyhow!("clients still running"))?.into_inner().unwrap();
    t.ok_latencies_ms.sort_by(f64::total_cmp);
    if let Some(path) = &args.keys_out {
        std::fs::write(path, t.ok_keys.iter().map(|k| format!("{k}\n")).collect::<String>())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let ok = t.ok_latencies_ms.len() as u64;
    let rss = rss_samples.lock().unwrap().clone();
    // Memory: compare the second half of the run with the first (after warm-up).
    let half = rss.len() / 2;
    let (first_max, second_max) = (rss[..half.max(1).min(rss.len())].iter().max().copied(), rss[half..].iter().max().copied());
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
        "failed": t.failed,
        "retried": t.retried,
        "max_recovery_ms": t.max_recovery_ms,
        "statuses": t.statuses.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "error_window_s": [t.first_error_s, t.last_error_s],
        "p50_ms": percentile(&t.ok_latencies_ms, 0.5),
        "p90_ms": percentile(&t.ok_latencies_ms, 0.9),
        "p99_ms": percentile(&t.ok_latencies_ms, 0.99),
        "max_ms": t.ok_latencies_ms.last().copied().unwrap_or(f64::NAN),
        "rss_mib": { "start": rss.first().map(|k| *k as f64 / 1024.0), "max_first_half": first_max.map(|k| k as f64 / 1024.0), "max_second_half": second_max.map(|k| k as f64 / 1024.0), "end": rss.last().map(|k| *k as f64 / 1024.0), "samples": rss.len() },
    });
    println!(
        "{}: {} clients {:.0} s | {} ok ({:.1}/s, {:.1} MiB/s) | 503 {} | other {} | errors {} | timeouts {} | failed {} (retried {}, longest recovery {:.0} ms) | p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms | RSS MiB {}",
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
        t.failed,
        t.retried,
        t.max_recovery_ms,
        percentile(&t.ok_latencies_ms, 0.5),
        percentile(&t.ok_latencies_ms, 0.9),
        percentile(&t.ok_latencies_ms, 0.99),
        if rss.is_empty() { "n/a".to_string() } else { format!("start {:.0}, end {:.0}, max {:.0}", rss[0] as f64 / 1024.0, *rss.last().unwrap() as f64 / 1024.0, *rss.iter().max().unwrap() as f64 / 1024.0) },
    );
    println!("{summary}");
    Ok(())
}
