//! Feeds arbitrary bytes to the TFLite importer; when a model loads, plans and runs it
//! on zero inputs under a small memory limit. Any panic, overflow or OOM is a bug.
//! (The body is `bodies::import_tflite`, shared with the corpus replay in `cargo test`.)
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::import_tflite(data));
