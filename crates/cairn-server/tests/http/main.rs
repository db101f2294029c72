//! The edge server over real HTTP, as one test binary: each module was its own binary, and
//! linking axum, tokio and redis into eight release binaries cost the suite minutes.

mod common;

mod access;
mod api;
mod batch;
mod lifecycle;
mod redis_idempotency;
mod static_files;
mod text;
mod typed;
