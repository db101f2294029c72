//! The clock of profiled runs ([`crate::Session::run_profiled`]). Natively std's `Instant`;
//! wasm32-unknown-unknown has no clock in std (`Instant::now` panics there), so the
//! embedder installs one: the browser runtime passes `performance.now`.

use std::sync::OnceLock;

static INSTALLED: OnceLock<fn() -> f64> = OnceLock::new();

/// Installs the clock profiled runs read (seconds, monotonic); the first one installed stays.
pub fn install_profile_clock(now_seconds: fn() -> f64) {
    let _ = INSTALLED.set(now_seconds);
}

/// Seconds on the profile clock, `None` where there is none (wasm before one is installed).
pub(crate) fn now() -> Option<f64> {
    if let Some(installed) = INSTALLED.get() {
        return Some(installed());
    }
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    {
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        Some(START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64())
    }
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    None
}
