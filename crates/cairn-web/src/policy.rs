//! Where to run a request: on this device or on the edge server. A pure function of
//! what the browser can tell us (Network Information, Battery Status, Device Memory,
//! Save-Data), what is cached, and how recent runs went, so it is tested natively and
//! the page, the worker and the tests all use the same rules.
//!
//! The rules, first match wins:
//! 1. the page forced a place (`prefer`), unless that place cannot answer;
//! 2. offline, or no edge configured: device;
//! 3. the edge failing (2+ failures in a row, in the last 30 s): device;
//! 4. the device has no level of the model yet: edge (one request costs far less than
//!    the whole bundle, and the download continues in the background);
//! 5. a slow network (slow-2g/2g, rtt over 1.5 s or under 100 kbit/s): device;
//! 6. Save-Data: device (no uploads);
//! 7. battery at or under 20% and not charging: edge (the radio costs less than the CPU);
//! 8. the edge much faster (under half the device's time, round trip included): edge;
//! 9. a weak device (under 2 GB of memory, under 4 cores, or a browser without wasm SIMD
//!    running the scalar build) with no latency measured yet: edge — unless the device runs
//!    the model on a GPU (WebGPU), which does not depend on the CPU's cores;
//! 10. otherwise: device (private, offline-capable, no network cost).
//!
//! The device's latency is the one measured on the backend it runs now (`backend`: a device
//! lost mid-session falls back from webgpu to wasm, and the GPU's numbers no longer apply),
//! and its first run there is kept apart (`device_warmup_ms`): a GPU's first run compiles its
//! pipelines and uploads the weights, so it says nothing of the runs after it, and must not
//! send the next requests to the edge (rule 8).

use serde::{Deserialize, Serialize};

/// Consecutive edge failures that make the edge "failing".
pub const EDGE_FAILURES_TO_AVOID: u32 = 2;
/// How long a failing edge is avoided before it is tried again.
pub const EDGE_RETRY_AFTER_MS: f64 = 30_000.0;
/// The edge must be at least this many times faster to be chosen for speed.
pub const EDGE_SPEEDUP: f64 = 2.0;
pub const LOW_BATTERY: f64 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    #[default]
    Device,
    Edge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    #[default]
    Auto,
    Device,
    Edge,
}

/// Which level of the model the device holds (see docs/adr/0005).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CachedLevel {
    #[default]
    None,
    Coarse,
    Full,
}

/// What the page knows. Field names follow the browser APIs they come from
/// (`navigator.onLine`, `navigator.connection.*`, `navigator.getBattery()`, ...);
/// a signal the browser does not offer is left out (`None`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Signals {
    pub online: bool,
    /// An edge server is configured for this model.
    pub edge_available: bool,
    /// `navigator.connection.effectiveType`: "slow-2g", "2g", "3g" or "4g".
    pub effective_type: Option<String>,
    /// Round-trip time estimate, ms.
    pub rtt: Option<f64>,
    /// Downlink estimate, Mbit/s.
    pub downlink: Option<f64>,
    pub save_data: bool,
    /// Battery level in [0, 1].
    pub battery_level: Option<f64>,
    pub charging: Option<bool>,
    /// `navigator.deviceMemory`, GB.
    pub device_memory: Option<f64>,
    pub hardware_concurrency: Option<u32>,
    pub cached_level: CachedLevel,
    /// The engine build the device runs the model on: "webgpu", "threads-relaxed", "threads",
    /// "relaxed", "simd" or "scalar" (`cairn.backend`).
    pub backend: Option<String>,
    /// Running average of the device's runs on `backend` after its first, ms.
    pub device_ms: Option<f64>,
    /// The device's first run on `backend` (pipeline compilation, weight upload, JIT), ms.
    pub device_warmup_ms: Option<f64>,
    /// Running average of edge round trips, ms.
    pub edge_ms: Option<f64>,
    /// Edge failures (errors or timeouts) in a row.
    pub edge_failures: u32,
    /// Time since the last edge failure, ms.
    pub since_edge_failure_ms: Option<f64>,
    pub prefer: Prefer,
}

impl Default for Signals {
    fn default() -> Signals {
        Signals {
            online: true,
            edge_available: true,
            effective_type: None,
            rtt: None,
            downlink: None,
            save_data: false,
            battery_level: None,
            charging: None,
            device_memory: None,
            hardware_concurrency: None,
            cached_level: CachedLevel::None,
            backend: None,
            device_ms: None,
            device_warmup_ms: None,
            edge_ms: None,
            edge_failures: 0,
            since_edge_failure_ms: None,
            prefer: Prefer::Auto,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    #[serde(rename = "where")]
    pub place: Place,
    /// A sentence a person can read ("offline: the edge cannot be reached").
    pub reason: String,
    /// The rule that decided, stable for code and tests ("offline", "edge-failing", ...).
    pub rule: &'static str,
}

fn decision(place: Place, rule: &'static str, reason: impl Into<String>) -> Decision {
    Decision { place, reason: reason.into(), rule }
}

impl Signals {
    fn edge_failing(&self) -> bool {
        self.edge_failures >= EDGE_FAILURES_TO_AVOID && self.since_edge_failure_ms.is_none_or(|t| t < EDGE_RETRY_AFTER_MS)
    }

    fn slow_network(&self) -> Option<String> {
        if let Some(t) = self.effective_type.as_deref().filter(|t| matches!(*t, "slow-2g" | "2g")) {
            return Some(format!("the network is {t}"));
        }
        if let Some(rtt) = self.rtt.filter(|&r| r > 1500.0) {
            return Some(format!("the network's round trip is {rtt:.0} ms"));
        }
        if let Some(d) = self.downlink.filter(|&d| d > 0.0 && d < 0.1) {
            return Some(format!("the network carries {:.0} kbit/s", d * 1000.0));
        }
        None
    }

    fn weak_device(&self) -> Option<String> {
        if self.backend.as_deref() == Some("webgpu") {
            return None; // the GPU runs the model, whatever the CPU
        }
        match (self.device_memory, self.hardware_concurrency, self.backend.as_deref()) {
            (Some(m), _, _) if m < 2.0 => Some(format!("this device has {m} GB of memory")),
            (_, Some(c), _) if c < 4 => Some(format!("this device has {c} cores")),
            (_, _, Some("scalar")) => Some("this browser runs WebAssembly without SIMD (the scalar build)".to_string()),
            _ => None,
        }
    }

    /// " (webgpu)": which backend a latency was measured on, for the reasons.
    fn on_backend(&self) -> String {
        self.backend.as_deref().map(|b| format!(" ({b})")).unwrap_or_default()
    }
}

/// Decides where the next request runs. Never fails: unknown signals count as "no information".
pub fn decide(s: &Signals) -> Decision {
    let edge_reachable = s.online && s.edge_available;
    match s.prefer {
        Prefer::Device => return decision(Place::Device, "forced", "the page asked for the device"),
        Prefer::Edge if edge_reachable => return decision(Place::Edge, "forced", "the page asked for the edge"),
        Prefer::Edge => {
            let why = if s.online { "no edge server is configured" } else { "the browser is offline" };
            return decision(Place::Device, "forced-unreachable", format!("the page asked for the edge, but {why}: running on the device"));
        }
        Prefer::Auto => {}
    }
    if !s.online {
        return decision(Place::Device, "offline", "offline: the edge cannot be reached");
    }
    if !s.edge_available {
        return decision(Place::Device, "no-edge", "no edge server is configured for this model");
    }
    if s.edge_failing() {
        return decision(
            Place::Device,
            "edge-failing",
            format!(
                "the edge failed {} times in a row: running on the device (the edge is retried after {:.0} s)",
                s.edge_failures,
                EDGE_RETRY_AFTER_MS / 1000.0
            ),
        );
    }
    if s.cached_level == CachedLevel::None {
        return decision(Place::Edge, "not-cached", "the model is not on this device yet: the edge answers while it downloads");
    }
    if let Some(why) = s.slow_network() {
        return decision(Place::Device, "slow-network", format!("{why}: the device answers sooner than a round trip"));
    }
    if s.save_data {
        return decision(Place::Device, "save-data", "Save-Data is on: no uploads, the model is on the device");
    }
    if let (Some(level), false) = (s.battery_level, s.charging.unwrap_or(true)) {
        if level <= LOW_BATTERY {
            return decision(
                Place::Edge,
                "low-battery",
                format!("the battery is at {:.0}% and not charging: the edge spares it", level * 100.0),
            );
        }
    }
    if let (Some(dev), Some(edge)) = (s.device_ms, s.edge_ms) {
        if edge * EDGE_SPEEDUP < dev {
            let on = s.on_backend();
            return decision(Place::Edge, "edge-faster", format!("the edge answers in {edge:.0} ms, this device{on} in {dev:.0} ms"));
        }
    }
    if s.device_ms.is_none() && s.device_warmup_ms.is_none() {
        if let Some(why) = s.weak_device() {
            return decision(Place::Edge, "weak-device", format!("{why}: the edge runs the model until this device has been measured"));
        }
    }
    let timing = match (s.device_ms, s.device_warmup_ms) {
        (Some(d), _) => format!(" in {d:.0} ms{}", s.on_backend()),
        (None, Some(w)) => format!(" (its first run{} took {w:.0} ms, warm-up included)", s.on_backend()),
        (None, None) => s.backend.as_deref().map(|b| format!(" on {b}")).unwrap_or_default(),
    };
    decision(Place::Device, "device", format!("the model is on this device and runs{timing} without the network"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capable phone on 4G with the full model cached: the device's case.
    fn phone() -> Signals {
        Signals {
            effective_type: Some("4g".into()),
            rtt: Some(50.0),
            downlink: Some(10.0),
            battery_level: Some(0.8),
            charging: Some(false),
            device_memory: Some(4.0),
            hardware_concurrency: Some(8),
            cached_level: CachedLevel::Full,
            device_ms: Some(40.0),
            edge_ms: Some(60.0),
            ..Signals::default()
        }
    }

    fn check(s: Signals, place: Place, rule: &str) -> Decision {
        let d = decide(&s);
        assert_eq!((d.place, d.rule), (place, rule), "{d:?}");
        assert!(!d.reason.is_empty());
        d
    }

    #[test]
    fn a_capable_device_with_the_model_runs_it() {
        let d = check(phone(), Place::Device, "device");
        assert!(d.reason.contains("40 ms"), "{}", d.reason);
    }

    #[test]
    fn offline_runs_on_the_device() {
        check(Signals { online: false, ..phone() }, Place::Device, "offline");
        // Even when nothing is cached (the device loads the model; the edge is unreachable).
        check(Signals { online: false, cached_level: CachedLevel::None, ..phone() }, Place::Device, "offline");
        check(Signals { edge_available: false, ..phone() }, Place::Device, "no-edge");
    }

    #[test]
    fn slow_2g_runs_on_the_device() {
        let d = check(Signals { effective_type: Some("slow-2g".into()), ..phone() }, Place::Device, "slow-network");
        assert!(d.reason.contains("slow-2g"));
        check(Signals { effective_type: Some("2g".into()), ..phone() }, Place::Device, "slow-network");
        check(Signals { rtt: Some(2000.0), ..phone() }, Place::Device, "slow-network");
        check(Signals { downlink: Some(0.05), ..phone() }, Place::Device, "slow-network");
        // Slow network beats "edge faster" and low battery: a round trip would take longer.
        check(
            Signals { effective_type: Some("2g".into()), edge_ms: Some(5.0), battery_level: Some(0.05), ..phone() },
            Place::Device,
            "slow-network",
        );
        check(Signals { effective_type: Some("3g".into()), ..phone() }, Place::Device, "device");
    }

    #[test]
    fn save_data_runs_on_the_device() {
        check(Signals { save_data: true, edge_ms: Some(5.0), ..phone() }, Place::Device, "save-data");
    }

    #[test]
    fn low_battery_not_charging_goes_to_the_edge() {
        let d = check(Signals { battery_level: Some(0.15), charging: Some(false), ..phone() }, Place::Edge, "low-battery");
        assert!(d.reason.contains("15%"), "{}", d.reason);
        check(Signals { battery_level: Some(0.15), charging: Some(true), ..phone() }, Place::Device, "device");
        // Unknown charging state: no battery rule.
        check(Signals { battery_level: Some(0.15), charging: None, ..phone() }, Place::Device, "device");
    }

    #[test]
    fn a_failing_edge_is_avoided_then_retried() {
        let failing = Signals { edge_failures: 3, since_edge_failure_ms: Some(1_000.0), battery_level: Some(0.1), ..phone() };
        check(failing.clone(), Place::Device, "edge-failing");
        check(Signals { cached_level: CachedLevel::None, ..failing.clone() }, Place::Device, "edge-failing");
        check(Signals { since_edge_failure_ms: Some(60_000.0), ..failing.clone() }, Place::Edge, "low-battery");
        check(Signals { edge_failures: 1, ..failing }, Place::Edge, "low-battery");
    }

    #[test]
    fn a_much_faster_edge_is_used() {
        let d = check(Signals { device_ms: Some(400.0), edge_ms: Some(90.0), ..phone() }, Place::Edge, "edge-faster");
        assert!(d.reason.contains("90 ms") && d.reason.contains("400 ms"), "{}", d.reason);
        // Only "much" faster: 1.5x is not worth the network.
        check(Signals { device_ms: Some(150.0), edge_ms: Some(100.0), ..phone() }, Place::Device, "device");
    }

    #[test]
    fn a_model_not_yet_cached_runs_on_the_edge() {
        check(Signals { cached_level: CachedLevel::None, ..phone() }, Place::Edge, "not-cached");
        // Even on a slow network or with Save-Data: one request is far smaller than the bundle.
        check(
            Signals { cached_level: CachedLevel::None, effective_type: Some("2g".into()), save_data: true, ..phone() },
            Place::Edge,
            "not-cached",
        );
        // The coarse level is enough to run on the device.
        check(Signals { cached_level: CachedLevel::Coarse, ..phone() }, Place::Device, "device");
    }

    #[test]
    fn weak_devices_use_the_edge_until_measured() {
        check(Signals { device_memory: Some(1.0), device_ms: None, ..phone() }, Place::Edge, "weak-device");
        check(Signals { hardware_concurrency: Some(2), device_ms: None, ..phone() }, Place::Edge, "weak-device");
        check(Signals { device_memory: Some(1.0), ..phone() }, Place::Device, "device");
    }

    #[test]
    fn the_latency_of_the_backend_in_use_decides_and_a_warm_up_run_does_not() {
        // A GPU's first run (pipelines compiled, weights uploaded) is slower than the edge:
        // not a reason to leave the device.
        let gpu_warming =
            Signals { backend: Some("webgpu".into()), device_ms: None, device_warmup_ms: Some(900.0), edge_ms: Some(80.0), ..phone() };
        let d = check(gpu_warming.clone(), Place::Device, "device");
        assert!(d.reason.contains("first run (webgpu) took 900 ms"), "{}", d.reason);
        // Measured after warm-up: fast, stays.
        let d = check(Signals { device_ms: Some(12.0), ..gpu_warming.clone() }, Place::Device, "device");
        assert!(d.reason.contains("12 ms (webgpu)"), "{}", d.reason);
        // The device lost its GPU and runs the scalar build; measured slow there: the edge.
        let d = check(
            Signals { backend: Some("scalar".into()), device_ms: Some(400.0), device_warmup_ms: Some(450.0), ..gpu_warming },
            Place::Edge,
            "edge-faster",
        );
        assert!(d.reason.contains("this device (scalar) in 400 ms"), "{}", d.reason);
    }

    #[test]
    fn weakness_depends_on_the_backend() {
        // Two cores but a GPU: the device runs it.
        check(
            Signals { hardware_concurrency: Some(2), device_ms: None, backend: Some("webgpu".into()), ..phone() },
            Place::Device,
            "device",
        );
        // Eight cores but no wasm SIMD: the edge until measured.
        let d = check(Signals { device_ms: None, backend: Some("scalar".into()), ..phone() }, Place::Edge, "weak-device");
        assert!(d.reason.contains("without SIMD"), "{}", d.reason);
        check(Signals { device_ms: None, backend: Some("threads".into()), ..phone() }, Place::Device, "device");
        // A first run counts as measured.
        check(
            Signals { device_ms: None, device_warmup_ms: Some(90.0), backend: Some("scalar".into()), ..phone() },
            Place::Device,
            "device",
        );
    }

    #[test]
    fn the_page_can_force_a_choice() {
        check(Signals { prefer: Prefer::Device, cached_level: CachedLevel::None, ..phone() }, Place::Device, "forced");
        check(Signals { prefer: Prefer::Edge, save_data: true, ..phone() }, Place::Edge, "forced");
        let d = check(Signals { prefer: Prefer::Edge, online: false, ..phone() }, Place::Device, "forced-unreachable");
        assert!(d.reason.contains("offline"));
    }

    #[test]
    fn signals_come_from_the_page_as_json() {
        let s: Signals = serde_json::from_str(r#"{"online":true,"effectiveType":"slow-2g","saveData":false,"cachedLevel":"full","batteryLevel":0.5,"charging":false,"prefer":"auto"}"#).unwrap();
        assert_eq!(decide(&s).rule, "slow-network");
        let empty: Signals = serde_json::from_str("{}").unwrap();
        assert_eq!(decide(&empty).rule, "not-cached");
        let json = serde_json::to_string(&decide(&phone())).unwrap();
        assert!(json.starts_with(r#"{"where":"device","reason":"#), "{json}");
    }
}
