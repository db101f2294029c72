//! `cairn app build`: assemble an offline-first web app around a model bundle.
//!
//! ```text
//! OUT/index.html, app.js, …        the app (web/app), but its service-worker source
//! OUT/cairn/                       the npm package @cairn-ml/web's dist: page API, worker, wasm builds
//! OUT/models/NAME/                 the bundle (cairn pack)
//! OUT/app-config.json              which model the app loads, and what it is
//! OUT/sw.js                        the app's service worker (web/app/sw.js: Workbox + the package's
//!                                  routes) bundled by esbuild, with the precache list injected by
//!                                  workbox-build (`cairn-web-sw`, the package's own tool)
//! ```
//! The app consumes the package as any app would: from an installed copy (`--package`, by
//! default web/node_modules/@cairn-ml/web, installed from the packed tarball). The bundle is
//! not precached: its manifest is revalidated network-first and its shards are cached
//! (verified) as the worker streams them, so an update fetches only what changed.

use crate::model::human_bytes;
use anyhow::{bail, Context, Result};
use cairn_bundle::{read_manifest, Manifest};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Build and inspect web apps that ship a Cairn model.
#[derive(Args)]
pub struct AppArgs {
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Subcommand)]
enum AppCommand {
    Build(BuildArgs),
}

/// Assemble the demo app, the Cairn runtime, the service worker with its precache list
/// (URLs and content hashes), the wasm module and a model bundle into one directory that
/// any static server (or `cairn serve`) can serve.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn app build --model dist/models/efficientnet_lite0 -o dist\n  cairn app build --model dist/models/m --package node_modules/@cairn-ml/web --app web/app -o site"
)]
pub struct BuildArgs {
    /// The model bundle the app loads (a directory made by `cairn pack`).
    #[arg(long)]
    model: PathBuf,
    /// Output directory.
    #[arg(short, long, default_value = "dist")]
    out: PathBuf,
    /// The app's own files (index.html, manifest.webmanifest, icons, scripts).
    #[arg(long, default_value = "web/app")]
    app: PathBuf,
    /// The npm package @cairn-ml/web, installed (its `dist/` and `bin/cairn-web-sw.mjs` are used).
    #[arg(long, default_value = "web/node_modules/@cairn-ml/web")]
    package: PathBuf,
    /// The app's service-worker source (default: APP/sw.js), bundled into OUT/sw.js.
    #[arg(long, value_name = "FILE")]
    sw_src: Option<PathBuf>,
    /// A full-precision bundle of the same model for the edge server: copied beside the
    /// app's model (`cairn serve OUT` runs it); the page sends its edge requests to it and
    /// never downloads it.
    #[arg(long, value_name = "DIR")]
    edge_model: Option<PathBuf>,
    /// The API key the service worker sends to the edge (`Authorization: Bearer`), when
    /// `cairn serve` runs with --api-keys. It ships inside sw.js, so use a key meant for
    /// this app (the edge limits it with --rate-limit / --max-in-flight), not an admin key.
    #[arg(long, value_name = "KEY")]
    edge_api_key: Option<String>,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// What the page needs to know about its model before it loads it. (Not its version:
/// a new model version reaches the app through its manifest, without an app update.)
#[derive(Serialize)]
struct AppConfig {
    model: ModelConfig,
    /// The bundle the edge runs for this app (`--edge-model`); absent: the app's own.
    #[serde(rename = "edgeModel", skip_serializing_if = "Option::is_none")]
    edge_model: Option<String>,
}

#[derive(Serialize)]
struct ModelConfig {
    url: String,
    name: String,
    /// The dtype holding most of the weights ("float32", "int8", ...).
    weights: String,
    levels: Vec<String>,
    bytes: u64,
    classes: usize,
}

pub fn main(args: AppArgs) -> Result<()> {
    match args.command {
        AppCommand::Build(b) => build(b),
    }
}

const PACKAGE_HINT: &str =
    "build the npm package and install it: node web/package/build.mjs && (cd web && npm install --no-save ../target/npm/cairn-ml-web.tgz)";

fn build(args: BuildArgs) -> Result<()> {
    if !args.app.join("index.html").is_file() {
        bail!("the app directory {} has no index.html; hint: pass --app DIR (the repository's demo is web/app)", args.app.display());
    }
    let sw_src = args.sw_src.clone().unwrap_or_else(|| args.app.join("sw.js"));
    if !sw_src.is_file() {
        bail!("no service-worker source at {}; hint: pass --sw-src FILE (a Workbox service worker, e.g. web/app/sw.js)", sw_src.display());
    }
    let dist = args.package.join("dist");
    let sw_tool = args.package.join("bin").join("cairn-web-sw.mjs");
    if !dist.join("cairn.js").is_file() || !sw_tool.is_file() {
        bail!("{} is not the @cairn-ml/web package; hint: {PACKAGE_HINT}", args.package.display());
    }
    let manifest = read_manifest(&args.model)
        .with_context(|| format!("{} is not a model bundle (hint: make one with `cairn pack model.onnx -o DIR`)", args.model.display()))?;
    let out = &args.out;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    // The app, less what only building it needs; the package's page API, worker and wasm.
    let sw_name = sw_src.file_name();
    let only_for_building = |p: &Path| {
        let top_level = p.parent() == Some(Path::new(""));
        p.starts_with("node_modules")
            || (top_level && matches!(p.to_str(), Some("package.json" | "package-lock.json")))
            || (top_level && p.file_name() == sw_name)
    };
    copy_tree(&args.app, out, &|p| !only_for_building(p))?;
    copy_tree(&dist, &out.join("cairn"), &|p| p.parent() == Some(Path::new("")) && has_ext(p, &["js", "wasm"]))?;

    let model_dir = out.join("models").join(&manifest.name);
    copy_bundle(&args.model, &model_dir, &manifest)?;
    let edge_model = match &args.edge_model {
        Some(dir) => {
            let edge = read_manifest(dir).with_context(|| {
                format!(
                    "--edge-model {} is not a model bundle (hint: make one with `cairn pack model.onnx -o DIR --name NAME`)",
                    dir.display()
                )
            })?;
            if edge.name == manifest.name {
                bail!("--edge-model is named '{}' like the app's model: pack it with another --name", edge.name);
            }
            copy_bundle(dir, &out.join("models").join(&edge.name), &edge)?;
            Some(edge.name)
        }
        None => None,
    };
    let config = AppConfig { model: model_config(&manifest), edge_model };
    fs::write(out.join("app-config.json"), serde_json::to_string_pretty(&config)?)?;
    // The precache list is injected last, over every file now in OUT but the models: any
    // change to any of them changes sw.js, which is what makes the browser install the update.
    let precache = build_service_worker(&sw_tool, &sw_src, out)?;
    if let Some(key) = &args.edge_api_key {
        // The app's service worker reads it (web/app/sw.js) and sends it to the edge.
        let sw_path = out.join("sw.js");
        let sw = fs::read_to_string(&sw_path).with_context(|| format!("cannot read {}", sw_path.display()))?;
        let config = serde_json::json!({ "edgeApiKey": key });
        fs::write(&sw_path, format!("self.__CAIRN_APP__ = {config};\n{sw}"))?;
    }

    let m = &config.model;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "out": out.display().to_string(), "precache": precache.count, "precache_bytes": precache.size, "model": m })
        );
    } else {
        println!("app built in {}", out.display());
        println!(
            "  app shell  {} files, {} (precached by sw.js: Workbox, revisions and SHA-256 integrity)",
            precache.count,
            human_bytes(precache.size as usize)
        );
        println!(
            "  model      {} {} ({} weights, levels {}, {}, {} classes) at {}",
            m.name,
            manifest.version,
            m.weights,
            m.levels.join("+"),
            human_bytes(m.bytes as usize),
            m.classes,
            m.url
        );
        println!("  serve it   cairn serve {}   (or any static server; the service worker needs http://localhost or https)", out.display());
    }
    Ok(())
}

/// What `cairn-web-sw --json` reports.
#[derive(serde::Deserialize)]
struct PrecacheSummary {
    count: u64,
    size: u64,
}

/// Runs the package's `cairn-web-sw` (Node): esbuild bundles `sw_src`, workbox-build injects the precache list.
fn build_service_worker(tool: &Path, sw_src: &Path, out: &Path) -> Result<PrecacheSummary> {
    let output = std::process::Command::new("node")
        .arg(tool)
        .arg(sw_src)
        .arg(out)
        // Every CPU build is listed: the service worker keeps the one this browser runs
        // (`withoutUnusedBuilds`, docs/adr/0034). Not the WebGPU build: a device without an adapter must not download it. Where the
        // GPU is used it is fetched online; offline without it, 'auto' runs the precached
        // simd build (web/src/worker.js falls back when the webgpu build cannot load).
        .args(["--ignore", "cairn/cairn_web_webgpu.wasm", "--ignore", "cairn/cairn_web_webgpu.js"])
        .arg("--json")
        .output()
        .context("cannot run `node` to build the service worker; hint: install Node.js 18 or later")?;
    if !output.status.success() {
        bail!("building the service worker failed ({}):\n{}hint: {PACKAGE_HINT}", tool.display(), String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("unexpected output from {}: {stdout}", tool.display()))
}

fn model_config(manifest: &Manifest) -> ModelConfig {
    let mut by_dtype: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &manifest.tensors {
        *by_dtype.entry(t.dtype.as_str()).or_default() += t.shape.iter().product::<usize>() as u64;
    }
    let weights = by_dtype.iter().max_by_key(|(_, n)| **n).map_or("none", |(d, _)| d).to_string();
    ModelConfig {
        url: format!("models/{}/manifest.json", manifest.name),
        name: manifest.name.clone(),
        weights,
        levels: manifest.levels.iter().map(|l| l.name.clone()).collect(),
        bytes: manifest.total_bytes(),
        classes: manifest.outputs.first().and_then(|o| o.labels.as_ref()).map_or(0, |l| l.len()),
    }
}

fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e))
}

/// Copies the files under `src` that `keep` accepts (given their path relative to `src`) into `dst`.
fn copy_tree(src: &Path, dst: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<()> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let rel = rel.join(&name);
            if entry.file_type()?.is_dir() {
                if keep(&rel.join("")) {
                    stack.push(rel);
                }
            } else if keep(&rel) {
                let to = dst.join(&rel);
                fs::create_dir_all(to.parent().unwrap_or(dst))?;
                fs::copy(entry.path(), &to).with_context(|| format!("cannot copy {} to {}", entry.path().display(), to.display()))?;
            }
        }
    }
    Ok(())
}

/// Puts the bundle at `dst` (manifest + the shards it names), unless it is already there.
fn copy_bundle(src: &Path, dst: &Path, manifest: &Manifest) -> Result<()> {
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(src, dst) {
        return Ok(());
    }
    fs::create_dir_all(dst.join("shards"))?;
    for shard in &manifest.shards {
        let to = dst.join(&shard.path);
        if !to.exists() {
            fs::copy(src.join(&shard.path), &to).with_context(|| format!("cannot copy shard {}", shard.path))?;
        }
    }
    // A text bundle's tokenizer: the worker fetches it beside the manifest and checks its hash.
    if let Some(text) = &manifest.text {
        fs::copy(src.join(&text.tokenizer.path), dst.join(&text.tokenizer.path))
            .with_context(|| format!("cannot copy the bundle's {} (hint: re-pack with --tokenizer)", text.tokenizer.path))?;
    }
    fs::copy(src.join(cairn_bundle::MANIFEST_FILE), dst.join(cairn_bundle::MANIFEST_FILE))?;
    Ok(())
}
