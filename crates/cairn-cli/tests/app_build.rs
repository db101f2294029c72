//! `cairn app build`: the assembled directory, its precache list, and its errors.
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

/// A small classifier bundle, and a wasm-bindgen output directory. The assembler only
/// copies and hashes the wasm files, so these hold placeholder bytes.
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
    let wasm = dir.join("pkg");
    for build in ["simd", "scalar"] {
        std::fs::create_dir_all(wasm.join(build)).unwrap();
        std::fs::write(wasm.join(build).join("cairn_web_bg.wasm"), format!("wasm bytes of the {build} build")).unwrap();
        std::fs::write(wasm.join(build).join("cairn_web.js"), format!("// glue of the {build} build")).unwrap();
        std::fs::write(wasm.join(build).join("cairn_web.d.ts"), "// types: not shipped").unwrap();
    }
    (model, wasm)
}

fn build(model: &Path, wasm: &Path, out: &Path) -> Output {
    cairn(&[
        "app",
        "build",
        "--model",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
        "--app",
        repo("web/app").to_str().unwrap(),
        "--runtime",
        repo("web/src").to_str().unwrap(),
        "--sw",
        repo("web/sw").to_str().unwrap(),
        "--json",
    ])
}

#[test]
fn app_build_writes_a_precache_list_of_content_hashes() {
    let dir = tmp("ok");
    let (model, wasm) = inputs(&dir);
    let out = dir.join("dist");
    let o = build(&model, &wasm, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["model"]["url"], "models/classifier/manifest.json");
    assert_eq!(summary["model"]["weights"], "f32");

    let list: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(out.join("precache-manifest.json")).unwrap()).unwrap();
    let urls: Vec<&str> = list.iter().map(|e| e["url"].as_str().unwrap()).collect();
    for want in [
        "index.html",
        "manifest.webmanifest",
        "app-config.json",
        "cairn/cairn.js",
        "cairn/worker.js",
        "sw/service-worker.js",
        "pkg/simd/cairn_web_bg.wasm",
        "pkg/scalar/cairn_web.js",
        "icons/icon-512.png",
    ] {
        assert!(urls.contains(&want), "{want} missing from {urls:?}");
    }
    assert!(!urls.iter().any(|u| u.starts_with("models/") || u.ends_with(".d.ts") || *u == "sw.js"), "{urls:?}");
    // Every revision is the sha256 of the file as written.
    for e in &list {
        let bytes = std::fs::read(out.join(e["url"].as_str().unwrap())).unwrap();
        assert_eq!(e["revision"].as_str().unwrap(), cairn_bundle::sha256_hex(&bytes), "{}", e["url"]);
    }
    // sw.js carries the same list, so any changed file changes sw.js.
    let sw = std::fs::read_to_string(out.join("sw.js")).unwrap();
    assert!(sw.contains("startServiceWorker") && list.iter().all(|e| sw.contains(e["revision"].as_str().unwrap())));
    // The bundle is in place.
    let manifest = cairn_bundle::read_manifest(&out.join("models/classifier")).unwrap();
    assert!(manifest.shards.iter().all(|s| out.join("models/classifier").join(&s.path).is_file()));

    // One changed app file: its revision and sw.js change, nothing else does.
    let app2 = dir.join("app2");
    std::fs::create_dir_all(app2.join("icons")).unwrap();
    for entry in std::fs::read_dir(repo("web/app")).unwrap().chain(std::fs::read_dir(repo("web/app/icons")).unwrap()) {
        let p = entry.unwrap().path();
        if p.is_file() {
            let rel = p.strip_prefix(repo("web/app")).unwrap();
            std::fs::copy(&p, app2.join(rel)).unwrap();
        }
    }
    std::fs::write(app2.join("app.css"), std::fs::read_to_string(app2.join("app.css")).unwrap() + "\n/* v2 */\n").unwrap();
    let out2 = dir.join("dist2");
    let o = cairn(&[
        "app",
        "build",
        "--model",
        model.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--wasm",
        wasm.to_str().unwrap(),
        "--app",
        app2.to_str().unwrap(),
        "--runtime",
        repo("web/src").to_str().unwrap(),
        "--sw",
        repo("web/sw").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list2: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out2.join("precache-manifest.json")).unwrap()).unwrap();
    let changed: Vec<&str> = list.iter().zip(&list2).filter(|(a, b)| a != b).map(|(a, _)| a["url"].as_str().unwrap()).collect();
    assert_eq!(changed, ["app.css"]);
    assert_ne!(std::fs::read(out.join("sw.js")).unwrap(), std::fs::read(out2.join("sw.js")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn app_build_without_the_wasm_build_says_how_to_make_it() {
    let dir = tmp("nowasm");
    let (model, _) = inputs(&dir);
    let o = build(&model, &dir.join("missing-pkg"), &dir.join("dist"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: no wasm module at") && err.contains("bench/web/build_wasm.sh") && err.lines().count() == 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn app_build_of_a_directory_that_is_not_a_bundle_fails_cleanly() {
    let dir = tmp("nobundle");
    let (_, wasm) = inputs(&dir);
    let o = build(&dir.join("nothing-here"), &wasm, &dir.join("dist"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && err.contains("is not a model bundle") && err.lines().count() <= 2, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
