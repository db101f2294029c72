//! Quantized graphs onto the int8 kernels, before constant folding (which would
//! otherwise dequantize constant weights back to f32):
//! - QDQ patterns, as onnxruntime's `quantize_static(QuantFormat.QDQ)` and
//!   `cairn optimize --quantize int8` write them:
//!   `DequantizeLinear(x) -> Conv|Gemm|MatMul(·, DequantizeLinear(w), bias) -> [Relu|Clip] -> [QuantizeLinear]`
//!   becomes one int8 op reading the quantized `x` (weights prepacked, bias and activation
//!   fused into the requantization; f32 output when no QuantizeLinear follows), and
//!   `DequantizeLinear(a) + DequantizeLinear(b) -> QuantizeLinear` becomes `QLinearAdd`, and
//!   `DequantizeLinear -> GlobalAveragePool -> QuantizeLinear` `QLinearGlobalAveragePool`;
//! - QOperator ops with constant weights (`QLinearConv`, `ConvInteger`,
//!   `QLinearMatMul`, `MatMulInteger`, `com.microsoft.QGemm`) get their weights
//!   prepacked once instead of on every run.
//!
//! Values between absorbed nodes must have no other reader and not be graph outputs.

use crate::ops::conv::ConvAttrs;
use crate::ops::{QBias, QConv, QConvWeights, QMatMul, QMatMulWeights, QOutSpec, MS_DOMAIN};
use crate::{Attr, Attrs, DType, Graph, Node, NodeSpec, OpContext, Registry, Result, Tensor};
use cairn_kernels::Activation;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QdqStats {
    pub int8_convs: usize,
    pub int8_matmuls: usize,
    pub int8_adds: usize,
    pub int8_pools: usize,
    pub prepacked: usize,
}

/// Runs the rewrite over the whole graph.
pub fn quantized_to_int8(mut graph: Graph) -> Result<(Graph, QdqStats)> {
    let mut stats = QdqStats::default();
    let ctx = Ctx::of(&graph);
    let mut removed: HashSet<usize> = HashSet::new();
    let mut replaced: HashMap<usize, Node> = HashMap::new();
    for i in 0..graph.nodes.len() {
        if removed.contains(&i) {
            continue;
        }
        let node = &graph.nodes[i];
        let found = match (node.domain.as_str(), node.op_type.as_str()) {
            ("", "Conv") => ctx.qdq_conv(&graph, i, &removed)?.inspect(|_| stats.int8_convs += 1),
            ("", "Gemm" | "MatMul") => ctx.qdq_matmul(&graph, i, &removed)?.inspect(|_| stats.int8_matmuls += 1),
            ("", "Add") => ctx.qdq_add(&graph, i, &removed)?.inspect(|_| stats.int8_adds += 1),
            ("", "GlobalAveragePool") => ctx.qdq_global_pool(&graph, i, &removed)?.inspect(|_| stats.int8_pools += 1),
            // A dynamically quantized MatMul absorbs its dequantization (see `qdynamic`); other ones are prepacked.
            ("", "MatMulInteger") => match ctx.dynamic_matmul(&graph, i, &removed)? {
                Some(found) => Some(found).inspect(|_| stats.int8_matmuls += 1),
                None => ctx.prepack(&graph, i)?.inspect(|_| stats.prepacked += 1),
            },
            ("", "QLinearConv" | "ConvInteger" | "QLinearMatMul") | (MS_DOMAIN, "QGemm") => {
                ctx.prepack(&graph, i)?.inspect(|_| stats.prepacked += 1)
            }
            _ => None,
        };
        if let Some((new, absorbed)) = found {
            removed.extend(absorbed);
            replaced.insert(i, new);
        }
    }
    super::splice_nodes(&mut graph, replaced, |i| removed.contains(&i));
    Ok((graph, stats))
}

type Found = Option<(Node, Vec<usize>)>;

pub(super) struct Ctx {
    pub(super) producer: HashMap<String, usize>,
    readers: HashMap<String, Vec<usize>>,
    outputs: HashSet<String>,
    inputs: HashSet<String>,
}

/// A `DequantizeLinear` feeding a value: its quantized input, scale and zero-point names.
struct Dq {
    q: String,
    scale: String,
    zero: Option<String>,
    axis: i64,
}

impl Ctx {
    fn of(graph: &Graph) -> Ctx {
        let mut producer = HashMap::new();
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            for o in &n.outputs {
                producer.insert(o.clone(), i);
            }
            for v in n.inputs.iter().flatten().filter(|v| !v.is_empty()) {
                readers.entry(v.clone()).or_default().push(i);
            }
        }
        Ctx {
            producer,
            readers,
            outputs: graph.outputs.iter().map(|o| o.name.clone()).collect(),
            inputs: graph.inputs.iter().map(|i| i.name.clone()).collect(),
        }
    }

    pub(super) fn constant<'g>(&self, graph: &'g Graph, name: &str) -> Option<&'g Arc<Tensor>> {
        if self.inputs.contains(name) {
            return None;
        }
        graph.initializers.get(name)
    }

    pub(super) fn sole_reader(&self, value: &str, removed: &HashSet<usize>) -> Option<usize> {
        match self.readers.get(value).map(|v| v.as_slice()) {
            Some([only]) if !self.outputs.contains(value) && !removed.contains(only) => Some(*only),
            _ => None,
        }
    }

    fn dq_of(&self, graph: &Graph, value: &str) -> Option<Dq> {
        let n = &graph.nodes[*self.producer.get(value)?];
        if !n.domain.is_empty() || n.op_type != "DequantizeLinear" {
            return None;
        }
        let name = |i: usize| n.inputs.get(i).cloned().flatten().filter(|s| !s.is_empty());
        let axis = match n.attrs.get("axis") {
            Some(Attr::Int(a)) => *a,
            _ => 1,
        };
        Some(Dq { q: name(0)?, scale: name(1)?, zero: name(2), axis })
    }

    /// A per-tensor activation DQ: constant scalar scale (and zero point).
    fn activation_dq(&self, graph: &Graph, value: &str) -> Option<Dq> {
        let dq = self.dq_of(graph, value)?;
        let scalar = |n: &str| self.constant(graph, n).is_some_and(|t| t.len() == 1);
        (scalar(&dq.scale) && dq.zero.as_deref().is_none_or(scalar)).then_some(dq)
    }

    /// The output side: an optional clamping activation, then an optional QuantizeLinear
    /// with constant scalar parameters. Returns (activation, out spec, final value, absorbed nodes).
    fn output_side(&self, graph: &Graph, value: &str, removed: &HashSet<usize>) -> (Activation, QOutSpec, String, Vec<usize>) {
        let mut act = Activation::Identity;
        let mut out = value.to_string();
        let mut absorbed = Vec::new();
        if let Some(j) = self.sole_reader(value, removed) {
            let n = &graph.nodes[j];
            let bound = |i: usize, d: f32| -> Option<f32> {
                match n.inputs.get(i).cloned().flatten().filter(|s| !s.is_empty()) {
                    None => Some(d),
                    Some(name) => self.constant(graph, &name).filter(|t| t.len() == 1).map(|t| t.view().to_f32_vec()[0]),
                }
            };
            let found = match (n.domain.as_str(), n.op_type.as_str()) {
                ("", "Relu") => Some(Activation::Relu),
                ("", "Clip") if graph.opset >= 11 => {
                    bound(1, f32::NEG_INFINITY).zip(bound(2, f32::INFINITY)).map(|(min, max)| Activation::Clip { min, max })
                }
                ("", "Clip") => {
                    let f = |k: &str, d: f32| match n.attrs.get(k) {
                        Some(Attr::Float(v)) => *v,
                        _ => d,
                    };
                    Some(Activation::Clip { min: f("min", f32::NEG_INFINITY), max: f("max", f32::INFINITY) })
                }
                _ => None,
            };
            if let Some(a) = found {
                act = a;
                out = n.outputs[0].clone();
                absorbed.push(j);
            }
        }
        if let Some(j) = self.sole_reader(&out, removed) {
            let n = &graph.nodes[j];
            if n.domain.is_empty() && n.op_type == "QuantizeLinear" {
                let scale = n
                    .inputs
                    .get(1)
                    .cloned()
                    .flatten()
                    .and_then(|s| self.constant(graph, &s))
                    .filter(|t| t.len() == 1 && t.dtype() == DType::F32);
                let zero = match n.inputs.get(2).cloned().flatten().filter(|s| !s.is_empty()) {
                    None => Some(None),
                    Some(z) => self.constant(graph, &z).filter(|t| t.len() == 1 && matches!(t.dtype(), DType::U8 | DType::I8)).map(Some),
                };
                if let (Some(s), Some(z)) = (scale, zero) {
                    let s = s.f32s().map(|v| v[0]).unwrap_or(0.0);
                    if s.is_finite() && s > 0.0 {
                        let dtype = z.map_or(DType::U8, |z| z.dtype());
                        let zero = z.map_or(0, |z| z.view().to_f32_vec()[0] as i32);
                        absorbed.push(j);
                        return (act, QOutSpec::Q { dtype, scale: s, zero }, n.outputs[0].clone(), absorbed);
                    }
                }
            }
        }
        (act, QOutSpec::F32, out, absorbed)
    }

    /// Weights behind a DQ: constant 8-bit values, constant scales (1 or per `axis` channel).
    fn weight_dq<'g>(&self, graph: &'g Graph, value: &str, axis: usize) -> Option<(&'g Arc<Tensor>, Vec<f32>, Option<&'g Arc<Tensor>>)> {
        let dq = self.dq_of(graph, value)?;
        let w = self.constant(graph, &dq.q).filter(|t| matches!(t.dtype(), DType::U8 | DType::I8))?;
        let s = self.constant(graph, &dq.scale).filter(|t| t.dtype() == DType::F32)?;
        let z = match &dq.zero {
            None => None,
            Some(z) => Some(self.constant(graph, z)?),
        };
        if s.len() > 1 {
            let ax = if dq.axis < 0 { dq.axis + w.rank() as i64 } else { dq.axis };
            if ax != axis as i64 || w.shape().get(axis) != Some(&s.len()) {
                return None;
            }
        }
        Some((w, s.f32s().ok()?.to_vec(), z))
    }

    /// A bias: a constant f32, or a DQ of a constant (i32) with constant scales.
    fn bias(&self, graph: &Graph, value: &str) -> Option<Vec<f32>> {
        if let Some(t) = self.constant(graph, value) {
            return t.f32s().ok().map(|v| v.to_vec());
        }
        let dq = self.dq_of(graph, value)?;
        let q = self.constant(graph, &dq.q)?.view().to_f32_vec();
        let s = self.constant(graph, &dq.scale)?.view().to_f32_vec();
        let z = dq.zero.as_deref().map_or(Some(vec![0.0]), |z| self.constant(graph, z).map(|t| t.view().to_f32_vec()))?;
        let at = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        (s.len() == 1 || s.len() == q.len()).then(|| q.iter().enumerate().map(|(i, &b)| (b - at(&z, i)) * at(&s, i)).collect())
    }

    /// The bias as an int32 in accumulator units, when it is one: `DequantizeLinear` of an
    /// int32 constant with zero point 0 and scale `x_scale * w_scale[c]` (within 1e-6, as
    /// TFLite's converter and ONNX quantizers write it). The kernels then add it to the i32
    /// accumulator exactly, as XNNPACK (the TFLite interpreter's default) does (ADR 0032).
    fn acc_bias(&self, graph: &Graph, value: &str, x_scale: &str, w_scale: &[f32]) -> Option<Vec<i32>> {
        let dq = self.dq_of(graph, value)?;
        let q = self.constant(graph, &dq.q)?.i32s().ok()?.to_vec();
        let s = self.constant(graph, &dq.scale)?.view().to_f32_vec();
        let xs = self.constant(graph, x_scale)?.view().to_f32_vec();
        if let Some(z) = dq.zero.as_deref() {
            if self.constant(graph, z)?.view().to_f32_vec().iter().any(|&v| v != 0.0) {
                return None;
            }
        }
        let at = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        let fits = |v: &[f32]| v.len() == 1 || v.len() == q.len();
        if xs.len() != 1 || !fits(&s) || !fits(w_scale) {
            return None;
        }
        let same = (0..q.len()).all(|i| {
            let want = xs[0] * at(w_scale, i);
            (at(&s, i) - want).abs() <= 1e-6 * want.abs()
        });
        same.then_some(q)
    }

    fn qdq_conv(&self, graph: &Graph, i: usize, removed: &HashSet<usize>) -> Result<Found> {
        let conv = &graph.nodes[i];
        let name = |k: usize| conv.inputs.get(k).cloned().flatten().filter(|s| !s.is_empty());
        let (Some(x), Some(w)) = (name(0), name(1)) else { return Ok(None) };
        let Some(xdq) = self.activation_dq(graph, &x) else { return Ok(None) };
        let Some((wq, w_scale, w_zero)) = self.weight_dq(graph, &w, 0) else { return Ok(None) };
        let bias = match name(2) {
            None => None,
            Some(b) => match (self.acc_bias(graph, &b, &xdq.scale, &w_scale), self.bias(graph, &b)) {
                (Some(v), _) => Some(QBias::Int(v)),
                (None, Some(v)) => Some(QBias::Real(v)),
                (None, None) => return Ok(None),
            },
        };
        let (act, out, y, absorbed) = self.output_side(graph, &conv.outputs[0], removed);
        let ctx = OpContext::new(&conv.op_type, graph.opset, &conv.attrs, conv.inputs.len(), 1);
        let attrs = ConvAttrs::read(&ctx).map_err(|e| e.at_node(&conv.name, &conv.op_type))?;
        let weights = QConvWeights::new(&attrs, wq.view(), w_zero.map(|z| z.view()), w_scale, bias, out)
            .map_err(|e| e.at_node(&conv.name, "Conv"))?;
        let label = fused_label(graph, &absorbed);
        let op = QConv::prepared(attrs, weights, act, label);
        Ok(Some((int8_node(conv, op, vec![Some(xdq.q), Some(xdq.scale), xdq.zero], y), absorbed)))
    }

    fn qdq_matmul(&self, graph: &Graph, i: usize, removed: &HashSet<usize>) -> Result<Found> {
        let node = &graph.nodes[i];
        let name = |k: usize| node.inputs.get(k).cloned().flatten().filter(|s| !s.is_empty());
        let (Some(a), Some(b)) = (name(0), name(1)) else { return Ok(None) };
        let int = |k: &str| match node.attrs.get(k) {
            Some(Attr::Int(v)) => *v,
            _ => 0,
        };
        let float = |k: &str| match node.attrs.get(k) {
            Some(Attr::Float(v)) => *v,
            _ => 1.0,
        };
        let gemm = node.op_type == "Gemm";
        if gemm && int("transA") != 0 {
            return Ok(None);
        }
        let trans_b = gemm && int("transB") != 0;
        let Some(adq) = self.activation_dq(graph, &a) else { return Ok(None) };
        // Per output channel is along n: axis 0 of a transposed [n, k] B, axis 1 of [k, n].
        let Some((wq, w_scale, w_zero)) = self.weight_dq(graph, &b, if trans_b { 0 } else { 1 }) else { return Ok(None) };
        if wq.rank() != 2 {
            return Ok(None);
        }
        let n = if trans_b { wq.shape()[0] } else { wq.shape()[1] };
        let alpha = if gemm { float("alpha") } else { 1.0 };
        let unscaled = alpha == 1.0 && float("beta") == 1.0;
        let bias = match name(2).filter(|_| gemm) {
            None => None,
            Some(c) => match self.acc_bias(graph, &c, &adq.scale, &w_scale).filter(|v| unscaled && (v.len() == n || v.len() == 1)) {
                Some(v) => Some(QBias::Int(v.iter().copied().cycle().take(n).collect())),
                None => match self.bias(graph, &c) {
                    Some(v) if v.len() == n || v.len() == 1 => {
                        Some(QBias::Real(v.iter().map(|x| x * float("beta")).cycle().take(n).collect()))
                    }
                    _ => return Ok(None),
                },
            },
        };
        let (act, out, y, absorbed) = self.output_side(graph, &node.outputs[0], removed);
        let scale = w_scale.iter().map(|s| s * alpha).collect();
        let weights = QMatMulWeights::new(wq.view(), trans_b, w_zero.map(|z| z.view()), scale, bias, out)
            .map_err(|e| e.at_node(&node.name, &node.op_type))?;
        let op = QMatMul::prepared(weights, act, fused_label(graph, &absorbed));
        Ok(Some((int8_node(node, op, vec![Some(adq.q), Some(adq.scale), adq.zero], y), absorbed)))
    }

    fn qdq_add(&self, graph: &Graph, i: usize, removed: &HashSet<usize>) -> Result<Found> {
        let node = &graph.nodes[i];
        let [Some(a), Some(b)] = node.inputs.as_slice() else { return Ok(None) };
        let (Some(da), Some(db)) = (self.activation_dq(graph, a), self.activation_dq(graph, b)) else { return Ok(None) };
        let (act, out, y, absorbed) = self.output_side(graph, &node.outputs[0], removed);
        let (QOutSpec::Q { .. }, Activation::Identity) = (&out, act) else { return Ok(None) };
        let q = &graph.nodes[*absorbed.last().expect("a QuantizeLinear was absorbed")];
        let inputs = vec![
            Some(da.q),
            Some(da.scale),
            da.zero,
            Some(db.q),
            Some(db.scale),
            db.zero,
            q.inputs[1].clone(),
            q.inputs.get(2).cloned().flatten(),
        ];
        Ok(Some((ms_node(graph, node, "QLinearAdd", inputs, y)?, absorbed)))
    }

    /// `DequantizeLinear -> GlobalAveragePool -> QuantizeLinear`: the mean of the stored
    /// bytes (an exact integer sum per plane), requantized once per channel.
    fn qdq_global_pool(&self, graph: &Graph, i: usize, removed: &HashSet<usize>) -> Result<Found> {
        let node = &graph.nodes[i];
        let [Some(x)] = node.inputs.as_slice() else { return Ok(None) };
        let Some(dx) = self.activation_dq(graph, x) else { return Ok(None) };
        let (act, out, y, absorbed) = self.output_side(graph, &node.outputs[0], removed);
        let (QOutSpec::Q { .. }, Activation::Identity) = (&out, act) else { return Ok(None) };
        let q = &graph.nodes[*absorbed.last().expect("a QuantizeLinear was absorbed")];
        let inputs = vec![Some(dx.q), Some(dx.scale), dx.zero, q.inputs[1].clone(), q.inputs.get(2).cloned().flatten()];
        Ok(Some((ms_node(graph, node, "QLinearGlobalAveragePool", inputs, y)?, absorbed)))
    }

    /// QOperator ops whose weights are constants: prepack them once.
    fn prepack(&self, graph: &Graph, i: usize) -> Result<Found> {
        let node = &graph.nodes[i];
        let name = |k: usize| node.inputs.get(k).cloned().flatten().filter(|s| !s.is_empty());
        let c = |k: usize| name(k).and_then(|n| self.constant(graph, &n));
        let scalar = |k: usize| c(k).filter(|t| t.len() == 1);
        let out_q = |s: usize, z: usize| -> Option<QOutSpec> {
            let scale = scalar(s)?.view().to_f32_vec()[0];
            let zero = match name(z) {
                None => None,
                Some(_) => Some(scalar(z)?),
            };
            (scale.is_finite() && scale > 0.0).then(|| QOutSpec::Q {
                dtype: zero.map_or(DType::U8, |t| t.dtype()),
                scale,
                zero: zero.map_or(0, |t| t.view().to_f32_vec()[0] as i32),
            })
        };
        let at = |e: crate::Error| e.at_node(&node.name, &node.op_type);
        let (op, x_inputs): (Arc<dyn crate::Op>, Vec<Option<String>>) = match node.op_type.as_str() {
            "QLinearConv" => {
                let (Some(w), Some(ws), Some(out)) = (c(3), c(4), out_q(6, 7)) else { return Ok(None) };
                let wz = match name(5) {
                    None => None,
                    Some(_) => match c(5) {
                        Some(t) => Some(t),
                        None => return Ok(None),
                    },
                };
                let bias = match name(8) {
                    None => None,
                    Some(_) => match c(8).and_then(|t| t.i32s().ok().map(|v| QBias::Int(v.to_vec()))) {
                        Some(b) => Some(b),
                        None => return Ok(None),
                    },
                };
                let ctx = OpContext::new(&node.op_type, graph.opset, &node.attrs, node.inputs.len(), 1);
                let attrs = ConvAttrs::read(&ctx).map_err(at)?;
                let weights = QConvWeights::new(&attrs, w.view(), wz.map(|t| t.view()), ws.view().to_f32_vec(), bias, out).map_err(at)?;
                (Arc::new(QConv::prepared(attrs, weights, Activation::Identity, String::new())), vec![name(0), name(1), name(2)])
            }
            "ConvInteger" => {
                let Some(w) = c(1) else { return Ok(None) };
                let wz = match name(3) {
                    None => None,
                    Some(_) => match c(3) {
                        Some(t) => Some(t),
                        None => return Ok(None),
                    },
                };
                let ctx = OpContext::new(&node.op_type, graph.opset, &node.attrs, node.inputs.len(), 1);
                let attrs = ConvAttrs::read(&ctx).map_err(at)?;
                let weights = QConvWeights::new(&attrs, w.view(), wz.map(|t| t.view()), vec![1.0], None, QOutSpec::I32).map_err(at)?;
                (Arc::new(QConv::prepared(attrs, weights, Activation::Identity, String::new())), vec![name(0), None, name(2)])
            }
            "QLinearMatMul" => {
                let (Some(b), Some(bs), Some(out)) = (c(3), c(4), out_q(6, 7)) else { return Ok(None) };
                let bz = match name(5) {
                    None => None,
                    Some(_) => match c(5) {
                        Some(t) => Some(t),
                        None => return Ok(None),
                    },
                };
                if b.rank() != 2 {
                    return Ok(None);
                }
                let weights = QMatMulWeights::new(b.view(), false, bz.map(|t| t.view()), bs.view().to_f32_vec(), None, out).map_err(at)?;
                (Arc::new(QMatMul::prepared(weights, Activation::Identity, String::new())), vec![name(0), name(1), name(2)])
            }
            "MatMulInteger" => {
                let Some(b) = c(1).filter(|b| b.rank() == 2) else { return Ok(None) };
                let bz = match name(3) {
                    None => None,
                    Some(_) => match c(3) {
                        Some(t) => Some(t),
                        None => return Ok(None),
                    },
                };
                let weights = QMatMulWeights::new(b.view(), false, bz.map(|t| t.view()), vec![1.0], None, QOutSpec::I32).map_err(at)?;
                (Arc::new(QMatMul::prepared(weights, Activation::Identity, String::new())), vec![name(0), None, name(2)])
            }
            "QGemm" => {
                let int = |k: &str| match node.attrs.get(k) {
                    Some(Attr::Int(v)) => *v,
                    _ => 0,
                };
                let alpha = match node.attrs.get("alpha") {
                    Some(Attr::Float(v)) => *v,
                    _ => 1.0,
                };
                let (Some(b), Some(bs)) = (c(3).filter(|b| b.rank() == 2), c(4)) else { return Ok(None) };
                if int("transA") != 0 {
                    return Ok(None);
                }
                let bz = match name(5) {
                    None => None,
                    Some(_) => match c(5) {
                        Some(t) => Some(t),
                        None => return Ok(None),
                    },
                };
                let bias = match name(6) {
                    None => None,
                    Some(_) => match c(6).and_then(|t| t.i32s().ok().map(|v| QBias::Int(v.to_vec()))) {
                        Some(b) => Some(b),
                        None => return Ok(None),
                    },
                };
                let out = match name(7) {
                    None => QOutSpec::F32,
                    Some(_) => match out_q(7, 8) {
                        Some(o) => o,
                        None => return Ok(None),
                    },
                };
                let scale = bs.view().to_f32_vec().iter().map(|s| s * alpha).collect();
                let weights = QMatMulWeights::new(b.view(), int("transB") != 0, bz.map(|t| t.view()), scale, bias, out).map_err(at)?;
                (Arc::new(QMatMul::prepared(weights, Activation::Identity, String::new())), vec![name(0), name(1), name(2)])
            }
            _ => return Ok(None),
        };
        let mut new = node.clone();
        new.inputs = x_inputs;
        new.op = op;
        Ok(Some((new, Vec::new())))
    }
}

pub(super) fn fused_label(graph: &Graph, absorbed: &[usize]) -> String {
    let mut s = String::from("+int8");
    for &j in absorbed {
        s.push('+');
        s.push_str(&graph.nodes[j].op_type);
    }
    s
}

/// A com.microsoft QOperator node (`op_type`, no attributes) replacing `base`, built through
/// the registry so that it is prepared like an imported one; it keeps `base`'s name.
fn ms_node(graph: &Graph, base: &Node, op_type: &str, inputs: Vec<Option<String>>, output: String) -> Result<Node> {
    let spec = NodeSpec {
        name: base.name.clone(),
        domain: MS_DOMAIN.into(),
        op_type: op_type.into(),
        attrs: Attrs::new(),
        inputs,
        outputs: vec![output],
    };
    Node::build(spec, graph.opset, Registry::global())
}

/// The int8 node replacing `base` (keeps its name, op type and attributes for messages).
pub(super) fn int8_node(base: &Node, op: impl crate::Op + 'static, inputs: Vec<Option<String>>, output: String) -> Node {
    Node { inputs, outputs: vec![output], op: Arc::new(op), ..base.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::test_support::{graph, node};
    use crate::{Dim, Session, TensorData, ValueInfo};

    // A near tie (found by a search): at x = -78, (acc + bias) * scale is -37.49999964 in f64
    // and exactly -37.5 in f32, so XNNPACK's rule gives -38 + zero point; a bias made real
    // first (`bias * bias_scale / out_scale` added to `acc * scale`) rounds to -37.
    const SX: f32 = 0.022_501_91;
    const ZX: i8 = 3;
    const SW: f32 = 0.000_665_411_4;
    const W: i8 = 123;
    const BIAS: i32 = -199_867;
    const SY: f32 = 0.083_781_08;
    const ZY: i8 = -5;

    /// The QDQ form of a Gemm as ONNX quantizers write it: int8 x [256, 1], int8 weight
    /// [1, 1], int32 bias with scale `x_scale * w_scale`, output quantized to int8; `alpha`
    /// scales the product (the bias must then stay real).
    fn gemm(alpha: f32) -> Graph {
        let t = |shape: Vec<usize>, data: TensorData| Arc::new(Tensor::new(shape, data).unwrap());
        let initializers = HashMap::from([
            ("sx".to_string(), t(vec![], TensorData::F32(vec![SX]))),
            ("zx".to_string(), t(vec![], TensorData::I8(vec![ZX]))),
            ("wq".to_string(), t(vec![1, 1], TensorData::I8(vec![W]))),
            ("sw".to_string(), t(vec![], TensorData::F32(vec![SW]))),
            ("zw".to_string(), t(vec![], TensorData::I8(vec![0]))),
            ("bq".to_string(), t(vec![1], TensorData::I32(vec![BIAS]))),
            ("sb".to_string(), t(vec![], TensorData::F32(vec![SX * SW]))),
            ("zb".to_string(), t(vec![], TensorData::I32(vec![0]))),
            ("sy".to_string(), t(vec![], TensorData::F32(vec![SY]))),
            ("zy".to_string(), t(vec![], TensorData::I8(vec![ZY]))),
        ]);
        let nodes = vec![
            node("x", "DequantizeLinear", &["xq", "sx", "zx"], "x", vec![]),
            node("w", "DequantizeLinear", &["wq", "sw", "zw"], "w", vec![]),
            node("b", "DequantizeLinear", &["bq", "sb", "zb"], "b", vec![]),
            node("y", "Gemm", &["x", "w", "b"], "y", vec![("alpha", Attr::Float(alpha))]),
            node("yq", "QuantizeLinear", &["y", "sy", "zy"], "yq", vec![]),
        ];
        let i8_value = |name: &str, dims| ValueInfo { name: name.into(), dtype: DType::I8, dims };
        graph(vec![i8_value("xq", Some(vec![Dim::Known(256), Dim::Known(1)]))], vec![i8_value("yq", None)], initializers, nodes)
    }

    /// XNNPACK's fp32 rule written out: integer sum with the bias, one f32 product with
    /// `x_scale * w_scale * alpha / y_scale`, round half to even, the zero point added after.
    fn xnnpack(x: i8, alpha: f32) -> i8 {
        let acc = W as i64 * (x as i64 - ZX as i64) + BIAS as i64;
        let f = (acc as f32 * (SX * (SW * alpha) / SY)).clamp((-128 - ZY as i32) as f32, (127 - ZY as i32) as f32);
        (f.round_ties_even() as i32 + ZY as i32) as i8
    }

    /// The graph as a loader runs it; `stored`: after the constant folding `cairn pack` and
    /// `cairn optimize` apply before writing it (which must keep the int32 bias's dequantization).
    fn run(graph: Graph, stored: bool) -> (QdqStats, Vec<i8>) {
        let graph = if stored { crate::passes::fold::fold_constants_for_storage(graph).unwrap().0 } else { graph };
        let (graph, stats) = quantized_to_int8(graph).unwrap();
        let x = Tensor::new(vec![256, 1], TensorData::I8((-128..=127).collect())).unwrap();
        let y = Session::new(graph.validated().unwrap()).run(HashMap::from([("xq".to_string(), x)])).unwrap().remove(0).1;
        match y.data() {
            TensorData::I8(v) => (stats, v.clone()),
            other => panic!("expected i8 output, got {}", other.dtype()),
        }
    }

    #[test]
    fn an_int32_bias_of_a_qdq_gemm_is_added_to_the_accumulator() {
        let want: Vec<i8> = (-128..=127).map(|x| xnnpack(x, 1.0)).collect();
        assert_eq!(want[(-78i32 + 128) as usize], -43, "the near tie this test is built on");
        for stored in [false, true] {
            let (stats, got) = run(gemm(1.0), stored);
            assert_eq!(stats.int8_matmuls, 1, "the QDQ Gemm must become one int8 matmul (stored: {stored})");
            assert_eq!(got, want, "stored: {stored}");
        }
    }

    #[test]
    fn a_scaled_gemm_keeps_its_bias_real_and_still_runs_on_int8() {
        // alpha = 2: the bias is no longer in the product's units, so it stays a real value;
        // the outputs then follow the rule to within one step.
        let (stats, got) = run(gemm(2.0), false);
        assert_eq!(stats.int8_matmuls, 1);
        for (x, g) in (-128..=127i8).zip(got) {
            let acc = W as f64 * (x as f64 - ZX as f64);
            let real = (acc * SX as f64 * SW as f64 * 2.0 + BIAS as f64 * SX as f64 * SW as f64) / SY as f64;
            let want = (real.round() + ZY as f64).clamp(-128.0, 127.0);
            assert!((g as f64 - want).abs() <= 1.0, "x = {x}: {g} vs {want}");
        }
    }
}
