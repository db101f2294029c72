//! The threaded build's entry point for pool workers (web/src/thread-pool.js starts them).

use wasm_bindgen::prelude::*;

/// Called by a pool worker once it has instantiated this module on the shared memory:
/// parks it in the kernels' fork-join pool for good (it never returns to JavaScript).
#[wasm_bindgen(js_name = poolWorkerLoop)]
pub fn pool_worker_loop() {
    cairn_kernels::wasm_pool::worker_loop()
}

/// This module, for pool workers to instantiate (the same code on the same memory).
#[wasm_bindgen(js_name = wasmModule)]
pub fn wasm_module() -> JsValue {
    wasm_bindgen::module()
}

/// The shared linear memory, for pool workers.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// Runs `jobs` jobs of one `spins`-long task per thread, split over the pool or not
/// (bench/web/fork_join.mjs: where splitting starts to pay).
#[wasm_bindgen(js_name = forkJoinSpinJobs)]
pub fn fork_join_spin_jobs(jobs: u32, spins: u32, split: bool) {
    cairn_kernels::wasm_pool::spin_jobs(jobs as usize, spins, split)
}

/// What the pool did since the last call (and resets it): jobs split, tasks run by the
/// caller, tasks run by the workers, worker parks, caller parks at joins
/// (bench/web/profile_ops.mjs).
#[wasm_bindgen(js_name = poolCounters)]
pub fn pool_counters() -> Vec<f64> {
    cairn_kernels::wasm_pool::take_counters().map(|c| c as f64).to_vec()
}
