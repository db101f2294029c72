//! Occlusion sensitivity (Zeiler & Fergus, "Visualizing and Understanding Convolutional
//! Networks", 2014): slide a patch of the input's mean (0 after normalization) over the
//! image and record how much the target class's probability drops with each region
//! hidden. Regions the model relies on drop it most. The occluded copies run stacked
//! in batches of the server's `max_batch`.

use crate::error::ApiError;
use crate::models::ServedModel;
use crate::wire::{self, Inputs};
use cairn_core::{DType, Dim, Session, Tensor};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Most occluded copies one explanation may run.
const MAX_PASSES: usize = 1024;

#[derive(Deserialize, Serialize, Default, Debug)]
pub struct ExplainParams {
    /// Side of the square occluding patch, in input pixels (default: 1/7 of the shorter side).
    pub patch: Option<usize>,
    /// Step between patches (default: half the patch).
    pub stride: Option<usize>,
    /// Class to explain (default: the top-1 class).
    pub target: Option<usize>,
    /// Classes to list (default 5).
    pub top: Option<usize>,
}

pub struct Job {
    input: Tensor,
    input_name: String,
    nchw: bool,
    height: usize,
    width: usize,
    channels: usize,
    patch: usize,
    stride: usize,
    target: Option<usize>,
    top: usize,
    labels: Option<Vec<String>>,
    output: String,
    model: String,
}

impl Job {
    /// Checks the model and input can be explained this way: one f32 image [1, C, H, W] or [1, H, W, C].
    pub fn new(model: &ServedModel, inputs: Inputs, params: &ExplainParams) -> Result<Job, ApiError> {
        if inputs.tensors.len() != 1 || inputs.rows != 1 {
            return Err(ApiError::bad_request("explain takes one image: a single input with a batch of 1"));
        }
        let input = inputs.tensors.into_iter().next().expect("one tensor");
        let info = &model.inputs[0];
        if input.dtype() != DType::F32 || input.rank() != 4 {
            return Err(ApiError::bad_request(format!(
                "explain needs an f32 image input [1, C, H, W] or [1, H, W, C]; input '{}' is {} {:?}",
                info.name,
                input.dtype().name(),
                input.shape()
            )));
        }
        let declared =
            model.manifest.inputs.iter().find(|i| i.name == info.name).and_then(|i| i.preprocess.as_ref()).map(|p| p.layout.as_str());
        let s = input.shape();
        let nchw = match declared {
            Some(layout) => layout == "nchw",
            None => s[1] <= 4 || s[3] > 4,
        };
        let (channels, height, width) = if nchw { (s[1], s[2], s[3]) } else { (s[3], s[1], s[2]) };
        let patch = params.patch.unwrap_or((height.min(width) / 7).max(1));
        let stride = params.stride.unwrap_or((patch / 2).max(1));
        if patch == 0 || stride == 0 || patch > height.min(width) {
            return Err(ApiError::bad_request(format!(
                "patch {patch} and stride {stride} must be at least 1, and the patch at most the image side {}",
                height.min(width)
            )));
        }
        let passes = positions(height, patch, stride).len() * positions(width, patch, stride).len();
        if passes > MAX_PASSES {
            return Err(ApiError::bad_request(format!(
                "patch {patch} with stride {stride} needs {passes} forward passes, more than the {MAX_PASSES} allowed"
            ))
            .hint("use a larger stride"));
        }
        let output = model.session.graph().outputs.first().ok_or_else(|| ApiError::internal("the model has no outputs"))?;
        if let (Some(t), Some(Some(Dim::Known(classes)))) = (params.target, output.dims.as_ref().map(|d| d.last())) {
            if t >= *classes {
                return Err(ApiError::bad_request(format!("target class {t} does not exist: the model has {classes} classes")));
            }
        }
        Ok(Job {
            input,
            input_name: info.name.clone(),
            nchw,
            height,
            width,
            channels,
            patch,
            stride,
            target: params.target,
            top: params.top.unwrap_or(5).min(100),
            labels: model.labels(&output.name).map(<[String]>::to_vec),
            output: output.name.clone(),
            model: model.name.clone(),
        })
    }

    /// Class probabilities of the image as given.
    pub fn base(&self, session: &Session) -> Result<Vec<f32>, String> {
        self.probabilities(session, &self.input)?.pop().ok_or_else(|| "the model returned no rows".to_string())
    }

    /// The class to explain and its probability on the unoccluded image.
    pub fn target(&self, base: &[f32]) -> Result<(usize, f32), String> {
        let target = self.target.unwrap_or_else(|| argmax(base));
        let p = *base.get(target).ok_or_else(|| format!("target class {target} does not exist: the model has {} classes", base.len()))?;
        Ok((target, p))
    }

    /// Patch origins (y, x), row by row.
    pub fn cells(&self) -> Vec<(usize, usize)> {
        let xs = positions(self.width, self.patch, self.stride);
        positions(self.height, self.patch, self.stride).into_iter().flat_map(|y| xs.iter().map(move |&x| (y, x))).collect()
    }

    /// How much the target's probability drops with each of these patches hidden: the
    /// occluded copies run stacked as one batch.
    pub fn drops(&self, session: &Session, cells: &[(usize, usize)], target: usize, p_target: f32) -> Result<Vec<f32>, String> {
        let copies: Vec<Tensor> = cells.iter().map(|&(y, x)| self.occluded(y, x)).collect();
        let stacked = crate::batcher::stack(copies.iter(), copies.len())?;
        Ok(self.probabilities(session, &stacked)?.into_iter().map(|p| p_target - p[target]).collect())
    }

    /// The answer: target, top-k, and the drops as a grid.
    pub fn report(&self, base: &[f32], target: usize, drops: &[f32], started: Instant) -> serde_json::Value {
        let ys = positions(self.height, self.patch, self.stride);
        let xs = positions(self.width, self.patch, self.stride);
        let grid: Vec<&[f32]> = drops.chunks(xs.len()).collect();
        let label = |i: usize| self.labels.as_ref().and_then(|l| l.get(i)).cloned();
        serde_json::json!({
            "model": self.model,
            "where": "edge",
            "target": { "index": target, "label": label(target), "probability": base[target] },
            "top": wire::top_k(base, self.top, self.labels.as_deref()),
            "heatmap": {
                "method": "occlusion",
                "rows": ys.len(),
                "cols": xs.len(),
                "patch": self.patch,
                "stride": self.stride,
                "image": [self.height, self.width],
                "y": ys,
                "x": xs,
                "drop": grid,
            },
            "forward_passes": drops.len() + 1,
            "compute_ms": started.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn probabilities(&self, session: &Session, input: &Tensor) -> Result<Vec<Vec<f32>>, String> {
        let outputs = session.run([(self.input_name.clone(), input.clone())].into()).map_err(|e| e.to_string())?;
        let (_, t) = outputs.into_iter().find(|(n, _)| *n == self.output).ok_or("the model did not produce its output")?;
        let rows = input.shape()[0];
        (0..rows)
            .map(|r| {
                wire::probabilities(&t, r).ok_or_else(|| format!("output '{}' {:?} is not [rows, classes] scores", self.output, t.shape()))
            })
            .collect()
    }

    /// A copy of the image with the patch at (y, x) set to 0 (the mean, once normalized).
    fn occluded(&self, y0: usize, x0: usize) -> Tensor {
        let mut t = self.input.clone();
        let (h, w, c) = (self.height, self.width, self.channels);
        let mut view = t.view_mut();
        let v = view.f32s_mut().expect("checked f32 in Job::new");
        for y in y0..y0 + self.patch {
            for x in x0..x0 + self.patch {
                for ch in 0..c {
                    let i = if self.nchw { (ch * h + y) * w + x } else { (y * w + x) * c + ch };
                    v[i] = 0.0;
                }
            }
        }
        t
    }
}

/// Patch origins along one side: every `stride`, plus one flush with the far edge.
fn positions(side: usize, patch: usize, stride: usize) -> Vec<usize> {
    let last = side - patch;
    let mut p: Vec<usize> = (0..=last).step_by(stride).collect();
    if p.last() != Some(&last) {
        p.push(last);
    }
    p
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::positions;

    #[test]
    fn patches_cover_the_far_edge() {
        assert_eq!(positions(224, 32, 16).len(), 13);
        assert_eq!(positions(10, 4, 4), vec![0, 4, 6]);
        assert_eq!(positions(4, 4, 1), vec![0]);
    }
}
