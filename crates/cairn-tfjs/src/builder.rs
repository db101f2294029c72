//! Emits Cairn IR nodes for both importers, and keeps TF.js's NHWC out of the kernels' way.
//!
//! TF.js is NHWC; Cairn's kernels are NCHW. Rather than a transpose around every layer,
//! each value remembers whether it is stored channels-first ([`Value::nchw`]): spatial ops
//! produce channels-first values, layout-neutral ops pass the flag on, and only an op that
//! depends on the element order (Flatten, Reshape, a graph output) asks for NHWC back,
//! which costs one Transpose, made once per value and shared by every reader.

use crate::Error;
use cairn_core::{Attr, Attrs, Dim, Graph, Node, NodeSpec, Registry, Tensor, TensorData, ValueInfo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// The ONNX opset of the nodes this crate emits.
pub const OPSET: i64 = 17;

/// NHWC → NCHW and back.
pub const TO_NCHW: [usize; 4] = [0, 3, 1, 2];
pub const TO_NHWC: [usize; 4] = [0, 2, 3, 1];

/// A value of the model being imported.
#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    /// Rank in TF.js's (logical) view, when known.
    pub rank: Option<usize>,
    /// Rank 4, logically NHWC, stored as NCHW.
    pub nchw: bool,
    /// The value itself when it is a constant (graph-model `Const`s), in TF.js layout.
    pub constant: Option<Arc<Tensor>>,
}

impl Value {
    pub fn plain(name: String, rank: Option<usize>) -> Value {
        Value { name, rank, nchw: false, constant: None }
    }
    fn channels_first(name: String) -> Value {
        Value { name, rank: Some(4), nchw: true, constant: None }
    }
}

/// TF's padding modes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Padding {
    Same,
    Valid,
    /// Explicit spatial pads: top, bottom, left, right.
    Explicit([i64; 4]),
}

impl Padding {
    pub fn parse(s: &str) -> Option<Padding> {
        match s.to_ascii_lowercase().as_str() {
            "same" => Some(Padding::Same),
            "valid" => Some(Padding::Valid),
            _ => None,
        }
    }
    fn to_attrs(self, attrs: &mut Attrs) {
        match self {
            Padding::Same => attrs.insert("auto_pad".into(), Attr::Str("SAME_UPPER".into())),
            Padding::Valid => attrs.insert("auto_pad".into(), Attr::Str("VALID".into())),
            Padding::Explicit([t, b, l, r]) => attrs.insert("pads".into(), Attr::Ints(vec![t, l, b, r])),
        };
    }
}

/// A 2-D convolution as TF describes it.
pub struct Conv2d<'a> {
    /// `[kh, kw, cin/groups, cout]`, or `[kh, kw, cin, multiplier]` when depthwise.
    pub kernel: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub strides: [i64; 2],
    pub dilations: [i64; 2],
    pub padding: Padding,
    pub depthwise: bool,
}

#[derive(Default)]
pub struct Builder {
    nodes: Vec<NodeSpec>,
    initializers: HashMap<String, Arc<Tensor>>,
    taken: HashSet<String>,
    layout_copies: HashMap<(String, bool), String>,
}

impl Builder {
    /// Names the model itself uses, so generated names never collide with a later one.
    pub fn reserve<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.taken.extend(names.into_iter().map(str::to_string));
    }

    /// `hint` if free, else `hint#1`, `hint#2`, ...
    pub fn fresh(&mut self, hint: &str) -> String {
        if self.taken.insert(hint.to_string()) {
            return hint.to_string();
        }
        (1..).map(|i| format!("{hint}#{i}")).find(|n| self.taken.insert(n.clone())).expect("an unused name")
    }

    pub fn constant(&mut self, hint: &str, t: Tensor) -> String {
        let name = self.fresh(hint);
        self.initializers.insert(name.clone(), Arc::new(t));
        name
    }

    pub fn ints(&mut self, hint: &str, v: &[i64]) -> String {
        self.constant(hint, Tensor::from_i64(vec![v.len()], v.to_vec()).expect("1-D shape matches"))
    }

    pub fn scalar(&mut self, hint: &str, v: f32) -> String {
        self.constant(hint, Tensor::scalar_f32(v))
    }

    /// Appends a node with one output named `out` (taken as is: callers pass TF names or fresh ones).
    pub fn node(&mut self, op_type: &str, out: &str, inputs: &[&str], attrs: Attrs) -> String {
        self.taken.insert(out.to_string());
        self.nodes.push(NodeSpec {
            name: out.to_string(),
            domain: String::new(),
            op_type: op_type.to_string(),
            attrs,
            inputs: inputs.iter().map(|i| (!i.is_empty()).then(|| i.to_string())).collect(),
            outputs: vec![out.to_string()],
        });
        out.to_string()
    }

    /// A node named after `hint` (made unique).
    pub fn op(&mut self, op_type: &str, hint: &str, inputs: &[&str], attrs: Attrs) -> String {
        let out = self.fresh(hint);
        self.node(op_type, &out, inputs, attrs)
    }

    /// The value stored channels-first (a Transpose, made once, when it is NHWC).
    pub fn nchw(&mut self, v: &Value) -> Result<String, Error> {
        if v.nchw {
            return Ok(v.name.clone());
        }
        if v.rank != Some(4) {
            return Err(Error::Model(format!("'{}' feeds a 2-D spatial op but is not 4-D (rank {:?})", v.name, v.rank)));
        }
        Ok(self.layout_copy(&v.name, true))
    }

    /// The value in TF.js's own layout (a Transpose, made once, when stored channels-first).
    pub fn nhwc(&mut self, v: &Value) -> String {
        if v.nchw {
            self.layout_copy(&v.name, false)
        } else {
            v.name.clone()
        }
    }

    fn layout_copy(&mut self, name: &str, to_nchw: bool) -> String {
        if let Some(done) = self.layout_copies.get(&(name.to_string(), to_nchw)) {
            return done.clone();
        }
        let perm = if to_nchw { TO_NCHW } else { TO_NHWC };
        let out = self.op("Transpose", &format!("{name}/{}", if to_nchw { "nchw" } else { "nhwc" }), &[name], perm_attr(&perm));
        self.layout_copies.insert((name.to_string(), to_nchw), out.clone());
        out
    }

    /// Renames a value everywhere it appears (so a graph output can take its TF name).
    fn rename(&mut self, from: &str, to: &str) {
        for n in &mut self.nodes {
            for o in n.outputs.iter_mut().chain(n.inputs.iter_mut().flatten()) {
                if o == from {
                    *o = to.to_string();
                }
            }
            if n.name == from {
                n.name = to.to_string();
            }
        }
        for v in self.layout_copies.values_mut() {
            if v == from {
                *v = to.to_string();
            }
        }
        self.layout_copies = std::mem::take(&mut self.layout_copies)
            .into_iter()
            .map(|((k, d), v)| (if k == from { (to.to_string(), d) } else { (k, d) }, v))
            .collect();
    }

    /// A Conv (weights transposed to OIHW once, here) producing a channels-first value.
    pub fn conv2d(&mut self, out: &str, x: &Value, c: &Conv2d) -> Result<Value, Error> {
        let k = c.kernel.shape();
        if k.len() != 4 {
            return Err(Error::Model(format!("'{out}': a 2-D convolution kernel must be 4-D, got {k:?}")));
        }
        let (weight, group) = if c.depthwise {
            // [kh, kw, cin, m] → [cin*m, 1, kh, kw]: output channel c*m + j, as TF orders them.
            let w = permute(c.kernel, &[2, 3, 0, 1])?.reshaped(vec![k[2] * k[3], 1, k[0], k[1]])?;
            (w, k[2])
        } else {
            (permute(c.kernel, &[3, 2, 0, 1])?, 1)
        };
        let x_name = self.nchw(x)?;
        let mut attrs = Attrs::new();
        attrs.insert("strides".into(), Attr::Ints(c.strides.to_vec()));
        attrs.insert("dilations".into(), Attr::Ints(c.dilations.to_vec()));
        attrs.insert("kernel_shape".into(), Attr::Ints(vec![k[0] as i64, k[1] as i64]));
        if group > 1 {
            attrs.insert("group".into(), Attr::Int(group as i64));
        }
        c.padding.to_attrs(&mut attrs);
        let w = self.constant(&format!("{out}/weight"), weight);
        let mut inputs = vec![x_name.as_str(), w.as_str()];
        let b;
        if let Some(bias) = c.bias {
            b = self.constant(&format!("{out}/bias"), bias.clone().reshaped(vec![bias.len()])?);
            inputs.push(&b);
        }
        Ok(Value::channels_first(self.node("Conv", out, &inputs, attrs)))
    }

    /// Max or average pooling (TF averages over the window's valid part only).
    pub fn pool(&mut self, out: &str, x: &Value, max: bool, ksize: [i64; 2], strides: [i64; 2], padding: Padding) -> Result<Value, Error> {
        let x_name = self.nchw(x)?;
        let mut attrs = Attrs::new();
        attrs.insert("kernel_shape".into(), Attr::Ints(ksize.to_vec()));
        attrs.insert("strides".into(), Attr::Ints(strides.to_vec()));
        padding.to_attrs(&mut attrs);
        let op = if max { "MaxPool" } else { "AveragePool" };
        Ok(Value::channels_first(self.node(op, out, &[&x_name], attrs)))
    }

    /// `op` applied elementwise, keeping the layout (unary ops, or ones whose extra inputs are scalars).
    pub fn unary(&mut self, op_type: &str, out: &str, x: &Value, extra: &[&str], attrs: Attrs) -> Value {
        let mut inputs = vec![x.name.as_str()];
        inputs.extend_from_slice(extra);
        let name = self.node(op_type, out, &inputs, attrs);
        Value { name, rank: x.rank, nchw: x.nchw, constant: None }
    }

    /// A broadcasting binary op, on channels-first data where either side is.
    pub fn binary(&mut self, op_type: &str, out: &str, a: &Value, b: &Value) -> Result<Value, Error> {
        let rank = match (a.rank, b.rank) {
            (Some(x), Some(y)) => Some(x.max(y)),
            _ => None,
        };
        if a.nchw || b.nchw {
            let side = |me: &mut Builder, v: &Value| -> Result<Option<String>, Error> {
                if v.nchw {
                    return Ok(Some(v.name.clone()));
                }
                match (&v.constant, v.rank) {
                    (Some(t), _) if t.rank() <= 4 => {
                        let cf = channels_first_constant(t)?;
                        Ok(Some(me.constant(&format!("{}/nchw", v.name), cf)))
                    }
                    (_, Some(4)) => Ok(Some(me.nchw(v)?)),
                    _ => Ok(None),
                }
            };
            if let (Some(x), Some(y)) = (side(self, a)?, side(self, b)?) {
                return Ok(Value::channels_first(self.node(op_type, out, &[&x, &y], Attrs::new())));
            }
        }
        let (x, y) = (self.nhwc(a), self.nhwc(b));
        Ok(Value::plain(self.node(op_type, out, &[&x, &y], Attrs::new()), rank))
    }

    /// Any other op: its inputs in TF.js layout, its output plain.
    pub fn plain_op(&mut self, op_type: &str, out: &str, inputs: &[&Value], attrs: Attrs, rank: Option<usize>) -> Value {
        let names: Vec<String> = inputs.iter().map(|v| self.nhwc(v)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Value::plain(self.node(op_type, out, &refs, attrs), rank)
    }

    /// Maps a TF axis of a rank-`rank` value to where it lives in the stored tensor.
    pub fn stored_axis(v: &Value, axis: i64) -> Result<i64, Error> {
        let rank = v.rank.ok_or_else(|| Error::Model(format!("the rank of '{}' is unknown", v.name)))? as i64;
        let a = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&a) {
            return Err(Error::Model(format!("axis {axis} is out of range for '{}' of rank {rank}", v.name)));
        }
        Ok(if v.nchw { [0, 2, 3, 1][a as usize] } else { a })
    }

    /// Builds every node through the registry, listing all unsupported ops at once, and validates.
    pub fn finish(mut self, inputs: Vec<ValueInfo>, outputs: Vec<(String, Value)>) -> Result<Graph, Error> {
        let mut output_infos = Vec::with_capacity(outputs.len());
        for (name, v) in outputs {
            let stored = self.nhwc(&v);
            if stored != name {
                if inputs.iter().any(|i| i.name == name) {
                    return Err(Error::Model(format!("output '{name}' is also a model input")));
                }
                // The TF name is held by the channels-first value: that one takes another name.
                if self.nodes.iter().any(|n| n.outputs.contains(&name)) {
                    let internal = self.fresh(&format!("{name}/nchw"));
                    self.rename(&name, &internal);
                }
                self.node("Identity", &name, &[&stored], Attrs::new());
            }
            output_infos.push(ValueInfo { name, dtype: cairn_core::DType::F32, dims: None });
        }
        // Constants only some attribute was read from (axes, shapes) are not graph data.
        let read: HashSet<&str> = self.nodes.iter().flat_map(|n| n.inputs.iter().flatten().map(String::as_str)).collect();
        let outs: HashSet<&str> = output_infos.iter().map(|o| o.name.as_str()).collect();
        self.initializers.retain(|k, _| read.contains(k.as_str()) || outs.contains(k.as_str()));
        let registry = Registry::global();
        let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for spec in self.nodes {
            let op_type = spec.op_type.clone();
            match Node::build(spec, OPSET, registry) {
                Ok(n) => nodes.push(n),
                Err(cairn_core::Error::UnsupportedOp { .. }) => *unsupported.entry(op_type).or_insert(0) += 1,
                Err(e) => return Err(e.into()),
            }
        }
        if !unsupported.is_empty() {
            let list = unsupported.iter().map(|(op, n)| format!("{op} (x{n})")).collect::<Vec<_>>().join(", ");
            return Err(Error::Unsupported { kind: "Cairn operators (a missing engine op, not a TF.js one)", list });
        }
        let graph = Graph { inputs, outputs: output_infos, initializers: self.initializers, nodes, opset: OPSET };
        Ok(graph.validated()?)
    }
}

/// A graph input's declared dims: unknown sizes become named symbols.
pub fn input_dims(name: &str, shape: &[Option<usize>]) -> Vec<Dim> {
    shape
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Some(n) => Dim::Known(*n),
            None if i == 0 => Dim::Sym("batch".into()),
            None => Dim::Sym(format!("{name}_dim{i}")),
        })
        .collect()
}

pub fn perm_attr(perm: &[usize]) -> Attrs {
    let mut attrs = Attrs::new();
    attrs.insert("perm".into(), Attr::Ints(perm.iter().map(|&p| p as i64).collect()));
    attrs
}

/// A constant that broadcasts against a logical-NHWC rank-4 value, rearranged to broadcast
/// against the channels-first copy: left-padded to rank 4, then permuted like the data.
pub fn channels_first_constant(t: &Tensor) -> Result<Tensor, Error> {
    let mut shape = vec![1usize; 4 - t.rank()];
    shape.extend_from_slice(t.shape());
    let t4 = t.clone().reshaped(shape)?;
    permute(&t4, &TO_NCHW)
}

/// Transposes a tensor's data (weights at import; never at run time).
pub fn permute(t: &Tensor, perm: &[usize]) -> Result<Tensor, Error> {
    let shape = t.shape();
    if perm.len() != shape.len() {
        return Err(Error::Model(format!("cannot permute a rank-{} tensor with {perm:?}", shape.len())));
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut in_strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let gather = |n: usize| -> Vec<usize> {
        let mut idx = Vec::with_capacity(n);
        let mut counter = vec![0usize; out_shape.len()];
        for _ in 0..n {
            idx.push(counter.iter().zip(&strides).map(|(c, s)| c * s).sum());
            for d in (0..counter.len()).rev() {
                counter[d] += 1;
                if counter[d] < out_shape[d] {
                    break;
                }
                counter[d] = 0;
            }
        }
        idx
    };
    let idx = gather(t.len());
    let data = match t.data() {
        TensorData::F32(v) => TensorData::F32(idx.iter().map(|&i| v[i]).collect()),
        TensorData::I32(v) => TensorData::I32(idx.iter().map(|&i| v[i]).collect()),
        TensorData::I64(v) => TensorData::I64(idx.iter().map(|&i| v[i]).collect()),
        TensorData::Bool(v) => TensorData::Bool(idx.iter().map(|&i| v[i]).collect()),
        other => return Err(Error::Model(format!("cannot rearrange a {:?} constant", other.dtype()))),
    };
    Ok(Tensor::new(out_shape, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_channels_first() {
        // NHWC [1, 1, 2, 3] with values c + 10 w.
        let t = Tensor::from_f32(vec![1, 1, 2, 3], vec![0., 1., 2., 10., 11., 12.]).unwrap();
        let p = permute(&t, &TO_NCHW).unwrap();
        assert_eq!(p.shape(), &[1, 3, 1, 2]);
        assert_eq!(p.view().to_f32_vec(), vec![0., 10., 1., 11., 2., 12.]);
    }

    #[test]
    fn a_per_channel_constant_broadcasts_over_the_channel_axis_once_channels_first() {
        let t = Tensor::from_f32(vec![3], vec![1., 2., 3.]).unwrap();
        assert_eq!(channels_first_constant(&t).unwrap().shape(), &[1, 3, 1, 1]);
    }
}
