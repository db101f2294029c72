//! Dynamic int8 quantization of MatMuls, for transformer encoders whose activations
//! have no calibration set that would fit every input (text of any length and content):
//! weights int8, symmetric per output column; activations quantized at run time, per
//! tensor, by `DynamicQuantizeLinear`. Written in standard ONNX, as onnxruntime's
//! `quantize_dynamic` writes it (so onnxruntime runs the result too):
//!
//! ```text
//! DynamicQuantizeLinear(x) -> (xq, xs, xz)            one per distinct x, shared by its readers
//! MatMulInteger(xq, Wq, xz, 0) -> Cast(float) -> Mul(·, Mul(xs, w_scale)) -> y
//! ```
//!
//! Cairn's loader fuses that chain, and a following bias `Add`, into one int8 GEMM whose
//! epilogue applies the scales (cairn-core `passes/qdynamic.rs`).
//!
//! Embedding tables (a `Gather` on axis 0 of a large constant 2-D f32 table: a text model's
//! word embeddings, ~half of a small encoder's bytes) become int8 with one scale per row,
//! gathered with the rows (standard ops again, so any ONNX runtime runs it):
//!
//! ```text
//! Gather(Tq, ids) -> Cast(float) -> Mul(·, Gather(row_scale, ids)) -> rows
//! ```
//!
//! onnxruntime's `quantize_dynamic` keeps one scale for the whole table; a scale per row
//! costs 4 bytes a row and keeps a rare token's small row as precise as a common one's.

use crate::quantize::{build, drop_unread_initializers, quantize_weights, WeightRange};
use crate::{Error, Result};
use cairn_core::{Attr, Attrs, DType, Graph, Tensor, TensorData};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicStats {
    /// MatMuls now computed in int8.
    pub matmuls: usize,
    /// Distinct activations quantized at run time.
    pub activations: usize,
    /// Embedding tables (Gather) now stored in int8.
    pub tables: usize,
    pub weight_bytes_before: usize,
    pub weight_bytes_after: usize,
}

/// Rewrites every `MatMul(x, W)` with a constant 2-D f32 `W` (not a graph input).
pub fn quantize_matmuls_dynamic(graph: Graph) -> Result<(Graph, DynamicStats)> {
    quantize_matmuls_dynamic_keeping(graph, &[], WeightRange::Full)
}

/// Whether weight `name` matches a `--keep-float` pattern: `*` stands for one dot-separated
/// segment (or part of one), so `encoder.layer.*.output.dense.weight` names the FFN output
/// projections of every layer but not `encoder.layer.0.attention.output.dense.weight`.
pub fn weight_matches(pattern: &str, name: &str) -> bool {
    fn seg(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => seg(&p[1..], s) || (s.first().is_some_and(|&c| c != b'.') && seg(p, &s[1..])),
            (Some(a), Some(b)) if a == b => seg(&p[1..], &s[1..]),
            _ => false,
        }
    }
    seg(pattern.as_bytes(), name.as_bytes())
}

/// Tables smaller than this stay f32 (position and token-type embeddings: a few hundred KiB
/// at most, and every run reads all of their rows).
const TABLE_MIN_ELEMENTS: usize = 1 << 16;

/// As [`quantize_matmuls_dynamic`], but MatMuls (and embedding tables) whose weight matches
/// one of `keep_float` ([`weight_matches`]) stay f32: inputs with heavy outliers (a GELU's
/// output feeding an FFN's down projection) lose the most under one run-time scale per tensor.
/// MatMul weights take values in `weights`; embedding tables keep the full range (no MatMul
/// reads them).
pub fn quantize_matmuls_dynamic_keeping(mut graph: Graph, keep_float: &[String], weights: WeightRange) -> Result<(Graph, DynamicStats)> {
    if graph.opset < 11 {
        return Err(Error::Model(format!(
            "the model is opset {}; DynamicQuantizeLinear needs opset 11 or later (re-export the model at opset 11+)",
            graph.opset
        )));
    }
    let graph_inputs: Vec<String> = graph.inputs.iter().map(|i| i.name.clone()).collect();
    let mut stats = DynamicStats::default();
    let mut quantized_x: HashMap<String, [String; 3]> = HashMap::new();
    let mut new_nodes = Vec::with_capacity(graph.nodes.len());
    for node in std::mem::take(&mut graph.nodes) {
        if let Some(table) = embedding_table(&graph, &node, &graph_inputs, keep_float) {
            quantize_gather(&mut graph, node, &table, &mut new_nodes, &mut stats)?;
            continue;
        }
        let w = matmul_weight(&graph, &node, &graph_inputs, keep_float).map(|w| (graph.initializers[&w].clone(), w));
        let x = node.inputs.first().cloned().flatten().filter(|s| !s.is_empty());
        let (Some((w, w_name)), Some(x)) = (w, x) else {
            new_nodes.push(node);
            continue;
        };
        let n = w.shape()[1];
        let (q, scales) = quantize_weights(&w, 1, weights)?;
        stats.weight_bytes_before += w.byte_len();
        stats.weight_bytes_after += q.len() + 4 * n;
        let [xq, xs, xz] = match quantized_x.get(&x) {
            Some(names) => names.clone(),
            None => {
                let names = [format!("{x}_dynamic_quantized"), format!("{x}_dynamic_scale"), format!("{x}_dynamic_zero_point")];
                new_nodes.push(build(
                    &graph,
                    format!("{x}_DynamicQuantizeLinear"),
                    "DynamicQuantizeLinear",
                    Attrs::new(),
                    vec![Some(x.clone())],
                    names.to_vec(),
                )?);
                quantized_x.insert(x.clone(), names.clone());
                stats.activations += 1;
                names
            }
        };
        let (wq, ws, wz) = (format!("{w_name}_quantized"), format!("{w_name}_scale"), format!("{w_name}_zero_point"));
        graph.initializers.insert(wq.clone(), Arc::new(Tensor::new(vec![w.shape()[0], n], TensorData::I8(q))?));
        graph.initializers.insert(ws.clone(), Arc::new(Tensor::from_f32(vec![n], scales)?));
        graph.initializers.insert(wz.clone(), Arc::new(Tensor::new(vec![], TensorData::I8(vec![0]))?));
        let name = &node.name;
        let (scale, acc, accf) = (format!("{name}_dynamic_scales"), format!("{name}_int32"), format!("{name}_int32_as_float"));
        new_nodes.push(build(
            &graph,
            format!("{name}_scales"),
            "Mul",
            Attrs::new(),
            vec![Some(xs.clone()), Some(ws)],
            vec![scale.clone()],
        )?);
        new_nodes.push(build(
            &graph,
            format!("{name}_integer"),
            "MatMulInteger",
            Attrs::new(),
            vec![Some(xq), Some(wq), Some(xz), Some(wz)],
            vec![acc.clone()],
        )?);
        let mut to_float = Attrs::new();
        to_float.insert("to".into(), Attr::Int(1));
        new_nodes.push(build(&graph, format!("{name}_to_float"), "Cast", to_float, vec![Some(acc)], vec![accf.clone()])?);
        new_nodes.push(build(&graph, name.clone(), "Mul", Attrs::new(), vec![Some(accf), Some(scale)], node.outputs.clone())?);
        stats.matmuls += 1;
    }
    graph.nodes = new_nodes;
    drop_unread_initializers(&mut graph);
    Ok((graph.validated()?, stats))
}

/// The weights `--quantize int8-dynamic` would quantize, by name, in graph order: MatMul
/// weights and embedding tables not kept by a `keep_float` pattern (what per-layer
/// sensitivity measures one at a time).
pub fn candidates(graph: &Graph, keep_float: &[String]) -> Vec<(String, String)> {
    let graph_inputs: Vec<String> = graph.inputs.iter().map(|i| i.name.clone()).collect();
    let mut out: Vec<(String, String)> = Vec::new();
    for node in &graph.nodes {
        let weight =
            embedding_table(graph, node, &graph_inputs, keep_float).or_else(|| matmul_weight(graph, node, &graph_inputs, keep_float));
        if let Some(w) = weight.filter(|w| !out.iter().any(|(n, _)| n == w)) {
            out.push((w, node.op_type.clone()));
        }
    }
    out
}

/// The weight of `node` if it is a MatMul by a constant 2-D f32 initializer that no
/// `keep_float` pattern keeps.
fn matmul_weight(graph: &Graph, node: &cairn_core::Node, graph_inputs: &[String], keep_float: &[String]) -> Option<String> {
    if !node.domain.is_empty() || node.op_type != "MatMul" {
        return None;
    }
    constant_2d_f32(graph, node.inputs.get(1).cloned().flatten()?, 0, graph_inputs, keep_float)
}

/// The table of `node` if it is a Gather on axis 0 of a constant 2-D f32 initializer of at
/// least [`TABLE_MIN_ELEMENTS`] elements that no `keep_float` pattern keeps.
fn embedding_table(graph: &Graph, node: &cairn_core::Node, graph_inputs: &[String], keep_float: &[String]) -> Option<String> {
    if !node.domain.is_empty() || node.op_type != "Gather" || !matches!(node.attrs.get("axis"), None | Some(Attr::Int(0))) {
        return None;
    }
    constant_2d_f32(graph, node.inputs.first().cloned().flatten()?, TABLE_MIN_ELEMENTS, graph_inputs, keep_float)
}

/// `name` if it is a 2-D f32 initializer of at least `min_len` values, not a graph input (an
/// input with a default may change at run time) and not kept f32 by a `keep_float` pattern.
fn constant_2d_f32(graph: &Graph, name: String, min_len: usize, graph_inputs: &[String], keep_float: &[String]) -> Option<String> {
    let t = graph.initializers.get(&name)?;
    let wanted = t.rank() == 2 && t.dtype() == DType::F32 && t.len() >= min_len;
    (wanted && !graph_inputs.contains(&name) && !keep_float.iter().any(|p| weight_matches(p, &name))).then_some(name)
}

/// Rewrites `Gather(table, ids)` as a gather of int8 rows and of their scales (module note).
fn quantize_gather(
    graph: &mut Graph,
    node: cairn_core::Node,
    table: &str,
    out: &mut Vec<cairn_core::Node>,
    stats: &mut DynamicStats,
) -> Result<()> {
    // Quantized once, shared by every Gather of the same table.
    let (tq, ts) = (format!("{table}_quantized"), format!("{table}_row_scale"));
    if !graph.initializers.contains_key(&tq) {
        let t = graph.initializers[table].clone();
        let rows = t.shape()[0];
        let (q, scales) = quantize_weights(&t, 0, WeightRange::Full)?;
        stats.weight_bytes_before += t.byte_len();
        stats.weight_bytes_after += q.len() + 4 * rows;
        stats.tables += 1;
        graph.initializers.insert(tq.clone(), Arc::new(Tensor::new(t.shape().to_vec(), TensorData::I8(q))?));
        graph.initializers.insert(ts.clone(), Arc::new(Tensor::from_f32(vec![rows, 1], scales)?));
    }
    let ids = node.inputs.get(1).cloned().flatten();
    let name = &node.name;
    let (rows_q, rows_s, rows_f) = (format!("{name}_int8_rows"), format!("{name}_row_scales"), format!("{name}_int8_rows_as_float"));
    let mut axis0 = Attrs::new();
    axis0.insert("axis".into(), Attr::Int(0));
    let mut to_float = Attrs::new();
    to_float.insert("to".into(), Attr::Int(1));
    out.push(build(graph, format!("{name}_int8"), "Gather", axis0.clone(), vec![Some(tq.clone()), ids.clone()], vec![rows_q.clone()])?);
    out.push(build(graph, format!("{name}_scales"), "Gather", axis0, vec![Some(ts.clone()), ids], vec![rows_s.clone()])?);
    out.push(build(graph, format!("{name}_to_float"), "Cast", to_float, vec![Some(rows_q)], vec![rows_f.clone()])?);
    out.push(build(graph, name.clone(), "Mul", Attrs::new(), vec![Some(rows_f), Some(rows_s)], node.outputs.clone())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{passes::prepare_for_inference, Dim, Session, ValueInfo};

    #[test]
    fn keep_float_patterns_match_one_segment_per_star() {
        let ffn = "encoder.layer.*.output.dense.weight";
        assert!(weight_matches(ffn, "encoder.layer.0.output.dense.weight"));
        assert!(weight_matches(ffn, "encoder.layer.11.output.dense.weight"));
        assert!(!weight_matches(ffn, "encoder.layer.0.attention.output.dense.weight"));
        assert!(!weight_matches(ffn, "encoder.layer.0.output.dense.bias"));
        assert!(weight_matches("*.weight", "w.weight") && !weight_matches("*.weight", "a.b.weight"));
        assert!(weight_matches("layer_*_fc", "layer_12_fc"));
    }

    /// An embedding table becomes int8 rows with a scale each: gathered rows (negative ids
    /// too) match f32 to half a step of their own row's scale; `--keep-float` keeps it.
    #[test]
    fn embedding_tables_become_int8_rows() {
        let (vocab, dim) = (300, 256);
        // Rows of very different magnitudes: one scale per row keeps each one precise.
        let table: Vec<f32> = (0..vocab * dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0 * (1.0 + (i / dim) as f32)).collect();
        let mut g = Graph {
            inputs: vec![ValueInfo { name: "ids".into(), dtype: DType::I64, dims: Some(vec![Dim::Known(1), Dim::Known(4)]) }],
            outputs: vec![ValueInfo { name: "rows".into(), dtype: DType::F32, dims: None }],
            initializers: Default::default(),
            nodes: vec![],
            opset: 17,
        };
        g.initializers.insert("emb.weight".into(), Arc::new(Tensor::from_f32(vec![vocab, dim], table.clone()).unwrap()));
        g.nodes.push(
            build(&g, "gather".into(), "Gather", Attrs::new(), vec![Some("emb.weight".into()), Some("ids".into())], vec!["rows".into()])
                .unwrap(),
        );
        let g = g.validated().unwrap();
        let ids = [0i64, 7, 299, -1];
        let inputs = HashMap::from([("ids".to_string(), Tensor::from_i64(vec![1, 4], ids.to_vec()).unwrap())]);
        let run =
            |g: Graph| Session::new(prepare_for_inference(g).unwrap().0).run(inputs.clone()).unwrap().remove(0).1.f32s().unwrap().to_vec();
        let (q, stats) = quantize_matmuls_dynamic(g.clone()).unwrap();
        assert_eq!((stats.tables, stats.matmuls), (1, 0));
        assert_eq!(q.initializers["emb.weight_quantized"].dtype(), DType::I8);
        assert!(!q.initializers.contains_key("emb.weight"), "the f32 table is gone");
        let got = run(q);
        for (j, &id) in ids.iter().enumerate() {
            let row = if id < 0 { vocab as i64 + id } else { id } as usize;
            let want = &table[row * dim..][..dim];
            let half_step = want.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0 / 2.0;
            for (g, w) in got[j * dim..][..dim].iter().zip(want) {
                assert!((g - w).abs() <= half_step * 1.001, "row {row}: {g} vs {w}");
            }
        }
        let (kept, stats) = quantize_matmuls_dynamic_keeping(g, &["emb.*".into()], WeightRange::Full).unwrap();
        assert_eq!(stats.tables, 0);
        assert_eq!(kept.initializers["emb.weight"].dtype(), DType::F32);
    }

    /// y = x · W + b through the dynamic form matches f32 to int8 precision, and the loader
    /// fuses the chain (one int8 MatMul node, no Cast/Mul/Add left).
    #[test]
    fn dynamic_matmul_matches_f32_and_is_fused_at_load() {
        let (k, n) = (24, 10);
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 60.0).collect();
        let b: Vec<f32> = (0..n).map(|j| j as f32 * 0.1 - 0.4).collect();
        let mut g = Graph {
            inputs: vec![ValueInfo { name: "x".into(), dtype: DType::F32, dims: Some(vec![Dim::Known(3), Dim::Known(k)]) }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }],
            initializers: Default::default(),
            nodes: vec![],
            opset: 17,
        };
        g.initializers.insert("W".into(), Arc::new(Tensor::from_f32(vec![k, n], w).unwrap()));
        g.initializers.insert("b".into(), Arc::new(Tensor::from_f32(vec![n], b).unwrap()));
        g.nodes.push(build(&g, "mm".into(), "MatMul", Attrs::new(), vec![Some("x".into()), Some("W".into())], vec!["t".into()]).unwrap());
        g.nodes.push(build(&g, "add".into(), "Add", Attrs::new(), vec![Some("t".into()), Some("b".into())], vec!["y".into()]).unwrap());
        let g = g.validated().unwrap();
        let x: Vec<f32> = (0..3 * k).map(|i| ((i * 13 % 29) as f32 - 9.0) / 7.0).collect();
        let inputs = HashMap::from([("x".to_string(), Tensor::from_f32(vec![3, k], x).unwrap())]);
        let run =
            |g: Graph| Session::new(prepare_for_inference(g).unwrap().0).run(inputs.clone()).unwrap().remove(0).1.f32s().unwrap().to_vec();
        let want = run(g.clone());
        let (q, stats) = quantize_matmuls_dynamic(g).unwrap();
        assert_eq!((stats.matmuls, stats.activations), (1, 1));
        let prepared = prepare_for_inference(q.clone()).unwrap().0;
        let ops: Vec<&str> = prepared.nodes.iter().map(|n| n.op.op_type()).collect();
        assert_eq!(ops, ["DynamicQuantizeLinear", "QLinearMatMul"], "the chain is one int8 MatMul after load");
        let got = run(q);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 0.02 * scale, "{g} vs {w}");
        }
    }
}
