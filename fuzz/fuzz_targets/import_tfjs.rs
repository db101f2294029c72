//! Feeds arbitrary bytes to the TF.js importer: the bytes before the first NUL are model.json,
//! the rest is the shard `group1-shard1of1.bin`. When a model loads, it is prepared and run
//! on zero inputs under a small memory limit. Any panic, overflow or OOM is a bug.
//! (The body is `bodies::import_tfjs`, shared with the corpus replay in `cargo test`.)
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::import_tfjs(data));
