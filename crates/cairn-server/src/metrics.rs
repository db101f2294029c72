//! Prometheus metrics of what the server does, rendered by `metrics-exporter-prometheus`:
//! request counts and latency by route and status, batch sizes and compute time by model,
//! queue depth, idempotency (computed, replayed, store errors), access refusals.
//!
//! Each server owns its recorder instead of installing a process-wide one: tests (and an
//! embedding app) run several servers in one process, and each must count only its own.

use metrics::{Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Request latency and compute buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Rows per executed batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

const REQUESTS: &str = "cairn_http_requests_total";
const LATENCY: &str = "cairn_http_request_duration_seconds";
const BATCH_SIZE: &str = "cairn_infer_batch_size";
const COMPUTE: &str = "cairn_infer_compute_seconds";
const COMPUTED: &str = "cairn_idempotent_computed_total";
const REPLAYS: &str = "cairn_idempotent_replays_total";
const STORE_ERRORS: &str = "cairn_idempotency_store_errors_total";
const EXPLANATIONS: &str = "cairn_explanations_total";
const REFUSED: &str = "cairn_access_refused_total";
const QUEUE_DEPTH: &str = "cairn_infer_queue_depth";
const QUEUE_CAPACITY: &str = "cairn_infer_queue_capacity";
const READY: &str = "cairn_ready";
const BODY_BYTES: &str = "cairn_inflight_body_bytes";

const HELP: &[(&str, &str)] = &[
    (REQUESTS, "HTTP requests answered, by route and status."),
    (LATENCY, "Time from request to response head, by route."),
    (BATCH_SIZE, "Requests (rows) per executed batch, by model."),
    (COMPUTE, "Compute time per executed batch, by model."),
    (COMPUTED, "Requests with an Idempotency-Key computed here (the first answer for their key)."),
    (REPLAYS, "Requests answered from the idempotency store without computing."),
    (STORE_ERRORS, "Times the idempotency store could not be reached (those requests got 503)."),
    (EXPLANATIONS, "Occlusion heatmaps computed."),
    (REFUSED, "/v1 requests refused, by reason (origin, key, rate, concurrency; memory: the body budget is full)."),
    (QUEUE_DEPTH, "Requests admitted and waiting for a compute slot, by model."),
    (QUEUE_CAPACITY, "Most requests that may wait per model before 503s."),
    (READY, "1 when models are loaded and warmed and the server is not draining."),
    (BODY_BYTES, "Bytes reserved by /v1 request bodies (and their tensors) now, of --max-inflight-bytes."),
];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMPUTE.into()), LATENCY_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS))
            .expect("bucket lists are constant and non-empty");
        let recorder = builder.build_recorder();
        for (name, help) in HELP {
            recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        }
        let handle = recorder.handle();
        Metrics { recorder, handle }
    }
}

const META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect::<Vec<_>>())
}

impl Metrics {
    fn count(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.recorder.register_counter(&key(name, labels), &META).increment(1);
    }

    fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        self.recorder.register_histogram(&key(name, labels), &META).record(v);
    }

    /// Sets a gauge (values read when /metrics is scraped).
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        self.recorder.register_gauge(&key(name, labels), &META).set(v);
    }

    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        self.count(REQUESTS, &[("route", route), ("status", &status.to_string())]);
        self.observe(LATENCY, &[("route", route)], seconds);
    }

    pub fn record_batch(&self, model: &str, rows: usize, seconds: f64) {
        self.observe(BATCH_SIZE, &[("model", model)], rows as f64);
        self.observe(COMPUTE, &[("model", model)], seconds);
    }

    pub fn idempotent_computed(&self) {
        self.count(COMPUTED, &[]);
    }

    pub fn idempotent_replay(&self) {
        self.count(REPLAYS, &[]);
    }

    pub fn explanation(&self) {
        self.count(EXPLANATIONS, &[]);
    }

    pub fn access_refused(&self, reason: &str) {
        self.count(REFUSED, &[("reason", reason)]);
    }

    /// The Prometheus text, after setting the gauges read at scrape time.
    pub fn render(&self, queues: &[(String, usize, usize)], store_errors: u64, ready: bool, body_bytes: usize) -> String {
        for (model, depth, capacity) in queues {
            self.gauge(QUEUE_DEPTH, &[("model", model)], *depth as f64);
            self.gauge(QUEUE_CAPACITY, &[("model", model)], *capacity as f64);
        }
        self.recorder.register_counter(&key(STORE_ERRORS, &[]), &META).absolute(store_errors);
        self.gauge(READY, &[], if ready { 1.0 } else { 0.0 });
        self.gauge(BODY_BYTES, &[], body_bytes as f64);
        self.handle.render()
    }
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
        m.access_refused("key");
        let text = m.render(&[("tiny".into(), 2, 256)], 3, true, 4096);
        assert!(text.contains("cairn_http_requests_total{route=\"/v1/models\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("cairn_http_request_duration_seconds_bucket{route=\"/v1/models\",le=\"0.0025\"} 1"), "{text}");
        assert!(text.contains("cairn_http_request_duration_seconds_bucket{route=\"/v1/models\",le=\"0.5\"} 2"), "{text}");
        assert!(text.contains("cairn_infer_batch_size_bucket{model=\"tiny\",le=\"2\"} 0"), "{text}");
        assert!(text.contains("cairn_infer_batch_size_bucket{model=\"tiny\",le=\"4\"} 1"), "{text}");
        assert!(text.contains("cairn_infer_queue_depth{model=\"tiny\"} 2"), "{text}");
        assert!(text.contains("cairn_access_refused_total{reason=\"key\"} 1"), "{text}");
        assert!(text.contains("cairn_idempotency_store_errors_total 3"), "{text}");
        assert!(text.contains("cairn_inflight_body_bytes 4096"), "{text}");
        assert!(text.contains("# HELP cairn_http_requests_total HTTP requests answered"), "{text}");
    }

    #[test]
    fn two_servers_count_apart() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.explanation();
        assert!(a.render(&[], 0, true, 0).contains("cairn_explanations_total 1"));
        assert!(!b.render(&[], 0, true, 0).contains("cairn_explanations_total"));
    }
}
