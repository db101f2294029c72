//! Headers every response carries, and which responses are compressed.
//!
//! COOP + COEP make the page cross-origin isolated (SharedArrayBuffer, precise timers,
//! threads for wasm later); CORP lets our own pages embed what we serve under COEP.
//! The CSP allows only our own origin, plus `'wasm-unsafe-eval'` so the worker may
//! compile the engine's wasm, and workers from our origin.

use crate::static_files::is_compressible;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; \
img-src 'self' data: blob:; style-src 'self'; font-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

pub async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    };
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-embedder-policy", "require-corp");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(h, "content-security-policy", CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    res
}

/// Brotli or gzip (as the client prefers) for text-like bodies over 256 bytes. Level 5:
/// most of brotli's gain at a fraction of its top level's CPU, since this is per request.
pub fn compression() -> CompressionLayer<impl Predicate> {
    let text = |_: axum::http::StatusCode, _: axum::http::Version, headers: &axum::http::HeaderMap, _: &axum::http::Extensions| {
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_compressible)
    };
    CompressionLayer::new().br(true).gzip(true).quality(CompressionLevel::Precise(5)).compress_when(SizeAbove::new(256).and(text))
}
