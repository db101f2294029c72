//! Run-time widths in the CLI: reading a model's width plan (ONNX metadata or a bundle's
//! manifest), cutting the graph to the width asked for, and `--widths` parsing.

use anyhow::{bail, Context, Result};
use cairn_core::width::ONNX_METADATA_KEY;
use cairn_core::{narrow, Graph, WidthPlan};

/// The width plan a model carries, if any.
pub fn plan_of(meta: &cairn_onnx::ModelMeta) -> Result<Option<WidthPlan>> {
    match meta.metadata.iter().find(|(k, _)| k == ONNX_METADATA_KEY) {
        None => Ok(None),
        Some((_, json)) => Ok(Some(serde_json::from_str(json).context("the model's width plan (metadata 'cairn.widths') is not valid")?)),
    }
}

/// Stores `plan` in the model's metadata (replacing any earlier one).
pub fn set_plan(meta: &mut cairn_onnx::ModelMeta, plan: &WidthPlan) -> Result<()> {
    meta.metadata.retain(|(k, _)| k != ONNX_METADATA_KEY);
    meta.metadata.push((ONNX_METADATA_KEY.into(), serde_json::to_string(plan)?));
    Ok(())
}

/// The graph at `width` (a share of the full model's MACs; 1 is the full model). Returns
/// the graph and the width that runs (the plan's nearest to the one asked for).
pub fn at_width(graph: &Graph, plan: Option<&WidthPlan>, width: f32) -> Result<(Graph, f32)> {
    if !(width > 0.0 && width <= 1.0) {
        bail!("--width {width}: a width is a share of the full model's MACs, in (0, 1]");
    }
    if width >= 1.0 {
        return Ok((graph.clone(), 1.0));
    }
    let plan = plan.context("this model has no run-time widths (make them with `cairn optimize --widths 0.9,0.75 --calibrate DIR`)")?;
    let i = plan.pick(width).expect("width < 1 and the plan has widths");
    Ok((narrow(graph, plan, i)?, plan.widths[i].fraction))
}

/// Parses `--widths 0.9,0.75`: shares of the full model's MACs, each in (0, 1), widest first.
pub fn parse(list: &str) -> Result<Vec<f32>> {
    let mut v: Vec<f32> = list
        .split(',')
        .map(|s| s.trim().parse::<f32>().with_context(|| format!("--widths: '{s}' is not a number")))
        .collect::<Result<_>>()?;
    if let Some(bad) = v.iter().find(|w| !(**w > 0.0 && **w < 1.0)) {
        bail!("--widths: {bad} is not in (0, 1) (the full width is always there)");
    }
    v.sort_by(|a, b| b.total_cmp(a));
    v.dedup();
    Ok(v)
}
