//! How closely one model follows another on the same inputs: top-1 agreement and
//! relative error of the first output. Used by `pack` to score each level.

use anyhow::{Context, Result};
use cairn_core::{Session, Tensor};
use std::collections::HashMap;

pub type Inputs = HashMap<String, Tensor>;

/// Runs both sessions on every input set and compares their first outputs.
pub fn compare(reference: &Session, candidate: &Session, inputs: &[Inputs]) -> Result<cairn_bundle::Fidelity> {
    let (mut agree, mut decisive, mut decisive_agree) = (0usize, 0usize, 0usize);
    let (mut worst, mut kl_sum) = (0f64, 0f64);
    for set in inputs {
        let want = first_output(reference, set).context("running the full model")?;
        let got = first_output(candidate, set).context("running the reduced model")?;
        let same = argmax(&want) == argmax(&got);
        agree += same as usize;
        let (p, q) = (softmax(&want), softmax(&got));
        if margin(&p) >= DECISIVE_MARGIN {
            decisive += 1;
            decisive_agree += same as usize;
        }
        kl_sum += p.iter().zip(&q).filter(|(a, _)| **a > 0.0).map(|(a, b)| a * (a / b.max(1e-30)).ln()).sum::<f64>();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        let diff = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        worst = worst.max((diff / scale) as f64);
    }
    let n = inputs.len().max(1) as f64;
    Ok(cairn_bundle::Fidelity {
        top1_agreement: agree as f64 / n,
        max_relative_error: worst,
        inputs: inputs.len(),
        input_source: String::new(),
        decisive_inputs: Some(decisive),
        decisive_top1_agreement: (decisive > 0).then(|| decisive_agree as f64 / decisive as f64),
        mean_kl: Some(kl_sum / n),
    })
}

/// Softmax top-1 minus top-2 at or above which an answer counts as decisive
/// (see ../shared/DESIGN.md, "Measuring fidelity").
const DECISIVE_MARGIN: f64 = 0.1;

fn softmax(v: &[f32]) -> Vec<f64> {
    let max = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let e: Vec<f64> = v.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

fn margin(p: &[f64]) -> f64 {
    let (mut first, mut second) = (0f64, 0f64);
    for &x in p {
        if x > first {
            second = first;
            first = x;
        } else if x > second {
            second = x;
        }
    }
    first - second
}

fn first_output(session: &Session, inputs: &Inputs) -> Result<Vec<f32>> {
    let outputs = session.run(inputs.clone())?;
    let (_, first) = outputs.into_iter().next().context("the model has no outputs")?;
    Ok(first.view().to_f32_vec())
}

fn argmax(v: &[f32]) -> Option<usize> {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i)
}
