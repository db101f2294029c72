//! `cairn app build`: the assembled directory, the precache list injected into its service worker, and its errors.
//! (The built app itself runs in the browser tests, web/test/pwa*.test.mjs.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("run cairn")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-app-build-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small classifier bundle, and an installed-looking @cairn-ml/web package: placeholder
/// page API, worker and wasm files (the assembler only copies them) and the package's real
/// service-worker builder (web/package/build-sw.mjs), which finds esbuild and workbox-build
/// through a `node_modules` link to web/node_modules (scripts/setup.sh installs them).
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let model = dir.join("classifier");
    let o = cairn(&[
        "pack",
        data.join("classifier_v1.onnx").to_str().unwrap(),
        "-o",
        model.to_str().unwrap(),
        "--image-size",
        "16",
        "--labels",
        data.join("classifier_labels.txt").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let modules = repo("web/node_modules");
    assert!(modules.join("workbox-build").is_dir(), "web/node_modules lacks workbox-build: run scripts/setup.sh (npm ci in web/)");
    std::os::unix::fs::symlink(&modules, dir.join("node_modules")).unwrap();
    let package = dir.join("package");
    std::fs::create_dir_all(package.join("dist/sw")).unwrap();
    std::fs::create_dir_all(package.join("bin")).unwrap();
    for file in [
        "cairn.js",
        "worker.js",
        "cairn_web_simd.wasm",
        "cairn_web_relaxed.wasm",
        "cairn_web_scalar.wasm",
        "cairn_web_webgpu.wasm",
        "cairn_web_webgpu.js",
        "cairn.d.ts",
        "sw/models.js",
    ] {
        std::fs::write(package.join("dist").join(file), format!("// {file} of the package")).unwrap();
    }
    std::fs::copy(repo("web/package/build-sw.mjs"), package.join("bin/cairn-web-sw.mjs")).unwrap();
    (model, package)
}

/// A copy of the demo app whose service worker is Workbox's precaching alone (the real one
/// imports the installed package, which the browser tests build against).
fn app_copy(dir: &Path, name: &str) -> PathBuf {
    let app = dir.join(name);
    std::fs::create_dir_all(app.join("icons")).unwrap();
    for entry in std::fs::read_dir(repo("web/app")).unwrap().chain(std::fs::read_dir(repo("web/app/icons")).unwrap()) {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, app.join(p.strip_prefix(repo("web/app")).unwrap())).unwrap();
        }
    }
    std::fs::write(app.join("sw.js"), "import { precacheAndRoute } from 'workbox-precaching';\nprecacheAndRoute(self.__WB_MANIFEST);\n")
        .unwrap();
    app
}

fn build(model: &Path, package: &Path, app: &Path, out: &Path) -> Output {
    cairn(&[
        "app",
        "build",
        "--model",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--package",
        package.to_str().unwrap(),
        "--app",
        app.to_str().unwrap(),
        "--json",
    ])
}

/// The precache entries injected into sw.js: (url, revision, integrity).
fn precache_of(sw: &str) -> Vec<(String, String, String)> {
    let field = |entry: &str, name: &str| {
        let at = entry.find(&format!("\"{name}\":\"")).unwrap_or_else(|| panic!("no {name} in {entry}")) + name.len() + 4;
        entry[at..].split('"').next().unwrap().to_string()
    };
    sw.split('{')
        .filter(|e| e.contains("\"revision\":") && e.contains("\"url\":"))
        .map(|e| (field(e, "url"), field(e, "revision"), field(e, "integrity")))
        .collect()
}

#[test]
fn app_build_injects_a_precache_list_with_revisions_and_integrity() {
    let dir = tmp("ok");
    let (model, package) = inputs(&dir);
    let app = app_copy(&dir, "app");
    let out = dir.join("dist");
    let o = build(&model, &package, &app, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["model"]["url"], "models/classifier/manifest.json");
    assert_eq!(summary["model"]["weights"], "f32");

    let sw = std::fs::read_to_string(out.join("sw.js")).unwrap();
    assert!(!sw.contains("__WB_MANIFEST") && !sw.contains("import "), "sw.js is one bundle with the list injected");
    let list = precache_of(&sw);
    assert_eq!(summary["precache"].as_u64().unwrap() as usize, list.len());
    let urls: Vec<&str> = list.iter().map(|e| e.0.as_str()).collect();
    for want in [
        "index.html",
        "manifest.webmanifest",
        "app-config.json",
        "cairn/cairn.js",
        "cairn/worker.js",
        "cairn/cairn_web_simd.wasm",
        "cairn/cairn_web_relaxed.wasm",
        "cairn/cairn_web_scalar.wasm",
        "icons/icon-512.png",
    ] {
        assert!(urls.contains(&want), "{want} missing from {urls:?}");
    }
    // Not the models, the service worker itself, types, the package's sw modules (bundled), nor
    // the WebGPU build (fetched only where an adapter exists). Every CPU build is listed; the
    // service worker keeps the one the browser runs (web/sw/builds.js).
    assert!(
        !urls.iter().any(|u| u.starts_with("models/")
            || u.ends_with(".d.ts")
            || *u == "sw.js"
            || u.starts_with("cairn/sw")
            || u.contains("webgpu")),
        "{urls:?}"
    );
    // Integrity is the SHA-256 of the file as written (the browser checks it when precaching).
    use base64_check::b64;
    for (url, _, integrity) in &list {
        let bytes = std::fs::read(out.join(url)).unwrap();
        assert_eq!(integrity, &format!("sha256-{}", b64(&cairn_bundle::sha256_hex(&bytes))), "{url}");
    }
    let manifest = cairn_bundle::read_manifest(&out.join("models/classifier")).unwrap();
    assert!(manifest.shards.iter().all(|s| out.join("models/classifier").join(&s.path).is_file()));

    // One changed app file: its entry and sw.js change, nothing else does.
    let app2 = app_copy(&dir, "app2");
    std::fs::write(app2.join("app.css"), std::fs::read_to_string(app2.join("app.css")).unwrap() + "\n/* v2 */\n").unwrap();
    let out2 = dir.join("dist2");
    let o = build(&model, &package, &app2, &out2);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list2 = precache_of(&std::fs::read_to_string(out2.join("sw.js")).unwrap());
    let changed: Vec<&str> = list.iter().zip(&list2).filter(|(a, b)| a != b).map(|(a, _)| a.0.as_str()).collect();
    assert_eq!(changed, ["app.css"]);
    assert_ne!(std::fs::read(out.join("sw.js")).unwrap(), std::fs::read(out2.join("sw.js")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Base64 of a hex digest, as Subresource Integrity writes it.
mod base64_check {
    pub fn b64(hex: &str) -> String {
        let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                out.push(if i <= c.len() { A[(n >> shift & 63) as usize] as char } else { '=' });
            }
        }
        out
    }
}

#[test]
fn app_build_without_the_package_says_how_to_get_it() {
    let dir = tmp("nopkg");
    let (model, _) = inputs(&dir);
    let app = app_copy(&dir, "app");
    let o = build(&model, &dir.join("missing-package"), &app, &dir.join("dist"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ")
            && err.contains("is not the @cairn-ml/web package")
            && err.contains("web/package/build.mjs")
            && err.lines().count() == 1,
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn app_build_of_a_directory_that_is_not_a_bundle_fails_cleanly() {
    let dir = tmp("nobundle");
    let (_, package) = inputs(&dir);
    let app = app_copy(&dir, "app");
    let o = build(&dir.join("nothing-here"), &package, &app, &dir.join("dist"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && err.contains("is not a model bundle") && err.lines().count() <= 2, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
