//! `cairn inspect` of a model that uses operators Cairn lacks: instead of stopping at the
//! load error, describe the file (inputs, outputs, opsets, op histogram) and list every
//! missing operator at once, with its domain, the opset of that domain, and its count.

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Serialize)]
struct MissingOpReport {
    domain: String,
    op_type: String,
    opset: i64,
    nodes: usize,
}

#[derive(Serialize)]
struct UnloadableReport {
    model: String,
    loadable: bool,
    opsets: Vec<(String, i64)>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    nodes: usize,
    ops: BTreeMap<String, usize>,
    missing_ops: Vec<MissingOpReport>,
}

/// If `err` is "the model uses operators Cairn does not implement", prints the report
/// and succeeds (inspecting such a model is what the user asked for); any other error is
/// returned as it is.
pub fn report_or(err: anyhow::Error, path: &Path, json: bool) -> Result<()> {
    let Some(cairn_onnx::Error::UnsupportedOps { ops, .. }) = err.chain().find_map(|c| c.downcast_ref::<cairn_onnx::Error>()) else {
        return Err(err);
    };
    let bytes = std::fs::read(path)?;
    let proto = cairn_onnx::decode_model(&bytes)?;
    let graph = proto.graph.unwrap_or_default();
    let initialized: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut histogram = BTreeMap::new();
    for n in &graph.node {
        let name = if n.domain.is_empty() || n.domain == "ai.onnx" { n.op_type.clone() } else { format!("{}.{}", n.domain, n.op_type) };
        *histogram.entry(name).or_insert(0) += 1;
    }
    let report = UnloadableReport {
        model: path.display().to_string(),
        loadable: false,
        opsets: proto.opset_import.iter().map(|o| (o.domain.clone(), o.version)).collect(),
        inputs: graph.input.iter().filter(|i| !initialized.contains(i.name.as_str())).map(|i| i.name.clone()).collect(),
        outputs: graph.output.iter().map(|o| o.name.clone()).collect(),
        nodes: graph.node.len(),
        ops: histogram,
        missing_ops: ops
            .iter()
            .map(|m| MissingOpReport { domain: m.domain.clone(), op_type: m.op_type.clone(), opset: m.opset, nodes: m.count })
            .collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn print_text(r: &UnloadableReport) {
    println!("{}", r.model);
    let opsets: Vec<String> = r.opsets.iter().map(|(d, v)| format!("{} {v}", if d.is_empty() { "ai.onnx" } else { d })).collect();
    println!("  opsets: {}", opsets.join(", "));
    println!("  inputs: {}", r.inputs.join(", "));
    println!("  outputs: {}", r.outputs.join(", "));
    let missing_nodes: usize = r.missing_ops.iter().map(|m| m.nodes).sum();
    println!(
        "Cairn cannot run this model yet: {} operator(s) it lacks, used by {missing_nodes} of {} nodes:",
        r.missing_ops.len(),
        r.nodes
    );
    println!("  {:<40} {:<16} {:>5} {:>5}", "operator", "domain", "opset", "nodes");
    for m in &r.missing_ops {
        println!("  {:<40} {:<16} {:>5} {:>5}", m.op_type, m.domain, m.opset, m.nodes);
    }
    println!("ops in the file:");
    let mut ops: Vec<(&String, &usize)> = r.ops.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, n) in ops {
        println!("  {op:<40} {n}");
    }
    println!("hint: `cairn ops` lists the operators Cairn implements; each missing one above must be implemented or exported differently");
}
