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
//!   distribution and its u8-quantized version (TensorRT's calibration; see [`entropy`]).

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
pub fn calibrate(graph: &Graph, targets: &[String], inputs: &[(String, HashMap<String, Tensor>)], method: Method, progress: &dyn Fn()) -> Result<Calibration> {
    if inputs.is_empty() {
        return Err(Error::Model("no calibration inputs: give a directory with .npy files or images".into()));
    }
    for (name, set) in inputs {
        for (input, t) in set {
            if t.dtype() == DType::F32 && t.f32s()?.iter().any(|v| !v.is_finite()) {
                return Err(Error::Input { input: name.clone(), detail: format!("input '{input}' holds NaN or infinity; remove the file or fix its data") });
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
                    return Err(Error::Activation { tensor: out, detail: format!("is NaN or infinite on calibration input {name}: the f32 model itself overflows there") });
                }
                if pass == 0 {
                    let shape = t.shape();
                    let (ch, inner) = if shape.len() >= 3 { (shape[1], shape[2..].iter().product::<usize>()) } else { (*shape.last().unwrap_or(&1), 1) };
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
    for t in targets {
        let Some(o) = seen.get(t) else { continue };
        let r = match method {
            // A model output (a classifier's logits) is never clipped: its extreme values
            // are the answer, and clipping the top logits ties them.
            _ if model_outputs.contains(&t.as_str()) => Range { lo: o.lo, hi: o.hi },
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
