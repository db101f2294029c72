//! `cairn eval ORIGINAL WITH_WIDTHS --widths`: the accuracy / MACs / latency curve of a
//! model's run-time widths, each width against the original model's outputs.

use crate::model::human_count;
use anyhow::Result;
use cairn_core::passes::prepare_for_inference;
use cairn_core::{Graph, Session, Tensor, WidthPlan};
use cairn_quant::fidelity::Agreement;
use std::collections::HashMap;
use std::time::Instant;

type Inputs = [(String, HashMap<String, Tensor>)];

pub fn report(original: &Graph, model: &Graph, plan: &WidthPlan, inputs: &Inputs, latency_runs: usize, json: bool) -> Result<()> {
    anyhow::ensure!(!inputs.is_empty(), "no inputs to evaluate on");
    let reference = Session::new(prepare_for_inference(original.clone())?.0);
    let want: Vec<Vec<f32>> = inputs.iter().map(|(_, set)| first(&reference, set)).collect::<Result<_>>()?;
    let full_macs = cairn_quant::widths::macs(model)?;
    let mut rows = Vec::new();
    let widths = std::iter::once(None).chain((0..plan.widths.len()).map(Some));
    let bar = crate::progress::bar(((plan.widths.len() + 1) * inputs.len()) as u64, "evaluating widths");
    for w in widths {
        let (graph, fraction, macs) = match w {
            None => (model.clone(), 1.0, full_macs),
            Some(i) => (cairn_core::narrow(model, plan, i)?, plan.widths[i].fraction, plan.widths[i].macs),
        };
        let session = Session::new(prepare_for_inference(graph)?.0);
        let mut a = Agreement::default();
        for ((_, set), want) in inputs.iter().zip(&want) {
            a.add(want, &first(&session, set)?, None);
            bar.inc(1);
        }
        let set = &inputs[0].1;
        session.run(set.clone())?; // warm-up: planning, arena
        let mut times: Vec<f64> = (0..latency_runs.max(1))
            .map(|_| {
                let t = Instant::now();
                session.run(set.clone()).map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        rows.push((fraction, macs, times[times.len() / 2], a));
    }
    bar.finish_and_clear();
    let full_ms = rows[0].2;
    if json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(f, macs, ms, a)| {
                serde_json::json!({
                    "width": f, "macs": macs, "macs_ratio": *macs as f64 / full_macs as f64, "latency_ms": ms, "latency_ratio": ms / full_ms,
                    "inputs": a.inputs, "top1_agreement": Agreement::rate(a.top1, a.inputs),
                    "decisive_inputs": a.decisive, "decisive_top1_agreement": Agreement::rate(a.decisive_top1, a.decisive),
                    "mean_kl": a.mean_kl(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "threads": rayon::current_num_threads(), "widths": doc }))?);
        return Ok(());
    }
    println!("{} inputs; latency: median of {} runs, {} thread(s)", inputs.len(), latency_runs.max(1), rayon::current_num_threads());
    println!(
        "{:>6} {:>10} {:>7} {:>10} {:>8} {:>8} {:>14} {:>9}",
        "width", "MACs", "of full", "latency", "of full", "top-1", "decisive top-1", "mean KL"
    );
    for (f, macs, ms, a) in &rows {
        println!(
            "{f:>6} {:>10} {:>6.1}% {:>8.2}ms {:>7.1}% {:>7.1}% {:>8.1}% ({:>3}) {:>9.4}",
            human_count(*macs),
            100.0 * *macs as f64 / full_macs as f64,
            ms,
            100.0 * ms / full_ms,
            100.0 * Agreement::rate(a.top1, a.inputs),
            100.0 * Agreement::rate(a.decisive_top1, a.decisive),
            a.decisive,
            a.mean_kl()
        );
    }
    Ok(())
}

fn first(session: &Session, set: &HashMap<String, Tensor>) -> Result<Vec<f32>> {
    let out = session.run(set.clone())?;
    Ok(out.into_iter().next().map(|(_, t)| t.view().to_f32_vec()).unwrap_or_default())
}
