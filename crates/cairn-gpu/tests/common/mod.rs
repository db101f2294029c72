#![allow(dead_code)] // each test binary uses part of this module
//! Shared by the GPU tests: the device (or the reason there is none), small graphs built
//! through the registry, and the comparison against Cairn's CPU engine.

use cairn_core::passes::prepare_for_inference;
use cairn_core::{Attr, Attrs, DType, Dim, Graph, Node, NodeSpec, Registry, Session, Tensor, ValueInfo};
use cairn_gpu::{Gpu, GpuRunStats, GpuSession};
use std::collections::HashMap;
use std::sync::Arc;

/// The GPU, or `None` after printing why the test is skipped: only a missing adapter skips.
pub fn gpu() -> Option<Gpu> {
    match pollster::block_on(Gpu::acquire()) {
        Ok(gpu) => {
            eprintln!("GPU adapter: {}", gpu.adapter_info);
            Some(gpu)
        }
        Err(cairn_gpu::GpuError::NoAdapter(why)) => {
            eprintln!("SKIPPED: no GPU adapter on this machine ({why})");
            None
        }
        Err(e) => panic!("an adapter exists but the device failed: {e}"),
    }
}

/// Deterministic values in [-1, 1) (a small LCG: no rand dependency for test data).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn tensor(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_f32(shape.to_vec(), values(shape.iter().product(), seed)).unwrap()
}

/// A graph under construction: named f32 inputs, constant initializers and nodes.
pub struct G {
    inputs: Vec<ValueInfo>,
    inits: HashMap<String, Arc<Tensor>>,
    nodes: Vec<Node>,
    opset: i64,
}

pub fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

impl G {
    pub fn new(opset: i64) -> G {
        G { inputs: Vec::new(), inits: HashMap::new(), nodes: Vec::new(), opset }
    }
    pub fn input(&mut self, name: &str, shape: &[usize]) -> &mut G {
        self.input_of(name, DType::F32, shape)
    }
    pub fn input_of(&mut self, name: &str, dtype: DType, shape: &[usize]) -> &mut G {
        let dims = Some(shape.iter().map(|&d| Dim::Known(d)).collect());
        self.inputs.push(ValueInfo { name: name.into(), dtype, dims });
        self
    }
    pub fn init(&mut self, name: &str, t: Tensor) -> &mut G {
        self.inits.insert(name.into(), Arc::new(t));
        self
    }
    pub fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> &mut G {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let spec = NodeSpec {
            name: format!("n{}_{op}", self.nodes.len()),
            domain: String::new(),
            op_type: op.into(),
            attrs,
            inputs: inputs.iter().map(|s| if s.is_empty() { None } else { Some(s.to_string()) }).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        };
        self.nodes.push(Node::build(spec, self.opset, Registry::global()).unwrap());
        self
    }
    pub fn build(&mut self, outputs: &[&str]) -> Graph {
        let outputs = outputs.iter().map(|o| ValueInfo { name: o.to_string(), dtype: DType::F32, dims: None }).collect();
        Graph { inputs: self.inputs.clone(), outputs, initializers: self.inits.clone(), nodes: self.nodes.clone(), opset: self.opset }
            .validated()
            .unwrap()
    }
}

/// Largest |gpu - cpu| / max(|cpu|, floor), with `floor` a thousandth of the output's largest
/// magnitude (so values that cancel to ~0 are judged against the output's scale).
pub fn max_rel_err(gpu: &Tensor, cpu: &Tensor) -> f64 {
    assert_eq!(gpu.shape(), cpu.shape(), "shapes differ");
    let (g, c) = (gpu.f32s().unwrap(), cpu.f32s().unwrap());
    let scale = c.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    let floor = (scale * 1e-3).max(1e-30);
    g.iter().zip(c).map(|(&a, &b)| ((a - b).abs() as f64) / (b.abs() as f64).max(floor)).fold(0.0, f64::max)
}

/// Largest |a - b| over the largest |b|: the error against the output's scale.
pub fn scaled_err(a: &Tensor, b: &Tensor) -> f64 {
    let (x, y) = (a.f32s().unwrap(), b.f32s().unwrap());
    let scale = y.iter().fold(0f64, |m, &v| m.max(v.abs() as f64)).max(1e-30);
    x.iter().zip(y).map(|(&p, &q)| (p - q).abs() as f64).fold(0.0, f64::max) / scale
}

/// How outputs are judged: every element against its own magnitude (single kernels), or the
/// largest error against the output's largest magnitude (whole models, where 50 layers of
/// summation-order differences leave small logits with a larger relative error; the CPU
/// engine's fused and plain paths differ from each other the same way).
#[derive(Clone, Copy, PartialEq)]
pub enum Metric {
    Elementwise,
    OutputScale,
}

/// Runs `graph` on the CPU engine (prepared as every loader does) and on the GPU, asserts
/// every output agrees within `tol` relative by `metric`, and returns the GPU run's stats.
pub fn compare_by(gpu: Gpu, graph: Graph, inputs: HashMap<String, Tensor>, tol: f64, metric: Metric) -> (GpuRunStats, GpuSession) {
    let (prepared, _) = prepare_for_inference(graph.clone()).unwrap();
    let cpu = Session::new(prepared).run(inputs.clone()).unwrap();
    let mut session = GpuSession::new(gpu, graph).unwrap();
    let (out, stats) = pollster::block_on(session.run(inputs)).unwrap();
    assert_eq!(out.len(), cpu.len());
    for ((name, g), (_, c)) in out.iter().zip(&cpu) {
        let (rel, scaled) = (max_rel_err(g, c), scaled_err(g, c));
        eprintln!("{name}: max relative error {rel:.2e}, max error / max |value| {scaled:.2e}, over {} values", c.len());
        let err = if metric == Metric::Elementwise { rel } else { scaled };
        assert!(err <= tol, "output '{name}': GPU and CPU differ by {err:.3e} relative (tolerance {tol:.0e})");
    }
    (stats, session)
}

/// [`compare_by`] element by element.
pub fn compare(gpu: Gpu, graph: Graph, inputs: HashMap<String, Tensor>, tol: f64) -> (GpuRunStats, GpuSession) {
    compare_by(gpu, graph, inputs, tol, Metric::Elementwise)
}
