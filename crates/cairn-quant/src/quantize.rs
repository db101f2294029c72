//! int8 quantization as QDQ: weights of Conv, Gemm and MatMul become int8
//! (symmetric, one scale per output channel, range [-127, 127]) behind a
//! DequantizeLinear; biases int32 with scale `x_scale * w_scale[c]`; each activation
//! tensor they read or write gets one QuantizeLinear -> DequantizeLinear pair (u8,
//! asymmetric per tensor, from calibration) that all of its readers share. Residual
//! Adds between quantized tensors thus become int8 adds at load.
//!
//! Biases absorb the mean shift int8 weights cause (Nagel et al., "Data-Free Quantization
//! Through Weight Equalization and Bias Correction", ICCV 2019, section 4.2, with the input
//! means measured on the calibration inputs): `b += (W - W_q) · E[x]`, per output channel.
//! Depthwise layers of MobileNet-style models, whose few weights per channel round coarsely,
//! shift the most. Layers without a bias get one when the shift is not negligible.
//!
//! Zero-range activations (0 on every calibration input) get scale 1 and zero point 0:
//! 0 stays exact and nothing divides by zero.

use crate::calibrate::{Calibration, Range};
use crate::{Error, Result};
use cairn_core::{Attr, Attrs, DType, Graph, Node, NodeSpec, Registry, Tensor, TensorData};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Options {
    /// Correct biases for the mean shift of weight quantization (default on).
    pub bias_correction: bool,
    /// Keep the first quantizable layer (reading a graph input) in f32.
    pub keep_first: bool,
    /// Keep layers writing a graph output in f32.
    pub keep_last: bool,
    /// Keep these layers in f32, by [`layer_name`] (e.g. the most sensitive ones, see
    /// [`crate::sensitivity`]).
    pub keep: BTreeSet<String>,
    /// The range of the int8 weights.
    pub weights: WeightRange,
}

impl Default for Options {
    fn default() -> Self {
        Options { bias_correction: true, keep_first: false, keep_last: false, keep: BTreeSet::new(), weights: WeightRange::Full }
    }
}

/// The values int8 weights may take (symmetric, zero point 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightRange {
    /// -127 ..= 127.
    #[default]
    Full,
    /// -64 ..= 64, onnxruntime's `reduce_range` (`--weight-bits 7`). x86-64 CPUs without VNNI
    /// multiply u8 x s8 with `vpmaddubsw`, whose i16 sums of two products saturate past
    /// 2 * 255 * 64: within this range they cannot, so Cairn's AVX2 byte kernel runs such
    /// weights exactly (and faster than its pairs kernel), and so does onnxruntime's, which on
    /// full-range weights saturates. Costs one bit of weight precision.
    Reduced,
}

impl WeightRange {
    /// The largest weight magnitude.
    pub fn qmax(self) -> f32 {
        match self {
            WeightRange::Full => 127.0,
            WeightRange::Reduced => 64.0,
        }
    }

    /// From `--weight-bits`: 8 or 7.
    pub fn from_bits(bits: u8) -> Option<WeightRange> {
        match bits {
            8 => Some(WeightRange::Full),
            7 => Some(WeightRange::Reduced),
            _ => None,
        }
    }
}

/// A layer's name for `Options::keep` and reports: its output tensor, unique in a graph
/// (node names may be empty or repeated).
pub fn layer_name(node: &Node) -> &str {
    &node.outputs[0]
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Mean |shift| removed by bias correction, per corrected output channel.
    pub mean_bias_shift: f64,
    pub corrected_channels: usize,
    pub layers: usize,
    pub activations: usize,
    pub weight_bytes_before: usize,
    pub weight_bytes_after: usize,
}

/// A layer to quantize: its node, weight input and per-channel axis.
struct Layer {
    node: usize,
    axis: usize,
}

/// The layers to quantize and the activation tensors they need calibrated.
pub fn plan(graph: &Graph, opts: &Options) -> (Vec<usize>, Vec<String>) {
    let layers = layers(graph, opts);
    let mut tensors = BTreeSet::new();
    for l in &layers {
        let n = &graph.nodes[l.node];
        tensors.insert(n.inputs[0].clone().expect("checked in layers"));
        tensors.insert(output_after_activation(graph, l.node));
    }
    (layers.iter().map(|l| l.node).collect(), tensors.into_iter().collect())
}

fn layers(graph: &Graph, opts: &Options) -> Vec<Layer> {
    let inputs: Vec<&str> = graph.inputs.iter().map(|i| i.name.as_str()).collect();
    let outputs: Vec<&str> = graph.outputs.iter().map(|i| i.name.as_str()).collect();
    let mut out = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        if !n.domain.is_empty() || n.outputs.len() != 1 {
            continue;
        }
        let (Some(Some(x)), Some(Some(w))) = (n.inputs.first(), n.inputs.get(1)) else { continue };
        let Some(wt) = graph.initializers.get(w).filter(|t| t.dtype() == DType::F32) else { continue };
        if graph.initializers.contains_key(x) {
            continue;
        }
        let int = |k: &str| match n.attrs.get(k) {
            Some(Attr::Int(v)) => *v,
            _ => 0,
        };
        let axis = match n.op_type.as_str() {
            "Conv" if wt.rank() >= 3 => 0,
            "Gemm" if wt.rank() == 2 && int("transA") == 0 => {
                if int("transB") != 0 {
                    0
                } else {
                    1
                }
            }
            "MatMul" if wt.rank() == 2 => 1,
            _ => continue,
        };
        if opts.keep_first && inputs.contains(&x.as_str()) {
            continue;
        }
        if opts.keep_last && outputs.contains(&output_after_activation(graph, i).as_str()) {
            continue;
        }
        if opts.keep.contains(layer_name(n)) {
            continue;
        }
        out.push(Layer { node: i, axis });
    }
    out
}

/// The value a layer's requantization would write: its output, or that of a Relu/Clip
/// that alone reads it.
fn output_after_activation(graph: &Graph, i: usize) -> String {
    let y = &graph.nodes[i].outputs[0];
    let readers: Vec<&Node> = graph.nodes.iter().filter(|n| n.inputs.iter().flatten().any(|v| v == y)).collect();
    match readers.as_slice() {
        [r] if r.domain.is_empty() && (r.op_type == "Relu" || r.op_type == "Clip") && !graph.outputs.iter().any(|o| &o.name == y) => {
            r.outputs[0].clone()
        }
        _ => y.clone(),
    }
}

/// (scale, zero point) of a u8 asymmetric quantization of `r` (which contains 0).
pub fn activation_params(r: Range) -> (f32, u8) {
    let width = r.hi - r.lo;
    if width <= 0.0 || !width.is_finite() {
        return (1.0, 0);
    }
    let scale = width / 255.0;
    let zero = (-r.lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zero)
}

pub(crate) fn build(
    graph: &Graph,
    name: String,
    op_type: &str,
    attrs: Attrs,
    inputs: Vec<Option<String>>,
    outputs: Vec<String>,
) -> Result<Node> {
    Ok(Node::build(
        NodeSpec { name, domain: String::new(), op_type: op_type.into(), attrs, inputs, outputs },
        graph.opset,
        Registry::global(),
    )?)
}

/// Rewrites the graph into QDQ form with the calibrated ranges.
pub fn quantize(mut graph: Graph, cal: &Calibration, opts: &Options) -> Result<(Graph, Stats)> {
    if graph.opset < 13 {
        return Err(Error::Model(format!(
            "the model is opset {}; per-channel QuantizeLinear needs opset 13 or later (re-export the model at opset 13+)",
            graph.opset
        )));
    }
    let mut stats = Stats::default();
    let layers = layers(&graph, opts);
    // Activation Q/DQ pairs.
    let (_, tensors) = plan(&graph, opts);
    let mut dq_name: HashMap<String, String> = HashMap::new();
    let mut new_nodes: Vec<(usize, Node)> = Vec::new(); // inserted after the producer (index) or at the front
    let producer: HashMap<String, usize> =
        graph.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.clone(), i))).collect();
    for t in &tensors {
        let Some(&r) = cal.ranges.get(t) else {
            return Err(Error::Activation { tensor: t.clone(), detail: "was not observed during calibration".into() });
        };
        let (scale, zero) = activation_params(r);
        let (s, z, q, dq) = (format!("{t}_scale"), format!("{t}_zero_point"), format!("{t}_quantized"), format!("{t}_dequantized"));
        graph.initializers.insert(s.clone(), Arc::new(Tensor::scalar_f32(scale)));
        graph.initializers.insert(z.clone(), Arc::new(Tensor::new(vec![], TensorData::U8(vec![zero]))?));
        let pos = producer.get(t).map_or(0, |&p| p + 1);
        new_nodes.push((
            pos,
            build(
                &graph,
                format!("{t}_QuantizeLinear"),
                "QuantizeLinear",
                Attrs::new(),
                vec![Some(t.clone()), Some(s.clone()), Some(z.clone())],
                vec![q.clone()],
            )?,
        ));
        new_nodes.push((
            pos,
            build(
                &graph,
                format!("{t}_DequantizeLinear"),
                "DequantizeLinear",
                Attrs::new(),
                vec![Some(q), Some(s), Some(z)],
                vec![dq.clone()],
            )?,
        ));
        dq_name.insert(t.clone(), dq);
        stats.activations += 1;
    }
    // Every reader of a quantized tensor reads its dequantized twin.
    for n in graph.nodes.iter_mut() {
        for v in n.inputs.iter_mut().flatten() {
            if let Some(d) = dq_name.get(v) {
                *v = d.clone();
            }
        }
    }
    // Weights and biases.
    for l in &layers {
        let n = graph.nodes[l.node].clone();
        let x = n.inputs[0].clone().expect("checked");
        let x_orig = x.strip_suffix("_dequantized").unwrap_or(&x).to_string();
        let (x_scale, _) = activation_params(cal.ranges[&x_orig]);
        let w_name = n.inputs[1].clone().expect("checked");
        let w = graph.initializers[&w_name].clone();
        let (q, scales) = quantize_weights(&w, l.axis, opts.weights)?;
        stats.weight_bytes_before += w.byte_len();
        stats.weight_bytes_after += q.len() + 4 * scales.len();
        let channels = scales.len();
        let mut bias_f32: Option<Vec<f32>> = n.inputs.get(2).cloned().flatten().filter(|b| !b.is_empty()).and_then(|b| {
            graph
                .initializers
                .get(&b)
                .filter(|t| t.dtype() == DType::F32 && t.len() == channels)
                .and_then(|t| t.f32s().ok().map(|v| v.to_vec()))
        });
        if opts.bias_correction {
            if let Some(mean) = cal.channel_means.get(&x_orig) {
                let group = match n.attrs.get("group") {
                    Some(Attr::Int(g)) if *g > 0 => *g as usize,
                    _ => 1,
                };
                if let Some(shift) = weight_shift(
                    &w,
                    &q_scaled(&w, l.axis, &scales, opts.weights)?,
                    l.axis,
                    &n.op_type,
                    n.attrs.get("transB") == Some(&Attr::Int(1)),
                    group,
                    mean,
                ) {
                    let b = bias_f32.get_or_insert_with(|| vec![0.0; channels]);
                    for (b, s) in b.iter_mut().zip(&shift) {
                        *b += *s as f32;
                    }
                    stats.mean_bias_shift += shift.iter().map(|s| s.abs()).sum::<f64>();
                    stats.corrected_channels += channels;
                }
            }
        }
        let (wq, ws, wdq) = (format!("{w_name}_quantized"), format!("{w_name}_scale"), format!("{w_name}_dequantized"));
        graph.initializers.insert(wq.clone(), Arc::new(Tensor::new(w.shape().to_vec(), TensorData::I8(q))?));
        graph.initializers.insert(ws.clone(), Arc::new(Tensor::from_f32(vec![channels], scales.clone())?));
        let mut attrs = Attrs::new();
        attrs.insert("axis".into(), Attr::Int(l.axis as i64));
        new_nodes.push((
            0,
            build(
                &graph,
                format!("{w_name}_DequantizeLinear"),
                "DequantizeLinear",
                attrs.clone(),
                vec![Some(wq), Some(ws)],
                vec![wdq.clone()],
            )?,
        ));
        let mut node = n.clone();
        node.inputs[1] = Some(wdq);
        if let Some(b) = bias_f32 {
            let b_name = match n.inputs.get(2).cloned().flatten().filter(|b| !b.is_empty()) {
                Some(name) => name,
                None => {
                    node.inputs.resize(3, None);
                    format!("{}_bias", n.name)
                }
            };
            let bs: Vec<f32> = scales.iter().map(|s| s * x_scale).collect();
            let bq: Vec<i32> =
                b.iter().zip(&bs).map(|(v, s)| (v / s).round().clamp(i32::MIN as f32 / 2.0, i32::MAX as f32 / 2.0) as i32).collect();
            let (bqn, bsn, bdq) = (format!("{b_name}_quantized"), format!("{b_name}_scale"), format!("{b_name}_dequantized"));
            stats.weight_bytes_before += 4 * channels;
            stats.weight_bytes_after += 8 * channels;
            graph.initializers.insert(bqn.clone(), Arc::new(Tensor::new(vec![channels], TensorData::I32(bq))?));
            graph.initializers.insert(bsn.clone(), Arc::new(Tensor::from_f32(vec![channels], bs)?));
            let mut a0 = Attrs::new();
            a0.insert("axis".into(), Attr::Int(0));
            new_nodes.push((
                0,
                build(&graph, format!("{b_name}_DequantizeLinear"), "DequantizeLinear", a0, vec![Some(bqn), Some(bsn)], vec![bdq.clone()])?,
            ));
            node.inputs[2] = Some(bdq);
        }
        graph.nodes[l.node] = node;
        stats.layers += 1;
    }
    // Insert the new nodes (stable: validation re-sorts topologically anyway).
    new_nodes.sort_by_key(|(p, _)| *p);
    let old = std::mem::take(&mut graph.nodes);
    let mut it = new_nodes.into_iter().peekable();
    for (i, n) in old.into_iter().enumerate() {
        while let Some((_, node)) = it.next_if(|(p, _)| *p <= i) {
            graph.nodes.push(node);
        }
        graph.nodes.push(n);
    }
    graph.nodes.extend(it.map(|(_, n)| n));
    drop_unread_initializers(&mut graph);
    if stats.corrected_channels > 0 {
        stats.mean_bias_shift /= stats.corrected_channels as f64;
    }
    Ok((graph.validated()?, stats))
}

/// Drops the initializers no node reads and no graph output names (the f32 weights a
/// rewrite replaced by their quantized forms).
pub(crate) fn drop_unread_initializers(graph: &mut Graph) {
    let used: BTreeSet<String> =
        graph.nodes.iter().flat_map(|n| n.inputs.iter().flatten().cloned()).chain(graph.outputs.iter().map(|o| o.name.clone())).collect();
    graph.initializers.retain(|k, _| used.contains(k));
}

/// Symmetric int8 per channel along `axis`: scale = max|w| / 127 (1 for an all-zero channel).
pub(crate) fn quantize_weights(w: &Tensor, axis: usize, range: WeightRange) -> Result<(Vec<i8>, Vec<f32>)> {
    let v = w.f32s()?;
    let shape = w.shape();
    let ch = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let at = |i: usize| (i / inner) % ch;
    let mut maxabs = vec![0f32; ch];
    for (i, &x) in v.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::Model(format!("weight tensor of shape {shape:?} holds NaN or infinity")));
        }
        maxabs[at(i)] = maxabs[at(i)].max(x.abs());
    }
    let qmax = range.qmax();
    let scales: Vec<f32> = maxabs.iter().map(|&m| if m > 0.0 { m / qmax } else { 1.0 }).collect();
    let q = v.iter().enumerate().map(|(i, &x)| (x / scales[at(i)]).round().clamp(-qmax, qmax) as i8).collect();
    Ok((q, scales))
}

/// The dequantized weights `q * scale` as f32, in `w`'s layout.
fn q_scaled(w: &Tensor, axis: usize, scales: &[f32], range: WeightRange) -> Result<Vec<f32>> {
    let v = w.f32s()?;
    let inner: usize = w.shape()[axis + 1..].iter().product();
    let ch = scales.len();
    Ok(v.iter()
        .enumerate()
        .map(|(i, &x)| {
            let s = scales[(i / inner) % ch];
            (x / s).round().clamp(-range.qmax(), range.qmax()) * s
        })
        .collect())
}

/// `(W - W_q) · E[x]` per output channel, with `mean` the per-channel mean of the input.
/// `None` when the input's channel count does not fit the weights.
fn weight_shift(w: &Tensor, wq: &[f32], axis: usize, op: &str, trans_b: bool, group: usize, mean: &[f64]) -> Option<Vec<f64>> {
    let v = w.f32s().ok()?;
    let shape = w.shape();
    let d = |i: usize| (v[i] - wq[i]) as f64;
    match op {
        "Conv" => {
            let (m, cg) = (shape[0], shape[1]);
            let k: usize = shape[2..].iter().product();
            let mg = m / group.max(1);
            if mean.len() != cg * group || mg == 0 {
                return None;
            }
            Some(
                (0..m)
                    .map(|c| {
                        let base = (c / mg) * cg;
                        (0..cg).map(|ci| (0..k).map(|t| d((c * cg + ci) * k + t)).sum::<f64>() * mean[base + ci]).sum()
                    })
                    .collect(),
            )
        }
        _ => {
            // Gemm/MatMul: W is [n, k] when transposed, else [k, n]; output channels along `axis`.
            let (n, k) = if trans_b { (shape[0], shape[1]) } else { (shape[1], shape[0]) };
            let _ = axis;
            if mean.len() != k {
                return None;
            }
            Some((0..n).map(|j| (0..k).map(|kk| d(if trans_b { j * k + kk } else { kk * n + j }) * mean[kk]).sum()).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_keep_zero_exact() {
        let (s, z) = activation_params(Range { lo: -1.0, hi: 3.0 });
        assert!((s - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(z, 64);
        assert_eq!(activation_params(Range { lo: 0.0, hi: 6.0 }).1, 0);
        // Zero range: scale 1, zero point 0 (0 stays exact, nothing divides by zero).
        assert_eq!(activation_params(Range { lo: 0.0, hi: 0.0 }), (1.0, 0));
    }

    #[test]
    fn weights_are_symmetric_per_channel() {
        let w = Tensor::from_f32(vec![3, 2], vec![1.0, -0.5, 0.0, 0.0, -2.0, 0.01]).unwrap();
        let (q, s) = quantize_weights(&w, 0, WeightRange::Full).unwrap();
        assert_eq!(q, vec![127, -64, 0, 0, -127, 1]);
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 2.0 / 127.0]);
        // 7-bit: each channel's largest magnitude maps to 64.
        let (q, s) = quantize_weights(&w, 0, WeightRange::Reduced).unwrap();
        assert_eq!(q, vec![64, -32, 0, 0, -64, 0]);
        assert_eq!(s, vec![1.0 / 64.0, 1.0, 2.0 / 64.0]);
        let bad = Tensor::from_f32(vec![1, 2], vec![f32::NAN, 1.0]).unwrap();
        assert!(quantize_weights(&bad, 0, WeightRange::Full).is_err());
    }
}
