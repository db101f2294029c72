//! Rewrites for graphs that are stored (bundles): the same computation, with weights
//! laid out the way the kernels read them in place, so that loading copies nothing.

use crate::{Attr, Graph, Node, NodeSpec, Registry, Result, Tensor};
use std::sync::Arc;

/// `Gemm(a, B, transB=1)` with a constant 2-D f32 `B` read by nothing else becomes
/// `Gemm(a, Bᵀ, transB=0)`: the GEMM reads a row-major `[k, n]` weight in place,
/// where a transposed one must be repacked (a second copy) at load.
/// Returns how many Gemms were rewritten.
pub fn gemm_weights_row_major(graph: &mut Graph) -> Result<usize> {
    let mut rewritten = 0;
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        if node.op_type != "Gemm" || !node.domain.is_empty() || !matches!(node.attrs.get("transB"), Some(Attr::Int(1))) {
            continue;
        }
        let Some(Some(b_name)) = node.inputs.get(1).cloned() else { continue };
        let readers = graph.nodes.iter().flat_map(|n| n.inputs.iter().flatten()).filter(|x| **x == b_name).count();
        let is_output = graph.outputs.iter().any(|o| o.name == b_name) || graph.inputs.iter().any(|x| x.name == b_name);
        let Some(b) = graph.initializers.get(&b_name) else { continue };
        if readers != 1 || is_output || b.rank() != 2 || b.dtype() != crate::DType::F32 {
            continue;
        }
        let (n, k) = (b.shape()[0], b.shape()[1]);
        let src = b.f32s()?;
        let mut t = vec![0f32; n * k];
        for r in 0..n {
            for c in 0..k {
                t[c * n + r] = src[r * k + c];
            }
        }
        graph.initializers.insert(b_name, Arc::new(Tensor::from_f32(vec![k, n], t)?));
        let old = &graph.nodes[i];
        let mut attrs = old.attrs.clone();
        attrs.insert("transB".into(), Attr::Int(0));
        let spec = NodeSpec { name: old.name.clone(), domain: old.domain.clone(), op_type: old.op_type.clone(), attrs, inputs: old.inputs.clone(), outputs: old.outputs.clone() };
        graph.nodes[i] = Node::build(spec, graph.opset, Registry::global())?;
        rewritten += 1;
    }
    Ok(rewritten)
}
