//! Epilogue fusion: folds BatchNormalization into the convolution before it, and
//! merges a bias add, a residual add and an activation into the producing Conv,
//! MatMul or Gemm, whose kernels apply them while the output tile is in cache.
//! Weights of fused nodes are prepacked once here for this machine's kernels.
//!
//! A node is absorbed only when its input is read by nothing else and is not a
//! graph output, so no intermediate that someone observes disappears.

use crate::ops::{FusedConv, FusedMatMul, MatMul, MatMulForm};
use crate::{Attr, DType, Graph, Node, Result, Tensor};
use cairn_kernels::Activation;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuseStats {
    pub fused_convs: usize,
    pub fused_matmuls: usize,
    pub batchnorms_folded: usize,
    pub bias_adds: usize,
    pub residual_adds: usize,
    pub activations: usize,
    /// LSTM, GRU and RNN nodes whose constant W and R were packed here.
    pub recurrent_packed: usize,
    /// MatMuls of two computed values (attention's `Q K^T`) that took the scalar Div or Mul after them.
    pub scaled_matmuls: usize,
    /// Multi-head attention blocks replaced by one fused op (`passes::attention`).
    pub attentions: usize,
}

/// Runs the fusion over the whole graph.
pub fn fuse(mut graph: Graph) -> Result<(Graph, FuseStats)> {
    // Attention first: its pattern is made of the plain operators (the scale is still a Div).
    let mut stats = FuseStats { attentions: super::attention::fuse_attention(&mut graph), ..FuseStats::default() };
    let mut uses = Uses::of(&graph);
    let graph_inputs: HashSet<String> = graph.inputs.iter().map(|v| v.name.clone()).collect();
    let mut removed = vec![false; graph.nodes.len()];
    // Fused nodes replace the *last* node they absorb, so every input (a residual
    // computed on another branch, say) is ready when they run.
    let mut replacement: HashMap<usize, Node> = HashMap::new();
    for i in 0..graph.nodes.len() {
        if removed[i] || !graph.nodes[i].domain.is_empty() {
            continue;
        }
        let fused = match graph.nodes[i].op_type.as_str() {
            "Conv" => {
                // A weight only this Conv reads is handed over, so folding and packing
                // can reuse its buffer instead of copying it.
                let (name, owned) = take_sole_weight(&mut graph, &uses, &graph_inputs, i).unzip();
                let (fused, unused) = fuse_conv(&graph, &uses, i, &mut stats, owned)?;
                if let (Some(name), Some(weight)) = (name, unused) {
                    graph.initializers.insert(name, weight);
                }
                fused
            }
            "MatMul" | "Gemm" => match fuse_matmul(&graph, &uses, i, &mut stats)? {
                Some(fused) => Some(fused),
                None => fuse_matmul_scale(&graph, &uses, i, &mut stats),
            },
            "LSTM" | "GRU" | "RNN" => prepack_recurrent(&graph, i, &mut stats)?,
            _ => None,
        };
        if let Some((node, absorbed)) = fused {
            removed[i] = true;
            absorbed.iter().for_each(|&j| removed[j] = true);
            uses.claimed.extend(absorbed.iter().copied());
            // Weights the fused op copied (filters, BatchNorm statistics, biases) are freed
            // now, not at the end, unless another node (or the fused one) still reads them:
            // the original and the packed copy of the whole model are never alive together.
            let still_read: HashSet<&String> = node.inputs.iter().flatten().collect();
            for j in std::iter::once(i).chain(absorbed.iter().copied()) {
                for name in graph.nodes[j].inputs.iter().flatten() {
                    if graph.initializers.contains_key(name)
                        && !still_read.contains(name)
                        && uses.readers(name).iter().all(|&r| removed[r])
                        && !uses.graph_outputs.contains(name)
                        && !graph_inputs.contains(name)
                    {
                        graph.initializers.remove(name);
                    }
                }
            }
            let last = absorbed.iter().copied().max().unwrap_or(i);
            replacement.insert(last, node);
        }
    }
    super::splice_nodes(&mut graph, replacement, |i| removed[i]);
    Ok((graph, stats))
}

/// Who reads each value.
pub(super) struct Uses {
    readers: HashMap<String, Vec<usize>>,
    graph_outputs: HashSet<String>,
    /// Nodes already absorbed by an earlier fusion: no one else may take them.
    claimed: HashSet<usize>,
}

impl Uses {
    pub(super) fn of(graph: &Graph) -> Uses {
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            for name in node.inputs.iter().flatten().filter(|n| !n.is_empty()) {
                readers.entry(name.clone()).or_default().push(i);
            }
        }
        Uses { readers, graph_outputs: graph.outputs.iter().map(|o| o.name.clone()).collect(), claimed: HashSet::new() }
    }

    /// The same, with `nodes` already taken by another pass's fusions.
    pub(super) fn claiming(mut self, nodes: &HashSet<usize>) -> Uses {
        self.claimed.extend(nodes.iter().copied());
        self
    }

    fn readers(&self, value: &str) -> &[usize] {
        self.readers.get(value).map_or(&[], |v| v.as_slice())
    }

    /// The one node that reads `value` (once), if the value is otherwise unobserved.
    pub(super) fn sole_reader(&self, value: &str) -> Option<usize> {
        match self.readers(value) {
            [only] if !self.graph_outputs.contains(value) && !self.claimed.contains(only) => Some(*only),
            _ => None,
        }
    }
}

pub(super) fn constant<'g>(graph: &'g Graph, name: &str) -> Option<&'g Arc<Tensor>> {
    if graph.inputs.iter().any(|i| i.name == name) {
        return None; // an initializer that is also an input can be overridden
    }
    graph.initializers.get(name)
}

fn constant_f32s(graph: &Graph, name: &str) -> Option<Vec<f32>> {
    constant(graph, name).filter(|t| t.dtype() == DType::F32).and_then(|t| t.f32s().ok().map(|v| v.to_vec()))
}

pub(super) fn constant_scalar(graph: &Graph, name: &str) -> Option<f32> {
    constant_f32s(graph, name).filter(|v| v.len() == 1).map(|v| v[0])
}

/// The input of a two-input node that is not `value`.
fn other_input<'n>(node: &'n Node, value: &str) -> Option<&'n str> {
    match node.inputs.as_slice() {
        [Some(a), Some(b)] if a == value && b != value => Some(b),
        [Some(a), Some(b)] if b == value && a != value => Some(a),
        _ => None,
    }
}

pub(super) fn is(node: &Node, op_type: &str) -> bool {
    node.domain.is_empty() && node.op_type == op_type && node.outputs.len() == 1
}

fn float_attr(node: &Node, name: &str, default: f32) -> f32 {
    match node.attrs.get(name) {
        Some(Attr::Float(v)) => *v,
        _ => default,
    }
}

/// What follows a producer: the activation it can apply, the nodes that computes it,
/// and the value the fused node then writes.
pub(super) struct Absorbed {
    pub(super) nodes: Vec<usize>,
    pub(super) output: String,
    pub(super) label: String,
}

/// An activation applied to `value`, in one node or a known multi-node pattern.
pub(super) fn match_activation(graph: &Graph, uses: &Uses, value: &str) -> Option<(Activation, Absorbed)> {
    if let Some(found) = match_silu(graph, uses, value).or_else(|| match_gelu(graph, uses, value)) {
        return Some(found);
    }
    let j = uses.sole_reader(value)?;
    let n = &graph.nodes[j];
    if !n.domain.is_empty() || n.outputs.len() != 1 {
        return None;
    }
    let act = match n.op_type.as_str() {
        "Relu" => Activation::Relu,
        "Sigmoid" => Activation::Sigmoid,
        "Tanh" => Activation::Tanh,
        "HardSwish" => Activation::HardSwish,
        "LeakyRelu" => Activation::LeakyRelu { alpha: float_attr(n, "alpha", 0.01) },
        "HardSigmoid" => Activation::HardSigmoid { alpha: float_attr(n, "alpha", 0.2), beta: float_attr(n, "beta", 0.5) },
        "Gelu" => match n.attrs.get("approximate") {
            Some(Attr::Str(s)) if s == "tanh" => Activation::GeluTanh,
            _ => Activation::Gelu,
        },
        "Clip" if n.inputs.len() == 1 || n.attrs.contains_key("min") || n.attrs.contains_key("max") => {
            Activation::Clip { min: float_attr(n, "min", f32::MIN), max: float_attr(n, "max", f32::MAX) }
        }
        "Clip" => {
            let bound = |i: usize, default: f32| match n.inputs.get(i) {
                None | Some(None) => Some(default),
                Some(Some(name)) if name.is_empty() => Some(default),
                Some(Some(name)) => constant_scalar(graph, name),
            };
            Activation::Clip { min: bound(1, f32::MIN)?, max: bound(2, f32::MAX)? }
        }
        _ => return None,
    };
    Some((act, Absorbed { nodes: vec![j], output: n.outputs[0].clone(), label: n.op_type.clone() }))
}

/// `x * Sigmoid(x)`.
fn match_silu(graph: &Graph, uses: &Uses, value: &str) -> Option<(Activation, Absorbed)> {
    let readers = uses.readers(value);
    if readers.len() != 2 || uses.graph_outputs.contains(value) || readers.iter().any(|r| uses.claimed.contains(r)) {
        return None;
    }
    let (s, m) = if is(&graph.nodes[readers[0]], "Sigmoid") { (readers[0], readers[1]) } else { (readers[1], readers[0]) };
    let (sig, mul) = (&graph.nodes[s], &graph.nodes[m]);
    if !is(sig, "Sigmoid")
        || !is(mul, "Mul")
        || uses.sole_reader(&sig.outputs[0]) != Some(m)
        || other_input(mul, value) != Some(sig.outputs[0].as_str())
    {
        return None;
    }
    Some((Activation::Silu, Absorbed { nodes: vec![s, m], output: mul.outputs[0].clone(), label: "SiLU".into() }))
}

/// The exact GELU as exporters spell it: `x * 0.5 * (1 + Erf(x / sqrt 2))`, in either
/// association of the two multiplications.
fn match_gelu(graph: &Graph, uses: &Uses, value: &str) -> Option<(Activation, Absorbed)> {
    let readers = uses.readers(value);
    if readers.len() != 2 || uses.graph_outputs.contains(value) || readers.iter().any(|r| uses.claimed.contains(r)) {
        return None;
    }
    let near = |v: Option<f32>, want: f32| v.is_some_and(|v| (v - want).abs() < 1e-4 * want.abs());
    let is_scale = |j: usize| {
        let n = &graph.nodes[j];
        let c = other_input(n, value).and_then(|c| constant_scalar(graph, c));
        (is(n, "Div") && n.inputs[0].as_deref() == Some(value) && near(c, std::f32::consts::SQRT_2))
            || (is(n, "Mul") && near(c, std::f32::consts::FRAC_1_SQRT_2))
    };
    let (d, o) = if is_scale(readers[0]) {
        (readers[0], readers[1])
    } else if is_scale(readers[1]) {
        (readers[1], readers[0])
    } else {
        return None;
    };
    let e = uses.sole_reader(&graph.nodes[d].outputs[0]).filter(|&e| is(&graph.nodes[e], "Erf"))?;
    let erf_out = &graph.nodes[e].outputs[0];
    let a = uses.sole_reader(erf_out).filter(|&a| is(&graph.nodes[a], "Add"))?;
    if !near(other_input(&graph.nodes[a], erf_out).and_then(|c| constant_scalar(graph, c)), 1.0) {
        return None;
    }
    let add_out = graph.nodes[a].outputs[0].as_str();
    let other = &graph.nodes[o];
    if !is(other, "Mul") {
        return None;
    }
    let last = if other_input(other, value) == Some(add_out) {
        // x * (1 + erf) then * 0.5
        let h = uses.sole_reader(&other.outputs[0]).filter(|&h| is(&graph.nodes[h], "Mul"))?;
        near(other_input(&graph.nodes[h], &other.outputs[0]).and_then(|c| constant_scalar(graph, c)), 0.5).then_some(h)?
    } else if near(other_input(other, value).and_then(|c| constant_scalar(graph, c)), 0.5) {
        // (x * 0.5) * (1 + erf)
        let h = uses.sole_reader(&other.outputs[0]).filter(|&h| is(&graph.nodes[h], "Mul"))?;
        (other_input(&graph.nodes[h], &other.outputs[0]) == Some(add_out) && uses.sole_reader(add_out) == Some(h)).then_some(h)?
    } else {
        return None;
    };
    if uses.sole_reader(add_out) != Some(last) && uses.sole_reader(add_out) != Some(o) {
        return None;
    }
    Some((Activation::Gelu, Absorbed { nodes: vec![d, e, a, o, last], output: graph.nodes[last].outputs[0].clone(), label: "GELU".into() }))
}

/// A following Add: by a constant that broadcasts as one value per channel (`channel_axis_from_end`
/// dims before the end, e.g. `[C, 1, 1]` for NCHW) becomes bias; by a computed value, a residual.
enum AddKind {
    Bias(Vec<f32>),
    Residual(String),
}

fn match_add(graph: &Graph, uses: &Uses, value: &str, channels: usize, channel_axis_from_end: usize) -> Option<(AddKind, usize)> {
    let j = uses.sole_reader(value)?;
    let n = &graph.nodes[j];
    if !is(n, "Add") {
        return None;
    }
    let other = other_input(n, value)?;
    if let Some(t) = constant(graph, other) {
        let shape = t.shape();
        // Accept [..., C, 1, ...1] with every other dim 1 (and C at the channel axis).
        let per_channel = t.dtype() == DType::F32
            && t.len() == channels
            && shape.len() > channel_axis_from_end
            && shape[shape.len() - 1 - channel_axis_from_end] == channels
            && shape.iter().filter(|&&d| d != 1).count() <= 1;
        if !per_channel {
            return None;
        }
        return Some((AddKind::Bias(t.f32s().ok()?.to_vec()), j));
    }
    Some((AddKind::Residual(other.to_string()), j))
}

type Fused = Option<(Node, Vec<usize>)>;

/// Removes and returns node `i`'s weight (input 1) if it is an initializer nothing else reads.
fn take_sole_weight(graph: &mut Graph, uses: &Uses, graph_inputs: &HashSet<String>, i: usize) -> Option<(String, Arc<Tensor>)> {
    let name = graph.nodes[i].inputs.get(1)?.clone()?;
    if uses.readers(&name) != [i] || uses.graph_outputs.contains(&name) || graph_inputs.contains(&name) {
        return None;
    }
    graph.initializers.remove(&name).map(|t| (name, t))
}

/// Fuses Conv `i` with what follows it. `owned` is its weight when only it reads it
/// (taken out of the graph); it is returned when the Conv is not fused.
fn fuse_conv(
    graph: &Graph,
    uses: &Uses,
    i: usize,
    stats: &mut FuseStats,
    owned: Option<Arc<Tensor>>,
) -> Result<(Fused, Option<Arc<Tensor>>)> {
    let conv = &graph.nodes[i];
    let (Some(Some(w_name)), 1) = (conv.inputs.get(1), conv.outputs.len()) else { return Ok((None, owned)) };
    let Some(w) = owned.as_ref().or_else(|| constant(graph, w_name)).filter(|w| w.dtype() == DType::F32 && w.rank() >= 3) else {
        return Ok((None, owned));
    };
    let Some(Some(x)) = conv.inputs.first() else { return Ok((None, owned)) };
    let w_shape = w.shape().to_vec();
    let m = w_shape[0];
    let mut bias = match conv.inputs.get(2) {
        Some(Some(b)) if !b.is_empty() => match constant_f32s(graph, b) {
            Some(b) if b.len() == m => Some(b),
            _ => return Ok((None, owned)),
        },
        _ => None,
    };
    let mut weights = match owned {
        Some(t) => match Arc::try_unwrap(t) {
            Ok(t) => match t.into_data() {
                crate::TensorData::F32(v) => v,
                other => return Err(crate::Error::DType { expected: DType::F32, got: other.dtype(), context: "Conv filters".into() }),
            },
            Err(shared) => shared.f32s()?.to_vec(),
        },
        None => constant(graph, w_name).expect("found above").f32s()?.to_vec(),
    };
    let mut out = conv.outputs[0].clone();
    let mut absorbed = Vec::new();
    let mut labels = Vec::new();

    // BatchNormalization (inference form, constant statistics) folds into filters and bias.
    if let Some(j) = uses.sole_reader(&out) {
        let bn = &graph.nodes[j];
        if is(bn, "BatchNormalization") && bn.is_inference_batch_norm() && bn.inputs.len() == 5 {
            let p: Option<Vec<Vec<f32>>> =
                bn.inputs[1..].iter().map(|n| n.as_deref().and_then(|n| constant_f32s(graph, n)).filter(|v| v.len() == m)).collect();
            if let Some(p) = p {
                let eps = float_attr(bn, "epsilon", 1e-5);
                let (scale, shift, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
                let per_filter = weights.len() / m;
                let mut b = bias.take().unwrap_or_else(|| vec![0.0; m]);
                for c in 0..m {
                    let s = scale[c] / (var[c] + eps).sqrt();
                    weights[c * per_filter..(c + 1) * per_filter].iter_mut().for_each(|v| *v *= s);
                    b[c] = (b[c] - mean[c]) * s + shift[c];
                }
                bias = Some(b);
                absorbed.push(j);
                labels.push("BatchNormalization".to_string());
                out = bn.outputs[0].clone();
                stats.batchnorms_folded += 1;
            }
        }
    }
    let spatial = w_shape.len() - 2;
    let mut residual = None;
    if let Some((kind, j)) = match_add(graph, uses, &out, m, spatial) {
        match kind {
            AddKind::Bias(b) => {
                let base = bias.get_or_insert_with(|| vec![0.0; m]);
                base.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                stats.bias_adds += 1;
                labels.push("Add(bias)".into());
            }
            AddKind::Residual(r) => {
                residual = Some(r);
                stats.residual_adds += 1;
                labels.push("Add(residual)".into());
            }
        }
        absorbed.push(j);
        out = graph.nodes[j].outputs[0].clone();
    }
    let mut activation = Activation::Identity;
    if let Some((act, a)) = match_activation(graph, uses, &out) {
        activation = act;
        absorbed.extend(a.nodes);
        labels.push(a.label);
        out = a.output;
        stats.activations += 1;
    }
    let filters = Tensor::from_f32(w_shape, weights)?;
    let label = if labels.is_empty() { String::new() } else { format!("+{}", labels.join("+")) };
    let op = FusedConv::new(conv, graph.opset, filters, bias, activation, residual.is_some(), label)
        .map_err(|e| e.at_node(&conv.name, &conv.op_type))?;
    let mut inputs = vec![Some(x.clone())];
    inputs.extend(residual.map(Some));
    stats.fused_convs += 1;
    Ok((Some((Node { inputs, outputs: vec![out], op: Arc::new(op), ..conv.clone() }, absorbed)), None))
}

/// LSTM, GRU or RNN node `i` with constant W and R: the same node holding them packed
/// for the GEMM (the input projection and the recurrent product) instead of packing them
/// at every run.
fn prepack_recurrent(graph: &Graph, i: usize, stats: &mut FuseStats) -> Result<Fused> {
    let node = &graph.nodes[i];
    let (Some(Some(w)), Some(Some(r))) = (node.inputs.get(1), node.inputs.get(2)) else { return Ok(None) };
    let (Some(w), Some(r)) = (constant(graph, w), constant(graph, r)) else { return Ok(None) };
    let Some(packed) = crate::ops::prepacked_recurrent(node, graph.opset, w, r)? else { return Ok(None) };
    stats.recurrent_packed += 1;
    Ok(Some((packed, Vec::new())))
}

fn fuse_matmul(graph: &Graph, uses: &Uses, i: usize, stats: &mut FuseStats) -> Result<Fused> {
    let node = &graph.nodes[i];
    let (Some(Some(a)), Some(Some(b_name)), 1) = (node.inputs.first(), node.inputs.get(1), node.outputs.len()) else { return Ok(None) };
    let Some(b) = constant(graph, b_name).filter(|b| b.dtype() == DType::F32 && b.rank() == 2) else { return Ok(None) };
    if constant(graph, a).is_some() {
        return Ok(None);
    }
    let int_attr = |name: &str| match node.attrs.get(name) {
        Some(Attr::Int(v)) => *v,
        _ => 0,
    };
    let mut form = MatMulForm::MatMul;
    let mut bias: Option<Vec<f32>> = None;
    let (mut alpha, mut trans_b) = (1.0, false);
    if node.op_type == "Gemm" {
        if int_attr("transA") != 0 {
            return Ok(None);
        }
        form = MatMulForm::Gemm;
        alpha = float_attr(node, "alpha", 1.0);
        trans_b = int_attr("transB") != 0;
        let n = if trans_b { b.shape()[0] } else { b.shape()[1] };
        if let Some(Some(c)) = node.inputs.get(2).filter(|c| c.as_ref().is_some_and(|c| !c.is_empty())) {
            // Only a row vector C is a bias; a full [M, N] C stays a general Gemm.
            let Some(t) = constant(graph, c) else { return Ok(None) };
            if t.dtype() != DType::F32 || !(t.shape() == [n] || t.shape() == [1, n] || t.len() == 1) {
                return Ok(None);
            }
            let beta = float_attr(node, "beta", 1.0);
            let v = t.f32s()?;
            bias = Some(if v.len() == 1 { vec![beta * v[0]; n] } else { v.iter().map(|x| beta * x).collect() });
        }
    }
    let n = if trans_b { b.shape()[0] } else { b.shape()[1] };
    let mut out = node.outputs[0].clone();
    let mut absorbed = Vec::new();
    let mut labels = Vec::new();
    let mut residual = None;
    // Up to two Adds: the bias (a constant row vector), then a residual (a computed value).
    for _ in 0..2 {
        let Some((kind, j)) = match_add(graph, uses, &out, n, 0) else { break };
        match kind {
            AddKind::Bias(v) => {
                let base = bias.get_or_insert_with(|| vec![0.0; n]);
                base.iter_mut().zip(&v).for_each(|(x, y)| *x += y);
                stats.bias_adds += 1;
                labels.push("Add(bias)".to_string());
            }
            AddKind::Residual(r) if residual.is_none() => {
                residual = Some(r);
                stats.residual_adds += 1;
                labels.push("Add(residual)".to_string());
            }
            AddKind::Residual(_) => break,
        }
        absorbed.push(j);
        out = graph.nodes[j].outputs[0].clone();
    }
    let mut activation = Activation::Identity;
    if let Some((act, found)) = match_activation(graph, uses, &out) {
        activation = act;
        absorbed.extend(found.nodes);
        labels.push(found.label);
        out = found.output;
        stats.activations += 1;
    }
    let label = if labels.is_empty() { String::new() } else { format!("+{}", labels.join("+")) };
    let op = FusedMatMul::new(form, b, trans_b, alpha, bias, activation, residual.is_some(), label)
        .map_err(|e| e.at_node(&node.name, &node.op_type))?;
    let mut inputs = vec![Some(a.clone())];
    inputs.extend(residual.map(Some));
    stats.fused_matmuls += 1;
    Ok(Some((Node { inputs, outputs: vec![out], op: Arc::new(op), ..node.clone() }, absorbed)))
}

/// A MatMul without constant weights followed by a Div or Mul by a constant scalar (the
/// attention scores' `/ sqrt(head size)`): the scale becomes the GEMM's alpha, applied as
/// A is packed, and the pass over the scores (1-2% of a transformer encoder) is gone.
fn fuse_matmul_scale(graph: &Graph, uses: &Uses, i: usize, stats: &mut FuseStats) -> Fused {
    let node = &graph.nodes[i];
    if node.op_type != "MatMul" || node.outputs.len() != 1 {
        return None;
    }
    let out = &node.outputs[0];
    let j = uses.sole_reader(out)?;
    let next = &graph.nodes[j];
    // Only `MatMul(..) / c` or `MatMul(..) * c` (either side): `c / MatMul(..)` is no scale.
    let (c, divide) = match next.inputs.as_slice() {
        [Some(x), Some(c)] if is(next, "Div") && x == out && c != out => (c, true),
        [Some(x), Some(c)] | [Some(c), Some(x)] if is(next, "Mul") && x == out && c != out => (c, false),
        _ => return None,
    };
    // A one-element constant of rank r broadcasts the product up to rank r (ones in front).
    let rank = constant(graph, c)?.rank();
    let c = constant_scalar(graph, c)?;
    let alpha = if divide { 1.0 / c } else { c };
    if !alpha.is_finite() {
        return None;
    }
    stats.scaled_matmuls += 1;
    let op = MatMul::scaled(alpha, rank, format!("+{}(scale)", next.op_type));
    Some((Node { outputs: next.outputs.clone(), op: Arc::new(op), ..node.clone() }, vec![j]))
}

#[cfg(test)]
mod tests {
    use crate::passes::test_support::{graph, node};
    use crate::{DType, Dim, Graph, Session, Tensor, TensorData, ValueInfo};
    use std::collections::HashMap;
    use std::sync::Arc;

    /// Attention scores as exporters write them: `MatMul(q, k) / c`, with `c` of shape `c_shape`,
    /// then `* m` when `mul` (a second scale the MatMul cannot take twice).
    fn scores(c_shape: Vec<usize>, mul: bool) -> Graph {
        let t = |shape: Vec<usize>, v: f32| Arc::new(Tensor::new(shape, TensorData::F32(vec![v])).unwrap());
        let initializers = HashMap::from([("c".to_string(), t(c_shape, 5.656_854)), ("m".to_string(), t(vec![], 0.5))]);
        let mut nodes = vec![node("qk", "MatMul", &["q", "k"], "s", vec![]), node("scale", "Div", &["s", "c"], "y0", vec![])];
        nodes.push(if mul { node("again", "Mul", &["m", "y0"], "y", vec![]) } else { node("id", "Identity", &["y0"], "y", vec![]) });
        let value = |name: &str, dims: &[usize]| ValueInfo {
            name: name.into(),
            dtype: DType::F32,
            dims: Some(dims.iter().map(|&d| Dim::Known(d)).collect()),
        };
        graph(
            vec![value("q", &[2, 3, 4]), value("k", &[2, 4, 5])],
            vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }],
            initializers,
            nodes,
        )
    }

    fn run(g: Graph) -> Tensor {
        let input = |shape: Vec<usize>, f: f32| {
            let n = shape.iter().product::<usize>();
            Tensor::new(shape, TensorData::F32((0..n).map(|i| (i as f32 * f).sin() * 2.0).collect())).unwrap()
        };
        let inputs = HashMap::from([("q".to_string(), input(vec![2, 3, 4], 0.7)), ("k".to_string(), input(vec![2, 4, 5], 0.3))]);
        Session::new(g).run(inputs).unwrap().remove(0).1
    }

    #[test]
    fn a_scalar_division_after_a_matmul_of_computed_values_becomes_its_alpha() {
        for (c_shape, rank) in [(vec![], 3), (vec![1], 3), (vec![1, 1, 1, 1], 4)] {
            let want = run(scores(c_shape.clone(), false));
            let (fused, stats) = super::fuse(scores(c_shape.clone(), false)).unwrap();
            assert_eq!(stats.scaled_matmuls, 1);
            let labels: Vec<String> = fused.nodes.iter().map(|n| format!("{}{}", n.op_type, n.op.fused())).collect();
            assert_eq!(labels, ["MatMul+Div(scale)", "Identity"]);
            let got = run(fused.validated().unwrap());
            assert_eq!(got.shape().len(), rank, "{c_shape:?}");
            assert_eq!(got.shape(), want.shape());
            for (g, w) in got.f32s().unwrap().iter().zip(want.f32s().unwrap()) {
                // Multiplying by 1/c instead of dividing by c: within an ulp or two.
                assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-3), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn only_the_first_scale_is_absorbed() {
        let (fused, stats) = super::fuse(scores(vec![], true)).unwrap();
        assert_eq!(stats.scaled_matmuls, 1);
        let labels: Vec<String> = fused.nodes.iter().map(|n| format!("{}{}", n.op_type, n.op.fused())).collect();
        assert_eq!(labels, ["MatMul+Div(scale)", "Mul"]);
        let want = run(scores(vec![], true));
        let got = run(fused.validated().unwrap());
        for (g, w) in got.f32s().unwrap().iter().zip(want.f32s().unwrap()) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-3), "{g} vs {w}");
        }
    }
}
