//! Graph-to-graph rewrites, each a named pass that can run on its own.

mod attention;
pub mod fold;
pub mod fuse;
pub mod qdq;
mod qdynamic;
pub mod storage;
#[cfg(test)]
pub(crate) mod test_support;

use crate::{Graph, Result};

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
