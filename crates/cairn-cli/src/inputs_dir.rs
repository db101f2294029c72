//! Model inputs from a directory, for calibration and evaluation: for a model with one
//! runtime input, one input set per `.npy` file or photo (PNG, JPEG; resized to the input's
//! `[1, 3, H, W]` and normalized `(value / 255 - mean) / std`); for a model with several
//! (a transformer's `input_ids` and `attention_mask`), one input set per subdirectory
//! holding `<input name>.npy` for each of them.

use crate::npy;
use anyhow::{bail, Context, Result};
use cairn_core::{Graph, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Normalization of photos: per-channel mean and std of `value / 255`.
#[derive(Clone, Copy, Debug)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Parses `--mean`/`--std` style `a,b,c` (or one value for all channels).
pub fn parse3(flag: &str, s: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{flag} '{s}' must be numbers like 0.5,0.5,0.5"))?;
    match v.as_slice() {
        [a] => Ok([*a; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => bail!("{flag} '{s}' needs 1 or 3 values"),
    }
}

/// Reads up to `limit` input files of `dir` in name order: (file name, inputs).
/// A file that is neither a usable `.npy` nor a readable image is an error naming it.
pub fn read(dir: &Path, graph: &Graph, limit: usize, norm: Normalize) -> Result<Vec<(String, HashMap<String, Tensor>)>> {
    let inputs: Vec<_> = graph.runtime_inputs().collect();
    let [input] = inputs.as_slice() else { return read_sets(dir, &inputs, limit) };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the input directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files.into_iter().take(limit) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        let t = match ext.as_str() {
            "npy" => npy::read(&path)?.0,
            "png" | "jpg" | "jpeg" => photo(&path, input, norm)?,
            _ => bail!("{}: neither a .npy file nor a PNG/JPEG image", path.display()),
        };
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

/// Input sets of a several-input model: every subdirectory of `dir` (in name order) holds
/// one `<name>.npy` per input.
fn read_sets(dir: &Path, inputs: &[&cairn_core::ValueInfo], limit: usize) -> Result<Vec<(String, HashMap<String, Tensor>)>> {
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    let hint = || {
        format!(
            "a model with inputs {} takes one subdirectory per input set, each holding {}",
            names.join(", "),
            names.iter().map(|n| format!("{n}.npy")).collect::<Vec<_>>().join(" and ")
        )
    };
    let mut sets: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the input directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    sets.sort();
    let mut out = Vec::new();
    for set in sets.into_iter().take(limit) {
        let mut tensors = HashMap::new();
        for input in inputs {
            let path = set.join(format!("{}.npy", input.name));
            if !path.is_file() {
                bail!("{} is missing: {}", path.display(), hint());
            }
            let t = npy::read(&path)?.0;
            if t.dtype() != input.dtype {
                bail!("{}: holds {} data, but input '{}' is {}", path.display(), t.dtype(), input.name, input.dtype);
            }
            tensors.insert(input.name.clone(), t);
        }
        out.push((set.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), tensors));
    }
    if out.is_empty() {
        bail!("{} holds no input sets: {}", dir.display(), hint());
    }
    Ok(out)
}

/// A photo as the input `[1, 3, H, W]` (f32) of the model.
fn photo(path: &Path, input: &cairn_core::ValueInfo, norm: Normalize) -> Result<Tensor> {
    let dims: Vec<usize> = match input.dims.as_deref() {
        Some([_, c, h, w]) => [c, h, w]
            .iter()
            .map(|d| match d {
                cairn_core::Dim::Known(n) => *n,
                cairn_core::Dim::Sym(_) => 0,
            })
            .collect(),
        _ => vec![],
    };
    let [3, h, w] = dims.as_slice() else {
        bail!("{}: photos need a model input shaped [N, 3, H, W] with known H and W; '{}' is not", path.display(), input.name)
    };
    if *h == 0 || *w == 0 {
        bail!("{}: the model input '{}' has symbolic H or W; give .npy inputs instead", path.display(), input.name);
    }
    let img = image::open(path).with_context(|| format!("{}: not a readable image", path.display()))?;
    let rgba = image::imageops::resize(&img.to_rgba8(), *w as u32, *h as u32, image::imageops::FilterType::Triangle);
    let pre = cairn_bundle::Preprocess {
        size: [*h as u32, *w as u32],
        layout: "nchw".into(),
        color: "rgb".into(),
        mean: norm.mean,
        std: norm.std,
    };
    let v = cairn_bundle::rgba_to_input(rgba.as_raw(), *w as u32, *h as u32, &pre)?;
    Ok(Tensor::from_f32(vec![1, 3, *h, *w], v)?)
}
