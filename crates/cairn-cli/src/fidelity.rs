//! How closely one model follows another on the same inputs: top-1 agreement and
//! relative error of the first output. Used by `pack` to score each level.

use anyhow::{Context, Result};
use cairn_core::{Session, Tensor};
use std::collections::HashMap;

pub type Inputs = HashMap<String, Tensor>;

/// Runs both sessions on every input set and compares their first outputs.
pub fn compare(reference: &Session, candidate: &Session, inputs: &[Inputs]) -> Result<cairn_bundle::Fidelity> {
    let mut agree = 0usize;
    let mut worst = 0f64;
    for set in inputs {
        let want = first_output(reference, set).context("running the full model")?;
        let got = first_output(candidate, set).context("running the reduced model")?;
        if argmax(&want) == argmax(&got) {
            agree += 1;
        }
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
        let diff = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        worst = worst.max((diff / scale) as f64);
    }
    Ok(cairn_bundle::Fidelity {
        top1_agreement: agree as f64 / inputs.len().max(1) as f64,
        max_relative_error: worst,
        inputs: inputs.len(),
        input_source: String::new(),
    })
}

fn first_output(session: &Session, inputs: &Inputs) -> Result<Vec<f32>> {
    let outputs = session.run(inputs.clone())?;
    let (_, first) = outputs.into_iter().next().context("the model has no outputs")?;
    Ok(first.view().to_f32_vec())
}

fn argmax(v: &[f32]) -> Option<usize> {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i)
}
