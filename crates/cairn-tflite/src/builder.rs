//! The graph under construction: TFLite tensors become named Cairn values in a chosen
//! layout, quantized tensors are read through `DequantizeLinear` and written through
//! `QuantizeLinear`, constants become initializers (transposed here, never at run time).

use crate::layout::{nchw_axis, Layout, TO_NCHW, TO_NHWC};
use crate::reader::{self, QParams, TensorInfo};
use crate::schema_generated::tflite;
use crate::{Error, Model, ModelMeta};
use cairn_core::{Attr, Attrs, DType, Dim, Graph, Node, NodeSpec, Registry, Tensor, TensorData, ValueInfo};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The ONNX opset whose operator semantics the importer writes (attribute vs input forms).
pub(crate) const OPSET: i64 = 17;

pub(crate) struct Builder {
    pub tensors: Vec<TensorInfo>,
    /// Layout of each tensor's primary value once defined (graph inputs: the file's).
    primary: Vec<Option<Layout>>,
    nodes: Vec<NodeSpec>,
    initializers: HashMap<String, Arc<Tensor>>,
    /// Values already emitted, so each conversion (transpose, dequantize) happens once.
    emitted: std::collections::HashSet<String>,
    counter: usize,
}

impl Builder {
    pub fn rank(&self, i: usize) -> usize {
        self.tensors[i].shape.len()
    }

    pub fn is_quantized(&self, i: usize) -> bool {
        let t = &self.tensors[i];
        t.quant.is_some() && matches!(t.dtype, DType::I8 | DType::U8 | DType::I32)
    }

    /// The layout an operator reading `i` would find it in without a conversion.
    pub fn layout_of(&self, i: usize) -> Layout {
        self.primary[i].unwrap_or(Layout::File)
    }

    fn name(&self, i: usize, layout: Layout, suffix: &str) -> String {
        let base = &self.tensors[i].name;
        match layout {
            Layout::Nchw if self.rank(i) == 4 => format!("{base}{suffix}#nchw"),
            _ => format!("{base}{suffix}"),
        }
    }

    pub fn temp(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}#{}", self.counter)
    }

    pub fn node(&mut self, op_type: &str, inputs: Vec<Option<String>>, outputs: Vec<String>, attrs: Attrs) {
        self.emitted.extend(outputs.iter().cloned());
        let name = outputs.first().cloned().unwrap_or_default();
        self.nodes.push(NodeSpec { name, domain: String::new(), op_type: op_type.to_string(), attrs, inputs, outputs });
    }

    /// A one-output node on existing values: returns the new value's name.
    pub fn apply(&mut self, op_type: &str, inputs: &[&str], attrs: Attrs) -> String {
        let out = self.temp(&inputs.first().map_or(op_type.to_string(), |s| format!("{s}:{op_type}")));
        self.node(op_type, inputs.iter().map(|s| Some(s.to_string())).collect(), vec![out.clone()], attrs);
        out
    }

    pub fn init(&mut self, hint: &str, t: Tensor) -> String {
        let name = self.temp(hint);
        self.initializers.insert(name.clone(), Arc::new(t));
        name
    }

    pub fn ints(&mut self, hint: &str, v: &[i64]) -> String {
        let t = Tensor::from_i64(vec![v.len()], v.to_vec()).expect("length matches");
        self.init(hint, t)
    }

    pub fn scalar(&mut self, hint: &str, v: f32) -> String {
        self.init(hint, Tensor::scalar_f32(v))
    }

    /// Tensor `i` as stored (integers stay integers) in `layout`.
    pub fn raw(&mut self, i: usize, layout: Layout) -> Result<String, Error> {
        let layout = if self.rank(i) == 4 { layout } else { Layout::File };
        let name = self.name(i, layout, "");
        if self.emitted.contains(&name) || self.initializers.contains_key(&name) {
            return Ok(name);
        }
        if let Some(c) = self.tensors[i].constant.clone() {
            let t = if layout == Layout::Nchw { permuted(&c, &TO_NCHW) } else { (*c).clone() };
            self.initializers.insert(name.clone(), Arc::new(t));
            return Ok(name);
        }
        let Some(have) = self.primary[i] else {
            return Err(Error::Model(format!(
                "tensor {i} ('{}') is read before any operator writes it (the file's operators are not in order, or it is corrupt)",
                self.tensors[i].name
            )));
        };
        let src = self.name(i, have, "");
        let perm = if layout == Layout::Nchw { TO_NCHW } else { TO_NHWC };
        self.node("Transpose", vec![Some(src)], vec![name.clone()], attrs([("perm", ints_attr(&perm))]));
        Ok(name)
    }

    /// Tensor `i` as real values in `layout`: quantized tensors through `DequantizeLinear`.
    pub fn real(&mut self, i: usize, layout: Layout) -> Result<String, Error> {
        let raw = self.raw(i, layout)?;
        if !self.is_quantized(i) {
            if self.tensors[i].dtype == DType::F16 {
                return Ok(self.apply("Cast", &[&raw], attrs([("to", Attr::Int(1))])));
            }
            return Ok(raw);
        }
        let layout = if self.rank(i) == 4 { layout } else { Layout::File };
        let name = self.name(i, layout, "#dq");
        if !self.emitted.contains(&name) {
            let q = self.tensors[i].quant.clone().expect("quantized");
            let axis = if layout == Layout::Nchw { nchw_axis(q.axis) } else { q.axis };
            let (scale, zero) = self.qparams(i, &q)?;
            self.node(
                "DequantizeLinear",
                vec![Some(raw), Some(scale), Some(zero)],
                vec![name.clone()],
                attrs([("axis", Attr::Int(axis as i64))]),
            );
        }
        Ok(name)
    }

    /// Scale and zero-point initializers of tensor `i` (zero points in its stored dtype).
    fn qparams(&mut self, i: usize, q: &QParams) -> Result<(String, String), Error> {
        let dtype = self.tensors[i].dtype;
        let n = q.scale.len();
        let shape = if n == 1 { vec![] } else { vec![n] };
        let zeros: Vec<i64> = if q.zero.is_empty() { vec![0; n] } else { q.zero.clone() };
        let (lo, hi) = match dtype {
            DType::I8 => (-128, 127),
            DType::U8 => (0, 255),
            _ => (i32::MIN as i64, i32::MAX as i64),
        };
        if let Some(z) = zeros.iter().find(|z| !(lo..=hi).contains(*z)) {
            return Err(Error::Tensor {
                index: i,
                name: self.tensors[i].name.clone(),
                detail: format!("zero point {z} is outside {dtype}"),
            });
        }
        let zdata = match dtype {
            DType::I8 => TensorData::I8(zeros.iter().map(|&z| z as i8).collect()),
            DType::U8 => TensorData::U8(zeros.iter().map(|&z| z as u8).collect()),
            _ => TensorData::I32(zeros.iter().map(|&z| z as i32).collect()),
        };
        let hint = self.tensors[i].name.clone();
        let scale = self.init(&format!("{hint}#scale"), Tensor::from_f32(shape.clone(), q.scale.clone())?);
        let zero = self.init(&format!("{hint}#zero"), Tensor::new(shape, zdata)?);
        Ok((scale, zero))
    }

    /// A constant operand (weights, bias) permuted by `perm` as real values: quantized
    /// weights stay 8-bit behind a `DequantizeLinear` whose axis follows the permutation,
    /// which is what the int8 passes look for.
    pub fn weight(&mut self, i: usize, perm: &[usize], what: &str) -> Result<String, Error> {
        let t = &self.tensors[i];
        let Some(c) = t.constant.clone() else {
            return Err(Error::Tensor {
                index: i,
                name: t.name.clone(),
                detail: format!("the {what} must be constant (stored in the file)"),
            });
        };
        if c.rank() != perm.len() {
            return Err(Error::Tensor {
                index: i,
                name: t.name.clone(),
                detail: format!("the {what} has shape {:?}, expected rank {}", c.shape(), perm.len()),
            });
        }
        let hint = t.name.clone();
        let data = permuted(&c, perm);
        if !self.is_quantized(i) {
            let data = if data.dtype() == DType::F16 { to_f32(&data)? } else { data };
            return Ok(self.init(&hint, data));
        }
        let q = self.tensors[i].quant.clone().expect("quantized");
        let axis = perm.iter().position(|&p| p == q.axis).unwrap_or(0);
        let (scale, zero) = self.qparams(i, &q)?;
        let stored = self.init(&hint, data);
        let out = self.temp(&format!("{hint}#dq"));
        self.node(
            "DequantizeLinear",
            vec![Some(stored), Some(scale), Some(zero)],
            vec![out.clone()],
            attrs([("axis", Attr::Int(axis as i64))]),
        );
        Ok(out)
    }

    /// The name an operator writes tensor `i`'s real value to; [`Builder::finish`] then
    /// quantizes it when the file stores `i` quantized.
    pub fn out(&mut self, i: usize, layout: Layout) -> String {
        if self.is_quantized(i) {
            self.temp(&format!("{}#real", self.tensors[i].name))
        } else {
            self.name(i, layout, "")
        }
    }

    /// Records that `real` (named by [`Builder::out`]) holds tensor `i` in `layout`.
    pub fn finish(&mut self, i: usize, layout: Layout, real: String) -> Result<(), Error> {
        let layout = if self.rank(i) == 4 { layout } else { Layout::File };
        if self.is_quantized(i) {
            let name = self.name(i, layout, "");
            self.quantize_into(i, real, name)?;
        } else if self.tensors[i].dtype == DType::F16 {
            return Err(Error::Tensor {
                index: i,
                name: self.tensors[i].name.clone(),
                detail: "float16 activations are not supported (only float16 weights)".into(),
            });
        } else {
            let name = self.name(i, layout, "");
            if real != name {
                self.node("Identity", vec![Some(real)], vec![name], Attrs::new());
            }
        }
        self.primary[i] = Some(layout);
        Ok(())
    }

    /// `real` quantized with tensor `i`'s (per-tensor) parameters into a new value, for an
    /// operator that moves the stored bytes afterwards; returns the value's name.
    pub fn quantized(&mut self, i: usize, real: &str) -> Result<String, Error> {
        let name = self.temp(&format!("{}#q", self.tensors[i].name));
        self.quantize_into(i, real.to_string(), name.clone())?;
        Ok(name)
    }

    fn quantize_into(&mut self, i: usize, real: String, name: String) -> Result<(), Error> {
        let q = self.tensors[i].quant.clone().expect("quantized");
        if q.scale.len() != 1 {
            return Err(Error::Tensor {
                index: i,
                name: self.tensors[i].name.clone(),
                detail: "per-channel quantization of an activation is not supported".into(),
            });
        }
        let (scale, zero) = self.qparams(i, &q)?;
        self.node("QuantizeLinear", vec![Some(real), Some(scale), Some(zero)], vec![name], Attrs::new());
        Ok(())
    }

    /// Whether `a` and `b` are stored alike (dtype and quantization), so data movement
    /// (reshape, transpose, slice, concat) can copy stored values without dequantizing.
    pub fn stored_alike(&self, a: usize, b: usize) -> bool {
        let (ta, tb) = (&self.tensors[a], &self.tensors[b]);
        ta.dtype == tb.dtype && ta.quant == tb.quant && ta.dtype != DType::F16
    }

    /// The name to write tensor `i`'s stored value to in `layout`, recording it as defined.
    pub fn define_raw(&mut self, i: usize, layout: Layout) -> String {
        let layout = if self.rank(i) == 4 { layout } else { Layout::File };
        self.primary[i] = Some(layout);
        self.name(i, layout, "")
    }

    /// Makes tensor `i` a compile-time constant (DEQUANTIZE of stored weights, shape arithmetic).
    pub fn set_constant(&mut self, i: usize, t: Tensor) {
        self.tensors[i].quant = None;
        self.tensors[i].dtype = t.dtype();
        self.tensors[i].constant = Some(Arc::new(t));
    }
}

/// `BTreeMap` of attributes from pairs.
pub(crate) fn attrs<const N: usize>(pairs: [(&str, Attr); N]) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

pub(crate) fn ints_attr(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// A float16 or float32 tensor as float32.
pub(crate) fn to_f32(t: &Tensor) -> Result<Tensor, Error> {
    Ok(Tensor::from_f32(t.shape().to_vec(), t.view().to_f32_vec())?)
}

/// `out[j...] = t[perm applied]`: the data of `Transpose(t, perm)`, any dtype.
pub(crate) fn permuted(t: &Tensor, perm: &[usize]) -> Tensor {
    let shape = t.shape();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return t.clone();
    }
    let rank = shape.len();
    let new_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let src_strides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let size = t.dtype().size();
    let bytes = t.bytes();
    let mut out = vec![0u8; bytes.len()];
    let mut idx = vec![0usize; rank];
    for chunk in out.chunks_exact_mut(size) {
        let off: usize = idx.iter().zip(&src_strides).map(|(i, s)| i * s).sum::<usize>() * size;
        chunk.copy_from_slice(&bytes[off..off + size]);
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < new_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Tensor::new(new_shape, reader::tensor_data(&out, t.dtype())).expect("same element count")
}

/// The whole import: subgraph 0 becomes the graph.
pub(crate) fn import(model: tflite::Model) -> Result<Model, Error> {
    let subgraphs = model.subgraphs().ok_or_else(|| Error::Model("the model has no subgraphs".into()))?;
    let sg = subgraphs.get(0);
    let mut tensors = reader::tensors(&model, &sg)?;
    let n = tensors.len();
    // The graph's own inputs and outputs keep the file's dtypes; inner int8 activations
    // are carried as uint8 (see `unsigned`).
    let boundary: std::collections::HashSet<usize> =
        sg.inputs().iter().flatten().chain(sg.outputs().iter().flatten()).filter_map(|v| usize::try_from(v).ok()).collect();
    crate::unsigned::relabel(&mut tensors, &boundary);
    let index = |v: i32, what: &str| -> Result<usize, Error> {
        usize::try_from(v)
            .ok()
            .filter(|&v| v < n)
            .ok_or_else(|| Error::Model(format!("{what} refers to tensor {v}, but subgraph 0 has {n}")))
    };
    let codes: Vec<crate::ops::OpCode> = model.operator_codes().iter().flatten().map(|c| crate::ops::OpCode::of(&c)).collect();

    let mut b = Builder {
        tensors,
        primary: vec![None; n],
        nodes: Vec::new(),
        initializers: HashMap::new(),
        emitted: Default::default(),
        counter: 0,
    };
    let mut inputs = Vec::new();
    for v in sg.inputs().iter().flatten() {
        let i = index(v, "a graph input")?;
        let t = &b.tensors[i];
        if t.constant.is_some() {
            continue;
        }
        inputs.push(ValueInfo { name: t.name.clone(), dtype: t.dtype, dims: Some(t.shape.iter().map(|&d| Dim::Known(d)).collect()) });
        b.primary[i] = Some(Layout::File);
        b.emitted.insert(t.name.clone());
    }

    let mut op_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
    for (k, op) in sg.operators().iter().flatten().enumerate() {
        let code = usize::try_from(op.opcode_index()).ok().and_then(|c| codes.get(c)).ok_or_else(|| {
            Error::op(k, "?", format!("opcode index {} is outside the model's {} operator codes", op.opcode_index(), codes.len()))
        })?;
        *op_counts.entry(code.name()).or_insert(0) += 1;
        let ins: Vec<Option<usize>> = op
            .inputs()
            .iter()
            .flatten()
            .map(|v| if v < 0 { Ok(None) } else { index(v, &format!("operator {k}")).map(Some) })
            .collect::<Result<_, _>>()?;
        let outs: Vec<usize> = op.outputs().iter().flatten().map(|v| index(v, &format!("operator {k}"))).collect::<Result<_, _>>()?;
        let call = crate::ops::Call { index: k, code, op: &op, inputs: &ins, outputs: &outs };
        match crate::ops::import(&mut b, &call) {
            Ok(()) => {}
            Err(crate::ops::OpError::Unsupported(what)) => {
                *unsupported.entry(what).or_insert(0) += 1;
                // Let later operators read its outputs, so the error lists every unsupported op.
                for &o in &outs {
                    b.primary[o].get_or_insert(Layout::File);
                }
            }
            Err(crate::ops::OpError::Invalid(e)) => return Err(e),
        }
    }
    if !unsupported.is_empty() {
        let list = unsupported.iter().map(|(op, n)| format!("{op} (x{n})")).collect::<Vec<_>>().join(", ");
        return Err(Error::UnsupportedOps { list });
    }

    let mut outputs = Vec::new();
    for v in sg.outputs().iter().flatten() {
        let i = index(v, "a graph output")?;
        let name = b.raw(i, Layout::File)?;
        let t = &b.tensors[i];
        outputs.push(ValueInfo { name, dtype: t.dtype, dims: Some(t.shape.iter().map(|&d| Dim::Known(d)).collect()) });
    }

    let registry = Registry::global();
    let mut nodes = Vec::with_capacity(b.nodes.len());
    for spec in std::mem::take(&mut b.nodes) {
        nodes.push(Node::build(spec, OPSET, registry)?);
    }
    let graph = Graph { inputs, outputs, initializers: b.initializers, nodes, opset: OPSET }.validated()?;
    let meta = ModelMeta {
        schema_version: model.version(),
        description: model.description().unwrap_or("").to_string(),
        op_counts: op_counts.into_iter().collect(),
    };
    Ok(Model { graph, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_matches_a_transpose() {
        // [1, 2, 2, 3] NHWC with values 0..12 to NCHW.
        let t = Tensor::from_f32(vec![1, 2, 2, 3], (0..12).map(|v| v as f32).collect()).unwrap();
        let p = permuted(&t, &TO_NCHW);
        assert_eq!(p.shape(), &[1, 3, 2, 2]);
        assert_eq!(p.f32s().unwrap(), &[0., 3., 6., 9., 1., 4., 7., 10., 2., 5., 8., 11.]);
        let back = permuted(&p, &TO_NHWC);
        assert_eq!(back.f32s().unwrap(), t.f32s().unwrap());
    }
}
