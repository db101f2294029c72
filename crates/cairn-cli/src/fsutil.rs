//! Writing output files so that a failure never leaves a half-written file behind.

use anyhow::{Context, Result};
use std::fs::File;
use std::path::Path;

/// Writes through a temporary file in the same directory, then renames it over `path`.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("output path has no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        write(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot move output into place at {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
