//! Structured channel pruning of inverted-residual blocks (MobileNetV2, EfficientNet-Lite):
//! `Conv 1x1 (expand) -> [act] -> depthwise Conv -> [act] -> Conv 1x1 (project)`.
//! A hidden channel is one expand filter, the depthwise filter it feeds, and the project
//! weights that read it; removing all three keeps every shape consistent, and the block's
//! output (the residual stream) is untouched, so residual Adds need no change. Channels
//! are ranked by the L1 norm of their expand filter (BatchNorm already folded in, so the
//! norm includes its scale; Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017).
//! A removed channel's filter is small, but BatchNorm folding leaves it a bias, so after the
//! activation it still feeds a near-constant value into the project conv: that constant
//! (its activation of the bias through the depthwise filter, ignoring borders) is added to
//! the project bias instead of being dropped.
//! Residual-stream channels and blocks without an expand conv are not pruned. No
//! fine-tuning happens here: fidelity drops, and `cairn eval` says by how much.

use crate::{Error, Result};
use cairn_core::{Attr, Graph, Node, NodeSpec, Registry, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct PruneStats {
    pub blocks: usize,
    pub hidden_before: usize,
    pub hidden_after: usize,
}

pub(crate) struct Block {
    pub(crate) expand: usize,
    pub(crate) depthwise: usize,
    pub(crate) project: usize,
    /// The activations after expand and after depthwise, as (lo, hi) clamps.
    act1: (f32, f32),
    pub(crate) act2: (f32, f32),
}

/// The clamp a Relu/Clip node between two convs applies (none: unbounded).
fn clamp_of(graph: &Graph, conv: usize, r: &HashMap<String, Vec<usize>>) -> (f32, f32) {
    let none = (f32::NEG_INFINITY, f32::INFINITY);
    let Some([j]) = r.get(&graph.nodes[conv].outputs[0]).map(|v| v.as_slice()) else { return none };
    let n = &graph.nodes[*j];
    let scalar = |k: usize, d: f32| {
        n.inputs
            .get(k)
            .cloned()
            .flatten()
            .and_then(|v| graph.initializers.get(&v).map(|t| t.view().to_f32_vec().first().copied().unwrap_or(d)))
            .unwrap_or(d)
    };
    match n.op_type.as_str() {
        "Relu" => (0.0, f32::INFINITY),
        "Clip" => {
            let attr = |k: &str, d: f32| match n.attrs.get(k) {
                Some(Attr::Float(v)) => *v,
                _ => d,
            };
            (attr("min", scalar(1, f32::NEG_INFINITY)), attr("max", scalar(2, f32::INFINITY)))
        }
        _ => none,
    }
}

fn readers(graph: &Graph) -> HashMap<String, Vec<usize>> {
    let mut r: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            r.entry(v.clone()).or_default().push(i);
        }
    }
    r
}

fn group(n: &Node) -> i64 {
    match n.attrs.get("group") {
        Some(Attr::Int(g)) => *g,
        _ => 1,
    }
}

pub(crate) fn blocks(graph: &Graph) -> Vec<Block> {
    let r = readers(graph);
    let outputs: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    // The one reader of `v`, stepping over one Relu/Clip.
    let next = |v: &str| -> Option<usize> {
        if outputs.contains(&v) {
            return None;
        }
        let [j] = r.get(v)?.as_slice() else { return None };
        let n = &graph.nodes[*j];
        if matches!(n.op_type.as_str(), "Relu" | "Clip") {
            let o = &n.outputs[0];
            if outputs.contains(&o.as_str()) {
                return None;
            }
            let [k] = r.get(o)?.as_slice() else { return None };
            return Some(*k);
        }
        Some(*j)
    };
    let weight = |i: usize| graph.nodes[i].inputs.get(1).cloned().flatten().and_then(|w| graph.initializers.get(&w).cloned());
    let sole = |i: usize, k: usize| graph.nodes[i].inputs.get(k).cloned().flatten().is_none_or(|w| r.get(&w).is_some_and(|v| v.len() == 1));
    let mut out = Vec::new();
    for (e, n) in graph.nodes.iter().enumerate() {
        if n.op_type != "Conv" || group(n) != 1 {
            continue;
        }
        let Some(we) = weight(e).filter(|w| w.rank() == 4 && w.shape()[2..] == [1, 1]) else { continue };
        let c = we.shape()[0];
        let Some(d) = next(&n.outputs[0]).filter(|&d| graph.nodes[d].op_type == "Conv" && group(&graph.nodes[d]) == c as i64) else {
            continue;
        };
        let Some(p) = next(&graph.nodes[d].outputs[0]).filter(|&p| graph.nodes[p].op_type == "Conv" && group(&graph.nodes[p]) == 1) else {
            continue;
        };
        let ok = weight(d).is_some_and(|w| w.shape()[0] == c && w.shape()[1] == 1)
            && weight(p).is_some_and(|w| w.rank() == 4 && w.shape()[1] == c);
        if ok && [e, d, p].iter().all(|&i| sole(i, 1) && sole(i, 2)) {
            out.push(Block { expand: e, depthwise: d, project: p, act1: clamp_of(graph, e, &r), act2: clamp_of(graph, d, &r) });
        }
    }
    out
}

/// Rows `keep` of a tensor's first axis.
pub(crate) fn take_rows(t: &Tensor, keep: &[usize]) -> Result<Tensor> {
    let v = t.f32s()?;
    let per = t.len() / t.shape()[0].max(1);
    let mut shape = t.shape().to_vec();
    shape[0] = keep.len();
    Ok(Tensor::from_f32(shape, keep.iter().flat_map(|&k| v[k * per..(k + 1) * per].iter().copied()).collect())?)
}

/// Columns `keep` of axis 1 of a `[m, c, ...]` tensor.
pub(crate) fn take_cols(t: &Tensor, keep: &[usize]) -> Result<Tensor> {
    let v = t.f32s()?;
    let s = t.shape();
    let (m, c) = (s[0], s[1]);
    let inner: usize = s[2..].iter().product();
    let mut out = Vec::with_capacity(m * keep.len() * inner);
    for r in 0..m {
        for &k in keep {
            out.extend_from_slice(&v[(r * c + k) * inner..][..inner]);
        }
    }
    let mut shape = s.to_vec();
    shape[1] = keep.len();
    Ok(Tensor::from_f32(shape, out)?)
}

/// A prunable inverted-residual block: its name (the expand conv's output tensor) and
/// hidden channel count.
#[derive(Clone, Debug, PartialEq)]
pub struct PrunableBlock {
    pub name: String,
    pub hidden: usize,
}

/// The blocks [`prune_hidden_channels`] would prune, in graph order.
pub fn prunable_blocks(graph: &Graph) -> Vec<PrunableBlock> {
    blocks(graph)
        .iter()
        .map(|b| PrunableBlock {
            name: graph.nodes[b.expand].outputs[0].clone(),
            hidden: graph.initializers.get(&input_name(graph, b.expand, 1).expect("checked")).map_or(0, |w| w.shape()[0]),
        })
        .collect()
}

/// Prunes `ratio` of the hidden channels of every inverted-residual block, in place.
pub fn prune_hidden_channels(graph: &mut Graph, ratio: f32) -> Result<PruneStats> {
    if !(0.0..1.0).contains(&ratio) {
        return Err(Error::Model(format!("--prune {ratio}: the ratio must be in [0, 1)")));
    }
    prune_blocks(graph, &|_| ratio)
}

/// Prunes each inverted-residual block by its own ratio (`ratio_of` its name, as in
/// [`prunable_blocks`]; 0 leaves it alone), in place.
pub fn prune_blocks(graph: &mut Graph, ratio_of: &dyn Fn(&str) -> f32) -> Result<PruneStats> {
    let mut stats = PruneStats::default();
    for b in blocks(graph) {
        let ratio = ratio_of(&graph.nodes[b.expand].outputs[0]);
        if !(0.0..1.0).contains(&ratio) {
            return Err(Error::Model(format!("pruning ratio {ratio} of block '{}' is not in [0, 1)", graph.nodes[b.expand].outputs[0])));
        }
        let we = graph.initializers[&input_name(graph, b.expand, 1).expect("checked")].clone();
        let c = we.shape()[0];
        // At least one channel stays: an empty tensor is no layer.
        let drop = (((c as f32) * ratio).round() as usize).min(c.saturating_sub(1));
        stats.blocks += 1;
        stats.hidden_before += c;
        stats.hidden_after += c - drop;
        if drop == 0 {
            continue;
        }
        let v = we.f32s()?;
        let per = we.len() / c;
        let mut order: Vec<(f32, usize)> = (0..c).map(|i| (v[i * per..(i + 1) * per].iter().map(|x| x.abs()).sum(), i)).collect();
        order.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut keep: Vec<usize> = order[..c - drop].iter().map(|&(_, i)| i).collect();
        keep.sort_unstable();
        // Compensate the removed channels' near-constant output in the project bias.
        let bias =
            |i: usize| input_name(graph, i, 2).and_then(|n| graph.initializers.get(&n).and_then(|t| t.f32s().ok().map(|v| v.to_vec())));
        let (be, bd) = (bias(b.expand).unwrap_or_else(|| vec![0.0; c]), bias(b.depthwise).unwrap_or_else(|| vec![0.0; c]));
        let wd = graph.initializers[&input_name(graph, b.depthwise, 1).expect("checked")].clone();
        let wp = graph.initializers[&input_name(graph, b.project, 1).expect("checked")].clone();
        let (wdv, wpv) = (wd.f32s()?, wp.f32s()?);
        let k = wd.len() / c;
        let m = wp.shape()[0];
        let clamp = |v: f32, (lo, hi): (f32, f32)| v.max(lo).min(hi);
        let mut shift = vec![0f32; m];
        for &(_, ch) in &order[c - drop..] {
            let a1 = clamp(be[ch], b.act1);
            let a2 = clamp(wdv[ch * k..(ch + 1) * k].iter().sum::<f32>() * a1 + bd[ch], b.act2);
            for (o, s) in shift.iter_mut().enumerate() {
                *s += wpv[o * c + ch] * a2;
            }
        }
        let bp_name = match input_name(graph, b.project, 2) {
            Some(n) => n,
            None => {
                let n = format!("{}_pruned_bias", graph.nodes[b.project].name);
                graph.nodes[b.project].inputs.resize(3, None);
                graph.nodes[b.project].inputs[2] = Some(n.clone());
                graph.initializers.insert(n.clone(), Arc::new(Tensor::from_f32(vec![m], vec![0.0; m])?));
                n
            }
        };
        let bp: Vec<f32> = graph.initializers[&bp_name].f32s()?.iter().zip(&shift).map(|(b, s)| b + s).collect();
        graph.initializers.insert(bp_name, Arc::new(Tensor::from_f32(vec![m], bp)?));
        for (node, k, cols) in
            [(b.expand, 1, false), (b.expand, 2, false), (b.depthwise, 1, false), (b.depthwise, 2, false), (b.project, 1, true)]
        {
            let Some(n) = input_name(graph, node, k) else { continue };
            let t = graph.initializers[&n].clone();
            let new = if cols { take_cols(&t, &keep)? } else { take_rows(&t, &keep)? };
            graph.initializers.insert(n, Arc::new(new));
        }
        let dw = &graph.nodes[b.depthwise];
        let mut attrs = dw.attrs.clone();
        attrs.insert("group".into(), Attr::Int(keep.len() as i64));
        let spec = NodeSpec {
            name: dw.name.clone(),
            domain: dw.domain.clone(),
            op_type: dw.op_type.clone(),
            attrs,
            inputs: dw.inputs.clone(),
            outputs: dw.outputs.clone(),
        };
        graph.nodes[b.depthwise] = Node::build(spec, graph.opset, Registry::global())?;
    }
    Ok(stats)
}

pub(crate) fn input_name(graph: &Graph, node: usize, k: usize) -> Option<String> {
    graph.nodes[node].inputs.get(k).cloned().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Attrs, DType, Dim, Session, ValueInfo};

    fn node(op: &str, inputs: &[&str], output: &str, attrs: Attrs) -> Node {
        let spec = NodeSpec {
            name: output.into(),
            domain: String::new(),
            op_type: op.into(),
            attrs,
            inputs: inputs.iter().map(|s| Some(s.to_string())).collect(),
            outputs: vec![output.into()],
        };
        Node::build(spec, 13, Registry::global()).unwrap()
    }

    /// expand (4 hidden channels, two of them dead: zero filters, nonzero bias) -> Relu ->
    /// depthwise 3x3 -> Relu -> project. Pruning half removes exactly the dead channels,
    /// and their constant output moves into the project bias: the output is unchanged.
    #[test]
    fn dead_channels_prune_without_changing_the_output() {
        let t = |shape: Vec<usize>, v: Vec<f32>| Arc::new(Tensor::from_f32(shape, v).unwrap());
        let mut init = HashMap::new();
        let we: Vec<f32> = (0..4 * 3).map(|i| if (i / 3) % 2 == 1 { 0.0 } else { 0.3 + 0.1 * i as f32 }).collect();
        init.insert("we".to_string(), t(vec![4, 3, 1, 1], we));
        init.insert("be".to_string(), t(vec![4], vec![0.1, 0.7, -0.2, 0.4]));
        init.insert("wd".to_string(), t(vec![4, 1, 3, 3], (0..36).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.2).collect()));
        init.insert("bd".to_string(), t(vec![4], vec![0.05, 0.5, -0.1, 0.2]));
        init.insert("wp".to_string(), t(vec![2, 4, 1, 1], vec![0.5, -1.0, 0.25, 2.0, -0.3, 0.8, 1.1, -0.6]));
        let mut group = Attrs::new();
        group.insert("group".into(), Attr::Int(4));
        let mut graph = Graph {
            inputs: vec![ValueInfo {
                name: "x".into(),
                dtype: DType::F32,
                dims: Some(vec![Dim::Known(1), Dim::Known(3), Dim::Known(6), Dim::Known(6)]),
            }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }],
            initializers: init,
            nodes: vec![
                node("Conv", &["x", "we", "be"], "e", Attrs::new()),
                node("Relu", &["e"], "e1", Attrs::new()),
                node("Conv", &["e1", "wd", "bd"], "d", group),
                node("Relu", &["d"], "d1", Attrs::new()),
                node("Conv", &["d1", "wp"], "y", Attrs::new()),
            ],
            opset: 13,
        };
        let x = Tensor::from_f32(vec![1, 3, 6, 6], (0..108).map(|i| (i as f32 * 0.31).sin()).collect()).unwrap();
        let run =
            |g: &Graph| Session::new(g.clone()).run(HashMap::from([("x".to_string(), x.clone())])).unwrap()[0].1.f32s().unwrap().to_vec();
        let want = run(&graph);
        let stats = prune_hidden_channels(&mut graph, 0.5).unwrap();
        assert_eq!((stats.blocks, stats.hidden_before, stats.hidden_after), (1, 4, 2));
        assert_eq!(graph.initializers["wp"].shape(), &[2, 2, 1, 1]);
        let got = run(&graph);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(prune_hidden_channels(&mut graph, 1.5).is_err());
    }

    /// Residual groups: block 1's output is added to the stem's (its project conv keeps
    /// its 4 output channels, so the Add still matches); block 2's hidden tensor is itself
    /// added to its depthwise output, so its channels form a residual group with another
    /// tensor and the block is left alone. Pruning keeps every shape consistent and the
    /// model runs with its original output shape.
    #[test]
    fn residual_groups_keep_consistent_shapes() {
        let t = |shape: Vec<usize>, seed: usize| {
            let n: usize = shape.iter().product();
            Arc::new(Tensor::from_f32(shape, (0..n).map(|i| (((i + seed) * 7919 % 23) as f32 - 11.0) * 0.05).collect()).unwrap())
        };
        let mut init = HashMap::new();
        for (name, shape, seed) in [
            ("ws", vec![4, 4, 1, 1], 1),
            ("we1", vec![8, 4, 1, 1], 2),
            ("wd1", vec![8, 1, 3, 3], 3),
            ("wp1", vec![4, 8, 1, 1], 4),
            ("we2", vec![8, 4, 1, 1], 5),
            ("wd2", vec![8, 1, 3, 3], 6),
            ("wp2", vec![4, 8, 1, 1], 7),
        ] {
            init.insert(name.to_string(), t(shape, seed));
        }
        let mut dw = Attrs::new();
        dw.insert("group".into(), Attr::Int(8));
        dw.insert("pads".into(), Attr::Ints(vec![1, 1, 1, 1]));
        let mut graph = Graph {
            inputs: vec![ValueInfo {
                name: "x".into(),
                dtype: DType::F32,
                dims: Some(vec![Dim::Known(1), Dim::Known(4), Dim::Known(6), Dim::Known(6)]),
            }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }],
            initializers: init,
            nodes: vec![
                node("Conv", &["x", "ws"], "s", Attrs::new()),
                node("Conv", &["s", "we1"], "h1", Attrs::new()),
                node("Relu", &["h1"], "h1r", Attrs::new()),
                node("Conv", &["h1r", "wd1"], "d1", dw.clone()),
                node("Relu", &["d1"], "d1r", Attrs::new()),
                node("Conv", &["d1r", "wp1"], "p1", Attrs::new()),
                node("Add", &["s", "p1"], "r1", Attrs::new()),
                node("Conv", &["r1", "we2"], "h2", Attrs::new()),
                node("Conv", &["h2", "wd2"], "d2", dw),
                node("Add", &["h2", "d2"], "g2", Attrs::new()),
                node("Conv", &["g2", "wp2"], "p2", Attrs::new()),
                node("Add", &["r1", "p2"], "y", Attrs::new()),
            ],
            opset: 13,
        };
        assert_eq!(prunable_blocks(&graph), vec![PrunableBlock { name: "h1".into(), hidden: 8 }]);
        let stats = prune_hidden_channels(&mut graph, 0.5).unwrap();
        assert_eq!((stats.blocks, stats.hidden_before, stats.hidden_after), (1, 8, 4));
        assert_eq!(graph.initializers["we1"].shape(), &[4, 4, 1, 1]);
        assert_eq!(graph.initializers["wp1"].shape(), &[4, 4, 1, 1]);
        for w in ["ws", "we2", "wd2", "wp2"] {
            assert_eq!(graph.initializers[w].shape()[0], if w == "ws" || w == "wp2" { 4 } else { 8 }, "{w}");
        }
        let x = Tensor::from_f32(vec![1, 4, 6, 6], (0..144).map(|i| (i as f32 * 0.37).cos()).collect()).unwrap();
        let g = graph.clone().validated().unwrap();
        let out = Session::new(g).run(HashMap::from([("x".to_string(), x)])).unwrap();
        assert_eq!(out[0].1.shape(), &[1, 4, 6, 6]);
        // A ratio that would remove every channel keeps one.
        let stats = prune_hidden_channels(&mut graph, 0.9).unwrap();
        assert_eq!(stats.hidden_after, 1);
    }
}
