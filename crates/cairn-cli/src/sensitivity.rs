//! The sensitivity tables of `cairn optimize --sensitivity`: per layer (quantization) or
//! per block (pruning), how far the output moves when only that part is changed, and
//! what the optimizer did with it; also as JSON (`--sensitivity-json FILE`).

use cairn_quant::sensitivity::{PruneCurve, Sensitivity};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

/// Prints the quantization ranking, most sensitive first; `kept` are left in f32.
pub fn print_quantization(ranking: &[Sensitivity], kept: &BTreeSet<String>, inputs: usize) {
    println!("quantization sensitivity: each layer alone in int8, vs f32 on {inputs} calibration inputs (most sensitive first)");
    println!("  {:>4} {:>10} {:>7} {:>9}  {:<6} {:<5} layer", "rank", "mean KL", "top-1", "cosine", "op", "");
    for (k, s) in ranking.iter().enumerate() {
        let mark = if kept.contains(&s.name) { "f32" } else { "" };
        println!("  {:>4} {:>10.6} {:>6.1}% {:>9.6}  {:<6} {:<5} {}", k + 1, s.kl, 100.0 * s.top1, s.cosine, s.op, mark, s.name);
    }
}

/// Prints each block's KL at the probed ratios and the ratio it was given.
pub fn print_pruning(curves: &[PruneCurve], ratios: &HashMap<String, f32>, inputs: usize) {
    let Some(first) = curves.first() else { return };
    println!("pruning sensitivity: mean KL vs f32 on {inputs} calibration inputs, each block pruned alone at each ratio");
    let head: String = first.points.iter().map(|(r, _)| format!(" {:>8}", format!("{:.0}%", 100.0 * r))).collect();
    println!("  {:>6}{head} {:>8}  block", "hidden", "chosen");
    for c in curves {
        let row: String = c.points.iter().map(|(_, s)| format!(" {:>8.5}", s.kl)).collect();
        let r = ratios.get(&c.block.name).copied().unwrap_or(0.0);
        println!("  {:>6}{row} {:>7.1}%  {}", c.block.hidden, 100.0 * r, c.block.name);
    }
}

pub fn quantization_json(ranking: &[Sensitivity], kept: &BTreeSet<String>) -> Value {
    Value::Array(
        ranking
            .iter()
            .map(|s| json!({"layer": s.name, "op": s.op, "mean_kl": s.kl, "top1_agreement": s.top1, "mean_cosine": s.cosine, "kept_f32": kept.contains(&s.name)}))
            .collect(),
    )
}

pub fn pruning_json(curves: &[PruneCurve], ratios: &HashMap<String, f32>) -> Value {
    Value::Array(
        curves
            .iter()
            .map(|c| {
                json!({
                    "block": c.block.name, "hidden": c.block.hidden, "ratio": ratio(ratios.get(&c.block.name).copied().unwrap_or(0.0)),
                    "probes": c.points.iter().map(|(r, s)| json!({"ratio": ratio(*r), "mean_kl": s.kl, "top1_agreement": s.top1})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A ratio as JSON: the f32 rounded to 6 digits (0.1, not 0.10000000149).
fn ratio(r: f32) -> f64 {
    (r as f64 * 1e6).round() / 1e6
}
