//! Rewrites for graphs that are stored (bundles): the same computation, with weights
//! laid out the way the kernels read them in place, so that loading copies nothing.

use crate::{Attr, DType, Graph, Node, NodeSpec, Registry, Result, Tensor};
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
        let spec = NodeSpec {
            name: old.name.clone(),
            domain: old.domain.clone(),
            op_type: old.op_type.clone(),
            attrs,
            inputs: old.inputs.clone(),
            outputs: old.outputs.clone(),
        };
        graph.nodes[i] = Node::build(spec, graph.opset, Registry::global())?;
        rewritten += 1;
    }
    Ok(rewritten)
}

/// `BatchNormalization(Conv(x, W, b))` with constant statistics, where the Conv's output
/// is read by nothing else, becomes one standard `Conv(x, W', b')` (W' = W * s per output
/// channel, b' = (b - mean) * s + shift, s = scale / sqrt(var + eps): the same folding
/// the fusion pass does at load). A stored bundle then carries no statistics, and a
/// model run straight from its weights (a bundle's coarse level, before fusion) makes
/// one pass over each activation instead of two. Filters read by another node too are
/// left alone. Returns how many BatchNormalizations were folded.
pub fn fold_batchnorm_into_conv(graph: &mut Graph) -> Result<usize> {
    let mut folded = 0;
    let mut removed = vec![false; graph.nodes.len()];
    for i in 0..graph.nodes.len() {
        let conv = &graph.nodes[i];
        if conv.op_type != "Conv" || !conv.domain.is_empty() || conv.outputs.len() != 1 {
            continue;
        }
        let out = &conv.outputs[0];
        let readers: Vec<usize> = (0..graph.nodes.len()).filter(|&j| graph.nodes[j].inputs.iter().flatten().any(|x| x == out)).collect();
        let [j] = readers[..] else { continue };
        let bn = &graph.nodes[j];
        let observed = |name: &str| graph.outputs.iter().any(|o| o.name == name) || graph.inputs.iter().any(|x| x.name == name);
        if !bn.is_inference_batch_norm() || bn.inputs.len() != 5 || bn.outputs.len() != 1 || observed(out) {
            continue;
        }
        let Some(Some(w_name)) = conv.inputs.get(1) else { continue };
        let Some(w) = graph.initializers.get(w_name).filter(|w| w.dtype() == DType::F32 && w.rank() >= 3) else { continue };
        let m = w.shape()[0];
        let vector = |name: &Option<String>| -> Option<Vec<f32>> {
            let t = graph.initializers.get(name.as_deref()?)?;
            (t.dtype() == DType::F32 && t.len() == m).then(|| t.f32s().ok().map(<[f32]>::to_vec)).flatten()
        };
        let Some(stats) = bn.inputs[1..].iter().map(vector).collect::<Option<Vec<_>>>() else { continue };
        let bias = match conv.inputs.get(2) {
            Some(Some(b)) if !b.is_empty() => match vector(&Some(b.clone())) {
                Some(b) => b,
                None => continue,
            },
            _ => vec![0.0; m],
        };
        let weight_readers = graph.nodes.iter().flat_map(|n| n.inputs.iter().flatten()).filter(|x| *x == w_name).count();
        if weight_readers != 1 || observed(w_name) {
            continue;
        }
        let eps = match bn.attrs.get("epsilon") {
            Some(Attr::Float(e)) => *e,
            _ => 1e-5,
        };
        let (scale, shift, mean, var) = (&stats[0], &stats[1], &stats[2], &stats[3]);
        let mut weights = w.f32s()?.to_vec();
        let per_filter = weights.len() / m;
        let mut new_bias = bias;
        for c in 0..m {
            let s = scale[c] / (var[c] + eps).sqrt();
            weights[c * per_filter..(c + 1) * per_filter].iter_mut().for_each(|v| *v *= s);
            new_bias[c] = (new_bias[c] - mean[c]) * s + shift[c];
        }
        let w_shape = w.shape().to_vec();
        let bias_name = unused_name(graph, &format!("{}.folded_bias", conv.name));
        let spec = NodeSpec {
            name: conv.name.clone(),
            domain: String::new(),
            op_type: "Conv".into(),
            attrs: conv.attrs.clone(),
            inputs: vec![conv.inputs[0].clone(), Some(w_name.clone()), Some(bias_name.clone())],
            outputs: bn.outputs.clone(),
        };
        let w_name = w_name.clone();
        let old_bias = conv.inputs.get(2).cloned().flatten();
        let bn_inputs: Vec<String> = bn.inputs[1..].iter().flatten().cloned().collect();
        // The fused Conv takes the BatchNormalization's place, so its output is defined where the BN's was.
        graph.nodes[j] = Node::build(spec, graph.opset, Registry::global())?;
        removed[i] = true;
        graph.initializers.insert(w_name, Arc::new(Tensor::from_f32(w_shape, weights)?));
        graph.initializers.insert(bias_name, Arc::new(Tensor::from_f32(vec![m], new_bias)?));
        for name in bn_inputs.into_iter().chain(old_bias) {
            let still_read = graph.nodes.iter().enumerate().any(|(k, n)| !removed[k] && n.inputs.iter().flatten().any(|x| *x == name));
            if !still_read && !observed(&name) {
                graph.initializers.remove(&name);
            }
        }
        folded += 1;
    }
    let mut index = 0;
    graph.nodes.retain(|_| {
        index += 1;
        !removed[index - 1]
    });
    Ok(folded)
}

/// `base`, or `base` with a numeric suffix, whichever no value of the graph uses yet.
fn unused_name(graph: &Graph, base: &str) -> String {
    let taken = |n: &str| {
        graph.initializers.contains_key(n)
            || graph.nodes.iter().any(|x| x.outputs.iter().any(|o| o == n))
            || graph.inputs.iter().any(|x| x.name == n)
    };
    (0..).map(|k| if k == 0 { base.to_string() } else { format!("{base}.{k}") }).find(|n| !taken(n)).expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::test_support::{self, node};
    use crate::{Dim, Session, ValueInfo};
    use std::collections::HashMap;

    fn tensor(shape: Vec<usize>, seed: f32) -> Arc<Tensor> {
        let n = shape.iter().product();
        Arc::new(Tensor::from_f32(shape, (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()).unwrap())
    }

    /// x -> Conv(3->4, 3x3, with bias) -> BatchNormalization -> Relu -> y, and a second
    /// Conv whose output is also a graph output (its BatchNorm must stay).
    fn graph() -> Graph {
        let var = Arc::new(Tensor::from_f32(vec![4], vec![0.5, 1.0, 2.0, 0.1]).unwrap());
        let initializers = HashMap::from([
            ("w".to_string(), tensor(vec![4, 3, 3, 3], 0.1)),
            ("b".to_string(), tensor(vec![4], 0.2)),
            ("scale".to_string(), tensor(vec![4], 0.3)),
            ("shift".to_string(), tensor(vec![4], 0.4)),
            ("mean".to_string(), tensor(vec![4], 0.5)),
            ("var".to_string(), var),
            ("w2".to_string(), tensor(vec![4, 4, 1, 1], 0.6)),
        ]);
        let nodes = vec![
            node("conv", "Conv", &["x", "w", "b"], "c", vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]),
            node("bn", "BatchNormalization", &["c", "scale", "shift", "mean", "var"], "n", vec![("epsilon", Attr::Float(1e-3))]),
            node("relu", "Relu", &["n"], "y", vec![]),
            node("conv2", "Conv", &["y", "w2"], "c2", vec![]),
            node("bn2", "BatchNormalization", &["c2", "scale", "shift", "mean", "var"], "y2", vec![]),
        ];
        let f32_value = |name: &str, dims: Option<Vec<Dim>>| ValueInfo { name: name.into(), dtype: DType::F32, dims };
        let inputs = vec![f32_value("x", Some(vec![Dim::Known(1), Dim::Known(3), Dim::Known(5), Dim::Known(5)]))];
        test_support::graph(inputs, vec![f32_value("y", None), f32_value("y2", None), f32_value("c2", None)], initializers, nodes)
    }

    #[test]
    fn batchnorm_folds_into_the_conv_and_the_results_stay() {
        let original = graph();
        let mut folded = original.clone();
        assert_eq!(fold_batchnorm_into_conv(&mut folded).unwrap(), 1, "bn2's conv output is observed, so only bn folds");
        assert_eq!(folded.nodes.iter().map(|n| n.op_type.as_str()).collect::<Vec<_>>(), ["Conv", "Relu", "Conv", "BatchNormalization"]);
        assert!(folded.initializers.contains_key("scale"), "bn2 still reads the statistics");
        assert!(!folded.initializers.contains_key("b"), "the old bias has no reader left");
        let x = Tensor::from_f32(vec![1, 3, 5, 5], (0..75).map(|i| (i as f32 * 0.11).cos()).collect()).unwrap();
        let run = |g: Graph| Session::new(g.validated().unwrap()).run(HashMap::from([("x".to_string(), x.clone())])).unwrap();
        for ((name, want), (_, got)) in run(original).into_iter().zip(run(folded)) {
            for (a, b) in want.f32s().unwrap().iter().zip(got.f32s().unwrap()) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{name}: {a} vs {b}");
            }
        }
    }
}
