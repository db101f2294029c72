//! BatchNormalization (inference form, constant statistics) folded into the Conv that
//! feeds it: `w'[c] = w[c] * g[c] / sqrt(v[c] + eps)`, `b'[c] = (b[c] - m[c]) * g[c] / sqrt(v[c] + eps) + beta[c]`.
//! The result is a plain Conv with new initializers, so the graph stays standard ONNX.

use crate::Result;
use cairn_core::{Attr, DType, Graph, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Folds every foldable Conv -> BatchNormalization pair; returns how many.
pub fn fold_batchnorm(graph: &mut Graph) -> Result<usize> {
    let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            readers.entry(v.clone()).or_default().push(i);
        }
    }
    let outputs: Vec<String> = graph.outputs.iter().map(|o| o.name.clone()).collect();
    let mut remove = vec![false; graph.nodes.len()];
    let mut folded = 0;
    for i in 0..graph.nodes.len() {
        let conv = &graph.nodes[i];
        if conv.op_type != "Conv" || !conv.domain.is_empty() || conv.outputs.len() != 1 {
            continue;
        }
        let y = conv.outputs[0].clone();
        let Some([j]) = readers.get(&y).map(|v| v.as_slice()) else { continue };
        let j = *j;
        let bn = &graph.nodes[j];
        if bn.op_type != "BatchNormalization" || bn.inputs.len() != 5 || bn.outputs.len() != 1 || outputs.contains(&y) {
            continue;
        }
        let constant = |name: &Option<String>| name.as_ref().and_then(|n| graph.initializers.get(n)).filter(|t| t.dtype() == DType::F32).cloned();
        let (Some(w), Some(params)) = (constant(&conv.inputs[1]), bn.inputs[1..].iter().map(constant).collect::<Option<Vec<_>>>()) else { continue };
        let m = w.shape()[0];
        if params.iter().any(|p| p.len() != m) || w.rank() < 3 {
            continue;
        }
        // A weight shared with another node cannot be rewritten in place.
        let w_name = conv.inputs[1].clone().expect("checked");
        if readers.get(&w_name).map_or(0, |r| r.len()) != 1 {
            continue;
        }
        let bias = match conv.inputs.get(2).cloned().flatten() {
            Some(b) => match graph.initializers.get(&b) {
                Some(t) if t.len() == m => t.f32s()?.to_vec(),
                _ => continue,
            },
            None => vec![0.0; m],
        };
        let eps = match bn.attrs.get("epsilon") {
            Some(Attr::Float(e)) => *e,
            _ => 1e-5,
        };
        let p: Vec<&[f32]> = params.iter().map(|t| t.f32s()).collect::<std::result::Result<_, _>>()?;
        let (g, beta, mean, var) = (p[0], p[1], p[2], p[3]);
        let per = w.len() / m;
        let mut wv = w.f32s()?.to_vec();
        let mut b = bias;
        for c in 0..m {
            let s = g[c] / (var[c] + eps).sqrt();
            wv[c * per..(c + 1) * per].iter_mut().for_each(|v| *v *= s);
            b[c] = (b[c] - mean[c]) * s + beta[c];
        }
        let b_name = format!("{}_folded_bias", conv.name);
        graph.initializers.insert(w_name, Arc::new(Tensor::from_f32(w.shape().to_vec(), wv)?));
        graph.initializers.insert(b_name.clone(), Arc::new(Tensor::from_f32(vec![m], b)?));
        let bn_out = bn.outputs[0].clone();
        let conv = &mut graph.nodes[i];
        conv.inputs.resize(3, None);
        conv.inputs[2] = Some(b_name);
        conv.outputs[0] = bn_out;
        remove[j] = true;
        folded += 1;
    }
    let mut k = 0;
    graph.nodes.retain(|_| {
        k += 1;
        !remove[k - 1]
    });
    let used: std::collections::HashSet<String> = graph.nodes.iter().flat_map(|n| n.inputs.iter().flatten().cloned()).chain(graph.outputs.iter().map(|o| o.name.clone())).collect();
    graph.initializers.retain(|k, _| used.contains(k));
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Attrs, Dim, Node, NodeSpec, Registry, Session, ValueInfo};
    use std::collections::HashMap;

    fn node(op: &str, inputs: &[&str], output: &str, attrs: Attrs) -> Node {
        let spec = NodeSpec { name: output.into(), domain: String::new(), op_type: op.into(), attrs, inputs: inputs.iter().map(|s| Some(s.to_string())).collect(), outputs: vec![output.into()] };
        Node::build(spec, 13, Registry::global()).unwrap()
    }

    #[test]
    fn folded_conv_computes_the_same() {
        let t = |shape: Vec<usize>, f: &dyn Fn(usize) -> f32| Arc::new(Tensor::from_f32(shape.clone(), (0..shape.iter().product()).map(f).collect()).unwrap());
        let mut init = HashMap::new();
        init.insert("w".to_string(), t(vec![4, 2, 3, 3], &|i| ((i * 7 % 11) as f32 - 5.0) * 0.1));
        init.insert("g".to_string(), t(vec![4], &|i| 0.5 + i as f32));
        init.insert("b".to_string(), t(vec![4], &|i| i as f32 - 1.0));
        init.insert("m".to_string(), t(vec![4], &|i| 0.2 * i as f32));
        init.insert("v".to_string(), t(vec![4], &|i| 1.0 + i as f32));
        let mut pads = Attrs::new();
        pads.insert("pads".into(), Attr::Ints(vec![1, 1, 1, 1]));
        let graph = Graph {
            inputs: vec![ValueInfo { name: "x".into(), dtype: DType::F32, dims: Some(vec![Dim::Known(1), Dim::Known(2), Dim::Known(5), Dim::Known(5)]) }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }],
            initializers: init,
            nodes: vec![node("Conv", &["x", "w"], "c", pads), node("BatchNormalization", &["c", "g", "b", "m", "v"], "y", Attrs::new())],
            opset: 13,
        };
        let x = Tensor::from_f32(vec![1, 2, 5, 5], (0..50).map(|i| (i as f32 * 0.37).sin()).collect()).unwrap();
        let run = |g: &Graph| Session::new(g.clone()).run(HashMap::from([("x".to_string(), x.clone())])).unwrap()[0].1.f32s().unwrap().to_vec();
        let want = run(&graph);
        let mut folded = graph.clone();
        assert_eq!(fold_batchnorm(&mut folded).unwrap(), 1);
        assert_eq!(folded.nodes.len(), 1);
        let got = run(&folded);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
