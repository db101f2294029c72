//! How closely one model follows another on the same inputs, as `pack` records it for
//! each level: the measures of `cairn_quant::fidelity` (the ones `cairn eval` reports)
//! plus the worst relative error of the first output.

use anyhow::{Context, Result};
use cairn_core::{Session, Tensor};
use cairn_quant::fidelity::{relative_error, Agreement};
use std::collections::HashMap;

pub type Inputs = HashMap<String, Tensor>;

/// Runs both sessions on every input set and compares their first outputs.
pub fn compare(reference: &Session, candidate: &Session, inputs: &[Inputs]) -> Result<cairn_bundle::Fidelity> {
    let mut agreement = Agreement::default();
    let mut worst = 0f64;
    for set in inputs {
        let want = first_output(reference, set).context("running the full model")?;
        let got = first_output(candidate, set).context("running the reduced model")?;
        agreement.add(&want, &got, None);
        worst = worst.max(relative_error(&want, &got));
    }
    let a = &agreement;
    Ok(cairn_bundle::Fidelity {
        top1_agreement: a.top1 as f64 / a.inputs.max(1) as f64,
        max_relative_error: worst,
        inputs: inputs.len(),
        input_source: String::new(),
        decisive_inputs: Some(a.decisive),
        decisive_top1_agreement: (a.decisive > 0).then(|| a.decisive_top1 as f64 / a.decisive as f64),
        mean_kl: Some(a.mean_kl()),
    })
}

fn first_output(session: &Session, inputs: &Inputs) -> Result<Vec<f32>> {
    let outputs = session.run(inputs.clone())?;
    let (_, first) = outputs.into_iter().next().context("the model has no outputs")?;
    Ok(first.view().to_f32_vec())
}
