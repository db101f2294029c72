//! Dynamically quantized MatMuls onto one int8 op, as onnxruntime's `quantize_dynamic`
//! writes them for transformer encoders:
//!
//! ```text
//! DynamicQuantizeLinear(x) -> (xq, xs, xz)
//! MatMulInteger(xq, W, xz, wz) -> Cast(to float) -> Mul(·, Mul(xs, w_scale)) -> [Add(·, bias)]
//! ```
//!
//! becomes a prepacked int8 MatMul reading `(xq, xs, xz)` whose epilogue applies both
//! scales and the bias to the i32 accumulators while they are in registers. Unfused, the
//! product makes three more passes over memory (Cast, Mul, Add), which cost MiniLM
//! about as much as a fifth of its int8 GEMM time. The result is the same f32 values:
//! `f32(acc) * (xs * w_scale) + bias`, in that order.

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
        let label = fused_label(graph, &m.absorbed).replace("+int8", "+dynamic-int8");
        let op = QMatMul::prepared(weights, Activation::Identity, label);
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
        Some(DynamicMatMul { xq, xs, xz, w, w_zero, w_scale: ws.f32s().ok()?.to_vec(), bias, absorbed, output })
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
    absorbed: Vec<usize>,
    output: String,
}
