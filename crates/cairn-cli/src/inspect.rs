//! `cairn inspect`: what a model needs and what it costs.

use crate::missing_ops;
use crate::model::{self, human_bytes, human_count};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

/// Show a model's inputs, outputs, operators, parameters, MACs and working memory.
///
/// Symbolic dimensions (like `batch`) are bound to 1 for the cost figures
/// unless set with `--dim`.
#[derive(Args)]
pub struct InspectArgs {
    /// The .onnx model file, or a bundle directory written by `cairn pack`.
    model: PathBuf,
    /// Print JSON instead of text (for scripts).
    #[arg(long)]
    json: bool,
    /// Bind a symbolic dimension for the cost figures, e.g. `--dim batch=8`. Repeatable.
    #[arg(long = "dim", value_name = "NAME=SIZE")]
    dims: Vec<String>,
}

#[derive(Serialize)]
struct IoReport {
    name: String,
    dtype: String,
    /// Dims as numbers or symbolic names; null when the model declares no shape.
    shape: Option<Vec<serde_json::Value>>,
}

#[derive(Serialize)]
struct Report {
    model: String,
    producer: String,
    ir_version: i64,
    opsets: Vec<(String, i64)>,
    inputs: Vec<IoReport>,
    outputs: Vec<IoReport>,
    nodes: usize,
    ops: std::collections::BTreeMap<String, usize>,
    parameters: usize,
    parameter_bytes: usize,
    initializers: usize,
    folded_at_load: usize,
    /// Convolutions and matrix products that absorbed BatchNorms, bias and residual adds
    /// and activations (their weights are then prepacked inside the node).
    fused_convs: usize,
    fused_matmuls: usize,
    /// LSTM, GRU and RNN nodes whose constant W and R are prepacked inside the node.
    recurrent_packed: usize,
    /// Nodes absorbed into them: BatchNormalization, Add, and activation nodes.
    absorbed_nodes: usize,
    /// Symbolic dims and the sizes the cost figures assume.
    bound_dims: std::collections::BTreeMap<String, usize>,
    macs: Option<u64>,
    /// Nodes computed while planning this binding (shape chains); they never run.
    plan_folded_nodes: Option<usize>,
    /// Nodes that run per inference.
    plan_steps: Option<usize>,
    peak_working_bytes: Option<usize>,
    unshared_working_bytes: Option<usize>,
    plan_error: Option<String>,
}

fn io_report(v: &cairn_core::ValueInfo) -> IoReport {
    IoReport {
        name: v.name.clone(),
        dtype: v.dtype.to_string(),
        shape: v.dims.as_ref().map(|dims| {
            dims.iter()
                .map(|d| match d {
                    cairn_core::Dim::Known(n) => serde_json::json!(n),
                    cairn_core::Dim::Sym(s) => serde_json::json!(s),
                })
                .collect()
        }),
    }
}

pub fn main(args: InspectArgs) -> Result<()> {
    let loaded = match model::load(&args.model) {
        Ok(loaded) => loaded,
        Err(err) => return missing_ops::report_or(err, &args.model, args.json),
    };
    let graph = loaded.session.graph();
    let mut bound = model::parse_dims(&args.dims)?;
    for input in graph.runtime_inputs() {
        for d in input.dims.iter().flatten() {
            if let cairn_core::Dim::Sym(s) = d {
                bound.entry(s.clone()).or_insert(1);
            }
        }
    }
    // String graphs run on the eager interpreter only (docs/adr/0031): there is no plan to cost.
    let plan = if graph.uses_strings() {
        Err(anyhow::anyhow!("the model uses string tensors, which run on the eager interpreter without a memory plan"))
    } else {
        model::zero_inputs(graph, &bound).and_then(|inputs| Ok(loaded.session.plan(&inputs)?))
    };
    let (params, param_bytes) = graph.parameter_stats();
    let meta = &loaded.meta;
    let report = Report {
        model: args.model.display().to_string(),
        producer: format!("{} {}", meta.producer_name, meta.producer_version).trim().to_string(),
        ir_version: meta.ir_version,
        opsets: meta.opsets.clone(),
        inputs: graph.runtime_inputs().map(io_report).collect(),
        outputs: graph.outputs.iter().map(io_report).collect(),
        nodes: loaded.imported_nodes,
        ops: loaded.op_histogram.clone(),
        parameters: params,
        parameter_bytes: param_bytes,
        initializers: graph.initializers.len(),
        folded_at_load: loaded.folded_at_load,
        fused_convs: loaded.fuse.fused_convs,
        fused_matmuls: loaded.fuse.fused_matmuls,
        recurrent_packed: loaded.fuse.recurrent_packed,
        absorbed_nodes: loaded.imported_nodes.saturating_sub(loaded.folded_at_load + graph.nodes.len()),
        bound_dims: bound,
        macs: plan.as_ref().ok().map(|p| p.macs),
        plan_folded_nodes: plan.as_ref().ok().map(|p| p.folded_nodes),
        plan_steps: plan.as_ref().ok().map(|p| p.steps.len()),
        peak_working_bytes: plan.as_ref().ok().map(|p| p.arena_bytes),
        unshared_working_bytes: plan.as_ref().ok().map(|p| p.unshared_bytes()),
        plan_error: plan.as_ref().err().map(|e| format!("{e:#}")),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn shape_text(io: &IoReport) -> String {
    match &io.shape {
        None => "[?]".to_string(),
        Some(dims) => {
            let parts: Vec<String> = dims.iter().map(|d| d.as_str().map(str::to_string).unwrap_or_else(|| d.to_string())).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

fn print_text(r: &Report) {
    println!("{}", r.model);
    let opsets: Vec<String> =
        r.opsets.iter().map(|(d, v)| format!("{}{v}", if d.is_empty() { "opset ".to_string() } else { format!("{d} ") })).collect();
    println!("  producer {} | ir {} | {}", if r.producer.is_empty() { "unknown" } else { &r.producer }, r.ir_version, opsets.join(", "));
    println!("inputs:");
    for i in &r.inputs {
        println!("  {:<24} {:<5} {}", i.name, i.dtype, shape_text(i));
    }
    println!("outputs:");
    for o in &r.outputs {
        println!("  {:<24} {:<5} {}", o.name, o.dtype, shape_text(o));
    }
    let packed = r.fused_convs + r.fused_matmuls + r.recurrent_packed;
    println!(
        "parameters: {} ({}): {} tensors, {} prepacked in fused nodes",
        human_count(r.parameters as u64),
        human_bytes(r.parameter_bytes),
        r.initializers,
        packed
    );
    let binding: Vec<String> = r.bound_dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let at = if binding.is_empty() { String::new() } else { format!(" (at {})", binding.join(", ")) };
    match (&r.macs, &r.peak_working_bytes, &r.plan_error) {
        (Some(macs), Some(peak), _) => {
            println!("MACs: {}{at}", human_count(*macs));
            println!(
                "working memory: {} peak, shared by liveness ({} if every intermediate had its own buffer)",
                human_bytes(*peak),
                human_bytes(r.unshared_working_bytes.unwrap_or(0))
            );
        }
        (_, _, Some(err)) => println!("MACs and memory: not available{at}: {err}"),
        _ => {}
    }
    println!(
        "nodes: {} ({} folded at load, {} absorbed by fusion into {} Conv and {} MatMul/Gemm, {} folded when planning{at}, {} run per inference)",
        r.nodes,
        r.folded_at_load,
        r.absorbed_nodes,
        r.fused_convs,
        r.fused_matmuls,
        r.plan_folded_nodes.map_or("?".into(), |n| n.to_string()),
        r.plan_steps.map_or("?".into(), |n| n.to_string())
    );
    let mut ops: Vec<(&String, &usize)> = r.ops.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!("ops:");
    for (op, n) in ops {
        println!("  {:<28} {n}", op);
    }
}
