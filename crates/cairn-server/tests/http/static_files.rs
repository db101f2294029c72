//! Static serving over real HTTP: caching headers by file kind, ETags and 304s,
//! compression of text only, isolation headers, and traversal attempts.

use crate::common::{app_dir, shard_path, Server};
use axum::http::StatusCode;
use cairn_server::{Config, IMMUTABLE, REVALIDATE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_headers_by_kind_of_file() {
    let root = app_dir("cache");
    let server = Server::start(Config::new(&root)).await;
    let shard = shard_path(&root);
    let sha = shard.rsplit('/').next().unwrap().trim_end_matches(".safetensors").to_string();
    for (path, cache) in [
        (shard.as_str(), IMMUTABLE),
        ("/app.3f9a12bc.js", IMMUTABLE),
        ("/models/tiny/manifest.json", REVALIDATE),
        ("/sw.js", REVALIDATE),
        ("/index.html", REVALIDATE),
        ("/", REVALIDATE),
        ("/app.js", REVALIDATE),
    ] {
        let r = server.get(path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header("cache-control"), cache, "{path}");
        assert!(!r.header("etag").is_empty(), "{path} has no ETag");
        assert_eq!(r.header("cross-origin-opener-policy"), "same-origin", "{path}");
        assert_eq!(r.header("cross-origin-embedder-policy"), "require-corp", "{path}");
        assert_eq!(r.header("cross-origin-resource-policy"), "same-origin", "{path}");
        let csp = r.header("content-security-policy");
        assert!(
            csp.contains("default-src 'self'")
                && csp.contains("'wasm-unsafe-eval'")
                && csp.contains("worker-src 'self'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("x-content-type-options"), "nosniff");
    }
    let r = server.get(&shard, &[]).await;
    assert_eq!(r.header("etag"), format!("W/\"{sha}\""), "a shard's ETag is its sha256 (weak: it may be sent compressed)");
    assert_eq!(cairn_bundle::sha256_hex(&r.body), sha, "the shard's bytes are served unchanged");
    assert_eq!(server.get("/", &[]).await.text(), std::fs::read_to_string(root.join("index.html")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_answer_304_until_the_file_changes() {
    let root = app_dir("etag");
    let server = Server::start(Config::new(&root)).await;
    for path in [shard_path(&root), "/models/tiny/manifest.json".to_string(), "/index.html".to_string()] {
        let first = server.get(&path, &[]).await;
        let tag = first.header("etag").to_string();
        let again = server.get(&path, &[("if-none-match", &tag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), tag);
        assert_eq!(again.header("cache-control"), first.header("cache-control"));
        let listed = server.get(&path, &[("if-none-match", &format!("\"other\", W/{}", tag.trim_start_matches("W/")))]).await;
        assert_eq!(listed.status, StatusCode::NOT_MODIFIED, "{path}: weak comparison in a list");
        let stale = server.get(&path, &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(stale.status, StatusCode::OK, "{path}");
    }
    // A changed file gets a new ETag, so the old one no longer matches.
    let old = server.get("/index.html", &[]).await.header("etag").to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(root.join("index.html"), "<!doctype html><title>Cairn v2</title>\n").unwrap();
    let r = server.get("/index.html", &[("if-none-match", &old)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.header("etag"), old);
    assert!(r.text().contains("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_shards_are_compressed_when_accepted() {
    let root = app_dir("compress");
    let server = Server::start(Config::new(&root)).await;
    let plain = server.get("/app.js", &[]).await;
    assert_eq!(plain.header("content-encoding"), "");
    for (accept, encoding) in [("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br")] {
        let r = server.get("/app.js", &[("accept-encoding", accept)]).await;
        assert_eq!(r.header("content-encoding"), encoding, "Accept-Encoding: {accept}");
        assert!(r.body.len() * 4 < plain.body.len(), "{encoding}: {} of {} bytes", r.body.len(), plain.body.len());
        assert!(r.header("vary").to_ascii_lowercase().contains("accept-encoding"));
        assert!(r.header("etag").starts_with("W/"), "a compressed representation has a weak ETag");
    }
    // Shards too (an int8 bundle's coarse level halves under brotli): decoded, the same bytes.
    let stored = server.get(&shard_path(&root), &[]).await;
    assert_eq!(stored.header("content-encoding"), "");
    let shard = server.get(&shard_path(&root), &[("accept-encoding", "gzip")]).await;
    assert_eq!(shard.header("content-encoding"), "gzip", "shards are compressed when the client accepts it");
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&shard.body[..]), &mut decoded).unwrap();
    assert_eq!(decoded, stored.body.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_attempts_are_refused() {
    let root = app_dir("traversal");
    let server = Server::start(Config::new(&root)).await;
    assert!(root.parent().unwrap().join("secret.txt").is_file());
    for path in [
        "/../secret.txt",
        "/models/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/models/tiny/..%2F..%2F..%2Fsecret.txt",
        "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/..%5csecret.txt",
        "/%252e%252e/secret.txt",
        "/index.html%00.png",
        "/.%2e/secret.txt",
        "/link.txt",
        "/models/tiny/shards/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    ] {
        let r = server.get(path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text().contains("TOP-SECRET"), "{path} leaked the file");
    }
    // Writes are not a thing for static files.
    assert_eq!(server.post("/index.html", &[], b"x".to_vec()).await.status, StatusCode::METHOD_NOT_ALLOWED);
}
