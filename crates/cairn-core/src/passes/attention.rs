//! Finds multi-head attention as encoders export it (BERT, MiniLM and their kin, from
//! PyTorch and transformers) and replaces its twelve nodes with one
//! [`FusedAttention`](crate::ops::FusedAttention):
//!
//! ```text
//! q -> Reshape [0,0,H,D] -> Transpose [0,2,1,3] --\
//! k -> Reshape [0,0,H,D] -> Transpose [0,2,3,1] --> MatMul -> Div|Mul scalar? -> Add mask? -> Softmax(-1)
//! v -> Reshape [0,0,H,Dv] -> Transpose [0,2,1,3] -------------------------------------> MatMul(P, v)
//!                                                                      -> Transpose [0,2,1,3] = output
//! ```
//!
//! Every intermediate must be read only by the next node of the pattern and be no graph
//! output, so nothing anyone observes disappears. Runs before the epilogue fusion, on the
//! plain operators (the scale is still its own Div).

use super::fuse::{constant, constant_scalar, is, Uses};
use crate::ops::{FusedAttention, SeqDim};
use crate::{Attr, DType, Graph, Node};
use std::collections::HashMap;
use std::sync::Arc;

/// Replaces every attention block found; returns how many.
pub(super) fn fuse_attention(graph: &mut Graph) -> usize {
    let uses = Uses::of(graph);
    let producer: HashMap<&str, usize> =
        graph.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i))).collect();
    let mut found: Vec<(Node, Vec<usize>)> = Vec::new();
    let mut taken = vec![false; graph.nodes.len()];
    let m = Matcher { graph, uses: &uses, producer: &producer };
    for i in 0..graph.nodes.len() {
        if !is(&graph.nodes[i], "Softmax") {
            continue;
        }
        if let Some((node, absorbed)) = m.attention_at(i) {
            if absorbed.iter().any(|&j| taken[j]) {
                continue;
            }
            absorbed.iter().for_each(|&j| taken[j] = true);
            found.push((node, absorbed));
        }
    }
    let count = found.len();
    // Each fused node takes the place of the last node it absorbs (the output Transpose):
    // its inputs (Q, K, V and the mask) are all computed before that point.
    let mut replacement: HashMap<usize, Node> = HashMap::new();
    for (node, absorbed) in found {
        replacement.insert(*absorbed.iter().max().expect("a match absorbs nodes"), node);
    }
    super::splice_nodes(graph, replacement, |i| taken[i]);
    count
}

struct Matcher<'g> {
    graph: &'g Graph,
    uses: &'g Uses,
    producer: &'g HashMap<&'g str, usize>,
}

/// One of Q, K, V as the pattern found it: the projection's value, its head split, and the
/// Reshape and Transpose nodes that the fused op makes unnecessary.
struct HeadSplit {
    value: String,
    heads: usize,
    head_dim: usize,
    seq: SeqDim,
    nodes: [usize; 2],
}

impl Matcher<'_> {
    fn node(&self, i: usize) -> &Node {
        &self.graph.nodes[i]
    }

    /// The node computing `value` if `reader` is its only reader and it is `op_type`.
    fn sole_producer(&self, value: &str, op_type: &str, reader: usize) -> Option<usize> {
        let p = *self.producer.get(value)?;
        (is(self.node(p), op_type) && self.uses.sole_reader(value) == Some(reader)).then_some(p)
    }

    fn perm(&self, i: usize) -> Option<&[i64]> {
        match self.node(i).attrs.get("perm") {
            Some(Attr::Ints(p)) => Some(p),
            _ => None,
        }
    }

    /// `value` = Transpose(`perm`)(Reshape(x, [0, 0|-1, H, D])), both read only by the next step.
    fn head_split(&self, value: &str, perm: &[i64], reader: usize) -> Option<HeadSplit> {
        let t = self.sole_producer(value, "Transpose", reader)?;
        if self.perm(t)? != perm {
            return None;
        }
        let r = self.sole_producer(self.node(t).inputs.first()?.as_deref()?, "Reshape", t)?;
        let reshape = self.node(r);
        if matches!(reshape.attrs.get("allowzero"), Some(Attr::Int(z)) if *z != 0) {
            return None;
        }
        let [Some(x), Some(shape)] = reshape.inputs.as_slice() else { return None };
        let shape = constant(self.graph, shape).filter(|s| s.dtype() == DType::I64)?.view().to_i64_vec().ok()?;
        let seq = match shape.as_slice() {
            [0, 0, h, d] if *h > 0 && *d > 0 => SeqDim::Copied,
            [0, -1, h, d] if *h > 0 && *d > 0 => SeqDim::Inferred,
            _ => return None,
        };
        Some(HeadSplit { value: x.clone(), heads: shape[2] as usize, head_dim: shape[3] as usize, seq, nodes: [r, t] })
    }

    fn attention_at(&self, softmax: usize) -> Option<(Node, Vec<usize>)> {
        let sm = self.node(softmax);
        let last_axis = match sm.attrs.get("axis") {
            Some(Attr::Int(a)) => *a == -1 || *a == 3,
            None => self.graph.opset >= 13, // before 13 the default axis is 1
            _ => false,
        };
        if !last_axis {
            return None;
        }
        let mut absorbed = vec![softmax];
        let mut scores = sm.inputs.first()?.as_deref()?;
        let mut reader = softmax;
        // Add mask (either side; the scores side is the one a MatMul chain produced).
        let mut mask = None;
        if let Some(a) = self.sole_producer(scores, "Add", reader) {
            let [Some(x), Some(y)] = self.node(a).inputs.as_slice() else { return None };
            let from_scores = |v: &str| {
                self.uses.sole_reader(v) == Some(a)
                    && self.producer.get(v).is_some_and(|&p| ["Div", "Mul", "MatMul"].iter().any(|o| is(self.node(p), o)))
            };
            let (s, m) = if from_scores(x) {
                (x, y)
            } else if from_scores(y) {
                (y, x)
            } else {
                return None;
            };
            if s == m {
                return None;
            }
            mask = Some(m.clone());
            absorbed.push(a);
            (scores, reader) = (s.as_str(), a);
        }
        // Scale by a scalar constant.
        let mut alpha = 1.0f32;
        for (op, divide) in [("Div", true), ("Mul", false)] {
            let Some(d) = self.sole_producer(scores, op, reader) else { continue };
            let [Some(x), Some(c)] = self.node(d).inputs.as_slice() else { return None };
            let (s, c) = match (constant_scalar(self.graph, c), divide) {
                (Some(c), _) => (x, c),
                (None, false) => (c, constant_scalar(self.graph, x)?),
                (None, true) => return None,
            };
            alpha = if divide { 1.0 / c } else { c };
            if !alpha.is_finite() {
                return None;
            }
            absorbed.push(d);
            (scores, reader) = (s.as_str(), d);
            break;
        }
        let qk = self.sole_producer(scores, "MatMul", reader)?;
        let [Some(qt), Some(kt)] = self.node(qk).inputs.as_slice() else { return None };
        let q = self.head_split(qt, &[0, 2, 1, 3], qk)?;
        let k = self.head_split(kt, &[0, 2, 3, 1], qk)?;
        // Softmax -> MatMul(P, v) -> Transpose [0, 2, 1, 3].
        let probs = &sm.outputs[0];
        let pv = self.uses.sole_reader(probs).filter(|&j| is(self.node(j), "MatMul"))?;
        let [Some(p), Some(vt)] = self.node(pv).inputs.as_slice() else { return None };
        if p != probs {
            return None;
        }
        let v = self.head_split(vt, &[0, 2, 1, 3], pv)?;
        let out_t = self.uses.sole_reader(&self.node(pv).outputs[0]).filter(|&j| is(self.node(j), "Transpose"))?;
        if self.perm(out_t)? != [0, 2, 1, 3] {
            return None;
        }
        if q.heads != k.heads || q.heads != v.heads || q.head_dim != k.head_dim {
            return None;
        }
        absorbed.extend([qk, pv, out_t]);
        absorbed.extend(q.nodes.iter().chain(&k.nodes).chain(&v.nodes));
        let has_mask = mask.is_some();
        let label = format!(
            "Reshape+Transpose(Q,K,V)+MatMul{}{}+Softmax+MatMul+Transpose",
            if alpha != 1.0 { "+scale" } else { "" },
            if has_mask { "+Add(mask)" } else { "" }
        );
        let op = FusedAttention {
            heads: q.heads,
            head_dim: q.head_dim,
            value_dim: v.head_dim,
            seq: [q.seq, k.seq, v.seq],
            alpha,
            has_mask,
            fused: label,
        };
        let out = self.node(out_t);
        let mut inputs = vec![Some(q.value), Some(k.value), Some(v.value)];
        inputs.extend(mask.map(Some));
        let fused = Node {
            name: format!("{}_attention", sm.name),
            domain: String::new(),
            op_type: "Attention".into(),
            attrs: Default::default(),
            inputs,
            outputs: out.outputs.clone(),
            op: Arc::new(op),
        };
        Some((fused, absorbed))
    }
}

#[cfg(test)]
mod tests {
    use crate::passes::test_support::{graph, node};
    use crate::testutil::on_threads;
    use crate::{Attr, DType, Dim, Graph, Session, Tensor, TensorData, ValueInfo};
    use std::collections::HashMap;
    use std::sync::Arc;

    /// One attention block as exporters write it, with what varies between models.
    #[derive(Clone)]
    struct Case {
        b: usize,
        sq: usize,
        sk: usize,
        heads: usize,
        d: usize,
        dv: usize,
        /// The additive mask's shape (a graph input), if any.
        mask: Option<Vec<usize>>,
        /// "Div", "Mul" or "" (no scale).
        scale: &'static str,
        /// Dimension 1 of Q's Reshape target: 0 or -1.
        q_seq: i64,
        /// An intermediate that is also a graph output (nothing may then be fused).
        observe: Option<&'static str>,
    }

    const BERT: Case = Case { b: 2, sq: 5, sk: 5, heads: 2, d: 3, dv: 3, mask: None, scale: "Div", q_seq: 0, observe: None };

    fn value(name: &str, dims: &[usize]) -> ValueInfo {
        ValueInfo { name: name.into(), dtype: DType::F32, dims: Some(dims.iter().map(|&d| Dim::Known(d)).collect()) }
    }

    fn block(c: &Case) -> Graph {
        let ints = |v: Vec<i64>| Arc::new(Tensor::new(vec![v.len()], TensorData::I64(v)).unwrap());
        let (h, d, dv) = (c.heads as i64, c.d as i64, c.dv as i64);
        let mut initializers = HashMap::from([
            ("shape_q".to_string(), ints(vec![0, c.q_seq, h, d])),
            ("shape_k".to_string(), ints(vec![0, 0, h, d])),
            ("shape_v".to_string(), ints(vec![0, 0, h, dv])),
        ]);
        initializers.insert("c".into(), Arc::new(Tensor::new(vec![], TensorData::F32(vec![(c.d as f32).sqrt()])).unwrap()));
        let perm = |p: [i64; 4]| vec![("perm", Attr::Ints(p.to_vec()))];
        let mut nodes = vec![
            node("rq", "Reshape", &["q", "shape_q"], "q4", vec![]),
            node("tq", "Transpose", &["q4"], "qt", perm([0, 2, 1, 3])),
            node("rk", "Reshape", &["k", "shape_k"], "k4", vec![]),
            node("tk", "Transpose", &["k4"], "kt", perm([0, 2, 3, 1])),
            node("rv", "Reshape", &["v", "shape_v"], "v4", vec![]),
            node("tv", "Transpose", &["v4"], "vt", perm([0, 2, 1, 3])),
            node("qk", "MatMul", &["qt", "kt"], "s0", vec![]),
        ];
        let mut scores = "s0";
        match c.scale {
            "Div" => nodes.push(node("scale", "Div", &["s0", "c"], "s1", vec![])),
            "Mul" => nodes.push(node("scale", "Mul", &["c", "s0"], "s1", vec![])),
            _ => {}
        }
        if !c.scale.is_empty() {
            scores = "s1";
        }
        if c.mask.is_some() {
            nodes.push(node("mask", "Add", &["m", scores], "s2", vec![]));
            scores = "s2";
        }
        nodes.push(node("softmax", "Softmax", &[scores], "p", vec![("axis", Attr::Int(-1))]));
        nodes.push(node("pv", "MatMul", &["p", "vt"], "o", vec![]));
        nodes.push(node("out", "Transpose", &["o"], "y", perm([0, 2, 1, 3])));
        let mut inputs = vec![
            value("q", &[c.b, c.sq, c.heads * c.d]),
            value("k", &[c.b, c.sk, c.heads * c.d]),
            value("v", &[c.b, c.sk, c.heads * c.dv]),
        ];
        if let Some(m) = &c.mask {
            inputs.push(value("m", m));
        }
        let mut outputs = vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }];
        if let Some(o) = c.observe {
            outputs.push(ValueInfo { name: o.into(), dtype: DType::F32, dims: None });
        }
        graph(inputs, outputs, initializers, nodes)
    }

    fn feeds(c: &Case) -> HashMap<String, Tensor> {
        let t = |shape: Vec<usize>, f: f32| {
            let n = shape.iter().product::<usize>();
            Tensor::new(shape, TensorData::F32((0..n).map(|i| (i as f32 * f).sin() * 2.0).collect())).unwrap()
        };
        let mut feeds = HashMap::from([
            ("q".to_string(), t(vec![c.b, c.sq, c.heads * c.d], 0.7)),
            ("k".to_string(), t(vec![c.b, c.sk, c.heads * c.d], 0.3)),
            ("v".to_string(), t(vec![c.b, c.sk, c.heads * c.dv], 0.11)),
        ]);
        if let Some(m) = &c.mask {
            // A padding-like mask: large negative on some keys, small values elsewhere.
            let n = m.iter().product::<usize>();
            let values = (0..n).map(|i| if i % 4 == 3 { -10000.0 } else { (i as f32 * 0.37).cos() }).collect();
            feeds.insert("m".into(), Tensor::new(m.clone(), TensorData::F32(values)).unwrap());
        }
        feeds
    }

    /// Fuses the case's block, checks how many attentions were found, and compares every
    /// output with the unfused graph's.
    fn check(c: &Case, fused_count: usize) {
        let want = Session::new(block(c)).run(feeds(c)).unwrap();
        let (fused, stats) = crate::passes::fuse::fuse(block(c)).unwrap();
        assert_eq!(stats.attentions, fused_count);
        let got = Session::new(fused.validated().unwrap()).run(feeds(c)).unwrap();
        for ((name, w), (_, g)) in want.iter().zip(&got) {
            assert_eq!(g.shape(), w.shape(), "{name}");
            for (x, y) in g.f32s().unwrap().iter().zip(w.f32s().unwrap()) {
                // The scale multiplies by 1/c where the graph divided by c: ulps apart.
                assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{name}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn a_bert_attention_block_becomes_one_op_with_the_same_output() {
        check(&BERT, 1);
        let (fused, _) = crate::passes::fuse::fuse(block(&BERT)).unwrap();
        let ops: Vec<&str> = fused.nodes.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Attention"]);
    }

    #[test]
    fn masks_scales_and_head_splits_exporters_write() {
        let cases = [
            Case { mask: Some(vec![2, 1, 1, 5]), ..BERT }, // padding mask, per key
            Case { mask: Some(vec![5]), ..BERT },          // one row for all
            Case { mask: Some(vec![2, 1, 5, 5]), ..BERT }, // per query and key (causal-like)
            Case { mask: Some(vec![1, 2, 5, 1]), ..BERT }, // per head and query, broadcast over keys
            Case { scale: "Mul", ..BERT },
            Case { scale: "", ..BERT },
            Case { q_seq: -1, ..BERT },
            Case { sq: 3, sk: 7, dv: 4, mask: Some(vec![2, 1, 1, 7]), ..BERT }, // cross-attention shapes
            Case { b: 1, sq: 1, sk: 1, heads: 1, d: 1, dv: 1, ..BERT },
        ];
        for c in &cases {
            check(c, 1);
        }
    }

    #[test]
    fn an_observed_intermediate_keeps_the_block_unfused() {
        for name in ["qt", "kt", "s0", "s1", "p", "o"] {
            check(&Case { observe: Some(name), ..BERT }, 0);
        }
    }

    #[test]
    fn threads_split_query_rows_with_the_same_result() {
        // 2 x 128 x 4 x 64 output values: above the row-block threshold, so two threads split it.
        let c = Case { b: 2, sq: 128, sk: 128, heads: 4, d: 16, dv: 64, mask: Some(vec![2, 1, 1, 128]), ..BERT };
        let (fused, _) = crate::passes::fuse::fuse(block(&c)).unwrap();
        let fused = fused.validated().unwrap();
        // One thread against two (the process's own pool has as many threads as cores).
        let one = on_threads(1, || Session::new(fused.clone()).run(feeds(&c)).unwrap());
        let two = on_threads(2, || Session::new(fused).run(feeds(&c)).unwrap());
        assert_eq!(one[0].1.f32s().unwrap(), two[0].1.f32s().unwrap());
        on_threads(2, || check(&c, 1));
    }
}
