//! Fuzzes the parsers issue 13 added: subgraph import (captures, nesting, Loop/If/Scan bodies)
//! and sequence/optional values. The first byte picks what the rest is:
//!   0  a GraphProto, run as the body of `Loop(M = 3, cond = true, x)`
//!   1  a GraphProto, run as both branches of an `If`
//!   2  a GraphProto, run as the body of a `Scan` over `x` with one state value
//!   3  a SequenceProto / OptionalProto value (`value_from_bytes`)
//! Loaded models run eagerly under small limits: any panic, hang or OOM is a bug.
//! (The body is `bodies::subgraph_sequence`, shared with the corpus replay in `cargo test`.)
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::subgraph_sequence(data));
