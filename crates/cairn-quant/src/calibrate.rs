//! Activation ranges from real inputs. The model runs in f32 with the tensors to be
//! quantized exposed as extra outputs; pass 1 records each tensor's min and max,
//! pass 2 (percentile and MSE methods) a histogram over that range.
//!
//! Methods (per tensor, the range then widened to contain 0 so that 0 is exact; the
//! model's outputs always get their observed range, see below):
//! - `MinMax`: the observed range;
//! - `Percentile(p)`: the range between the (100 - p)th and p-th percentiles, which
//!   drops rare outliers that would cost every other value resolution;
//! - `Mse`: the clipping of the observed range that minimizes the expected squared
//!   error (clipping error of the values outside plus rounding error step²/12 inside),
//!   searched on the histogram;
//! - `Entropy`: the clipping that minimizes the KL divergence between the observed
//!   distribution and its u8-quantized version (TensorRT's calibration; see
//!   `entropy.rs`), except for outputs of bounded activations (ReLU6), kept whole.

use crate::{entropy, Error, Result};
use cairn_core::passes::prepare_for_inference;
use cairn_core::{DType, Graph, Session, Tensor, ValueInfo};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    MinMax,
    Percentile(f64),
    Mse,
    Entropy,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "minmax" => Some(Method::MinMax),
            "percentile" => Some(Method::Percentile(99.99)),
            "mse" => Some(Method::Mse),
            "entropy" | "kl" => Some(Method::Entropy),
            _ => None,
        }
    }
    fn needs_histogram(self) -> bool {
        !matches!(self, Method::MinMax)
    }
    /// Histogram bins over the observed range. KL needs several bins per u8 level even
    /// after clipping, hence finer bins (16 per level at full range, as TensorRT's 2048
    /// bins for its 128 magnitude levels).
    fn bins(self) -> usize {
        match self {
            Method::Entropy => entropy::BINS,
            _ => BINS,
        }
    }
}

const BINS: usize = 2048;

/// The calibrated range of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub lo: f32,
    pub hi: f32,
}

/// What calibration saw of one tensor: its extremes and a histogram over them.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub(crate) lo: f32,
    pub(crate) hi: f32,
    pub(crate) hist: Vec<u64>,
    /// Values exactly 0 (also counted in `hist`): ReLU outputs are often mostly zeros,
    /// which quantization represents exactly whatever the range.
    pub(crate) zeros: u64,
}

/// Calibration results: a range per tensor, and what was unusual.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    pub ranges: HashMap<String, Range>,
    /// Tensors that were 0 everywhere on every input (see `quantize` for their handling).
    pub zero_range: Vec<String>,
    /// Mean of each channel (axis 1 of rank >= 3, else the last axis) per tensor, for
    /// bias correction.
    pub channel_means: HashMap<String, Vec<f64>>,
}

/// Runs `graph` (f32) on every input set and calibrates `targets`. `inputs` yields
/// (name for messages, input tensors); `progress` is called once per input run.
pub fn calibrate(
    graph: &Graph,
    targets: &[String],
    inputs: &[(String, HashMap<String, Tensor>)],
    method: Method,
    progress: &dyn Fn(),
) -> Result<Calibration> {
    if inputs.is_empty() {
        return Err(Error::Model("no calibration inputs: give a directory with .npy files or images".into()));
    }
    for (name, set) in inputs {
        for (input, t) in set {
            if t.dtype() == DType::F32 && t.f32s()?.iter().any(|v| !v.is_finite()) {
                return Err(Error::Input {
                    input: name.clone(),
                    detail: format!("input '{input}' holds NaN or infinity; remove the file or fix its data"),
                });
            }
        }
    }
    let mut g = graph.clone();
    for t in targets {
        if !g.outputs.iter().any(|o| &o.name == t) {
            g.outputs.push(ValueInfo { name: t.clone(), dtype: DType::F32, dims: None });
        }
    }
    let (g, _) = prepare_for_inference(g)?;
    let session = Session::new(g);
    let mut seen: HashMap<String, Observed> = HashMap::new();
    let mut sums: HashMap<String, (Vec<f64>, f64)> = HashMap::new();
    let passes = if method.needs_histogram() { 2 } else { 1 };
    for pass in 0..passes {
        for (name, set) in inputs {
            let outs = session.run(set.clone()).map_err(|e| Error::Input { input: name.clone(), detail: e.to_string() })?;
            for (out, t) in outs {
                if !targets.contains(&out) {
                    continue;
                }
                let v = t.f32s()?;
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(Error::Activation {
                        tensor: out,
                        detail: format!("is NaN or infinite on calibration input {name}: the f32 model itself overflows there"),
                    });
                }
                if pass == 0 {
                    let shape = t.shape();
                    let (ch, inner) =
                        if shape.len() >= 3 { (shape[1], shape[2..].iter().product::<usize>()) } else { (*shape.last().unwrap_or(&1), 1) };
                    let e = sums.entry(out.clone()).or_insert_with(|| (vec![0.0; ch], 0.0));
                    if e.0.len() == ch && ch > 0 {
                        for (i, &x) in v.iter().enumerate() {
                            e.0[(i / inner) % ch] += x as f64;
                        }
                        e.1 += (v.len() / ch) as f64;
                    }
                    let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
                    let o = seen.entry(out).or_insert(Observed { lo, hi, hist: Vec::new(), zeros: 0 });
                    o.lo = o.lo.min(lo);
                    o.hi = o.hi.max(hi);
                } else if let Some(o) = seen.get_mut(&out) {
                    o.add(v, method.bins());
                }
            }
            progress();
        }
    }
    let mut cal = Calibration::default();
    let model_outputs: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    let bounded = bounded_activations(graph);
    for t in targets {
        let Some(o) = seen.get(t) else { continue };
        let r = match method {
            // A model output (a classifier's logits) is never clipped: its extreme values
            // are the answer, and clipping the top logits ties them.
            _ if model_outputs.contains(&t.as_str()) => Range { lo: o.lo, hi: o.hi },
            // A bounded activation (ReLU6) already limits the range (6 / 255 per step);
            // its rare large values are the strongest responses, which KL, weighing bins
            // by frequency, would clip as outliers. Measured on EfficientNet-Lite0 (320
            // real photos): entropy with ReLU6 outputs clipped 92.2% top-1 agreement,
            // mean KL 0.0161; kept 96.3%, 0.0062.
            Method::Entropy if bounded.contains(t.as_str()) => Range { lo: o.lo, hi: o.hi },
            Method::MinMax => Range { lo: o.lo, hi: o.hi },
            Method::Percentile(p) => percentile_range(o, p),
            Method::Mse => mse_range(o),
            Method::Entropy => entropy::range(o),
        };
        let r = Range { lo: r.lo.min(0.0), hi: r.hi.max(0.0) };
        if r.hi - r.lo <= 0.0 {
            cal.zero_range.push(t.clone());
        }
        cal.ranges.insert(t.clone(), r);
    }
    cal.zero_range.sort();
    cal.channel_means = sums.into_iter().map(|(k, (s, n))| (k, s.into_iter().map(|x| x / n.max(1.0)).collect())).collect();
    Ok(cal)
}

/// Outputs of activations with a finite upper bound: `Clip` with a constant `max`
/// (ReLU6 as exporters write it, as an input since opset 11 or an attribute before).
fn bounded_activations(graph: &Graph) -> std::collections::HashSet<&str> {
    graph
        .nodes
        .iter()
        .filter(|n| n.domain.is_empty() && n.op_type == "Clip")
        .filter(|n| {
            n.attrs.contains_key("max")
                || n.inputs.get(2).cloned().flatten().is_some_and(|m| !m.is_empty() && graph.initializers.contains_key(&m))
        })
        .map(|n| n.outputs[0].as_str())
        .collect()
}

impl Observed {
    /// Adds values (within `lo..=hi`, seen in pass 1) to a histogram of `bins` bins.
    pub(crate) fn add(&mut self, v: &[f32], bins: usize) {
        if self.hist.is_empty() {
            self.hist = vec![0; bins];
        }
        let n = self.hist.len();
        let width = (self.hi - self.lo).max(f32::MIN_POSITIVE);
        for &x in v {
            let b = (((x - self.lo) / width) * n as f32) as usize;
            self.hist[b.min(n - 1)] += 1;
            self.zeros += (x == 0.0) as u64;
        }
    }
}

fn bin_edge(o: &Observed, i: usize) -> f32 {
    o.lo + (o.hi - o.lo) * i as f32 / o.hist.len().max(1) as f32
}

fn percentile_range(o: &Observed, p: f64) -> Range {
    let total: u64 = o.hist.iter().sum();
    if total == 0 {
        return Range { lo: o.lo, hi: o.hi };
    }
    let cut = ((1.0 - p / 100.0) * total as f64) as u64;
    let (mut acc, mut lo_bin) = (0u64, 0usize);
    for (i, &c) in o.hist.iter().enumerate() {
        acc += c;
        if acc > cut {
            lo_bin = i;
            break;
        }
    }
    let (mut acc, mut hi_bin) = (0u64, o.hist.len());
    for (i, &c) in o.hist.iter().enumerate().rev() {
        acc += c;
        if acc > cut {
            hi_bin = i + 1;
            break;
        }
    }
    Range { lo: bin_edge(o, lo_bin), hi: bin_edge(o, hi_bin.max(lo_bin + 1)) }
}

/// Shrinks the range (both ends toward 0 by the same factor) to the expected-MSE minimum.
fn mse_range(o: &Observed) -> Range {
    let (lo0, hi0) = (o.lo.min(0.0), o.hi.max(0.0));
    let centers: Vec<f32> = (0..o.hist.len()).map(|i| bin_edge(o, i) + (o.hi - o.lo) / o.hist.len() as f32 / 2.0).collect();
    let mut best = (f64::INFINITY, 1.0f32);
    for step in 0..=60 {
        let f = 1.0 - step as f32 * 0.01; // 100% down to 40% of the range
        let (lo, hi) = (lo0 * f, hi0 * f);
        let q = ((hi - lo) / 255.0).max(f32::MIN_POSITIVE) as f64;
        let mut err = 0f64;
        for (&c, &x) in o.hist.iter().zip(&centers) {
            if c == 0 {
                continue;
            }
            let clipped = (x - x.clamp(lo, hi)) as f64;
            err += c as f64 * (clipped * clipped + q * q / 12.0);
        }
        if err < best.0 {
            best = (err, f);
        }
    }
    Range { lo: o.lo * best.1, hi: o.hi * best.1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Attrs, Dim, Node, NodeSpec, Registry};
    use std::sync::Arc;

    fn node(op: &str, inputs: &[&str], output: &str) -> Node {
        let spec = NodeSpec {
            name: output.into(),
            domain: String::new(),
            op_type: op.into(),
            attrs: Attrs::new(),
            inputs: inputs.iter().map(|s| Some(s.to_string())).collect(),
            outputs: vec![output.into()],
        };
        Node::build(spec, 13, Registry::global()).unwrap()
    }

    /// c = ReLU6(x), r = Relu(-x), y = c + r; x Laplace-like (scale 0.1) with rare values
    /// at 5.5 and -40: c and r both have a narrow bulk and rare large values, as the late
    /// ReLU6 outputs of EfficientNet-Lite0 do. Entropy clips r's but keeps ReLU6's range
    /// whole (without that rule KL clips c to 0.82, measured); min-max keeps both.
    #[test]
    fn entropy_clips_unbounded_tails_and_keeps_relu6_whole() {
        let n = 20_000;
        let mut s = 7u64;
        let v: Vec<f32> = (0..n)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                if i % 4000 == 1 {
                    -40.0 // rare outliers
                } else if i % 4000 == 3 {
                    5.5 // rare strong responses
                } else if i % 2 == 0 {
                    (-(u.ln()) * 0.1) as f32
                } else {
                    (u.ln() * 0.1) as f32
                }
            })
            .collect();
        let mut init = HashMap::new();
        init.insert("zero".to_string(), Arc::new(Tensor::scalar_f32(0.0)));
        init.insert("six".to_string(), Arc::new(Tensor::scalar_f32(6.0)));
        let graph = Graph {
            inputs: vec![ValueInfo { name: "x".into(), dtype: DType::F32, dims: Some(vec![Dim::Known(1), Dim::Known(n)]) }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }],
            initializers: init,
            nodes: vec![
                node("Clip", &["x", "zero", "six"], "c"),
                node("Neg", &["x"], "m"),
                node("Relu", &["m"], "r"),
                node("Add", &["c", "r"], "y"),
            ],
            opset: 13,
        };
        let inputs: Vec<(String, HashMap<String, Tensor>)> = (0..4)
            .map(|k| {
                (
                    format!("in{k}"),
                    HashMap::from([(
                        "x".to_string(),
                        Tensor::from_f32(vec![1, n], v.iter().map(|x| x * (1.0 + 0.01 * k as f32)).collect()).unwrap(),
                    )]),
                )
            })
            .collect();
        let targets = vec!["c".to_string(), "r".to_string()];
        let max = v.iter().fold(0f32, |m, &x| m.max(-x)) * 1.03;
        let cal = |m: Method| calibrate(&graph, &targets, &inputs, m, &|| {}).unwrap().ranges;
        let (mm, pct, kl) = (cal(Method::MinMax), cal(Method::Percentile(99.9)), cal(Method::Entropy));
        assert!((mm["r"].hi - max).abs() < 1e-3 * max, "{:?} vs {max}", mm["r"]);
        assert!(pct["r"].hi < 0.9 * max, "{pct:?}");
        assert_eq!(kl["c"].hi, mm["c"].hi, "{kl:?}");
        assert!(kl["r"].hi < 0.9 * max, "{kl:?} vs max {max}");
        assert_eq!((kl["c"].lo, kl["r"].lo), (0.0, 0.0));
    }
}
