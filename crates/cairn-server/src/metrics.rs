//! Prometheus text exposition (format 0.0.4) of what the server does: request counts by
//! route and status, latency and batch-size histograms, queue depth, idempotent replays.
//! Hand-written: a dozen series do not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Request latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Rows per executed batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
pub struct Metrics {
    /// (route, status) -> count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// route -> latency histogram.
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// model -> rows per batch.
    batches: Mutex<BTreeMap<String, Histogram>>,
    /// model -> seconds of compute per batch.
    compute: Mutex<BTreeMap<String, Histogram>>,
    pub idempotent_replays: AtomicU64,
    pub explanations: AtomicU64,
}

/// A gauge value read when /metrics is scraped.
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(String, f64)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        *lock(&self.requests).entry((route.to_string(), status)).or_default() += 1;
        lock(&self.latency).entry(route.to_string()).or_insert_with(|| Histogram::new(LATENCY_BUCKETS)).observe(seconds);
    }

    pub fn record_batch(&self, model: &str, rows: usize, seconds: f64) {
        lock(&self.batches).entry(model.to_string()).or_insert_with(|| Histogram::new(BATCH_BUCKETS)).observe(rows as f64);
        lock(&self.compute).entry(model.to_string()).or_insert_with(|| Histogram::new(LATENCY_BUCKETS)).observe(seconds);
    }

    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP cairn_http_requests_total HTTP requests answered, by route and status.\n# TYPE cairn_http_requests_total counter\n",
        );
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "cairn_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}", escape(route));
        }
        out.push_str("# HELP cairn_http_request_duration_seconds Time from request to response head, by route.\n# TYPE cairn_http_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            h.render(&mut out, "cairn_http_request_duration_seconds", &format!("route=\"{}\"", escape(route)));
        }
        out.push_str(
            "# HELP cairn_infer_batch_size Requests (rows) per executed batch, by model.\n# TYPE cairn_infer_batch_size histogram\n",
        );
        for (model, h) in lock(&self.batches).iter() {
            h.render(&mut out, "cairn_infer_batch_size", &format!("model=\"{}\"", escape(model)));
        }
        out.push_str(
            "# HELP cairn_infer_compute_seconds Compute time per executed batch, by model.\n# TYPE cairn_infer_compute_seconds histogram\n",
        );
        for (model, h) in lock(&self.compute).iter() {
            h.render(&mut out, "cairn_infer_compute_seconds", &format!("model=\"{}\"", escape(model)));
        }
        let replays = self.idempotent_replays.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP cairn_idempotent_replays_total Requests answered from the idempotency store without computing.\n# TYPE cairn_idempotent_replays_total counter\ncairn_idempotent_replays_total {replays}");
        let explained = self.explanations.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP cairn_explanations_total Occlusion heatmaps computed.\n# TYPE cairn_explanations_total counter\ncairn_explanations_total {explained}");
        for g in gauges {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", g.name, g.help, g.name);
            for (model, v) in &g.samples {
                let _ = writeln!(out, "{}{{model=\"{}\"}} {v}", g.name, escape(model));
            }
        }
        out
    }
}

/// Label values escape backslash, quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labelled() {
        let m = Metrics::default();
        m.record_request("/v1/models", 200, 0.002);
        m.record_request("/v1/models", 200, 0.3);
        m.record_batch("tiny", 3, 0.01);
        let text = m.render(&[Gauge { name: "cairn_infer_queue_depth", help: "waiting", samples: vec![("tiny".into(), 2.0)] }]);
        assert!(text.contains("cairn_http_requests_total{route=\"/v1/models\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("cairn_http_request_duration_seconds_bucket{route=\"/v1/models\",le=\"0.0025\"} 1"), "{text}");
        assert!(text.contains("cairn_http_request_duration_seconds_bucket{route=\"/v1/models\",le=\"0.5\"} 2"), "{text}");
        assert!(text.contains("cairn_infer_batch_size_bucket{model=\"tiny\",le=\"2\"} 0"), "{text}");
        assert!(text.contains("cairn_infer_batch_size_bucket{model=\"tiny\",le=\"4\"} 1"), "{text}");
        assert!(text.contains("cairn_infer_queue_depth{model=\"tiny\"} 2"), "{text}");
    }
}
