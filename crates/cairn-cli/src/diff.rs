//! `cairn diff`: what a client holding one bundle version downloads to get another.

use crate::model::human_bytes;
use anyhow::Result;
use cairn_bundle::UpdatePlan;
use clap::Args;
use std::path::PathBuf;

/// Compare two bundle versions (directories or manifest.json files): the shards a
/// client that holds OLD must fetch for NEW, the ones it keeps, and the ones it can
/// evict once it has switched.
#[derive(Args)]
#[command(after_help = "Examples:\n  cairn diff old/manifest.json dist/models/mobilenetv2\n  cairn diff v1 v2 --json")]
pub struct DiffArgs {
    old: PathBuf,
    new: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub fn main(args: DiffArgs) -> Result<()> {
    let old = cairn_bundle::read_manifest(&args.old)?;
    let new = cairn_bundle::read_manifest(&args.new)?;
    let plan = UpdatePlan::between(&old, &new);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    println!("{} {} -> {}", new.name, old.version, new.version);
    println!("  fetch  {:>3} shards  {}", plan.fetch.len(), human_bytes(plan.fetch_bytes as usize));
    println!("  reuse  {:>3} shards  {}", plan.reuse.len(), human_bytes(plan.reuse_bytes as usize));
    println!(
        "  evict  {:>3} shards  {} (after switching)",
        plan.evict.len(),
        human_bytes(plan.evict.iter().map(|s| s.bytes).sum::<u64>() as usize)
    );
    for s in &plan.fetch {
        println!("  + {} ({}, level {})", s.path, human_bytes(s.bytes as usize), new.levels.get(s.level).map_or("?", |l| l.name.as_str()));
    }
    if !plan.manifest_changed {
        println!("  the manifests are identical");
    }
    Ok(())
}
