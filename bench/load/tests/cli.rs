//! The load generator against real sockets: a bad URL is refused before any request, a
//! closed port counts transport errors (no panic, a summary all the same), and a live HTTP
//! server is measured. (Also what makes `cargo test --workspace` build target/release/cairn-load
//! with the workspace's features, which deploy/test/scale.py then runs.)

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

fn cairn_load(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn-load")).args(args).output().expect("cairn-load runs")
}

/// The JSON summary: the last line of stdout.
fn summary(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("the summary is JSON")
}

#[test]
fn a_url_without_scheme_or_host_is_refused_before_any_request() {
    for url in ["notaurl", "127.0.0.1:8080/x", "https://127.0.0.1/x"] {
        let out = cairn_load(&[url, "--seconds", "1", "--clients", "1"]);
        assert!(!out.status.success(), "{url}: exit status {:?}", out.status);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad URL") && err.contains("http://"), "{url}: {err}");
        assert!(out.stdout.is_empty(), "{url}: nothing measured");
    }
}

#[test]
fn a_closed_port_counts_transport_errors_and_still_reports() {
    // A port that was just free: nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = cairn_load(&[&format!("http://127.0.0.1:{port}/x"), "--seconds", "0.5", "--clients", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(s["ok"], 0);
    assert!(s["transport_errors"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["failed"], s["transport_errors"]);
}

#[test]
fn a_live_server_is_measured() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A minimal keep-alive HTTP/1.1 server: 200 "ok" to every GET, one thread per connection.
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    // The request line and headers, up to the blank line (GETs have no body).
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let out = cairn_load(&[&format!("http://127.0.0.1:{port}/static"), "--seconds", "0.5", "--clients", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert!(s["ok"].as_u64().unwrap() > 10, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert!(s["p50_ms"].as_f64().unwrap() > 0.0, "{s}");
}
