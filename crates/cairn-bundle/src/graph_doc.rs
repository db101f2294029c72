//! The graph in JSON: nodes with their attributes, and declared dims.
//!
//! The manifest stores the standard-operator graph (before fusion and weight
//! prepacking, which depend on the machine that loads it), so any loader rebuilds
//! the same ops through the registry and prepares them for its own kernels.

use crate::error::{manifest_err, Result};
use crate::manifest::{parse_dtype, InputDoc, Manifest, OutputDoc};
use base64::Engine as _;
use cairn_core::{Attr, Attrs, Dim, Graph, Node, NodeSpec, Registry, Tensor, TensorData, ValueInfo};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A dim: a number, or the name of a symbolic dim.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DimDoc {
    Known(usize),
    Sym(String),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeDoc {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub op: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, AttrDoc>,
    /// `null` marks an omitted optional input.
    pub inputs: Vec<Option<String>>,
    pub outputs: Vec<String>,
}

/// An attribute value, tagged by kind: `{"int": 1}`, `{"floats": [0.5]}`, ...
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum AttrDoc {
    Int(i64),
    Float(FloatDoc),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<FloatDoc>),
    Strs(Vec<String>),
    Tensor(TensorDoc),
}

impl AttrDoc {
    pub(crate) fn shrink_to_fit(&mut self) {
        match self {
            AttrDoc::Ints(v) => v.shrink_to_fit(),
            AttrDoc::Floats(v) => v.shrink_to_fit(),
            AttrDoc::Strs(v) => v.shrink_to_fit(),
            _ => {}
        }
    }
}

/// JSON has no NaN or infinities; those are written as strings ("inf", "-inf", "nan").
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum FloatDoc {
    Num(f32),
    Text(NonFinite),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum NonFinite {
    #[serde(rename = "inf")]
    Inf,
    #[serde(rename = "-inf")]
    NegInf,
    #[serde(rename = "nan")]
    NaN,
}

impl From<f32> for FloatDoc {
    fn from(v: f32) -> FloatDoc {
        match v {
            v if v.is_finite() => FloatDoc::Num(v),
            v if v.is_nan() => FloatDoc::Text(NonFinite::NaN),
            v if v > 0.0 => FloatDoc::Text(NonFinite::Inf),
            _ => FloatDoc::Text(NonFinite::NegInf),
        }
    }
}

impl From<FloatDoc> for f32 {
    fn from(v: FloatDoc) -> f32 {
        match v {
            FloatDoc::Num(v) => v,
            FloatDoc::Text(NonFinite::Inf) => f32::INFINITY,
            FloatDoc::Text(NonFinite::NegInf) => f32::NEG_INFINITY,
            FloatDoc::Text(NonFinite::NaN) => f32::NAN,
        }
    }
}

/// A small tensor inline (Constant values): dtype, shape, base64 of its little-endian bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorDoc {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub base64: String,
}

impl From<&Dim> for DimDoc {
    fn from(d: &Dim) -> DimDoc {
        match d {
            Dim::Known(n) => DimDoc::Known(*n),
            Dim::Sym(s) => DimDoc::Sym(s.clone()),
        }
    }
}

impl From<&DimDoc> for Dim {
    fn from(d: &DimDoc) -> Dim {
        match d {
            DimDoc::Known(n) => Dim::Known(*n),
            DimDoc::Sym(s) => Dim::Sym(s.clone()),
        }
    }
}

pub fn tensor_doc(t: &Tensor) -> TensorDoc {
    TensorDoc {
        dtype: t.dtype().name().to_string(),
        shape: t.shape().to_vec(),
        base64: base64::engine::general_purpose::STANDARD.encode(t.bytes()),
    }
}

pub fn tensor_from_doc(doc: &TensorDoc, context: &str) -> Result<Tensor> {
    let dtype = parse_dtype(&doc.dtype).ok_or_else(|| manifest_err(format!("{context}: unknown dtype '{}'", doc.dtype)))?;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(&doc.base64).map_err(|e| manifest_err(format!("{context}: bad base64: {e}")))?;
    let numel = cairn_core::checked_numel(&doc.shape).map_err(|_| manifest_err(format!("{context}: shape {:?} overflows", doc.shape)))?;
    if numel.checked_mul(dtype.size()) != Some(bytes.len()) {
        return Err(manifest_err(format!("{context}: {} bytes do not fill shape {:?} of {}", bytes.len(), doc.shape, dtype)));
    }
    let mut t = Tensor::new(doc.shape.clone(), TensorData::zeros(dtype, numel))?;
    t.bytes_mut().copy_from_slice(&bytes);
    if t.dtype() == cairn_core::DType::Bool && t.bytes().iter().any(|&b| b > 1) {
        return Err(manifest_err(format!("{context}: a bool tensor holds bytes other than 0 and 1")));
    }
    Ok(t)
}

fn attr_doc(attr: &Attr) -> Option<AttrDoc> {
    Some(match attr {
        Attr::Int(v) => AttrDoc::Int(*v),
        Attr::Float(v) => AttrDoc::Float((*v).into()),
        Attr::Str(v) => AttrDoc::Str(v.clone()),
        Attr::Ints(v) => AttrDoc::Ints(v.clone()),
        Attr::Floats(v) => AttrDoc::Floats(v.iter().map(|&f| f.into()).collect()),
        Attr::Strs(v) => AttrDoc::Strs(v.clone()),
        Attr::Tensor(t) => AttrDoc::Tensor(tensor_doc(t)),
        // Subgraphs (If/Loop/Scan bodies) and types are not in the bundle format yet: packing refuses them.
        Attr::Graph(_) | Attr::Type(_) => return None,
    })
}

fn attr_from_doc(doc: &AttrDoc, context: &str) -> Result<Attr> {
    Ok(match doc {
        AttrDoc::Int(v) => Attr::Int(*v),
        AttrDoc::Float(v) => Attr::Float((*v).into()),
        AttrDoc::Str(v) => Attr::Str(v.clone()),
        AttrDoc::Ints(v) => Attr::Ints(v.clone()),
        AttrDoc::Floats(v) => Attr::Floats(v.iter().map(|&f| f.into()).collect()),
        AttrDoc::Strs(v) => Attr::Strs(v.clone()),
        AttrDoc::Tensor(t) => Attr::Tensor(tensor_from_doc(t, context)?),
    })
}

/// The graph's nodes and declared inputs/outputs as manifest documents.
pub fn describe(graph: &Graph) -> Result<(crate::manifest::GraphDoc, Vec<InputDoc>, Vec<OutputDoc>)> {
    if graph.uses_strings() {
        return Err(manifest_err(
            "the model uses string tensors, which bundles (and the browser runtime and server that load them) do not carry; keep string processing outside the model (docs/adr/0031)",
        ));
    }
    let nodes = graph
        .nodes
        .iter()
        .map(|n| {
            let attrs = n
                .attrs
                .iter()
                .map(|(k, a)| {
                    attr_doc(a).map(|d| (k.clone(), d)).ok_or_else(|| {
                        manifest_err(format!("node '{}' has a subgraph attribute '{k}', which bundles cannot store", n.name))
                    })
                })
                .collect::<Result<_>>()?;
            Ok(NodeDoc {
                name: n.name.clone(),
                domain: n.domain.clone(),
                op: n.op_type.clone(),
                attrs,
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let inputs = graph
        .runtime_inputs()
        .map(|i| {
            let dims = i.dims.as_ref().ok_or_else(|| manifest_err(format!("input '{}' has no declared shape", i.name)))?;
            Ok(InputDoc {
                name: i.name.clone(),
                dtype: i.dtype.name().into(),
                dims: dims.iter().map(DimDoc::from).collect(),
                preprocess: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let outputs = graph
        .outputs
        .iter()
        .map(|o| OutputDoc {
            name: o.name.clone(),
            dtype: o.dtype.name().into(),
            dims: o.dims.as_ref().map(|d| d.iter().map(DimDoc::from).collect()),
            labels: None,
        })
        .collect();
    Ok((crate::manifest::GraphDoc { opset: graph.opset, nodes }, inputs, outputs))
}

/// Rebuilds the graph from a manifest and the loaded weights; validates it.
pub fn build_graph(manifest: &Manifest, initializers: HashMap<String, Arc<Tensor>>) -> Result<Graph> {
    let registry = Registry::global();
    let value_info = |name: &str, dtype: &str, dims: Option<&Vec<DimDoc>>| -> Result<ValueInfo> {
        let dtype = parse_dtype(dtype).ok_or_else(|| manifest_err(format!("'{name}' has unknown dtype '{dtype}'")))?;
        Ok(ValueInfo { name: name.to_string(), dtype, dims: dims.map(|d| d.iter().map(Dim::from).collect()) })
    };
    let inputs = manifest.inputs.iter().map(|i| value_info(&i.name, &i.dtype, Some(&i.dims))).collect::<Result<Vec<_>>>()?;
    let outputs = manifest.outputs.iter().map(|o| value_info(&o.name, &o.dtype, o.dims.as_ref())).collect::<Result<Vec<_>>>()?;
    let opset = manifest.graph.opset;
    let nodes = manifest
        .graph
        .nodes
        .iter()
        .map(|n| {
            let context = format!("node '{}'", n.name);
            let attrs: Attrs = n.attrs.iter().map(|(k, d)| Ok((k.clone(), attr_from_doc(d, &context)?))).collect::<Result<_>>()?;
            let spec = NodeSpec {
                name: n.name.clone(),
                domain: n.domain.clone(),
                op_type: n.op.clone(),
                attrs,
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
            };
            Ok(Node::build(spec, opset, registry)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Graph { inputs, outputs, initializers, nodes, opset }.validated()?)
}
