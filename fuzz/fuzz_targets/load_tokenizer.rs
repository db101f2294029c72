//! Feeds a tokenizer.json and a text (split at the first NUL) to the tokenizer text bundles
//! load, with the file's truncation and with a bundle's max length. Any panic is a bug: in
//! the browser it would end the worker. (The body is `bodies::load_tokenizer`.)
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::load_tokenizer(data));
