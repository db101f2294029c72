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

/// Runs `jobs` empty fork-join jobs over all threads (for measuring the round trip).
#[wasm_bindgen(js_name = forkJoinEmptyJobs)]
pub fn fork_join_empty_jobs(jobs: u32) {
    cairn_kernels::wasm_pool::empty_jobs(jobs as usize)
}
