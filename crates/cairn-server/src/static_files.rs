//! The app and its bundles from DIR: safe path resolution, caching headers by what a
//! file is (content-addressed files are immutable for a year; manifests, the service
//! worker and HTML are revalidated every time), ETags and 304s.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const REVALIDATE: &str = "no-cache";

/// Why a path is refused. Both answer 404 so a prober learns nothing about the disk.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// `..`, a backslash, a NUL, bad UTF-8 or a hidden segment, encoded or not.
    Unsafe,
    NotFound,
}

/// Maps a request path to a file under `root` (a canonical path). Decodes percent
/// escapes first, so `%2e%2e%2f` is judged as the `../` it means, and checks the final
/// file's canonical path is still under the root (symlinks cannot lead out).
pub fn resolve(root: &Path, request_path: &str) -> Result<PathBuf, Refused> {
    let decoded = percent_decode_str(request_path).decode_utf8().map_err(|_| Refused::Unsafe)?;
    if decoded.contains(['\\', '\0']) {
        return Err(Refused::Unsafe);
    }
    let mut path = root.to_path_buf();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            s if s.starts_with('.') => return Err(Refused::Unsafe), // `..`, `.git`, `.env`
            s if s.contains(':') => return Err(Refused::Unsafe),
            s => path.push(s),
        }
    }
    let mut real = path.canonicalize().map_err(|_| Refused::NotFound)?;
    if !real.starts_with(root) {
        return Err(Refused::Unsafe);
    }
    if real.is_dir() {
        real = real.join("index.html");
        if !real.is_file() {
            return Err(Refused::NotFound);
        }
    }
    Ok(real)
}

/// A content-addressed file: a bundle shard `shards/<sha256>.safetensors`, or an asset
/// whose name carries a hash segment of 8+ hex digits (`app.3f9a12bc.js`).
pub fn is_content_addressed(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    let in_shards = path.parent().and_then(|p| p.file_name()).is_some_and(|p| p == "shards");
    let stem = name.split('.').next().unwrap_or("");
    if in_shards && name.ends_with(".safetensors") && stem.len() == 64 && is_hex(stem) {
        return true;
    }
    let segments: Vec<&str> = name.split(['.', '-', '_']).collect();
    segments.len() > 2 && segments[1..segments.len() - 1].iter().any(|s| s.len() >= 8 && is_hex(s) && s.bytes().any(|b| b.is_ascii_digit()))
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Worth compressing on the fly: text formats, wasm (which shrinks ~3x) and bundle shards
/// (`application/octet-stream`): an int8 bundle's coarse level holds the high nibbles of
/// weights that are mostly near 0, which brotli shrinks to about half (docs/adr/0023).
pub fn is_compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/octet-stream")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/manifest+json")
        || content_type.starts_with("application/wasm")
        || content_type.starts_with("image/svg+xml")
}

/// ETag: the hash for shards (their name is their content's sha256); otherwise size and
/// modification time. Weak for compressible files, since the encoding may change bytes.
fn etag(path: &Path, meta: &std::fs::Metadata, compressible: bool) -> String {
    if is_content_addressed(path) {
        let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("").split('.').next().unwrap_or("");
        if stem.len() == 64 {
            return if compressible { format!("W/\"{stem}\"") } else { format!("\"{stem}\"") };
        }
    }
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let tag = format!("\"{:x}-{:x}\"", meta.len(), mtime);
    if compressible {
        format!("W/{tag}")
    } else {
        tag
    }
}

/// RFC 9110 13.1.2: If-None-Match uses weak comparison; `*` matches any current file.
fn matches_if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = strip(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

pub async fn serve(root: &Path, method: &Method, request_path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "static files are read-only\n").into_response();
    }
    let path = match resolve(root, request_path) {
        Ok(p) => p,
        Err(_) => return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, REVALIDATE)], "not found\n").into_response(),
    };
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let ctype = content_type(&path);
    let tag = etag(&path, &meta, is_compressible(ctype));
    let cache = if is_content_addressed(&path) { IMMUTABLE } else { REVALIDATE };
    let mut res = if matches_if_none_match(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // Streamed in 256 KiB reads: 64 clients fetching 2 MiB shards hold 64 buffers,
        // not 64 whole files.
        match tokio::fs::File::open(&path).await {
            Ok(file) => {
                let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10));
                ([(header::CONTENT_TYPE, ctype.to_string()), (header::CONTENT_LENGTH, meta.len().to_string())], body).into_response()
            }
            Err(_) => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
        }
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(modified) = meta.modified() {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_addressed_names() {
        let sha = "a".repeat(63) + "1";
        assert!(is_content_addressed(Path::new(&format!("/r/models/m/shards/{sha}.safetensors"))));
        assert!(!is_content_addressed(Path::new("/r/models/m/shards/short.safetensors")));
        assert!(is_content_addressed(Path::new("/r/app.3f9a12bc.js")));
        assert!(is_content_addressed(Path::new("/r/cairn_web-1a2b3c4d5e.wasm")));
        assert!(!is_content_addressed(Path::new("/r/manifest.json")));
        assert!(!is_content_addressed(Path::new("/r/sw.js")));
        assert!(!is_content_addressed(Path::new("/r/deadbeefcafe.js")), "a bare hex name without a hash segment is not enough");
        assert!(!is_content_addressed(Path::new("/r/app.facebook.js")), "letters-only words are not hashes");
    }

    #[test]
    fn traversal_is_refused_plain_and_encoded() {
        let dir = std::env::temp_dir().join(format!("cairn-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.txt"), "a").unwrap();
        let root = dir.canonicalize().unwrap();
        assert_eq!(resolve(&root, "/sub/a.txt").unwrap(), root.join("sub/a.txt"));
        assert_eq!(resolve(&root, "/sub/%61.txt").unwrap(), root.join("sub/a.txt"));
        for bad in [
            "/../etc/passwd",
            "/sub/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/sub/..%2f..%2fetc",
            "/..%5c..%5cwin.ini",
            "/sub/a.txt%00.png",
            "/.git/config",
            "/%ff",
        ] {
            assert_eq!(resolve(&root, bad), Err(Refused::Unsafe), "{bad}");
        }
        assert_eq!(resolve(&root, "/missing.txt"), Err(Refused::NotFound));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
