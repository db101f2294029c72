//! Lowering of the data-movement and integer operators: Cast and Gather (integer values on
//! the GPU, docs/adr/0022 decision 9), Slice, ReduceSum/Mean/Max/Min, Pad and Resize. Split
//! from lower.rs to keep each file about one kind of operator; the `Lowerer` is the parent's.

use super::{axis_index, contiguous_strides, pad6, Call, IndexCheck, Item, Lowerer, Params, Src};
use crate::kernels::{groups_1d, Kernel};
use cairn_core::{DType, Tensor};
use std::sync::Arc;

impl Lowerer<'_> {
    /// Integer values of a constant input (starts, axes, pads...), if it is one.
    pub(super) fn const_ints(&self, v: Option<usize>) -> Option<Vec<i64>> {
        self.constant(v?)?.view().to_i64_vec().ok()
    }

    /// Slice as a strided copy: the start and step of every axis from constant inputs
    /// (attributes before opset 10), clamped as the ONNX spec (and the CPU kernel) do.
    pub(super) fn slice(&self, step: usize, out: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let x = self.input(step, 0).filter(|&x| self.is_f32(x))?;
        let shape = self.shape(x);
        let rank = shape.len();
        let (starts, axes, steps) = if self.graph.opset < 10 {
            (self.ints(node, "starts")?, self.ints(node, "axes"), None)
        } else {
            let given = |k: usize| match self.input(step, k) {
                None => Some(None),
                Some(v) => self.const_ints(Some(v)).map(Some),
            };
            (self.const_ints(self.input(step, 1))?, given(3)?, given(4)?)
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if axes.len() != starts.len() || steps.len() != starts.len() {
            return None;
        }
        let mut begin = vec![0i64; rank];
        let mut stride = vec![1i64; rank];
        for ((&a, &st), &k) in axes.iter().zip(&starts).zip(&steps) {
            let a = axis_index(a, rank)?;
            let dim = shape[a] as i64;
            let st = if st < 0 { st.saturating_add(dim) } else { st };
            begin[a] = if k > 0 { st.clamp(0, dim) } else { st.clamp(0, dim - 1) };
            stride[a] = k;
        }
        let cs = contiguous_strides(shape);
        let base: i64 = begin.iter().zip(&cs).map(|(b, &s)| b * s as i64).sum();
        let src: Vec<i64> = stride.iter().zip(&cs).map(|(k, &s)| k * s as i64).collect();
        let os = self.shape(out);
        if os.iter().product::<usize>() == 0 {
            return None;
        }
        let dst: Vec<i64> = contiguous_strides(os).iter().map(|&s| s as i64).collect();
        Some(vec![self.copy(x, out, os, base, 0, &src, &dst)?])
    }

    /// ReduceSum/Mean/Max/Min over constant axes (an attribute before opset 13 for Sum and 18
    /// for the others; an input after), with or without the reduced axes kept.
    pub(super) fn reduce(&self, step: usize, out: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let x = self.input(step, 0).filter(|&x| self.is_f32(x))?;
        let shape = self.shape(x);
        let rank = shape.len();
        let (mode, axes_as_input) = match node.op_type.as_str() {
            "ReduceSum" => (0, self.graph.opset >= 13),
            "ReduceMean" => (1, self.graph.opset >= 18),
            "ReduceMax" => (2, self.graph.opset >= 18),
            _ => (3, self.graph.opset >= 18),
        };
        let axes = if axes_as_input {
            match self.input(step, 1) {
                None => Vec::new(),
                Some(v) => self.const_ints(Some(v))?,
            }
        } else {
            self.ints(node, "axes").unwrap_or_default()
        };
        let mut reduced = vec![false; rank];
        if axes.is_empty() {
            if self.int(node, "noop_with_empty_axes", 0) != 0 {
                return Some(vec![Item::Alias { out, of: x }]);
            }
            reduced.iter_mut().for_each(|r| *r = true);
        }
        for &a in &axes {
            reduced[axis_index(a, rank)?] = true;
        }
        let n: usize = shape.iter().zip(&reduced).filter(|(_, &r)| r).map(|(&d, _)| d).product();
        let count = self.plan.values[out].numel();
        if n == 0 || count == 0 {
            return None; // empty reductions (their identity values) stay on the CPU
        }
        let cs = contiguous_strides(shape);
        let pick = |want: bool| -> Option<([usize; 6], [usize; 6])> {
            let dims: Vec<usize> = (0..rank).map(|d| if reduced[d] == want { shape[d] } else { 1 }).collect();
            Some((pad6(&dims, 1)?, pad6(&cs, 0)?))
        };
        let (kept, kept_strides) = pick(false)?;
        let (red, red_strides) = pick(true)?;
        let mut p = Params::new().u(0, count).u(1, mode).u(2, n);
        for d in 0..6 {
            p = p.u(4 + d, kept[d]).u(10 + d, kept_strides[d]).u(16 + d, red[d]).u(22 + d, red_strides[d]);
        }
        Some(vec![Item::Gpu(Call { kernel: Kernel::Reduce, params: p.0, reads: vec![Src::Value(x)], out, groups: groups_1d(count) })])
    }

    /// Pad (constant, reflect, edge, wrap) with constant pads, value and axes.
    pub(super) fn pad(&self, step: usize, out: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let x = self.input(step, 0).filter(|&x| self.is_f32(x))?;
        let shape = self.shape(x);
        let rank = shape.len();
        let (raw, value, axes) = if self.graph.opset < 11 {
            (self.ints(node, "pads")?, self.float(node, "value", 0.0), None)
        } else {
            let value = match self.input(step, 2) {
                None => 0.0,
                Some(v) => self.const_f32s(v).filter(|s| s.len() == 1)?[0],
            };
            let axes = match self.input(step, 3) {
                None => None,
                Some(v) => Some(self.const_ints(Some(v))?),
            };
            (self.const_ints(self.input(step, 1))?, value, axes)
        };
        let mut before = vec![0i64; rank];
        match axes {
            None if raw.len() == 2 * rank => before.copy_from_slice(&raw[..rank]),
            Some(axes) if raw.len() == 2 * axes.len() => {
                for (k, &a) in axes.iter().enumerate() {
                    before[axis_index(a, rank)?] = raw[k];
                }
            }
            _ => return None,
        }
        if raw.iter().any(|&p| p < 0) {
            return None; // cropping pads stay on the CPU
        }
        let mode = match self.string(node, "mode", "constant").as_str() {
            "constant" => 0,
            "reflect" => 1,
            "edge" => 2,
            "wrap" => 3,
            _ => return None,
        };
        let os = self.shape(out);
        let count: usize = os.iter().product();
        // Reflect needs pads smaller than the axis; edge and wrap need a non-empty axis.
        let ok = shape.iter().zip(os).all(|(&n, &o)| match mode {
            0 => true,
            1 => n >= 2 && o < 3 * n - 2 || n == o,
            _ => n > 0 || n == o,
        });
        if !ok || count == 0 {
            return None;
        }
        let (od, id, bd) = (pad6(os, 1)?, pad6(shape, 1)?, pad6(&before, 0)?);
        let mut p = Params::new().u(0, count).u(1, mode).f(2, value);
        for d in 0..6 {
            p = p.u(4 + d, od[d]).u(10 + d, id[d]).i(16 + d, bd[d]);
        }
        Some(vec![Item::Gpu(Call { kernel: Kernel::Pad, params: p.0, reads: vec![Src::Value(x)], out, groups: groups_1d(count) })])
    }

    /// Resize (nearest or linear) of the last two axes, the others kept: per-axis tap tables
    /// made here, in f64, by the CPU engine's rules (see `resize_taps`).
    pub(super) fn resize(&self, step: usize, out: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let x = self.input(step, 0).filter(|&x| self.is_f32(x))?;
        let (xs, os) = (self.shape(x), self.shape(out));
        let rank = xs.len();
        if self.graph.opset < 11 || rank < 2 || node.attrs.contains_key("axes") || self.int(node, "antialias", 0) != 0 {
            return None;
        }
        if self.int(node, "exclude_outside", 0) != 0 || self.string(node, "keep_aspect_ratio_policy", "stretch") != "stretch" {
            return None;
        }
        if xs[..rank - 2] != os[..rank - 2] || os.iter().product::<usize>() == 0 || xs.iter().product::<usize>() == 0 {
            return None;
        }
        let linear = match self.string(node, "mode", "nearest").as_str() {
            "nearest" => false,
            "linear" | "bilinear" => true,
            _ => return None,
        };
        let coord = self.string(node, "coordinate_transformation_mode", "half_pixel");
        let nearest = self.string(node, "nearest_mode", "round_prefer_floor");
        // The scale of each axis as the CPU engine takes it: given scales, else sizes / input.
        let scales: Vec<f64> = match self.input(step, 2).and_then(|v| self.const_f32s(v)).filter(|s| !s.is_empty()) {
            Some(s) if s.len() == rank => s.iter().map(|&k| k as f64).collect(),
            Some(_) => return None,
            None => {
                let sizes = self.const_ints(self.input(step, 3))?;
                if sizes.len() != rank {
                    return None;
                }
                sizes.iter().zip(xs).map(|(&n, &d)| n as f64 / d.max(1) as f64).collect()
            }
        };
        let table = |a: usize| resize_taps(xs[a], os[a], scales[a], &coord, &nearest, linear);
        // The leading axes must map every index to itself (tf_half_pixel_for_nn with
        // round_prefer_ceil, for one, shifts even an unscaled axis).
        for a in 0..rank - 2 {
            let identity = |(o, t): (usize, &[f32])| {
                let (i0, i1, w0, w1) = (t[0], t[1], t[2], t[3]);
                let o = o as f32;
                // One tap on o, or two on o (pytorch_half_pixel on a size-1 axis: 0.5 + 0.5).
                (i0 == o && w0 == 1.0 && w1 == 0.0) || (i1 == o && w1 == 1.0 && w0 == 0.0) || (i0 == o && i1 == o && w0 + w1 == 1.0)
            };
            if !table(a)?.chunks(4).enumerate().all(identity) {
                return None;
            }
        }
        let (rows, cols) = (table(rank - 2)?, table(rank - 1)?);
        let key = |a: usize, t: &str| format!("{}#resize-{t}:{}", node.name, a);
        let tensor = |v: Vec<f32>| Tensor::from_f32(vec![v.len()], v).ok().map(Arc::new);
        let reads =
            vec![Src::Value(x), Src::Derived(key(rank - 2, "rows"), tensor(rows)?), Src::Derived(key(rank - 1, "cols"), tensor(cols)?)];
        let count: usize = os.iter().product();
        let p = Params::new().u(0, count).u(1, xs[rank - 2]).u(2, xs[rank - 1]).u(3, os[rank - 2]).u(4, os[rank - 1]);
        Some(vec![Item::Gpu(Call { kernel: Kernel::Resize, params: p.0, reads, out, groups: groups_1d(count) })])
    }

    /// Cast to the same dtype is a view; integer -> f32 a kernel; others fall back.
    pub(super) fn cast(&self, x: usize, out: usize) -> Option<Vec<Item>> {
        let to = self.plan.values[out].dtype;
        if self.on_gpu_as(x, to) && self.on_gpu_as(out, to) {
            return Some(vec![Item::Alias { out, of: x }]);
        }
        if !(self.is_int(x) && self.is_f32(out)) {
            return None;
        }
        let n = self.plan.values[out].numel();
        let params = Params::new().u(0, n);
        Some(vec![Item::Gpu(Call { kernel: Kernel::IntToF32, params: params.0, reads: vec![Src::Value(x)], out, groups: groups_1d(n) })])
    }

    /// Gather of f32 data by integer indices along any axis. Constant indices are checked
    /// here (out of range: the CPU kernel runs and reports it); others where they are uploaded.
    pub(super) fn gather(&mut self, step: usize, out: usize) -> Option<Vec<Item>> {
        let node = self.node(step);
        let data = self.input(step, 0).filter(|&v| self.is_f32(v))?;
        let idx = self.input(step, 1).filter(|&v| self.is_int(v))?;
        if !self.is_f32(out) {
            return None;
        }
        let shape = self.shape(data);
        let axis = axis_index(self.int(node, "axis", 0), shape.len())?;
        let dim = shape[axis] as i64;
        if dim > i32::MAX as i64 {
            return None;
        }
        let in_range = |i: i64| (-dim..dim).contains(&i);
        match self.constant(idx) {
            Some(t) => {
                let ok = match t.dtype() {
                    DType::I64 => t.i64s().ok()?.iter().all(|&i| in_range(i)),
                    _ => t.i32s().ok()?.iter().all(|&i| in_range(i as i64)),
                };
                if !ok {
                    return None;
                }
            }
            None => self.index_checks.push(IndexCheck { value: idx, dim, node: format!("{} (Gather)", node.name) }),
        }
        let inner: usize = shape[axis + 1..].iter().product();
        let n_idx = self.plan.values[idx].numel();
        let n = self.plan.values[out].numel();
        if n == 0 {
            return None;
        }
        let params = Params::new().u(0, n).u(1, n_idx).u(2, inner).i(3, dim);
        let reads = vec![Src::Value(data), Src::Value(idx)];
        Some(vec![Item::Gpu(Call { kernel: Kernel::Gather, params: params.0, reads, out, groups: groups_1d(n) })])
    }
}

/// Per output index of one Resize axis: [first index, second index, first weight, second
/// weight] (indices as f32, exact below 2^24), by the CPU engine's rules (cairn-core's
/// resize.rs): the source coordinate per `coord`, nearest rounding per `nearest`, linear taps
/// at ceil(x) - 1 and ceil(x) weighted 1 - r and r (r in (0, 1]), clamped to the edge.
/// None for a mode the GPU path does not take (tf_crop_and_resize, half_pixel_symmetric).
fn resize_taps(n_in: usize, n_out: usize, scale: f64, coord: &str, nearest: &str, linear: bool) -> Option<Vec<f32>> {
    if n_in >= 1 << 24 {
        return None;
    }
    let last = n_in as i64 - 1;
    let out_float = scale * n_in as f64;
    let mut t = Vec::with_capacity(4 * n_out);
    for o in 0..n_out {
        let x = o as f64;
        let src = match coord {
            "half_pixel" => (x + 0.5) / scale - 0.5,
            "pytorch_half_pixel" if out_float == 1.0 => -0.5,
            "pytorch_half_pixel" => (x + 0.5) / scale - 0.5,
            "align_corners" if out_float == 1.0 => 0.0,
            "align_corners" => x * (n_in as f64 - 1.0) / (out_float - 1.0),
            "asymmetric" => x / scale,
            "tf_half_pixel_for_nn" => (x + 0.5) / scale,
            _ => return None,
        };
        let clamp = |i: f64| (i as i64).clamp(0, last) as f32;
        if !linear {
            let i = match nearest {
                "round_prefer_floor" if src.fract() == 0.5 => src.floor(),
                "round_prefer_ceil" if src.fract() == 0.5 => src.ceil(),
                "round_prefer_floor" | "round_prefer_ceil" => src.round(),
                "floor" => src.floor(),
                "ceil" => src.ceil(),
                _ => return None,
            };
            t.extend([clamp(i), clamp(i), 1.0, 0.0]);
        } else {
            let ceil = src.ceil();
            let r = src - (ceil - 1.0);
            t.extend([clamp(ceil - 1.0), clamp(ceil), (1.0 - r) as f32, r as f32]);
        }
    }
    Some(t)
}
