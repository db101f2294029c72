//! Shared by the server tests: a small image classifier packed into a real bundle in a
//! temporary app directory, a server on an ephemeral port, and a plain HTTP/1.1 client
//! that sends paths exactly as written (no `..` normalization), so traversal attempts
//! reach the server as an attacker would send them.

use axum::http::{HeaderMap, Method, Request, StatusCode};
use cairn_bundle::{pack, write_bundle, PackOptions, Preprocess};
use cairn_core::{Attr, DType, Dim, Graph, Node, NodeSpec, Registry, Tensor, ValueInfo};
use cairn_server::{App, Config};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SIDE: usize = 16;
pub const CLASSES: usize = 10;

pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

pub fn image(seed: u64) -> Vec<f32> {
    values(3 * SIDE * SIDE, seed, 1.0)
}

pub fn node(name: &str, op: &str, inputs: &[&str], output: &str, attrs: Vec<(&str, Attr)>) -> Node {
    let spec = NodeSpec {
        name: name.into(),
        domain: String::new(),
        op_type: op.into(),
        attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        inputs: inputs.iter().map(|i| Some(i.to_string())).collect(),
        outputs: vec![output.into()],
    };
    Node::build(spec, 17, Registry::global()).unwrap()
}

/// x[batch, 3, 16, 16] -> Conv 3x3 (8) -> Relu -> Conv 1x1 (16) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (10).
pub fn classifier() -> Graph {
    let w = |shape: Vec<usize>, s: u64| {
        let n = shape.iter().product();
        Arc::new(Tensor::from_f32(shape, values(n, s, 0.5)).unwrap())
    };
    let initializers = HashMap::from([
        ("w1".to_string(), w(vec![8, 3, 3, 3], 1)),
        ("b1".to_string(), w(vec![8], 2)),
        ("w2".to_string(), w(vec![16, 8, 1, 1], 3)),
        ("wf".to_string(), w(vec![CLASSES, 16], 4)),
        ("bf".to_string(), w(vec![CLASSES], 5)),
    ]);
    let nodes = vec![
        node("conv1", "Conv", &["x", "w1", "b1"], "c1", vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]),
        node("relu1", "Relu", &["c1"], "r1", vec![]),
        node("conv2", "Conv", &["r1", "w2"], "c2", vec![]),
        node("relu2", "Relu", &["c2"], "r2", vec![]),
        node("pool", "GlobalAveragePool", &["r2"], "p", vec![]),
        node("flatten", "Flatten", &["p"], "f", vec![]),
        node("fc", "Gemm", &["f", "wf", "bf"], "logits", vec![("transB", Attr::Int(1))]),
    ];
    Graph {
        inputs: vec![ValueInfo {
            name: "x".into(),
            dtype: DType::F32,
            dims: Some(vec![Dim::Sym("batch".into()), Dim::Known(3), Dim::Known(SIDE), Dim::Known(SIDE)]),
        }],
        outputs: vec![ValueInfo {
            name: "logits".into(),
            dtype: DType::F32,
            dims: Some(vec![Dim::Sym("batch".into()), Dim::Known(CLASSES)]),
        }],
        initializers,
        nodes,
        opset: 17,
    }
    .validated()
    .unwrap()
}

/// The logits native Cairn computes for these images, straight from the graph.
pub fn reference_logits(images: &[Vec<f32>]) -> Vec<f32> {
    let (graph, _) = cairn_core::passes::prepare_for_inference(classifier()).unwrap();
    let data: Vec<f32> = images.concat();
    let x = Tensor::from_f32(vec![images.len(), 3, SIDE, SIDE], data).unwrap();
    let out = cairn_core::Session::new(graph).run(HashMap::from([("x".to_string(), x)])).unwrap();
    out[0].1.f32s().unwrap().to_vec()
}

/// An app directory `<tmp>/app` with the classifier packed as `models/tiny` (small shards,
/// two levels), an index.html, a service worker, a hashed asset, and a secret next to
/// (outside) the app directory.
pub fn app_dir(tag: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!("cairn-server-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("app");
    std::fs::create_dir_all(&root).unwrap();
    pack_tiny(&root, None);
    std::fs::write(root.join("index.html"), "<!doctype html><title>Cairn</title><p>offline-first</p>\n").unwrap();
    std::fs::write(root.join("sw.js"), "self.addEventListener('fetch', () => {});\n").unwrap();
    let js: String = (0..400).map(|i| format!("export const value{i} = {i} * 2; // repeated text compresses\n")).collect();
    std::fs::write(root.join("app.3f9a12bc.js"), &js).unwrap();
    std::fs::write(root.join("app.js"), &js).unwrap();
    std::fs::write(base.join("secret.txt"), "TOP-SECRET\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
    root
}

/// Packs the classifier into `root/models/tiny` (over what is there), as `version`
/// (default: the bundle's content hash).
pub fn pack_tiny(root: &Path, version: Option<&str>) {
    let options = PackOptions {
        name: "tiny".into(),
        version: version.map(str::to_string),
        shard_bytes: 1024,
        min_split_elements: 64,
        ..PackOptions::default()
    };
    let mut packed = pack(&classifier(), &options).unwrap();
    packed.manifest.inputs[0].preprocess =
        Some(Preprocess { size: [SIDE as u32, SIDE as u32], layout: "nchw".into(), color: "rgb".into(), mean: [0.5; 3], std: [0.5; 3] });
    packed.manifest.outputs[0].labels = Some((0..CLASSES).map(|i| format!("class {i}")).collect());
    write_bundle(&root.join("models/tiny"), &packed, |_| {}).unwrap();
}

pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        Server::start_expecting(config, &[]).await
    }

    /// Like `start`, for models whose warm-up is skipped for a stated reason (e.g. a text
    /// model's sequence length is not known before a request): each warm-up problem must
    /// contain one of `unwarmed`.
    pub async fn start_expecting(config: Config, unwarmed: &[&str]) -> Server {
        let (app, problems) = App::load(config).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let cold = app.warm_up().await;
        assert!(cold.iter().all(|p| unwarmed.iter().any(|u| p.contains(u))), "{cold:?}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(cairn_server::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        Server { addr, stop: Some(stop), task: Some(task) }
    }

    /// Asks for a graceful shutdown; the server task ends once requests in flight are answered.
    pub fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.addr, Method::GET, path, headers, Vec::new()).await
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        send(self.addr, Method::POST, path, headers, body).await
    }

    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(self.addr, method, path, headers, Vec::new()).await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics", &[]).await.text()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub async fn send(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client.request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The value of a metric line `name{labels} value`, or 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

pub fn shard_path(root: &Path) -> String {
    let manifest = cairn_bundle::read_manifest(&root.join("models/tiny")).unwrap();
    format!("/models/tiny/{}", manifest.shards[0].path)
}

/// A real `redis-server` (Debian's package, installed by scripts/setup.sh) on a free port,
/// with an append-only file so a restart keeps its keys; stopped on drop.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl Redis {
    pub fn start(tag: &str) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("cairn-redis-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis { port, dir, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): install it with scripts/setup.sh (Debian package redis-server)"));
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG")) {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Kills the server at once (no shutdown save: what a crash looks like).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
