//! Graph-to-graph rewrites, each a named pass that can run on its own.

mod attention;
pub mod fold;
pub mod fuse;
pub mod qdq;
mod qdynamic;
pub mod storage;
#[cfg(test)]
pub(crate) mod test_support;

use crate::{Graph, Node, Result};
use std::collections::HashMap;

/// What `prepare_for_inference` did, for `inspect` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrepareStats {
    pub fold: fold::FoldStats,
    pub fuse: fuse::FuseStats,
    pub qdq: qdq::QdqStats,
}

/// The passes every loader runs before executing a model: constant folding and
/// dead-node removal, then BatchNorm folding, epilogue fusion and weight prepacking
/// (see `fuse`), then removal of the initializers the fused nodes no longer read. The CLI, the server and the wasm runtime all call this one
/// function so that they execute the same graph.
pub fn prepare_for_inference(graph: Graph) -> Result<(Graph, PrepareStats)> {
    let (graph, qdq) = qdq::quantized_to_int8(graph)?;
    let (graph, fold) = fold::fold_constants(graph)?;
    let (mut graph, fuse) = fuse::fuse(graph)?;
    fold::remove_dead(&mut graph, &mut fold::FoldStats::default());
    Ok((graph, PrepareStats { fold, fuse, qdq }))
}

/// Rewrites `graph.nodes` after a fusion pass: node `i` becomes `replacement[i]` where there is
/// one, is dropped where `absorbed(i)`, and stays otherwise (in order). The caller picks each
/// fused node's index so that every input it reads is computed before it.
fn splice_nodes(graph: &mut Graph, mut replacement: HashMap<usize, Node>, absorbed: impl Fn(usize) -> bool) {
    let old = std::mem::take(&mut graph.nodes);
    graph.nodes = old
        .into_iter()
        .enumerate()
        .filter_map(|(i, node)| match replacement.remove(&i) {
            Some(fused) => Some(fused),
            None => (!absorbed(i)).then_some(node),
        })
        .collect();
}
