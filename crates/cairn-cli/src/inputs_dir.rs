//! Model inputs from a directory of `.npy` files (one file per input set, for a model
//! with one runtime input), for calibration and evaluation.

use crate::npy;
use anyhow::{bail, Context, Result};
use cairn_core::{Graph, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Reads up to `limit` `.npy` files of `dir` in name order: (file name, inputs).
/// Any other file is an error naming it (images must be converted first).
pub fn read(dir: &Path, graph: &Graph, limit: usize) -> Result<Vec<(String, HashMap<String, Tensor>)>> {
    let inputs: Vec<_> = graph.runtime_inputs().collect();
    let [input] = inputs.as_slice() else { bail!("the model has {} inputs; directories of inputs are supported for one-input models", inputs.len()) };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the input directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files.into_iter().take(limit) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.extension().is_none_or(|e| e != "npy") {
            bail!("{}: not a .npy file (hint: turn images into model inputs with tools/make_image_inputs.py)", path.display());
        }
        let (t, _) = npy::read(&path)?;
        if t.dtype() != input.dtype {
            bail!("{}: holds {} data, but input '{}' is {}", path.display(), t.dtype(), input.name, input.dtype);
        }
        if let Ok(v) = t.f32s() {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                bail!("{}: element {i} is {} (NaN or infinity); fix or remove the file", path.display(), v[i]);
            }
        }
        out.push((name, HashMap::from([(input.name.clone(), t)])));
    }
    if out.is_empty() {
        bail!("{} holds no .npy inputs", dir.display());
    }
    Ok(out)
}
