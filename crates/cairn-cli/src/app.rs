//! `cairn app build`: assemble an offline-first web app around a model bundle.
//!
//! ```text
//! OUT/index.html, app.js, …        the app (web/app)
//! OUT/cairn/                       the page API and the worker (web/src)
//! OUT/sw/                          the service worker's modules (web/sw)
//! OUT/pkg/{simd,scalar}/           the wasm runtime (bench/web/build_wasm.sh)
//! OUT/pkg/threads/                 its threaded build, when built (docs/adr/0019)
//! OUT/models/NAME/                 the bundle (cairn pack)
//! OUT/app-config.json              which model the app loads, and what it is
//! OUT/sw.js                        the service worker entry, holding the precache list
//! OUT/precache-manifest.json       the same list: [{ url, revision = sha256 of the file }]
//! ```
//! The bundle is not precached: its manifest is revalidated network-first and its shards
//! are cached (verified) as the worker streams them, so an update fetches only what changed.

use crate::model::human_bytes;
use anyhow::{bail, Context, Result};
use cairn_bundle::{read_manifest, sha256_hex, Manifest};
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
    after_help = "Examples:\n  cairn app build --model dist/models/efficientnet_lite0 -o dist\n  cairn app build --model dist/models/m --wasm target/web-pkg --app web/app -o site"
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
    /// Cairn's page API and worker.
    #[arg(long, default_value = "web/src")]
    runtime: PathBuf,
    /// The service worker's modules.
    #[arg(long, default_value = "web/sw")]
    sw: PathBuf,
    /// The wasm-bindgen output, with `simd/` and `scalar/` builds (and `threads/`, copied when
    /// present: cross-origin isolated pages run it; without it they run `simd/`).
    #[arg(long, default_value = "target/web-pkg")]
    wasm: PathBuf,
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

#[derive(Serialize)]
struct PrecacheEntry {
    url: String,
    revision: String,
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

fn build(args: BuildArgs) -> Result<()> {
    for (dir, what, hint) in [
        (&args.app, "app", "pass --app DIR (the repository's demo is web/app)"),
        (&args.runtime, "runtime", "pass --runtime DIR (the repository's is web/src)"),
        (&args.sw, "service worker", "pass --sw DIR (the repository's is web/sw)"),
    ] {
        if !dir.join(if what == "app" { "index.html" } else { "" }).exists() {
            bail!("the {what} directory {} is missing or incomplete; hint: {hint}", dir.display());
        }
    }
    for build in ["simd", "scalar"] {
        if !args.wasm.join(build).join("cairn_web_bg.wasm").is_file() {
            bail!(
                "no wasm module at {}; hint: run bench/web/build_wasm.sh (it builds target/web-pkg/simd and /scalar)",
                args.wasm.join(build).join("cairn_web_bg.wasm").display()
            );
        }
    }
    let manifest = read_manifest(&args.model)
        .with_context(|| format!("{} is not a model bundle (hint: make one with `cairn pack model.onnx -o DIR`)", args.model.display()))?;
    let out = &args.out;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    // The app shell: everything but the model, each file listed with its hash.
    let mut shell = Vec::new();
    shell.extend(copy_tree(&args.app, out, "", &|_| true)?);
    shell.extend(copy_tree(&args.runtime, &out.join("cairn"), "cairn/", &|p| has_ext(p, &["js"]))?);
    let sw_modules = copy_tree(&args.sw, &out.join("sw"), "sw/", &|p| has_ext(p, &["js"]))?;
    shell.extend(sw_modules);
    let threads_built = args.wasm.join("threads").join("cairn_web_bg.wasm").is_file();
    for build in ["simd", "scalar"].into_iter().chain(threads_built.then_some("threads")) {
        shell.extend(copy_tree(&args.wasm.join(build), &out.join("pkg").join(build), &format!("pkg/{build}/"), &|p| {
            has_ext(p, &["js", "wasm"])
        })?);
    }

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
    shell.push(("app-config.json".into(), out.join("app-config.json")));

    shell.sort();
    let mut precache = Vec::with_capacity(shell.len());
    let mut shell_bytes = 0u64;
    for (url, path) in &shell {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        shell_bytes += bytes.len() as u64;
        precache.push(PrecacheEntry { url: url.clone(), revision: sha256_hex(&bytes) });
    }
    let list = serde_json::to_string_pretty(&precache)?;
    fs::write(out.join("precache-manifest.json"), &list)?;
    // The entry script holds the list itself: any change to any shell file changes sw.js,
    // which is what makes the browser install the new version.
    fs::write(
        out.join("sw.js"),
        format!(
            "// Generated by `cairn app build`; do not edit. The modules are in sw/.\nimport {{ startServiceWorker }} from './sw/service-worker.js';\n\nstartServiceWorker({{ precache: {list}{} }});\n",
            args.edge_api_key.as_ref().map_or(String::new(), |k| format!(", edgeApiKey: {}", serde_json::Value::from(k.as_str())))
        ),
    )?;

    let m = &config.model;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "out": out.display().to_string(), "precache": precache.len(), "precache_bytes": shell_bytes, "model": m })
        );
    } else {
        println!("app built in {}", out.display());
        println!("  app shell  {} files, {} (precached by sw.js with sha256 revisions)", precache.len(), human_bytes(shell_bytes as usize));
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

/// Copies the files under `src` that `keep` accepts into `dst`; returns (URL, copied path) pairs.
fn copy_tree(src: &Path, dst: &Path, url_prefix: &str, keep: &dyn Fn(&Path) -> bool) -> Result<Vec<(String, PathBuf)>> {
    let mut copied = Vec::new();
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
                stack.push(rel);
            } else if keep(&rel) {
                let to = dst.join(&rel);
                fs::create_dir_all(to.parent().unwrap_or(dst))?;
                fs::copy(entry.path(), &to).with_context(|| format!("cannot copy {} to {}", entry.path().display(), to.display()))?;
                let url = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                copied.push((format!("{url_prefix}{url}"), to));
            }
        }
    }
    Ok(copied)
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
