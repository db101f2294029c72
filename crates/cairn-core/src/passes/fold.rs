//! Load-time constant folding and dead-node removal.
//!
//! Plan-time folding (in `plan.rs`) already computes everything that depends
//! only on shapes, per binding. This pass does the part that is the same for
//! every binding, once: nodes whose inputs are all initializers (weights
//! transposed or reshaped by the exporter, `ConstantOfShape` fills, ...) become
//! initializers, and nodes nothing reads are dropped.

use crate::plan::run_owned;
use crate::{Graph, Result, Tensor};
use std::collections::HashSet;
use std::sync::Arc;

/// Outputs larger than this stay computed at run time rather than stored
/// (256 MiB of f32): folding must not multiply a model's memory.
pub const LOAD_FOLD_MAX_ELEMENTS: usize = 64 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoldStats {
    pub folded_nodes: usize,
    pub removed_dead_nodes: usize,
    pub removed_initializers: usize,
}

/// Folds constant subgraphs into initializers, then removes dead nodes and unused initializers.
pub fn fold_constants(graph: Graph) -> Result<(Graph, FoldStats)> {
    fold(graph, false)
}

/// [`fold_constants`] for a graph that is stored rather than run (bundles, `cairn optimize`
/// output): `DequantizeLinear` of 8-bit initializers stays, since folding it would store the
/// weights 4x larger; the loader's `qdq` pass reads them as int8 (and folds what it leaves).
/// So does `DequantizeLinear` of int32 ones (the biases of quantized convolutions and Gemms):
/// folded, they would be f32 of the same size, and the `qdq` pass could no longer add them to
/// the accumulator as integers, as XNNPACK and the ONNX reference do (docs/adr/0032).
pub fn fold_constants_for_storage(graph: Graph) -> Result<(Graph, FoldStats)> {
    fold(graph, true)
}

fn fold(mut graph: Graph, keep_quantized: bool) -> Result<(Graph, FoldStats)> {
    let mut stats = FoldStats::default();
    let graph_inputs: HashSet<String> = graph.inputs.iter().map(|i| i.name.clone()).collect();
    let mut kept = Vec::with_capacity(graph.nodes.len());
    for node in std::mem::take(&mut graph.nodes) {
        // An initializer that is also a graph input may be overridden by the caller: not constant.
        let constant_input = |name: &String| !graph_inputs.contains(name) && graph.initializers.contains_key(name);
        let quantized_constant = keep_quantized
            && node.op_type == "DequantizeLinear"
            && node
                .inputs
                .first()
                .and_then(|n| n.as_ref())
                .and_then(|n| graph.initializers.get(n))
                .is_some_and(|t| matches!(t.dtype(), crate::DType::I8 | crate::DType::U8 | crate::DType::I32));
        let foldable = !quantized_constant
            && !node.op.is_random()
            && !node.outputs.is_empty()
            && node.outputs.iter().all(|o| !o.is_empty())
            && node.inputs.iter().flatten().filter(|n| !n.is_empty()).all(constant_input);
        if foldable {
            let inputs: Vec<Option<Arc<Tensor>>> =
                node.inputs.iter().map(|n| n.as_ref().filter(|n| !n.is_empty()).map(|n| graph.initializers[n].clone())).collect();
            // Only fold when the outputs are of reasonable size; shapes first, from `infer`.
            let facts: Vec<_> = inputs.iter().map(|t| t.clone().map(crate::Fact::from_tensor)).collect();
            let fact_refs: Vec<_> = facts.iter().map(|f| f.as_ref()).collect();
            let small = node
                .op
                .infer(&fact_refs)
                .map(|outs| outs.iter().map(|f| f.numel()).sum::<usize>() <= LOAD_FOLD_MAX_ELEMENTS)
                .unwrap_or(false);
            if small {
                let outputs = run_owned(node.op.as_ref(), &inputs).map_err(|e| e.at_node(&node.name, &node.op_type))?;
                for (name, t) in node.outputs.iter().zip(outputs) {
                    graph.initializers.insert(name.clone(), Arc::new(t));
                }
                stats.folded_nodes += 1;
                continue;
            }
        }
        kept.push(node);
    }
    graph.nodes = kept;
    remove_dead(&mut graph, &mut stats);
    Ok((graph, stats))
}

/// Drops nodes whose outputs nothing reads, and initializers no one reads.
pub(crate) fn remove_dead(graph: &mut Graph, stats: &mut FoldStats) {
    let mut needed: HashSet<String> = graph.outputs.iter().map(|o| o.name.clone()).collect();
    let mut keep = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate().rev() {
        if node.outputs.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(node.inputs.iter().flatten().cloned());
        }
    }
    let before = graph.nodes.len();
    let mut flags = keep.into_iter();
    graph.nodes.retain(|_| flags.next().unwrap_or(false));
    stats.removed_dead_nodes = before - graph.nodes.len();
    let inputs: HashSet<&String> = graph.inputs.iter().map(|i| &i.name).collect();
    let before = graph.initializers.len();
    graph.initializers.retain(|name, _| needed.contains(name) || inputs.contains(name));
    stats.removed_initializers = before - graph.initializers.len();
}
