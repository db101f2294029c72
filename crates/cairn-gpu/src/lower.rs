//! Lowering a plan to GPU work: each step becomes kernel calls, a view (a buffer alias) or a
//! CPU fallback, with the epilogue fusions the CPU engine also makes (BatchNormalization
//! folded into the filters; bias, residual Add and activation applied as the result is stored).
//!
//! The GPU path reads the graph before the CPU fusion pass: the fused CPU ops hold prepacked
//! weights in the CPU kernels' layout, while the plain ONNX nodes say what to compute.

use crate::kernels::{groups_1d, rows_groups, Kernel, TILE};
use cairn_core::plan::{Location, Plan};
use cairn_core::{Attr, DType, Graph, Node, Tensor};
use std::sync::Arc;

mod data_movement;

/// What a kernel reads at one binding.
#[derive(Clone, Debug)]
pub enum Src {
    /// A plan value: a weight (constant), a fed input or an intermediate.
    Value(usize),
    /// A weight the lowering derived (filters with BatchNormalization folded in), by cache key.
    Derived(String, Arc<Tensor>),
    /// An unused optional binding (no bias, no residual).
    Dummy,
}

/// One dispatch.
#[derive(Debug)]
pub struct Call {
    pub kernel: Kernel,
    pub params: Vec<u32>,
    pub reads: Vec<Src>,
    pub out: usize,
    pub groups: [u32; 3],
}

/// The lowered program, in execution order.
#[derive(Debug)]
pub enum Item {
    Gpu(Call),
    /// `out` is `of`'s buffer under another shape (Reshape, Flatten, Squeeze, Identity...).
    Alias {
        out: usize,
        of: usize,
    },
    /// The step runs on the CPU kernels.
    Cpu(usize),
}

pub struct Lowered {
    pub items: Vec<Item>,
    /// "node (OpType)" of every step that falls back to the CPU.
    pub fallback: Vec<String>,
    /// Integer values a GPU Gather reads as indices: checked on the host when uploaded.
    pub index_checks: Vec<IndexCheck>,
}

/// Indices a Gather kernel reads must lie in [-dim, dim): the kernel cannot report an error,
/// so the host checks them where they are uploaded (a run-time input or a CPU step's output;
/// no GPU kernel computes integers, views only rename them).
#[derive(Clone, Debug)]
pub struct IndexCheck {
    pub value: usize,
    pub dim: i64,
    /// "node (Gather)", for the error.
    pub node: String,
}

/// Bytes a value of this many elements takes on the GPU: every value the GPU holds is 32-bit
/// (f32, i32, and int64 narrowed to i32 at upload; docs/adr/0022).
pub fn gpu_bytes(numel: usize) -> u64 {
    numel as u64 * 4
}

/// Activation codes of `act()` in common.wgsl.
mod act {
    pub const NONE: u32 = 0;
    pub const RELU: u32 = 1;
    pub const CLIP: u32 = 2;
    pub const SIGMOID: u32 = 3;
    pub const HARD_SIGMOID: u32 = 4;
    pub const HARD_SWISH: u32 = 5;
    pub const TANH: u32 = 6;
    pub const GELU: u32 = 7;
    pub const ERF: u32 = 8;
    pub const EXP: u32 = 9;
    pub const SQRT: u32 = 10;
    pub const NEG: u32 = 11;
    pub const ABS: u32 = 12;
    pub const LEAKY_RELU: u32 = 13;
    pub const RECIPROCAL: u32 = 14;
    pub const LOG: u32 = 15;
    pub const GELU_TANH: u32 = 16;
    pub const SOFTPLUS: u32 = 17;
}

type Act = (u32, f32, f32);
const NO_ACT: Act = (act::NONE, 0.0, 0.0);

/// A 64-word parameter block under construction.
struct Params(Vec<u32>);

impl Params {
    fn new() -> Params {
        Params(vec![0; 64])
    }
    fn u(mut self, i: usize, v: usize) -> Params {
        self.0[i] = v as u32;
        self
    }
    fn i(mut self, i: usize, v: i64) -> Params {
        self.0[i] = v as i32 as u32;
        self
    }
    fn f(mut self, i: usize, v: f32) -> Params {
        self.0[i] = v.to_bits();
        self
    }
    fn act(self, at: usize, a: Act) -> Params {
        self.u(at, a.0 as usize).f(at + 1, a.1).f(at + 2, a.2)
    }
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// An ONNX axis (negative counts from the end) as an index below `rank`.
fn axis_index(a: i64, rank: usize) -> Option<usize> {
    let a = if a < 0 { a + rank as i64 } else { a };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

/// Left-pads `v` to rank 6 with `fill`.
fn pad6<T: Copy>(v: &[T], fill: T) -> Option<[T; 6]> {
    if v.len() > 6 {
        return None;
    }
    let mut out = [fill; 6];
    out[6 - v.len()..].copy_from_slice(v);
    Some(out)
}

struct Lowerer<'a> {
    graph: &'a Graph,
    plan: &'a Plan,
    /// Steps that read each value (graph outputs count as one more use).
    uses: Vec<usize>,
    readers: Vec<Vec<usize>>,
    producer: Vec<Option<usize>>,
    done: Vec<bool>,
    /// The largest buffer a kernel may bind (the device's storage binding limit).
    max_binding: u64,
    index_checks: Vec<IndexCheck>,
}

impl<'a> Lowerer<'a> {
    fn node(&self, step: usize) -> &'a Node {
        &self.graph.nodes[self.plan.steps[step].node]
    }
    fn input(&self, step: usize, k: usize) -> Option<usize> {
        self.plan.steps[step].inputs.get(k).copied().flatten()
    }
    fn shape(&self, v: usize) -> &'a [usize] {
        &self.plan.values[v].shape
    }
    fn is_f32(&self, v: usize) -> bool {
        self.plan.values[v].dtype == DType::F32 && (self.plan.values[v].bytes() as u64) <= self.max_binding
    }
    /// An integer value the GPU can hold (as i32; int64 narrowed, checked, at upload).
    fn is_int(&self, v: usize) -> bool {
        matches!(self.plan.values[v].dtype, DType::I32 | DType::I64) && gpu_bytes(self.plan.values[v].numel()) <= self.max_binding
    }
    fn on_gpu_as(&self, v: usize, dtype: DType) -> bool {
        self.plan.values[v].dtype == dtype && (self.is_f32(v) || self.is_int(v))
    }
    fn constant(&self, v: usize) -> Option<&'a Arc<Tensor>> {
        match &self.plan.values[v].location {
            Location::Const(t) => Some(t),
            Location::Arena(_) => None,
        }
    }
    fn const_f32s(&self, v: usize) -> Option<Vec<f32>> {
        self.constant(v).filter(|t| t.dtype() == DType::F32).and_then(|t| t.f32s().ok().map(|s| s.to_vec()))
    }
    fn const_scalar(&self, v: Option<usize>) -> Option<f32> {
        self.const_f32s(v?).filter(|s| s.len() == 1).map(|s| s[0])
    }
    /// Output 0 of a step, if every other output is unused (optional outputs like Dropout's mask).
    fn sole_output(&self, step: usize) -> Option<usize> {
        let outs = &self.plan.steps[step].outputs;
        outs.iter().skip(1).all(|&o| self.uses[o] == 0).then(|| outs[0])
    }
    /// The step that alone reads `v` (and `v` is no graph output), for fusing it in.
    fn only_reader(&self, v: usize) -> Option<usize> {
        (self.uses[v] == 1).then(|| self.readers[v].first().copied()).flatten().filter(|&s| !self.done[s])
    }
    /// True if `v` exists before step `at` runs (the operand of a fused Add must).
    fn ready_before(&self, v: usize, at: usize) -> bool {
        self.producer[v].is_none_or(|p| p < at)
    }

    fn int(&self, node: &Node, name: &str, default: i64) -> i64 {
        match node.attrs.get(name) {
            Some(Attr::Int(v)) => *v,
            _ => default,
        }
    }
    fn float(&self, node: &Node, name: &str, default: f32) -> f32 {
        match node.attrs.get(name) {
            Some(Attr::Float(v)) => *v,
            _ => default,
        }
    }
    fn ints(&self, node: &Node, name: &str) -> Option<Vec<i64>> {
        match node.attrs.get(name) {
            Some(Attr::Ints(v)) => Some(v.clone()),
            _ => None,
        }
    }
    fn string(&self, node: &Node, name: &str, default: &str) -> String {
        match node.attrs.get(name) {
            Some(Attr::Str(v)) => v.clone(),
            _ => default.to_string(),
        }
    }

    /// The elementwise function a one-input step applies, as an activation code.
    fn unary_of(&self, step: usize) -> Option<Act> {
        let node = self.node(step);
        let x = self.input(step, 0)?;
        if !self.is_f32(x) || self.plan.steps[step].outputs.len() != 1 {
            return None;
        }
        Some(match node.op_type.as_str() {
            "Relu" => (act::RELU, 0.0, 0.0),
            "Clip" => {
                let (lo, hi) = if self.graph.opset < 11 {
                    (self.float(node, "min", f32::MIN), self.float(node, "max", f32::MAX))
                } else {
                    let bound = |k: usize, default: f32| match self.input(step, k) {
                        None => Some(default),
                        Some(_) => self.const_scalar(self.input(step, k)),
                    };
                    (bound(1, f32::MIN)?, bound(2, f32::MAX)?)
                };
                (act::CLIP, lo, hi)
            }
            "Sigmoid" => (act::SIGMOID, 0.0, 0.0),
            "HardSigmoid" => (act::HARD_SIGMOID, self.float(node, "alpha", 0.2), self.float(node, "beta", 0.5)),
            "HardSwish" => (act::HARD_SWISH, 0.0, 0.0),
            "Tanh" => (act::TANH, 0.0, 0.0),
            "LeakyRelu" => (act::LEAKY_RELU, self.float(node, "alpha", 0.01), 0.0),
            "Gelu" => match self.string(node, "approximate", "none").as_str() {
                "none" => (act::GELU, 0.0, 0.0),
                "tanh" => (act::GELU_TANH, 0.0, 0.0),
                _ => return None,
            },
            "Erf" => (act::ERF, 0.0, 0.0),
            "Exp" => (act::EXP, 0.0, 0.0),
            "Sqrt" => (act::SQRT, 0.0, 0.0),
            "Neg" => (act::NEG, 0.0, 0.0),
            "Abs" => (act::ABS, 0.0, 0.0),
            "Reciprocal" => (act::RECIPROCAL, 0.0, 0.0),
            "Log" => (act::LOG, 0.0, 0.0),
            "Softplus" => (act::SOFTPLUS, 0.0, 0.0),
            _ => return None,
        })
    }

    /// If `v`'s only reader is an activation, takes it: (its code, the value it produces).
    fn fuse_act(&mut self, v: usize) -> (Act, usize) {
        if let Some(s) = self.only_reader(v) {
            let is_act = matches!(
                self.node(s).op_type.as_str(),
                "Relu" | "Clip" | "Sigmoid" | "HardSigmoid" | "HardSwish" | "Tanh" | "LeakyRelu" | "Gelu"
            );
            if let Some(a) = is_act.then(|| self.unary_of(s)).flatten() {
                if self.input(s, 0) == Some(v) {
                    self.done[s] = true;
                    return (a, self.plan.steps[s].outputs[0]);
                }
            }
        }
        (NO_ACT, v)
    }

    /// If `v`'s only reader adds a same-shaped f32 value that exists before step `at`,
    /// takes it: (that operand, the sum's value).
    fn fuse_residual(&mut self, v: usize, at: usize) -> (Option<usize>, usize) {
        if let Some(s) = self.only_reader(v).filter(|&s| matches!(self.node(s).op_type.as_str(), "Add" | "Sum")) {
            let (a, b) = (self.input(s, 0), self.input(s, 1));
            if self.plan.steps[s].inputs.len() == 2 {
                let other = if a == Some(v) { b } else { a };
                if let Some(o) = other.filter(|&o| o != v && self.is_f32(o) && self.shape(o) == self.shape(v) && self.ready_before(o, at)) {
                    self.done[s] = true;
                    return (Some(o), self.plan.steps[s].outputs[0]);
                }
            }
        }
        (None, v)
    }

    fn lower_step(&mut self, step: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let out = self.sole_output(step)?;
        let x = self.input(step, 0);
        let out_dtype = self.plan.values[out].dtype;
        match node.op_type.as_str() {
            // Views keep the dtype: f32 and integer values alike.
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Identity" | "Dropout" => {
                let x = x.filter(|&x| self.on_gpu_as(x, out_dtype) && self.on_gpu_as(out, out_dtype))?;
                if node.op_type == "Dropout" && self.input(step, 2).is_some() {
                    return None; // training_mode given: not an identity in general
                }
                Some(vec![Item::Alias { out, of: x }])
            }
            "Cast" => self.cast(x?, out),
            "Gather" => self.gather(step, out),
            _ if !self.is_f32(out) => None,
            "Conv" => self.conv(step),
            "Gemm" => self.gemm(step),
            "MatMul" => self.matmul(step),
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "PRelu" | "Sum" => self.binary(step),
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let x = x.filter(|&x| self.is_f32(x))?;
                let shape = self.shape(x);
                if shape.len() < 3 {
                    return None;
                }
                let rows = shape[0] * shape[1];
                let len: usize = shape[2..].iter().product();
                let mode = if node.op_type == "GlobalMaxPool" { 1 } else { 0 };
                let params = Params::new().u(0, rows).u(1, len).u(2, 1).u(3, mode);
                Some(vec![self.reduce_rows(params, x, None, None, out, rows)])
            }
            "Softmax" | "LogSoftmax" => {
                let x = x.filter(|&x| self.is_f32(x))?;
                let shape = self.shape(x);
                let rank = shape.len() as i64;
                let axis = self.int(node, "axis", if self.graph.opset >= 13 { -1 } else { 1 });
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..rank).contains(&axis) {
                    return None;
                }
                let axis = axis as usize;
                let outer: usize = shape[..axis].iter().product();
                let (len, inner) = if self.graph.opset >= 13 {
                    (shape[axis], shape[axis + 1..].iter().product())
                } else {
                    (shape[axis..].iter().product(), 1)
                };
                let mode = if node.op_type == "LogSoftmax" { 3 } else { 2 };
                let params = Params::new().u(0, outer * inner).u(1, len).u(2, inner).u(3, mode);
                Some(vec![self.reduce_rows(params, x, None, None, out, outer * inner)])
            }
            "LayerNormalization" => {
                let x = x.filter(|&x| self.is_f32(x))?;
                let shape = self.shape(x);
                let rank = shape.len() as i64;
                let axis = self.int(node, "axis", -1);
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..rank).contains(&axis) || self.int(node, "stash_type", 1) != 1 {
                    return None;
                }
                let len: usize = shape[axis as usize..].iter().product();
                let rows: usize = shape[..axis as usize].iter().product();
                let scale = self.input(step, 1).filter(|&s| self.is_f32(s) && self.shape(s).iter().product::<usize>() == len)?;
                let bias = match self.input(step, 2) {
                    None => None,
                    Some(b) => Some(b).filter(|&b| self.is_f32(b) && self.shape(b).iter().product::<usize>() == len),
                };
                if self.input(step, 2).is_some() && bias.is_none() {
                    return None;
                }
                let params = Params::new()
                    .u(0, rows)
                    .u(1, len)
                    .u(2, 1)
                    .u(3, 4)
                    .f(4, self.float(node, "epsilon", 1e-5))
                    .u(5, bias.is_some() as usize);
                Some(vec![self.reduce_rows(params, x, Some(scale), bias, out, rows)])
            }
            "AveragePool" | "MaxPool" => self.pool(step),
            "Slice" => self.slice(step, out),
            "Expand" => {
                let x = x.filter(|&x| self.is_f32(x))?;
                let (xs, os) = (self.shape(x), self.shape(out));
                if xs.len() > os.len() {
                    return None;
                }
                let padded = pad6(xs, 1)?;
                let cs = contiguous_strides(&padded);
                let full = pad6(os, 1)?;
                let src: Vec<i64> = (0..6).map(|d| if padded[d] == 1 && full[d] != 1 { 0 } else { cs[d] as i64 }).collect();
                let dst: Vec<i64> = contiguous_strides(&full).iter().map(|&s| s as i64).collect();
                Some(vec![self.copy(x, out, &full, 0, 0, &src, &dst)?])
            }
            "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" => self.reduce(step, out),
            "Pad" => self.pad(step, out),
            "Resize" => self.resize(step, out),
            "Transpose" => {
                let x = x.filter(|&x| self.is_f32(x))?;
                let shape = self.shape(x);
                let rank = shape.len();
                let perm: Vec<usize> = match self.ints(node, "perm") {
                    Some(p) => p.iter().map(|&d| usize::try_from(d).ok().filter(|&d| d < rank)).collect::<Option<_>>()?,
                    None => (0..rank).rev().collect(),
                };
                let in_strides = contiguous_strides(shape);
                let src: Vec<i64> = perm.iter().map(|&d| in_strides[d] as i64).collect();
                let dst: Vec<i64> = contiguous_strides(self.shape(out)).iter().map(|&s| s as i64).collect();
                Some(vec![self.copy(x, out, self.shape(out), 0, 0, &src, &dst)?])
            }
            "Concat" => {
                let shape = self.shape(out);
                let axis = axis_index(self.int(node, "axis", 0), shape.len())?;
                let dst: Vec<i64> = contiguous_strides(shape).iter().map(|&s| s as i64).collect();
                let mut items = Vec::new();
                let mut offset = 0usize;
                for k in 0..self.plan.steps[step].inputs.len() {
                    let v = self.input(step, k).filter(|&v| self.is_f32(v))?;
                    let part = self.shape(v);
                    let src: Vec<i64> = contiguous_strides(part).iter().map(|&s| s as i64).collect();
                    if part.iter().product::<usize>() > 0 {
                        items.push(self.copy(v, out, part, 0, offset as i64 * dst[axis], &src, &dst)?);
                    }
                    offset += part[axis];
                }
                Some(items)
            }
            _ => {
                let a = self.unary_of(step)?;
                let x = x?;
                let n = self.plan.values[out].numel();
                let params = Params::new().u(0, n).act(1, a);
                Some(vec![Item::Gpu(Call {
                    kernel: Kernel::Unary,
                    params: params.0,
                    reads: vec![Src::Value(x)],
                    out,
                    groups: groups_1d(n),
                })])
            }
        }
    }

    fn reduce_rows(&self, params: Params, x: usize, scale: Option<usize>, shift: Option<usize>, out: usize, rows: usize) -> Item {
        let src = |v: Option<usize>| v.map_or(Src::Dummy, Src::Value);
        Item::Gpu(Call {
            kernel: Kernel::ReduceRows,
            params: params.0,
            reads: vec![Src::Value(x), src(scale), src(shift)],
            out,
            groups: rows_groups(rows),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &self,
        src: usize,
        out: usize,
        region: &[usize],
        src_base: i64,
        dst_base: i64,
        src_strides: &[i64],
        dst_strides: &[i64],
    ) -> Option<Item> {
        let dims = pad6(region, 1)?;
        let s = pad6(src_strides, 0)?;
        let d = pad6(dst_strides, 0)?;
        let n: usize = region.iter().product();
        let mut p = Params::new().u(0, n).i(1, src_base).i(2, dst_base);
        for k in 0..6 {
            p = p.u(4 + k, dims[k]).i(10 + k, s[k]).i(16 + k, d[k]);
        }
        Some(Item::Gpu(Call { kernel: Kernel::Copy, params: p.0, reads: vec![Src::Value(src)], out, groups: groups_1d(n) }))
    }

    fn binary(&mut self, step: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        if self.plan.steps[step].inputs.len() != 2 {
            return None;
        }
        let op = match node.op_type.as_str() {
            "Add" | "Sum" => 0,
            "Sub" => 1,
            "Mul" => 2,
            "Div" => 3,
            "Pow" => 4,
            "Max" => 5,
            "Min" => 6,
            "PRelu" => 7,
            _ => return None,
        };
        let a = self.input(step, 0).filter(|&v| self.is_f32(v))?;
        let b = self.input(step, 1).filter(|&v| self.is_f32(v))?;
        let out0 = self.plan.steps[step].outputs[0];
        let shape = self.shape(out0).to_vec();
        let strides = |v: usize| -> Option<[usize; 6]> {
            let s = self.shape(v);
            if s.len() > shape.len() {
                return None;
            }
            let padded = pad6(s, 1)?;
            let full = pad6(&shape, 1)?;
            let cs = contiguous_strides(&padded);
            Some(std::array::from_fn(|d| if padded[d] == 1 && full[d] != 1 { 0 } else { cs[d] }))
        };
        let (sa, sb, dims) = (strides(a)?, strides(b)?, pad6(&shape, 1)?);
        let (a_act, out) = self.fuse_act(out0);
        let n: usize = shape.iter().product();
        let mut p = Params::new().u(0, n).u(1, op).act(2, a_act);
        for d in 0..6 {
            p = p.u(8 + d, dims[d]).u(14 + d, sa[d]).u(20 + d, sb[d]);
        }
        Some(vec![Item::Gpu(Call {
            kernel: Kernel::Binary,
            params: p.0,
            reads: vec![Src::Value(a), Src::Value(b)],
            out,
            groups: groups_1d(n),
        })])
    }

    /// Resolves 2-D window pads: (top, left, bottom, right).
    fn pads_2d(&self, node: &Node, input: &[usize], out: &[usize], k: [usize; 2], s: [usize; 2], d: [usize; 2]) -> Option<[usize; 4]> {
        let auto = self.string(node, "auto_pad", "NOTSET");
        match auto.as_str() {
            "NOTSET" => match self.ints(node, "pads") {
                None => Some([0; 4]),
                Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => Some([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]),
                Some(_) => None,
            },
            "VALID" => Some([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let total = |i: usize| ((out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1).saturating_sub(input[i]);
                let (th, tw) = (total(0), total(1));
                if auto == "SAME_UPPER" {
                    Some([th / 2, tw / 2, th - th / 2, tw - tw / 2])
                } else {
                    Some([th - th / 2, tw - tw / 2, th / 2, tw / 2])
                }
            }
            _ => None,
        }
    }

    fn pair(&self, node: &Node, name: &str, default: usize) -> Option<[usize; 2]> {
        match self.ints(node, name) {
            None => Some([default; 2]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Some([v[0] as usize, v[1] as usize]),
            Some(_) => None,
        }
    }

    fn pool(&mut self, step: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let x = self.input(step, 0).filter(|&x| self.is_f32(x))?;
        let out = self.plan.steps[step].outputs[0];
        let (xs, os) = (self.shape(x), self.shape(out));
        if xs.len() != 4 || self.plan.steps[step].outputs.len() != 1 {
            return None;
        }
        let k = self.pair(node, "kernel_shape", 0)?;
        let s = self.pair(node, "strides", 1)?;
        let d = self.pair(node, "dilations", 1)?;
        let pads = self.pads_2d(node, &xs[2..], &os[2..], k, s, d)?;
        let mode = if node.op_type == "MaxPool" { 2 } else { self.int(node, "count_include_pad", 0).clamp(0, 1) as usize };
        let n = self.plan.values[out].numel();
        let p = Params::new().u(0, n).u(1, xs[1]).u(2, xs[2]).u(3, xs[3]).u(4, os[2]).u(5, os[3]).u(6, k[0]).u(7, k[1]);
        let p = p.u(8, s[0]).u(9, s[1]).u(10, pads[0]).u(11, pads[1]).u(12, d[0]).u(13, d[1]).u(14, mode).u(15, pads[2]).u(16, pads[3]);
        Some(vec![Item::Gpu(Call { kernel: Kernel::Pool, params: p.0, reads: vec![Src::Value(x)], out, groups: groups_1d(n) })])
    }

    fn conv(&mut self, step: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let x = self.input(step, 0).filter(|&x| self.is_f32(x))?;
        let w = self.input(step, 1).filter(|&w| self.is_f32(w))?;
        let bias = self.input(step, 2);
        let out0 = self.plan.steps[step].outputs[0];
        let (xs, ws, os) = (self.shape(x).to_vec(), self.shape(w).to_vec(), self.shape(out0).to_vec());
        if xs.len() != 4 || ws.len() != 4 || os.len() != 4 {
            return None;
        }
        let group = self.int(node, "group", 1).max(1) as usize;
        let (n_img, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
        let (cout, oh, ow) = (os[1], os[2], os[3]);
        let (kh, kw) = (ws[2], ws[3]);
        let s = self.pair(node, "strides", 1)?;
        let d = self.pair(node, "dilations", 1)?;
        let pads = self.pads_2d(node, &xs[2..], &os[2..], [kh, kw], s, d)?;
        if cin % group != 0 || cout % group != 0 || ws[1] * group != cin || ws[0] != cout {
            return None;
        }

        // BatchNormalization on constant statistics folds into the filters and bias.
        let mut weight = Src::Value(w);
        let mut bias_src = match bias {
            Some(b) if self.is_f32(b) => Some(Src::Value(b)),
            Some(_) => return None,
            None => None,
        };
        let mut cur = out0;
        if let (Some(bn), Some(wv)) = (self.only_reader(cur), self.const_f32s(w)) {
            if let Some((wf, bf)) = self.fold_bn(bn, cur, &wv, bias, cout) {
                let bn_name = &self.node(bn).name;
                let wname = &self.plan.values[w].name;
                weight = Src::Derived(format!("{wname}#bn:{bn_name}"), Arc::new(Tensor::from_f32(ws.clone(), wf).ok()?));
                bias_src = Some(Src::Derived(format!("{wname}#bn-bias:{bn_name}"), Arc::new(Tensor::from_f32(vec![cout], bf).ok()?)));
                self.done[bn] = true;
                cur = self.plan.steps[bn].outputs[0];
            }
        }
        let (res, cur) = self.fuse_residual(cur, step);
        let (a, out) = self.fuse_act(cur);
        let has_bias = bias_src.is_some() as usize;
        let has_res = res.is_some() as usize;
        let bias_src = bias_src.unwrap_or(Src::Dummy);
        let res_src = res.map_or(Src::Dummy, Src::Value);

        if group == cin && group > 1 && cout % cin == 0 {
            let n = n_img * cout * oh * ow;
            let p = Params::new().u(0, n).u(1, cin).u(2, h).u(3, wd).u(4, oh).u(5, ow).u(6, kh).u(7, kw).u(8, s[0]).u(9, s[1]);
            let p = p.u(10, pads[0]).u(11, pads[1]).u(12, d[0]).u(13, d[1]).u(14, cout / cin).u(15, has_bias).u(16, has_res).act(17, a);
            let reads = vec![Src::Value(x), weight, bias_src, res_src];
            return Some(vec![Item::Gpu(Call { kernel: Kernel::Depthwise, params: p.0, reads, out, groups: groups_1d(n) })]);
        }
        let tiles = |m: usize, n: usize, batch: usize| {
            [n.div_ceil(TILE as usize).max(1) as u32, m.div_ceil(TILE as usize).max(1) as u32, batch as u32]
        };
        if kh == 1 && kw == 1 && s == [1, 1] && pads == [0; 4] && group == 1 {
            // Pointwise: per image, filters [Cout, Cin] times the input viewed as [Cin, H*W].
            let hw = h * wd;
            let p = Params::new().u(0, cout).u(1, hw).u(2, cin).u(3, cin).u(4, 1).u(5, 0).u(6, hw).u(7, 1).u(8, cin * hw).u(9, cout * hw);
            let p = p.u(10, 1).u(11, 0).u(12, 0).u(13, has_bias).u(14, has_res).act(15, a).f(18, 1.0).f(19, 1.0);
            let reads = vec![weight, Src::Value(x), bias_src, res_src];
            return Some(vec![Item::Gpu(Call { kernel: Kernel::Gemm, params: p.0, reads, out, groups: tiles(cout, hw, n_img) })]);
        }
        let (m, k) = (cout / group, (cin / group) * kh * kw);
        let p = Params::new().u(0, m).u(1, oh * ow).u(2, k).u(3, group).u(4, cin).u(5, h).u(6, wd).u(7, kh).u(8, kw).u(9, s[0]).u(10, s[1]);
        let p = p.u(11, pads[0]).u(12, pads[1]).u(13, d[0]).u(14, d[1]).u(15, ow).u(16, cout).u(17, has_bias).u(18, has_res).act(19, a);
        let reads = vec![Src::Value(x), weight, bias_src, res_src];
        Some(vec![Item::Gpu(Call { kernel: Kernel::Conv, params: p.0, reads, out, groups: tiles(m, oh * ow, n_img * group) })])
    }

    /// Filters and bias with the BatchNormalization at step `bn` (reading `v`) folded in.
    fn fold_bn(&self, bn: usize, v: usize, w: &[f32], bias: Option<usize>, cout: usize) -> Option<(Vec<f32>, Vec<f32>)> {
        let node = self.node(bn);
        if !node.is_inference_batch_norm() || self.input(bn, 0) != Some(v) || self.sole_output(bn).is_none() {
            return None;
        }
        let stat = |k: usize| self.const_f32s(self.input(bn, k)?).filter(|s| s.len() == cout);
        let (scale, shift, mean, var) = (stat(1)?, stat(2)?, stat(3)?, stat(4)?);
        let b0 = match bias {
            Some(b) => self.const_f32s(b).filter(|s| s.len() == cout)?,
            None => vec![0.0; cout],
        };
        let eps = self.float(node, "epsilon", 1e-5);
        let per = w.len() / cout;
        let mut wf = w.to_vec();
        let mut bf = vec![0.0; cout];
        for c in 0..cout {
            let f = scale[c] / (var[c] + eps).sqrt();
            wf[c * per..(c + 1) * per].iter_mut().for_each(|x| *x *= f);
            bf[c] = (b0[c] - mean[c]) * f + shift[c];
        }
        Some((wf, bf))
    }

    fn gemm(&mut self, step: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let a = self.input(step, 0).filter(|&v| self.is_f32(v) && self.shape(v).len() == 2)?;
        let b = self.input(step, 1).filter(|&v| self.is_f32(v) && self.shape(v).len() == 2)?;
        let c = self.input(step, 2);
        let (ta, tb) = (self.int(node, "transA", 0) != 0, self.int(node, "transB", 0) != 0);
        let (alpha, beta) = (self.float(node, "alpha", 1.0), self.float(node, "beta", 1.0));
        let (ash, bsh) = (self.shape(a), self.shape(b));
        let (m, k) = if ta { (ash[1], ash[0]) } else { (ash[0], ash[1]) };
        let n = if tb { bsh[0] } else { bsh[1] };
        let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
        let (b_rs, b_cs) = if tb { (1, k) } else { (n, 1) };
        let (bias, rs, cs) = match c {
            None => (None, 0, 0),
            Some(c) => {
                let cs = self.shape(c);
                if !self.is_f32(c) {
                    return None;
                }
                let padded = pad6(cs, 1)?;
                let (cm, cn) = (padded[4], padded[5]);
                if padded[..4].iter().any(|&d| d != 1) || (cm != 1 && cm != m) || (cn != 1 && cn != n) {
                    return None;
                }
                (Some(c), if cm == 1 { 0 } else { cn }, if cn == 1 { 0 } else { 1 })
            }
        };
        let out0 = self.plan.steps[step].outputs[0];
        let (act, out) = self.fuse_act(out0);
        let p = Params::new().u(0, m).u(1, n).u(2, k).u(3, a_rs).u(4, a_cs).u(6, b_rs).u(7, b_cs).u(10, rs).u(11, cs);
        let p = p.u(13, bias.is_some() as usize).act(15, act).f(18, alpha).f(19, beta);
        let reads = vec![Src::Value(a), Src::Value(b), bias.map_or(Src::Dummy, Src::Value), Src::Dummy];
        let groups = [n.div_ceil(TILE as usize).max(1) as u32, m.div_ceil(TILE as usize).max(1) as u32, 1];
        Some(vec![Item::Gpu(Call { kernel: Kernel::Gemm, params: p.0, reads, out, groups })])
    }

    fn matmul(&mut self, step: usize) -> Option<Vec<Item>> {
        let a = self.input(step, 0).filter(|&v| self.is_f32(v))?;
        let b = self.input(step, 1).filter(|&v| self.is_f32(v))?;
        let out0 = self.plan.steps[step].outputs[0];
        let (ash, bsh, osh) = (self.shape(a).to_vec(), self.shape(b).to_vec(), self.shape(out0).to_vec());
        if ash.is_empty() || bsh.is_empty() {
            return None;
        }
        let (m, k) = if ash.len() == 1 { (1, ash[0]) } else { (ash[ash.len() - 2], ash[ash.len() - 1]) };
        let n = if bsh.len() == 1 { 1 } else { bsh[bsh.len() - 1] };
        let out_batch: Vec<usize> = osh[..osh.len().saturating_sub(if ash.len() == 1 || bsh.len() == 1 { 1 } else { 2 })].to_vec();
        let batch: usize = out_batch.iter().product();
        // Batch strides: a full batch (same batch dims as the output) or one broadcast matrix.
        let batch_stride = |sh: &[usize], mat: usize| -> Option<usize> {
            let dims = &sh[..sh.len().saturating_sub(2)];
            let count: usize = dims.iter().product();
            if count == 1 {
                Some(0)
            } else if count == batch && pad6(dims, 1)? == pad6(&out_batch, 1)? {
                Some(mat)
            } else {
                None
            }
        };
        if batch > 65535 {
            return None;
        }
        let a_bs = batch_stride(&ash, m * k)?;
        let b_bs = if bsh.len() == 1 { 0 } else { batch_stride(&bsh, k * n)? };
        // A following Add of a [N] (or [1, .., N]) constant becomes the bias.
        let mut cur = out0;
        let mut bias = None;
        if let Some(s) = self.only_reader(cur).filter(|&s| self.node(s).op_type == "Add" && self.plan.steps[s].inputs.len() == 2) {
            let other = if self.input(s, 0) == Some(cur) { self.input(s, 1) } else { self.input(s, 0) };
            if let Some(o) = other.filter(|&o| o != cur && self.is_f32(o) && self.ready_before(o, step)) {
                let sh = self.shape(o);
                if sh.last() == Some(&n) && sh.iter().rev().skip(1).all(|&d| d == 1) && sh.len() <= osh.len() {
                    bias = Some(o);
                    self.done[s] = true;
                    cur = self.plan.steps[s].outputs[0];
                }
            }
        }
        let (act, out) = self.fuse_act(cur);
        let p = Params::new().u(0, m).u(1, n).u(2, k).u(3, k).u(4, 1).u(5, a_bs).u(6, n).u(7, 1).u(8, b_bs).u(9, m * n);
        let p = p.u(10, 0).u(11, 1).u(12, 0).u(13, bias.is_some() as usize).act(15, act).f(18, 1.0).f(19, 1.0);
        let reads = vec![Src::Value(a), Src::Value(b), bias.map_or(Src::Dummy, Src::Value), Src::Dummy];
        let groups = [n.div_ceil(TILE as usize).max(1) as u32, m.div_ceil(TILE as usize).max(1) as u32, batch.max(1) as u32];
        Some(vec![Item::Gpu(Call { kernel: Kernel::Gemm, params: p.0, reads, out, groups })])
    }
}

/// Lowers every step of `plan` (built for `graph`).
pub fn lower(graph: &Graph, plan: &Plan, max_binding: u64) -> Lowered {
    let nv = plan.values.len();
    let mut uses = vec![0usize; nv];
    let mut readers = vec![Vec::new(); nv];
    let mut producer = vec![None; nv];
    for (i, step) in plan.steps.iter().enumerate() {
        for v in step.inputs.iter().flatten() {
            uses[*v] += 1;
            readers[*v].push(i);
        }
        for &o in &step.outputs {
            producer[o] = Some(i);
        }
    }
    for &o in &plan.outputs {
        uses[o] += 1;
    }
    let mut l =
        Lowerer { graph, plan, uses, readers, producer, done: vec![false; plan.steps.len()], max_binding, index_checks: Vec::new() };
    let mut items = Vec::new();
    let mut fallback = Vec::new();
    for step in 0..plan.steps.len() {
        if l.done[step] {
            continue;
        }
        l.done[step] = true;
        match l.lower_step(step) {
            Some(mut lowered) => items.append(&mut lowered),
            None => {
                let node = l.node(step);
                fallback.push(format!("{} ({})", node.name, node.op_type));
                items.push(Item::Cpu(step));
            }
        }
    }
    Lowered { items, fallback, index_checks: l.index_checks }
}
