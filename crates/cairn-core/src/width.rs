//! Run-time widths: one set of weights, several network widths chosen per request.
//!
//! A model with widths stores the hidden channels of each prunable block (expand 1x1 conv ->
//! depthwise conv -> project 1x1 conv) in importance order, most important first, so a
//! narrower width keeps a *prefix* of every hidden axis: slicing the stored tensors is all it
//! takes, no gather and no extra bytes. What dropping the tail costs is compensated by one
//! small tensor per block and width: the project conv's bias with the dropped channels' mean
//! contribution folded in (measured on calibration data by `cairn_quant::widths`).
//! See docs/adr/0018-run-time-widths.md.

use crate::{Attr, Error, Graph, Node, NodeSpec, Registry, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The widths a model offers and how to cut it to each one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WidthPlan {
    pub blocks: Vec<WidthBlock>,
    /// Narrower than full, widest first. The full width is implicit (nothing cut).
    pub widths: Vec<Width>,
}

/// One prunable block: which tensors run over its hidden channels.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WidthBlock {
    /// Hidden channels stored.
    pub hidden: usize,
    /// Initializers with a hidden-channel axis: each keeps a prefix along `axis`.
    pub slices: Vec<TensorSlice>,
    /// Nodes (by their first output's name: node names may be empty) whose `group`
    /// attribute is the hidden channel count (the depthwise conv).
    pub grouped: Vec<String>,
    /// The node reading the hidden channels (the project conv, by its first output's
    /// name); its input 2 (bias) is replaced by the width's compensated bias.
    pub project: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorSlice {
    pub tensor: String,
    pub axis: usize,
}

/// One run-time width.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Width {
    /// The share of the full model's multiply-accumulates this width targets, e.g. 0.8.
    pub fraction: f32,
    /// Multiply-accumulates of one run at this width (batch 1), as the planner counts them.
    #[serde(default)]
    pub macs: u64,
    /// Hidden channels kept, per block (in `blocks` order).
    pub keep: Vec<usize>,
    /// Per block: the initializer holding the compensated project bias, or `None` when
    /// the block keeps every channel.
    pub bias: Vec<Option<String>>,
}

/// Metadata key under which an ONNX model carries its [`WidthPlan`] (as JSON).
pub const ONNX_METADATA_KEY: &str = "cairn.widths";

impl WidthPlan {
    /// Every compensation tensor the plan names (stored beside the graph's weights).
    pub fn tensors(&self) -> impl Iterator<Item = &str> {
        self.widths.iter().flat_map(|w| w.bias.iter().flatten().map(|s| s.as_str()))
    }

    /// The index of the width closest to `fraction` (1.0 or more: the full model, `None`).
    /// A fraction below every width picks the narrowest.
    pub fn pick(&self, fraction: f32) -> Option<usize> {
        if fraction >= 1.0 || self.widths.is_empty() {
            return None;
        }
        self.widths
            .iter()
            .enumerate()
            .min_by(|a, b| (a.1.fraction - fraction).abs().total_cmp(&(b.1.fraction - fraction).abs()))
            .map(|(i, _)| i)
    }

    /// Checks names and counts against `graph` (a plan may come from an untrusted file).
    pub fn check(&self, graph: &Graph) -> Result<()> {
        let bad = |m: String| Err(Error::Graph(format!("width plan: {m}")));
        for (i, b) in self.blocks.iter().enumerate() {
            if b.hidden == 0 {
                return bad(format!("block {i} has no hidden channels"));
            }
            for s in &b.slices {
                match graph.initializers.get(&s.tensor) {
                    Some(t) if t.shape().get(s.axis) == Some(&b.hidden) => {}
                    Some(t) => {
                        return bad(format!("tensor '{}' has shape {:?}, not {} along axis {}", s.tensor, t.shape(), b.hidden, s.axis))
                    }
                    None => return bad(format!("block {i} names tensor '{}', which the model does not have", s.tensor)),
                }
            }
            for n in b.grouped.iter().chain([&b.project]) {
                if !graph.nodes.iter().any(|x| x.outputs.first() == Some(n)) {
                    return bad(format!("block {i} names node '{n}', which the model does not have"));
                }
            }
        }
        for w in &self.widths {
            if !(w.fraction > 0.0 && w.fraction < 1.0) {
                return bad(format!("width {} is not in (0, 1)", w.fraction));
            }
            if w.keep.len() != self.blocks.len() || w.bias.len() != self.blocks.len() {
                return bad(format!("width {} lists {} blocks, the plan has {}", w.fraction, w.keep.len(), self.blocks.len()));
            }
            for (b, (&k, bias)) in self.blocks.iter().zip(w.keep.iter().zip(&w.bias)) {
                if k == 0 || k > b.hidden {
                    return bad(format!("width {} keeps {k} of {} channels", w.fraction, b.hidden));
                }
                if let Some(name) = bias {
                    if !graph.initializers.contains_key(name) {
                        return bad(format!("width {} names bias '{name}', which the model does not have", w.fraction));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The graph at width `index` of `plan`: every hidden axis cut to the width's prefix, the
/// depthwise groups set to match, and the compensated biases in place. The weights are
/// shared with `graph` where nothing is cut; cut ones are new (smaller) tensors.
pub fn narrow(graph: &Graph, plan: &WidthPlan, index: usize) -> Result<Graph> {
    plan.check(graph)?;
    let width =
        plan.widths.get(index).ok_or_else(|| Error::Input(format!("width {index} does not exist ({} widths)", plan.widths.len())))?;
    let mut g = graph.clone();
    for ((block, &keep), bias) in plan.blocks.iter().zip(&width.keep).zip(&width.bias) {
        if keep == block.hidden {
            continue;
        }
        for s in &block.slices {
            let t = prefix(&g.initializers[&s.tensor], s.axis, keep)?;
            g.initializers.insert(s.tensor.clone(), Arc::new(t));
        }
        for name in &block.grouped {
            let i = g.nodes.iter().position(|n| n.outputs.first() == Some(name)).expect("checked");
            let n = &g.nodes[i];
            let mut attrs = n.attrs.clone();
            attrs.insert("group".into(), Attr::Int(keep as i64));
            let spec = NodeSpec {
                name: n.name.clone(),
                domain: n.domain.clone(),
                op_type: n.op_type.clone(),
                attrs,
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
            };
            g.nodes[i] = Node::build(spec, g.opset, Registry::global())?;
        }
        if let Some(bias) = bias {
            let p = g.nodes.iter_mut().find(|n| n.outputs.first() == Some(&block.project)).expect("checked");
            p.inputs.resize(p.inputs.len().max(3), None);
            p.inputs[2] = Some(bias.clone());
        }
    }
    Ok(g)
}

/// One model at every width of its plan, switching per request without reloading: each
/// width is prepared on its first use (cut from the same weights in memory, then fused and
/// prepacked like any model) and kept for the next request.
/// Memory: the unprepared weights stay (they are what narrower widths are cut from), plus
/// each prepared width that has run.
pub struct WidthSessions {
    base: Graph,
    plan: WidthPlan,
    /// Index 0 is the full width, `i + 1` the plan's width `i`.
    sessions: Vec<Option<crate::Session>>,
}

impl WidthSessions {
    pub fn new(base: Graph, plan: WidthPlan) -> Result<WidthSessions> {
        plan.check(&base)?;
        let sessions = (0..=plan.widths.len()).map(|_| None).collect();
        Ok(WidthSessions { base, plan, sessions })
    }

    pub fn plan(&self) -> &WidthPlan {
        &self.plan
    }

    /// The session for the width nearest to `fraction` (>= 1: full) and that width.
    pub fn session(&mut self, fraction: f32) -> Result<(&crate::Session, f32)> {
        let (slot, width) = match self.plan.pick(fraction) {
            None => (0, 1.0),
            Some(i) => (i + 1, self.plan.widths[i].fraction),
        };
        if self.sessions[slot].is_none() {
            let g = if slot == 0 { self.base.clone() } else { narrow(&self.base, &self.plan, slot - 1)? };
            self.sessions[slot] = Some(crate::Session::new(crate::passes::prepare_for_inference(g)?.0));
        }
        Ok((self.sessions[slot].as_ref().expect("built above"), width))
    }
}

/// The first `keep` entries of `t` along `axis`, any dtype.
pub fn prefix(t: &Tensor, axis: usize, keep: usize) -> Result<Tensor> {
    let shape = t.shape();
    if axis >= shape.len() || keep > shape[axis] {
        return Err(Error::Input(format!("cannot keep {keep} entries of axis {axis} of a tensor of shape {shape:?}")));
    }
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product::<usize>() * t.dtype().size();
    let (dim, src) = (shape[axis], t.bytes());
    let mut new_shape = shape.to_vec();
    new_shape[axis] = keep;
    let mut out = Tensor::zeros(t.dtype(), new_shape)?;
    let dst = out.bytes_mut();
    for o in 0..outer {
        dst[o * keep * inner..(o + 1) * keep * inner].copy_from_slice(&src[o * dim * inner..][..keep * inner]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_cuts_any_axis() {
        let t = Tensor::from_f32(vec![2, 3, 2], (0..12).map(|i| i as f32).collect()).unwrap();
        assert_eq!(prefix(&t, 0, 1).unwrap().f32s().unwrap(), &[0., 1., 2., 3., 4., 5.]);
        assert_eq!(prefix(&t, 1, 2).unwrap().f32s().unwrap(), &[0., 1., 2., 3., 6., 7., 8., 9.]);
        assert_eq!(prefix(&t, 2, 1).unwrap().f32s().unwrap(), &[0., 2., 4., 6., 8., 10.]);
        assert!(prefix(&t, 1, 4).is_err());
        assert!(prefix(&t, 3, 1).is_err());
    }

    #[test]
    fn pick_takes_the_nearest_width() {
        let w = |fraction| Width { fraction, macs: 0, keep: vec![], bias: vec![] };
        let plan = WidthPlan { blocks: vec![], widths: vec![w(0.9), w(0.75), w(0.6)] };
        assert_eq!(plan.pick(1.0), None);
        assert_eq!(plan.pick(0.8), Some(1));
        assert_eq!(plan.pick(0.1), Some(2));
        assert_eq!(plan.pick(0.92), Some(0));
    }
}
