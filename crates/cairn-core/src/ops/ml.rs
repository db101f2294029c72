//! The numeric operators of the `ai.onnx.ml` domain: Binarizer, ArrayFeatureExtractor and
//! TreeEnsemble (opset 5, which also expresses the older regressor and classifier). Trees
//! are walked in f64 (exact for every input dtype); string-keyed operators stay out (no
//! string tensors: docs/adr/0013).

use super::cast::convert;
use crate::{bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub const ML_DOMAIN: &str = "ai.onnx.ml";

pub fn register(r: &mut Registry) {
    r.register_in(ML_DOMAIN, "Binarizer", |ctx| Ok(Box::new(Binarizer { threshold: ctx.float("threshold", 0.0)? as f64 })));
    r.register_in(ML_DOMAIN, "ArrayFeatureExtractor", |_| Ok(Box::new(ArrayFeatureExtractor)));
    r.register_in(ML_DOMAIN, "TreeEnsemble", |ctx| Ok(Box::new(TreeEnsemble::build(ctx)?)));
}

/// `x > threshold ? 1 : 0`, in X's dtype.
#[derive(Debug)]
struct Binarizer {
    threshold: f64,
}

impl Op for Binarizer {
    fn op_type(&self) -> &str {
        "Binarizer"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Binarizer")?;
        if !(x.dtype.is_float() || x.dtype.is_integer()) {
            bail_shape!("Binarizer", "is defined for numeric inputs, got {}", x.dtype);
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Binarizer")?.to_f64_vec();
        let y: Vec<f64> = x.iter().map(|&v| (v > self.threshold) as u8 as f64).collect();
        convert(crate::DataRef::F64(&y), &mut outputs[0].data)
    }
}

/// Gathers the given indices of X's last axis (a 1-D X counts as one row).
#[derive(Debug)]
struct ArrayFeatureExtractor;

impl Op for ArrayFeatureExtractor {
    fn op_type(&self) -> &str {
        "ArrayFeatureExtractor"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (x, y) = (required(inputs, 0, "ArrayFeatureExtractor")?, required(inputs, 1, "ArrayFeatureExtractor")?);
        if x.rank() == 0 || y.dtype != DType::I64 {
            bail_shape!("ArrayFeatureExtractor", "needs X of rank >= 1 and int64 indices, got {:?} and {}", x.shape, y.dtype);
        }
        let mut shape = if x.rank() == 1 { vec![1] } else { x.shape[..x.rank() - 1].to_vec() };
        shape.push(y.numel());
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (x, y) = (required(inputs, 0, "ArrayFeatureExtractor")?, required(inputs, 1, "ArrayFeatureExtractor")?);
        let width = x.shape[x.rank() - 1];
        let picks = y.to_i64_vec()?;
        if let Some(bad) = picks.iter().find(|&&i| i < 0 || i as usize >= width) {
            bail_shape!("ArrayFeatureExtractor", "index {bad} is outside the last axis of {width}");
        }
        crate::with_same_dtype!(x.data, &mut outputs[0].data, |src, dst| {
            for (row, out) in src.chunks(width.max(1)).zip(dst.chunks_mut(picks.len().max(1))) {
                for (o, &i) in out.iter_mut().zip(&picks) {
                    *o = row[i as usize];
                }
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Member,
}

/// Where a branch goes: another interior node or a leaf.
#[derive(Clone, Copy, Debug)]
enum Next {
    Node(usize),
    Leaf(usize),
}

#[derive(Debug)]
struct Node {
    mode: Mode,
    feature: usize,
    split: f64,
    /// Members of a `Member` node's set.
    members: Vec<f64>,
    missing_true: bool,
    yes: Next,
    no: Next,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Aggregate {
    Average,
    Sum,
    Min,
    Max,
}

#[derive(Debug)]
struct TreeEnsemble {
    nodes: Vec<Node>,
    roots: Vec<Next>,
    leaf_weights: Vec<f64>,
    leaf_targets: Vec<usize>,
    targets: usize,
    aggregate: Aggregate,
}

impl TreeEnsemble {
    fn build(ctx: &OpContext) -> Result<TreeEnsemble> {
        let invalid = |attr: &str, detail: String| Error::InvalidAttr { attr: attr.into(), detail };
        let ints = |name: &str| ctx.ints_opt(name)?.ok_or_else(|| invalid(name, "required".into()));
        let floats = |name: &str| -> Result<Option<Vec<f64>>> { Ok(ctx.tensor_opt(name)?.map(|t| t.view().to_f64_vec())) };
        if ctx.int("post_transform", 0)? != 0 {
            return Err(ctx.unsupported("post_transform", "only 0 (none) is implemented"));
        }
        ctx.ignore("nodes_hitrates");
        let aggregate = match ctx.int("aggregate_function", 1)? {
            0 => Aggregate::Average,
            1 => Aggregate::Sum,
            2 => Aggregate::Min,
            3 => Aggregate::Max,
            other => return Err(ctx.unsupported("aggregate_function", format!("{other} is not 0..=3"))),
        };
        let (features, true_ids, false_ids) = (ints("nodes_featureids")?, ints("nodes_truenodeids")?, ints("nodes_falsenodeids")?);
        let (true_leafs, false_leafs, roots) = (ints("nodes_trueleafs")?, ints("nodes_falseleafs")?, ints("tree_roots")?);
        let leaf_targets = ints("leaf_targetids")?;
        let splits = floats("nodes_splits")?.ok_or_else(|| invalid("nodes_splits", "required".into()))?;
        let modes = floats("nodes_modes")?.ok_or_else(|| invalid("nodes_modes", "required".into()))?;
        let leaf_weights = floats("leaf_weights")?.ok_or_else(|| invalid("leaf_weights", "required".into()))?;
        let missing = ctx.ints_opt("nodes_missing_value_tracks_true")?;
        let membership = floats("membership_values")?.unwrap_or_default();
        let n = splits.len();
        let same =
            [features.len(), true_ids.len(), false_ids.len(), true_leafs.len(), false_leafs.len(), modes.len()].iter().all(|&l| l == n)
                && missing.as_ref().is_none_or(|m| m.len() == n);
        if !same || leaf_targets.len() != leaf_weights.len() {
            return Err(invalid("nodes_splits", "the nodes_* attributes, and the leaf_* attributes, must have one length each".into()));
        }
        let targets = usize::try_from(ctx.int("n_targets", 1)?).map_err(|_| invalid("n_targets", "must not be negative".into()))?;
        let leaf_targets: Vec<usize> = leaf_targets
            .iter()
            .map(|&t| usize::try_from(t).ok().filter(|&t| t < targets))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("leaf_targetids", format!("targets must be in 0..{targets}")))?;
        let next = |id: i64, leaf: bool| -> Result<Next> {
            let i = usize::try_from(id).map_err(|_| invalid("nodes_truenodeids", format!("{id} is negative")))?;
            match leaf {
                true if i < leaf_weights.len() => Ok(Next::Leaf(i)),
                false if i < n => Ok(Next::Node(i)),
                _ => Err(invalid("nodes_truenodeids", format!("{id} is out of range"))),
            }
        };
        // Set members come in node order, each set ended by a NaN.
        let mut sets = membership.split(|v| v.is_nan());
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let mode = match modes[i] as i64 {
                0 => Mode::Leq,
                1 => Mode::Lt,
                2 => Mode::Gte,
                3 => Mode::Gt,
                4 => Mode::Eq,
                5 => Mode::Neq,
                6 => Mode::Member,
                other => return Err(ctx.unsupported("nodes_modes", format!("{other} is not a node mode"))),
            };
            let members = if mode == Mode::Member {
                sets.next().ok_or_else(|| invalid("membership_values", "has fewer sets than set-membership nodes".into()))?.to_vec()
            } else {
                Vec::new()
            };
            nodes.push(Node {
                mode,
                feature: usize::try_from(features[i]).map_err(|_| invalid("nodes_featureids", "must not be negative".into()))?,
                split: splits[i],
                members,
                missing_true: missing.as_ref().is_some_and(|m| m[i] != 0),
                yes: next(true_ids[i], true_leafs[i] != 0)?,
                no: next(false_ids[i], false_leafs[i] != 0)?,
            });
        }
        // A root whose both branches are the same leaf is that leaf (onnx's reference).
        let roots = roots
            .iter()
            .map(|&r| {
                let i = usize::try_from(r).ok().filter(|&i| i < n).ok_or_else(|| invalid("tree_roots", format!("{r} is not a node")))?;
                let leaf = true_leafs[i] != 0 && false_leafs[i] != 0 && true_ids[i] == false_ids[i];
                if leaf {
                    next(i as i64, true)
                } else {
                    Ok(Next::Node(i))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TreeEnsemble { nodes, roots, leaf_weights, leaf_targets, targets, aggregate })
    }

    /// The leaf a row reaches from `root`; a cycle in the node table is an error, not a hang.
    fn walk(&self, row: &[f64], root: Next) -> Result<usize> {
        let mut at = root;
        for _ in 0..=self.nodes.len() {
            let i = match at {
                Next::Leaf(l) => return Ok(l),
                Next::Node(i) => i,
            };
            let node = &self.nodes[i];
            let x = *row
                .get(node.feature)
                .ok_or_else(|| Error::shape("TreeEnsemble", format!("feature {} is outside X's {} columns", node.feature, row.len())))?;
            let hit = (node.missing_true && x.is_nan())
                || match node.mode {
                    Mode::Leq => x <= node.split,
                    Mode::Lt => x < node.split,
                    Mode::Gte => x >= node.split,
                    Mode::Gt => x > node.split,
                    Mode::Eq => x == node.split,
                    Mode::Neq => x != node.split,
                    Mode::Member => node.members.contains(&x),
                };
            at = if hit { node.yes } else { node.no };
        }
        Err(Error::shape("TreeEnsemble", "the nodes form a cycle"))
    }
}

impl Op for TreeEnsemble {
    fn op_type(&self) -> &str {
        "TreeEnsemble"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "TreeEnsemble")?;
        if !x.dtype.is_float() || x.rank() != 2 {
            bail_shape!("TreeEnsemble", "X must be a float [N, F] tensor, got {} {:?}", x.dtype, x.shape);
        }
        Ok(vec![Fact::new(x.dtype, vec![x.shape[0], self.targets])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "TreeEnsemble")?;
        let features = x.shape[1];
        let xs = x.to_f64_vec();
        let init = match self.aggregate {
            Aggregate::Min => f64::MAX,
            Aggregate::Max => f64::MIN,
            _ => 0.0,
        };
        let mut y = vec![init; x.shape[0] * self.targets];
        let trees = self.roots.len().max(1) as f64;
        for (row, out) in xs.chunks(features.max(1)).zip(y.chunks_mut(self.targets.max(1))) {
            for &root in &self.roots {
                let leaf = self.walk(row, root)?;
                let (w, t) = (self.leaf_weights[leaf], self.leaf_targets[leaf]);
                let o = &mut out[t];
                *o = match self.aggregate {
                    Aggregate::Sum => *o + w,
                    Aggregate::Average => *o + w / trees,
                    Aggregate::Min => o.min(w),
                    Aggregate::Max => o.max(w),
                };
            }
        }
        convert(crate::DataRef::F64(&y), &mut outputs[0].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attr, Attrs, Tensor};
    use std::sync::Arc;

    fn tree(true_ids: Vec<i64>, true_leafs: Vec<i64>) -> Result<Box<dyn Op>> {
        // Node 0: x[0] <= 1 ? leaf 0 (weight 5, target 0) : leaf 1 (weight 7, target 1).
        let mut a = Attrs::new();
        let tensor = |v: Vec<f32>| Attr::Tensor(Tensor::from_f32(vec![v.len()], v).unwrap());
        a.insert("nodes_splits".into(), tensor(vec![1.0]));
        a.insert("nodes_modes".into(), tensor(vec![0.0]));
        a.insert("nodes_featureids".into(), Attr::Ints(vec![0]));
        a.insert("nodes_truenodeids".into(), Attr::Ints(true_ids));
        a.insert("nodes_trueleafs".into(), Attr::Ints(true_leafs));
        a.insert("nodes_falsenodeids".into(), Attr::Ints(vec![1]));
        a.insert("nodes_falseleafs".into(), Attr::Ints(vec![1]));
        a.insert("leaf_weights".into(), tensor(vec![5.0, 7.0]));
        a.insert("leaf_targetids".into(), Attr::Ints(vec![0, 1]));
        a.insert("tree_roots".into(), Attr::Ints(vec![0]));
        a.insert("n_targets".into(), Attr::Int(2));
        TreeEnsemble::build(&OpContext::new("TreeEnsemble", 5, &a, 1, 1)).map(|t| Box::new(t) as Box<dyn Op>)
    }

    #[test]
    fn rows_reach_their_leaves() {
        let op = tree(vec![0], vec![1]).unwrap();
        let x = Tensor::from_f32(vec![2, 1], vec![0.5, 3.0]).unwrap();
        let out = crate::plan::run_owned(op.as_ref(), &[Some(Arc::new(x))]).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[5., 0., 0., 7.]);
    }

    #[test]
    fn a_cycle_is_an_error_not_a_hang() {
        // The true branch of node 0 leads back to node 0.
        let op = tree(vec![0], vec![0]).unwrap();
        let x = Tensor::from_f32(vec![1, 1], vec![0.5]).unwrap();
        assert!(crate::plan::run_owned(op.as_ref(), &[Some(Arc::new(x))]).unwrap_err().to_string().contains("cycle"));
    }
}
