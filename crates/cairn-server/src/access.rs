//! Who may use `/v1`: API keys (`Authorization: Bearer KEY`), kept only as SHA-256
//! hashes; per-key rate limits (governor's GCRA) and concurrency limits answered with
//! 429 + Retry-After; and the origins a browser may call from (CORS allow-list; other
//! cross-origin callers get 403). Static files and bundles stay public: only the API
//! spends CPU.
//!
//! A key is never logged or echoed: logs and metrics name the caller by the key's name
//! from the keys file.

use crate::error::ApiError;
use crate::App;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Who is calling, as logs and metrics may say it.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

/// The name callers have when no keys are configured (the API is open).
pub const ANONYMOUS: &str = "anonymous";

#[derive(Clone, Debug, Default)]
pub struct AccessConfig {
    /// Accepted keys by name. Empty: `/v1` is open (limits then apply to all callers together).
    pub keys: Vec<ApiKey>,
    /// Requests per second per key, with bursts of `burst`.
    pub rate_per_second: Option<NonZeroU32>,
    pub burst: Option<NonZeroU32>,
    /// Requests one key may have in flight at once.
    pub max_concurrent: Option<usize>,
    /// Origins (`https://app.example`) whose pages may call `/v1` cross-origin.
    pub cors_origins: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
}

/// SHA-256 of a key, as hex: what a keys file holds (`printf %s "$KEY" | sha256sum`).
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses keys: one `NAME SHA256HEX` per line (or separated by commas, for an env var);
/// `#` starts a comment.
pub fn parse_keys(text: &str) -> Result<Vec<ApiKey>, String> {
    let mut keys: Vec<ApiKey> = Vec::new();
    for (i, entry) in text.split(['\n', ',']).enumerate() {
        let entry = entry.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let fields: Vec<&str> = entry.split([' ', '\t', ':']).filter(|f| !f.is_empty()).collect();
        let [name, digest] = fields[..] else {
            return Err(format!("API key entry {} is not 'NAME SHA256HEX'", i + 1));
        };
        let sha256 = parse_digest(digest).ok_or_else(|| {
            format!("API key '{name}': '{}...' is not a SHA-256 in hex (64 hex digits); store the key's hash, not the key: printf %s \"$KEY\" | sha256sum", digest.chars().take(4).collect::<String>())
        })?;
        if keys.iter().any(|k| k.name == name) {
            return Err(format!("API key name '{name}' appears twice; names label logs and limits, so they must differ"));
        }
        keys.push(ApiKey { name: name.to_string(), sha256 });
    }
    Ok(keys)
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The access rules of one server, ready to check requests.
pub struct Access {
    by_hash: HashMap<[u8; 32], String>,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    max_concurrent: Option<usize>,
    in_flight: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    origins: Vec<String>,
}

impl Access {
    pub fn new(config: &AccessConfig) -> Access {
        let rate = config.rate_per_second.map(|r| RateLimiter::keyed(Quota::per_second(r).allow_burst(config.burst.unwrap_or(r))));
        Access {
            by_hash: config.keys.iter().map(|k| (k.sha256, k.name.clone())).collect(),
            rate,
            max_concurrent: config.max_concurrent,
            in_flight: Default::default(),
            origins: config.cors_origins.clone(),
        }
    }

    /// Whether `/v1` needs a key.
    pub fn requires_key(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// CORS for the allow-listed origins (preflights are answered here, before the key check).
    pub fn cors(&self) -> Option<CorsLayer> {
        if self.origins.is_empty() {
            return None;
        }
        let origins: Vec<HeaderValue> = self.origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        let allowed = [
            "authorization",
            "content-type",
            "idempotency-key",
            "cairn-shape",
            "cairn-dtype",
            "cairn-input",
            "cairn-tensors",
            crate::api::VERSION_HEADER,
            "x-request-id",
        ];
        let exposed = ["x-request-id", "idempotent-replayed", "retry-after"];
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers(allowed.map(HeaderName::from_static))
                .expose_headers(exposed.map(HeaderName::from_static))
                .max_age(std::time::Duration::from_secs(600)),
        )
    }

    /// The origin check: same-origin pages and allow-listed origins pass; requests without
    /// an Origin (curl, servers, the service worker's own fetches) are not browsers' cross-origin calls.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let same_origin = origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host));
        same_origin || self.origins.iter().any(|o| o == origin)
    }

    fn caller(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if !self.requires_key() {
            return Ok(ANONYMOUS.to_string());
        }
        let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let Some(key) = presented.map(str::trim).filter(|k| !k.is_empty()) else {
            return Err(unauthorized("this API needs a key").hint("send 'Authorization: Bearer YOUR_KEY'; ask the operator for a key"));
        };
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_hash.get(&digest).cloned().ok_or_else(|| {
            unauthorized("this API key is not valid").hint("check the key you were given; keys can be revoked by the operator")
        })
    }

    fn check_rate(&self, caller: &str) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else { return Ok(()) };
        rate.check_key(&caller.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::too_many("this key is over its rate limit", wait.as_secs_f64().ceil().max(1.0) as u32)
                .hint("slow down: retry after the number of seconds in Retry-After")
        })
    }

    fn enter(&self, caller: &str) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
        let Some(limit) = self.max_concurrent else { return Ok(None) };
        let slots = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(caller.to_string()).or_insert_with(|| Arc::new(Semaphore::new(limit))).clone()
        };
        slots.try_acquire_owned().map(Some).map_err(|_| {
            ApiError::too_many(format!("this key already has {limit} requests in flight"), 1)
                .hint("wait for an answer before sending more, or batch inputs into one request")
        })
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}

/// The `/v1` gate: origin, key, rate, concurrency, in that order (the cheapest refusal first).
pub async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let access = &app.access;
    if !access.origin_allowed(req.headers()) {
        return refuse(
            &app,
            "origin",
            ApiError::new(StatusCode::FORBIDDEN, "this origin may not call the API")
                .hint("the operator lists allowed origins with `cairn serve --cors-origin`"),
        );
    }
    let caller = match access.caller(req.headers()) {
        Ok(c) => c,
        Err(e) => {
            let mut res = refuse(&app, "key", e);
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return res;
        }
    };
    if let Err(e) = access.check_rate(&caller) {
        return refuse(&app, "rate", e);
    }
    let permit = match access.enter(&caller) {
        Ok(p) => p,
        Err(e) => return refuse(&app, "concurrency", e),
    };
    req.extensions_mut().insert(Caller(caller.clone()));
    let mut res = next.run(req).await;
    drop(permit);
    res.extensions_mut().insert(Caller(caller));
    res
}

fn refuse(app: &App, reason: &'static str, e: ApiError) -> Response {
    app.metrics.access_refused(reason);
    e.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_hashes_and_refuse_plain_keys() {
        let h = hash_key("s3cret");
        let keys = parse_keys(&format!("# operators\napp {h}\n\nci:{h} # the CI runner\n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].name, "ci");
        let err = parse_keys("app s3cret").unwrap_err();
        assert!(err.contains("not a SHA-256") && !err.contains("s3cret"), "{err}");
        assert!(parse_keys(&format!("a {h},a {h}")).unwrap_err().contains("twice"));
        assert!(parse_keys("just-one-field").is_err());
    }

    #[test]
    fn keys_are_checked_by_hash() {
        let access = Access::new(&AccessConfig { keys: parse_keys(&format!("app {}", hash_key("s3cret"))).unwrap(), ..Default::default() });
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(access.caller(&with("Bearer s3cret")).unwrap(), "app");
        assert_eq!(access.caller(&with("Bearer wrong")).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(access.caller(&HeaderMap::new()).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn origins_same_or_listed() {
        let access = Access::new(&AccessConfig { cors_origins: vec!["https://app.example".into()], ..Default::default() });
        let with = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("edge.example:8080"));
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            h
        };
        assert!(access.origin_allowed(&with("https://app.example")));
        assert!(access.origin_allowed(&with("http://edge.example:8080")));
        assert!(!access.origin_allowed(&with("https://evil.example")));
        assert!(access.origin_allowed(&HeaderMap::new()));
    }
}
