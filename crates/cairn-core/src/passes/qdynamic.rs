//! Dynamically quantized MatMuls onto one int8 op, as onnxruntime's `quantize_dynamic`
//! writes them for transformer encoders:
//!
//! ```text
//! DynamicQuantizeLinear(x) -> (xq, xs, xz)
//! MatMulInteger(xq, W, xz, wz) -> Cast(to float) -> Mul(·, Mul(xs, w_scale)) -> [Add(·, bias)]
//! ```
//!
//! becomes a prepacked int8 MatMul reading `(xq, xs, xz)` whose epilogue applies both
//! scales and the bias to the i32 accumulators while they are in registers, and then a
//! following activation (GELU) in one pass over its output. Unfused, the
//! product makes three more passes over memory (Cast, Mul, Add), which cost MiniLM
//! about as much as a fifth of its int8 GEMM time. The result is the same f32 values:
//! `f32(acc) * (xs * w_scale) + bias`, in that order.

use super::fuse::{match_activation, Uses};
use super::qdq::{fused_label, int8_node, Ctx};
use crate::ops::{QBias, QMatMul, QMatMulWeights, QOutSpec};
use crate::{Attr, DType, Graph, Node, Result};
use cairn_kernels::Activation;
use std::collections::HashSet;

impl Ctx {
    /// The fused node for the `MatMulInteger` at `i` and the nodes it absorbs, or `None`
    /// when the pattern around it is not exactly the one above.
    pub(super) fn dynamic_matmul(&self, graph: &Graph, i: usize, removed: &HashSet<usize>) -> Result<Option<(Node, Vec<usize>)>> {
        let node = &graph.nodes[i];
        let Some(m) = self.match_dynamic(graph, node, removed) else { return Ok(None) };
        let weights = QMatMulWeights::new(m.w.view(), false, m.w_zero.map(|z| z.view()), m.w_scale, m.bias.map(QBias::Real), QOutSpec::F32)
            .map_err(|e| e.at_node(&node.name, &node.op_type))?;
        let mut label = fused_label(graph, &m.absorbed[..m.product_nodes]).replace("+int8", "+dynamic-int8");
        if let Some(act) = &m.activation_label {
            label = format!("{label}+{act}");
        }
        let op = QMatMul::prepared(weights, m.activation, label);
        Ok(Some((int8_node(node, op, vec![Some(m.xq), Some(m.xs), Some(m.xz)], m.output), m.absorbed)))
    }

    fn match_dynamic<'g>(&self, graph: &'g Graph, node: &'g Node, removed: &HashSet<usize>) -> Option<DynamicMatMul<'g>> {
        let input = |n: &Node, k: usize| n.inputs.get(k).cloned().flatten().filter(|s| !s.is_empty());
        let (xq, w_name, xz) = (input(node, 0)?, input(node, 1)?, input(node, 2)?);
        // x's quantization comes from one DynamicQuantizeLinear (value, scale, zero point).
        let dql = &graph.nodes[*self.producer.get(&xq)?];
        if !dql.domain.is_empty()
            || dql.op_type != "DynamicQuantizeLinear"
            || dql.outputs.len() < 3
            || dql.outputs[0] != xq
            || dql.outputs[2] != xz
        {
            return None;
        }
        let xs = dql.outputs[1].clone();
        let w = self.constant(graph, &w_name).filter(|t| t.rank() == 2 && matches!(t.dtype(), DType::U8 | DType::I8))?;
        let n = w.shape()[1];
        let w_zero = match input(node, 3) {
            None => None,
            Some(z) => Some(self.constant(graph, &z).filter(|t| t.len() == 1 || t.len() == n)?),
        };
        // i32 -> f32
        let cast_at = self.sole_reader(&node.outputs[0], removed)?;
        let cast = &graph.nodes[cast_at];
        if !cast.domain.is_empty() || cast.op_type != "Cast" || !matches!(cast.attrs.get("to"), Some(Attr::Int(1))) {
            return None;
        }
        // * (xs * w_scale), the scale product computed by a Mul that only this Mul reads
        let mul_at = self.sole_reader(&cast.outputs[0], removed)?;
        let mul = &graph.nodes[mul_at];
        if !mul.domain.is_empty() || mul.op_type != "Mul" {
            return None;
        }
        let other = if input(mul, 0)? == cast.outputs[0] { input(mul, 1)? } else { input(mul, 0)? };
        let scale_at = *self.producer.get(&other)?;
        let scale_mul = &graph.nodes[scale_at];
        if !scale_mul.domain.is_empty() || scale_mul.op_type != "Mul" || self.sole_reader(&other, removed) != Some(mul_at) {
            return None;
        }
        let ws_name = match (input(scale_mul, 0)?, input(scale_mul, 1)?) {
            (a, b) if a == xs => b,
            (a, b) if b == xs => a,
            _ => return None,
        };
        let ws = self.constant(graph, &ws_name).filter(|t| t.dtype() == DType::F32 && (t.len() == 1 || (t.rank() == 1 && t.len() == n)))?;
        let mut absorbed = vec![cast_at, mul_at, scale_at];
        let mut output = mul.outputs[0].clone();
        // + bias, a constant vector along n
        let mut bias = None;
        if let Some(add_at) = self.sole_reader(&output, removed) {
            let add = &graph.nodes[add_at];
            if add.domain.is_empty() && add.op_type == "Add" {
                let other = if input(add, 0).as_deref() == Some(output.as_str()) { input(add, 1) } else { input(add, 0) };
                let b = other.and_then(|b| self.constant(graph, &b)).filter(|t| t.dtype() == DType::F32 && t.rank() == 1 && t.len() == n);
                if let Some(b) = b {
                    bias = Some(b.f32s().ok()?.to_vec());
                    absorbed.push(add_at);
                    output = add.outputs[0].clone();
                }
            }
        }
        // + an activation (the GELU between a transformer's two feed-forward products),
        // applied to the real output: one pass instead of the five nodes exporters write.
        let (mut activation, mut activation_label) = (Activation::Identity, None);
        let product_nodes = absorbed.len();
        let mut taken = removed.clone();
        taken.extend(absorbed.iter().copied());
        if let Some((act, found)) = match_activation(graph, &Uses::of(graph).claiming(&taken), &output) {
            (activation, activation_label) = (act, Some(found.label));
            absorbed.extend(found.nodes);
            output = found.output;
        }
        let w_scale = ws.f32s().ok()?.to_vec();
        Some(DynamicMatMul { xq, xs, xz, w, w_zero, w_scale, bias, activation, activation_label, absorbed, product_nodes, output })
    }
}

struct DynamicMatMul<'g> {
    xq: String,
    xs: String,
    xz: String,
    w: &'g std::sync::Arc<crate::Tensor>,
    w_zero: Option<&'g std::sync::Arc<crate::Tensor>>,
    w_scale: Vec<f32>,
    bias: Option<Vec<f32>>,
    activation: Activation,
    /// What the activation was spelled as (`GELU`), for `inspect`.
    activation_label: Option<String>,
    absorbed: Vec<usize>,
    /// How many of `absorbed` are the product's own nodes (Cast, Muls, bias Add).
    product_nodes: usize,
    output: String,
}

#[cfg(test)]
mod tests {
    use crate::passes::test_support::{graph, node, node_with_outputs};
    use crate::{Attr, DType, Dim, Graph, Session, Tensor, TensorData, ValueInfo};
    use std::collections::HashMap;
    use std::sync::Arc;

    /// A feed-forward layer as onnxruntime's `quantize_dynamic` writes it, followed by the
    /// exact GELU as exporters spell it: x [3, 8] -> int8 MatMul -> bias -> GELU -> [3, 5].
    fn dynamic_ffn() -> Graph {
        let t = |shape: Vec<usize>, data: TensorData| Arc::new(Tensor::new(shape, data).unwrap());
        let w: Vec<i8> = (0..40).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let initializers = HashMap::from([
            ("w".to_string(), t(vec![8, 5], TensorData::I8(w))),
            ("wz".to_string(), t(vec![], TensorData::I8(vec![0]))),
            ("ws".to_string(), t(vec![], TensorData::F32(vec![0.013]))),
            ("bias".to_string(), t(vec![5], TensorData::F32(vec![0.5, -0.25, 0.0, 1.0, -2.0]))),
            ("sqrt2".to_string(), t(vec![], TensorData::F32(vec![std::f32::consts::SQRT_2]))),
            ("one".to_string(), t(vec![], TensorData::F32(vec![1.0]))),
            ("half".to_string(), t(vec![], TensorData::F32(vec![0.5]))),
        ]);
        let nodes = vec![
            node_with_outputs("dql", "DynamicQuantizeLinear", &["x"], &["xq", "xs", "xz"], vec![]),
            node("mm", "MatMulInteger", &["xq", "w", "xz", "wz"], "acc", vec![]),
            node("cast", "Cast", &["acc"], "accf", vec![("to", Attr::Int(1))]),
            node("scale", "Mul", &["xs", "ws"], "s", vec![]),
            node("mul", "Mul", &["accf", "s"], "y0", vec![]),
            node("add", "Add", &["y0", "bias"], "y1", vec![]),
            node("div", "Div", &["y1", "sqrt2"], "g0", vec![]),
            node("erf", "Erf", &["g0"], "g1", vec![]),
            node("plus", "Add", &["g1", "one"], "g2", vec![]),
            node("times", "Mul", &["y1", "g2"], "g3", vec![]),
            node("halve", "Mul", &["g3", "half"], "y", vec![]),
        ];
        let f32_value = |name: &str, dims| ValueInfo { name: name.into(), dtype: DType::F32, dims };
        graph(vec![f32_value("x", Some(vec![Dim::Known(3), Dim::Known(8)]))], vec![f32_value("y", None)], initializers, nodes)
    }

    #[test]
    fn a_gelu_after_a_dynamic_int8_matmul_is_fused_and_computes_the_same() {
        let x = Tensor::new(vec![3, 8], TensorData::F32((0..24).map(|i| (i as f32 * 0.7).sin() * 3.0).collect())).unwrap();
        let run = |g: Graph| {
            let y = Session::new(g).run(HashMap::from([("x".to_string(), x.clone())])).unwrap().remove(0).1;
            y.f32s().unwrap().to_vec()
        };
        let want = run(dynamic_ffn());
        let (fused, stats) = super::super::qdq::quantized_to_int8(dynamic_ffn()).unwrap();
        assert_eq!(stats.int8_matmuls, 1);
        let labels: Vec<String> = fused.nodes.iter().map(|n| format!("{}{}", n.op_type, n.op.fused())).collect();
        assert_eq!(labels, ["DynamicQuantizeLinear", "MatMulInteger+dynamic-int8+Cast+Mul+Mul+Add+GELU"], "{labels:?}");
        let got = run(fused.validated().unwrap());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // The fused GELU is the same function, through the vectorized erf: a few ulps.
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "element {i}: {g} vs {w}");
        }
    }
}
