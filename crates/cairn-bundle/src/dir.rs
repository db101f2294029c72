//! Bundles on disk: `DIR/manifest.json` and `DIR/shards/<sha256>.safetensors`.

use crate::error::{Error, Result};
use crate::load::Loader;
use crate::manifest::Manifest;
use crate::pack::Packed;
use crate::text_task::TOKENIZER_PATH;
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "manifest.json";

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Writes through a temporary file in the same directory, then renames: a reader
/// (or a crash) never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(format!("cannot write {}", path.display())))
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WriteReport {
    pub shards_written: usize,
    pub bytes_written: u64,
    /// Shards already in the directory with the same hash (an earlier version's).
    pub shards_reused: usize,
    pub bytes_reused: u64,
    /// Shards of the previous version that the new manifest no longer names.
    pub shards_removed: usize,
}

/// Writes a bundle into `dir`: new shards first, the manifest last (so the manifest
/// never names a missing shard), then removes shards nothing names any more.
/// `on_shard(i)` is called after each shard, for progress bars.
pub fn write_bundle(dir: &Path, packed: &Packed, mut on_shard: impl FnMut(usize)) -> Result<WriteReport> {
    let shard_dir = dir.join("shards");
    std::fs::create_dir_all(&shard_dir).map_err(io(format!("cannot create {}", shard_dir.display())))?;
    let mut report = WriteReport::default();
    for (i, (entry, bytes)) in packed.manifest.shards.iter().zip(&packed.shards).enumerate() {
        let path = dir.join(&entry.path);
        let same = std::fs::metadata(&path).is_ok_and(|m| m.len() == entry.bytes)
            && std::fs::read(&path).is_ok_and(|b| crate::shard::sha256_hex(&b) == entry.sha256);
        if same {
            report.shards_reused += 1;
            report.bytes_reused += entry.bytes;
        } else {
            write_atomically(&path, bytes)?;
            report.shards_written += 1;
            report.bytes_written += entry.bytes;
        }
        on_shard(i);
    }
    if let Some(tokenizer) = &packed.tokenizer {
        write_atomically(&dir.join(TOKENIZER_PATH), tokenizer)?;
    }
    write_atomically(&dir.join(MANIFEST_FILE), packed.manifest.to_json().as_bytes())?;
    let named: std::collections::HashSet<PathBuf> = packed.manifest.shards.iter().map(|s| dir.join(&s.path)).collect();
    for entry in std::fs::read_dir(&shard_dir).map_err(io(format!("cannot list {}", shard_dir.display())))?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "safetensors") && !named.contains(&path) {
            std::fs::remove_file(&path).map_err(io(format!("cannot remove {}", path.display())))?;
            report.shards_removed += 1;
        }
    }
    Ok(report)
}

/// Reads `dir/manifest.json` (or a manifest file given directly).
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let file = if path.is_dir() { path.join(MANIFEST_FILE) } else { path.to_path_buf() };
    let bytes = std::fs::read(&file).map_err(io(format!("cannot read {}", file.display())))?;
    Manifest::parse(&bytes).map_err(|e| match e {
        Error::Manifest(m) => Error::Manifest(format!("{}: {m}", file.display())),
        other => other,
    })
}

/// The result of checking every shard of a bundle directory.
pub struct Checked {
    pub loader: Loader,
    /// One error per shard that is missing or fails its checks.
    pub problems: Vec<Error>,
}

/// Reads and verifies every shard of a bundle, collecting all problems rather than
/// stopping at the first. `on_shard(i)` is called after each shard.
pub fn check_dir(dir: &Path, max_weight_bytes: u64, mut on_shard: impl FnMut(usize)) -> Result<Checked> {
    let manifest = read_manifest(dir)?;
    let mut loader = Loader::new(manifest, max_weight_bytes)?;
    let mut problems = Vec::new();
    let shards = loader.manifest().shards.clone();
    for (i, shard) in shards.iter().enumerate() {
        match std::fs::read(dir.join(&shard.path)) {
            Ok(bytes) => {
                if let Err(e) = loader.accept_shard(i, &bytes) {
                    problems.push(e);
                }
            }
            Err(source) => problems.push(Error::Io { context: format!("shard {} cannot be read", shard.path), source }),
        }
        on_shard(i);
    }
    if loader.manifest().text.is_some() {
        if let Err(e) = read_tokenizer(dir, loader.manifest()) {
            problems.push(e);
        }
    }
    Ok(Checked { loader, problems })
}

/// Reads the bundle's tokenizer.json and checks it against the manifest's size and hash.
pub fn read_tokenizer(dir: &Path, manifest: &Manifest) -> Result<Vec<u8>> {
    let text = manifest.text.as_ref().ok_or_else(|| {
        Error::Manifest(format!("{} has no tokenizer: pack it with --tokenizer tokenizer.json --task ...", dir.display()))
    })?;
    let path = dir.join(&text.tokenizer.path);
    let bytes = std::fs::read(&path).map_err(io(format!("cannot read the bundle's tokenizer {}", path.display())))?;
    verify_tokenizer(manifest, &bytes)?;
    Ok(bytes)
}

/// Checks tokenizer bytes (from disk or the network) against the manifest's size and hash.
pub fn verify_tokenizer(manifest: &Manifest, bytes: &[u8]) -> Result<()> {
    let Some(text) = &manifest.text else { return Err(Error::Manifest("the bundle has no text task".into())) };
    if bytes.len() as u64 != text.tokenizer.bytes || crate::shard::sha256_hex(bytes) != text.tokenizer.sha256 {
        return Err(Error::Manifest(format!(
            "{} does not match the manifest ({} bytes, sha256 {}): re-pack the bundle or fetch it again",
            text.tokenizer.path, text.tokenizer.bytes, text.tokenizer.sha256
        )));
    }
    Ok(())
}

/// Loads a bundle directory completely, failing on the first problem.
pub fn load_dir(dir: &Path, max_weight_bytes: u64) -> Result<Loader> {
    let checked = check_dir(dir, max_weight_bytes, |_| {})?;
    if let Some(first) = checked.problems.into_iter().next() {
        return Err(first);
    }
    Ok(checked.loader)
}
