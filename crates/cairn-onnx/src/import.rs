//! `ModelProto` → Cairn `Graph`.

use crate::proto::{attribute_type as at, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{convert, dtype_of, MAX_DIM};
use crate::{Error, MissingOp, Model, ModelMeta};
use cairn_core::{Attr, Attrs, Dim, Graph, Node, NodeSpec, Registry, Tensor, ValueInfo, MAX_OPSET, MIN_OPSET};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

pub fn model(proto: ModelProto, external_dir: Option<&Path>) -> Result<Model, Error> {
    let opsets = DomainOpsets::of(&proto)?;
    let meta = ModelMeta {
        ir_version: proto.ir_version,
        producer_name: proto.producer_name,
        producer_version: proto.producer_version,
        opsets: proto.opset_import.iter().map(|o| (o.domain.clone(), o.version)).collect(),
        doc_string: proto.doc_string,
    };
    let graph = proto.graph.ok_or_else(|| Error::Model("the model has no graph".into()))?;
    Ok(Model { graph: import_graph(graph, &opsets, external_dir)?, meta })
}

/// The opset version the model imports for each domain: a node is built against the
/// version of its own domain (a `com.microsoft` node against `com.microsoft`'s, not the
/// default domain's).
pub(crate) struct DomainOpsets {
    default: i64,
    others: HashMap<String, i64>,
}

impl DomainOpsets {
    pub(crate) fn of(proto: &ModelProto) -> Result<DomainOpsets, Error> {
        let Some(default) = proto.opset_import.iter().filter(|o| is_default_domain(&o.domain)).map(|o| o.version).max() else {
            return Err(only_other_domains(proto));
        };
        if !(MIN_OPSET..=MAX_OPSET).contains(&default) {
            return Err(Error::Opset { version: default, min: MIN_OPSET, max: MAX_OPSET });
        }
        let mut others = HashMap::new();
        for o in proto.opset_import.iter().filter(|o| !is_default_domain(&o.domain)) {
            let v = others.entry(o.domain.clone()).or_insert(o.version);
            *v = (*v).max(o.version);
        }
        Ok(DomainOpsets { default, others })
    }

    /// The version for `domain`; a domain the model never imports counts as version 1
    /// (onnxruntime loads such files from old exporters the same way).
    pub(crate) fn version(&self, domain: &str) -> i64 {
        if is_default_domain(domain) {
            self.default
        } else {
            self.others.get(domain).copied().unwrap_or(1)
        }
    }
}

/// A model that imports no default-domain opset uses only operators of other domains
/// (`ai.onnx.ml`, ...), none of which Cairn implements: each domain is reported with its node count.
fn only_other_domains(proto: &ModelProto) -> Error {
    let nodes = proto.graph.as_ref().map_or(&[][..], |g| &g.node[..]);
    let ops: Vec<MissingOp> = proto
        .opset_import
        .iter()
        .map(|o| MissingOp {
            domain: o.domain.clone(),
            op_type: "(every operator of the domain)".into(),
            opset: o.version,
            count: nodes.iter().filter(|n| n.domain == o.domain).count(),
        })
        .collect();
    let first = cairn_core::Error::UnsupportedOp {
        node: nodes.first().map(|n| n.name.clone()).unwrap_or_default(),
        op_type: "a model without the default ONNX domain".into(),
        opset: 0,
    };
    Error::UnsupportedOps { ops, first: Box::new(first) }
}

fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

fn import_graph(mut g: GraphProto, opsets: &DomainOpsets, external_dir: Option<&Path>) -> Result<Graph, Error> {
    if let Some(s) = g.sparse_initializer.first() {
        let name = s.values.as_ref().map_or("?", |v| v.name.as_str());
        return Err(Error::tensor(name, "sparse initializers are not supported"));
    }
    let mut initializers = HashMap::with_capacity(g.initializer.len());
    // Each TensorProto is dropped as soon as it is converted, so the protobuf's copy
    // of the weights shrinks while Cairn's grows: peak memory is one copy, not two.
    for t in std::mem::take(&mut g.initializer) {
        if t.name.is_empty() {
            return Err(Error::Model("an initializer has no name".into()));
        }
        let tensor = convert(&t, external_dir)?;
        initializers.insert(t.name, Arc::new(tensor));
    }
    let inputs = g.input.iter().map(value_info).collect::<Result<Vec<_>, _>>()?;
    let outputs = g.output.iter().map(value_info).collect::<Result<Vec<_>, _>>()?;

    let registry = Registry::global();
    let mut nodes = Vec::with_capacity(g.node.len());
    let mut missing = MissingOps::default();
    for (index, n) in g.node.into_iter().enumerate() {
        let name = if n.name.is_empty() { format!("{}_{index}", n.op_type) } else { n.name.clone() };
        if n.op_type == "Constant" && is_default_domain(&n.domain) {
            let (out, value) = constant(&n, &name)?;
            initializers.insert(out, Arc::new(value));
            continue;
        }
        let opset = opsets.version(&n.domain);
        let spec = NodeSpec {
            name,
            domain: n.domain.clone(),
            op_type: n.op_type.clone(),
            attrs: attributes(&n)?,
            inputs: n.input.iter().map(|i| (!i.is_empty()).then(|| i.clone())).collect(),
            outputs: n.output.clone(),
        };
        match Node::build(spec, opset, registry) {
            Ok(node) => nodes.push(node),
            // Collect every unsupported op so the user learns the whole list at once.
            Err(e @ cairn_core::Error::UnsupportedOp { .. }) => missing.add(&n.domain, &n.op_type, opset, e),
            Err(e) => return Err(e.into()),
        }
    }
    missing.into_result()?;
    let graph = Graph { inputs, outputs, initializers, nodes, opset: opsets.default };
    Ok(graph.validated()?)
}

/// Unsupported operators met while importing, counted per (domain, op, opset).
#[derive(Default)]
struct MissingOps {
    counts: BTreeMap<(String, String, i64), usize>,
    first: Option<cairn_core::Error>,
}

impl MissingOps {
    fn add(&mut self, domain: &str, op_type: &str, opset: i64, error: cairn_core::Error) {
        let domain = if is_default_domain(domain) { "ai.onnx" } else { domain };
        *self.counts.entry((domain.to_string(), op_type.to_string(), opset)).or_insert(0) += 1;
        self.first.get_or_insert(error);
    }

    fn into_result(self) -> Result<(), Error> {
        let Some(first) = self.first else { return Ok(()) };
        let ops = self.counts.into_iter().map(|((domain, op_type, opset), count)| MissingOp { domain, op_type, opset, count }).collect();
        Err(Error::UnsupportedOps { ops, first: Box::new(first) })
    }
}

fn value_info(v: &ValueInfoProto) -> Result<ValueInfo, Error> {
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(_) => {
            return Err(Error::Model(format!("'{}' is a sequence, map, optional or sparse value; Cairn only handles tensors", v.name)))
        }
        None => return Err(Error::Model(format!("'{}' declares no type", v.name))),
    };
    let dtype = dtype_of(tensor.elem_type, &v.name)?;
    let dims = tensor.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .enumerate()
            .map(|(i, d)| {
                use crate::proto::tensor_shape_proto::dimension::Value;
                match &d.value {
                    Some(Value::DimValue(n)) if (0..=MAX_DIM).contains(n) => Ok(Dim::Known(*n as usize)),
                    // Negative sizes (exporters write -1) mean "unknown", as onnxruntime reads them.
                    Some(Value::DimValue(n)) if *n < 0 => Ok(Dim::Sym(format!("{}_dim{i}", v.name))),
                    Some(Value::DimValue(n)) => {
                        Err(Error::Model(format!("'{}' declares a dimension {n} above Cairn's limit {MAX_DIM}", v.name)))
                    }
                    // paddle2onnx writes "?" for every unknown dim: a placeholder, not a name that
                    // ties two dims together (onnxruntime runs [?, ?] inputs at 48x192).
                    Some(Value::DimParam(p)) if !p.is_empty() && p != "?" => Ok(Dim::Sym(p.clone())),
                    // An unnamed unknown dim: give it a name of its own so it binds independently.
                    _ => Ok(Dim::Sym(format!("{}_dim{i}", v.name))),
                }
            })
            .collect::<Result<Vec<_>, _>>()
    });
    Ok(ValueInfo { name: v.name.clone(), dtype, dims: dims.transpose()? })
}

fn attributes(n: &NodeProto) -> Result<Attrs, Error> {
    let mut attrs = Attrs::new();
    for a in &n.attribute {
        attrs.insert(a.name.clone(), attribute(a, n)?);
    }
    Ok(attrs)
}

fn attribute(a: &AttributeProto, n: &NodeProto) -> Result<Attr, Error> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(match a.r#type {
        at::FLOAT => Attr::Float(a.f),
        at::INT => Attr::Int(a.i),
        at::STRING => Attr::Str(text(&a.s)),
        at::TENSOR => Attr::Tensor(convert(
            a.t.as_ref().ok_or_else(|| Error::Model(format!("attribute '{}' of node '{}' has no tensor", a.name, n.name)))?,
            None,
        )?),
        at::FLOATS => Attr::Floats(a.floats.clone()),
        at::INTS => Attr::Ints(a.ints.clone()),
        at::STRINGS => Attr::Strs(a.strings.iter().map(|s| text(s)).collect()),
        at::GRAPH | at::GRAPHS => Attr::Graph,
        at::TENSORS | at::SPARSE_TENSOR | at::SPARSE_TENSORS | at::TYPE_PROTO | at::TYPE_PROTOS => {
            return Err(Error::Model(format!(
                "attribute '{}' of node '{}' ({}) has a kind Cairn does not support",
                a.name, n.name, n.op_type
            )))
        }
        // Files from old exporters may omit the type: infer it from the field that is set.
        _ => {
            if let Some(t) = a.t.as_ref() {
                Attr::Tensor(convert(t, None)?)
            } else if !a.ints.is_empty() {
                Attr::Ints(a.ints.clone())
            } else if !a.floats.is_empty() {
                Attr::Floats(a.floats.clone())
            } else if !a.strings.is_empty() {
                Attr::Strs(a.strings.iter().map(|s| text(s)).collect())
            } else if !a.s.is_empty() {
                Attr::Str(text(&a.s))
            } else if a.f != 0.0 {
                Attr::Float(a.f)
            } else {
                Attr::Int(a.i)
            }
        }
    })
}

/// A `Constant` node's output name and value.
fn constant(n: &NodeProto, name: &str) -> Result<(String, Tensor), Error> {
    let out = n.output.first().filter(|o| !o.is_empty()).ok_or_else(|| Error::Model(format!("Constant node '{name}' has no output")))?;
    let a = n.attribute.first().ok_or_else(|| Error::Model(format!("Constant node '{name}' has no value")))?;
    let bad = |e: cairn_core::Error| Error::tensor(out, e.to_string());
    let value = match a.name.as_str() {
        "value" => convert(a.t.as_ref().ok_or_else(|| Error::tensor(out, "Constant 'value' holds no tensor"))?, None)?,
        "value_float" => Tensor::scalar_f32(a.f),
        "value_floats" => Tensor::from_f32(vec![a.floats.len()], a.floats.clone()).map_err(bad)?,
        "value_int" => Tensor::from_i64(vec![], vec![a.i]).map_err(bad)?,
        "value_ints" => Tensor::from_i64(vec![a.ints.len()], a.ints.clone()).map_err(bad)?,
        other => {
            return Err(cairn_core::Error::UnsupportedAttr {
                node: name.to_string(),
                op_type: "Constant".into(),
                opset: 0,
                attr: other.to_string(),
                detail: "only tensor, float(s) and int(s) constants are supported".into(),
            }
            .into())
        }
    };
    Ok((out.clone(), value))
}
