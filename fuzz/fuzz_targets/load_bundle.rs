//! Feeds arbitrary bytes to the bundle loader. The input is a manifest and one
//! shard, split at a 2-byte length prefix. So that the fuzzer gets past the sha256
//! check into the safetensors parser and weight placement, the target rewrites the
//! manifest's first shard entry to name the shard bytes it was given: what a
//! hostile server could do. Any panic, overflow or OOM is a bug.
//! (The body is `bodies::load_bundle`, shared with the corpus replay in `cargo test`.)
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::load_bundle(data));
