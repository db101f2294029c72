//! `ModelProto` → Cairn `Graph`.

use crate::proto::{attribute_type as at, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{convert, convert_strings, dtype_of, MAX_DIM};
use crate::{Error, LegacyNode, MissingOp, Model, ModelMeta};
use cairn_core::{
    Attr, Attrs, Dim, Graph, Node, NodeSpec, Registry, Subgraph, Tensor, ValueInfo, MAX_OPSET, MAX_SUBGRAPH_DEPTH, MIN_OPSET,
    PER_OP_BELOW_OPSET,
};
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
        metadata: proto.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect(),
    };
    let graph = proto.graph.ok_or_else(|| Error::Model("the model has no graph".into()))?;
    Ok(Model { graph: import_graph(graph, &opsets, external_dir, 1)?.validated()?, meta })
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
        let default = match proto.opset_import.iter().filter(|o| is_default_domain(&o.domain)).map(|o| o.version).max() {
            Some(v) => v,
            // A model of other domains only (an `ai.onnx.ml` pipeline): no node may then
            // use the default domain; its ops are built (or reported missing) per domain.
            None => {
                let nodes = proto.graph.as_ref().map_or(&[][..], |g| &g.node[..]);
                if let Some(n) = nodes.iter().find(|n| is_default_domain(&n.domain)) {
                    return Err(Error::Model(format!(
                        "node '{}' ({}) is in the default ONNX domain, which the model does not import (add an opset_import for it)",
                        n.name, n.op_type
                    )));
                }
                MAX_OPSET
            }
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

/// For a default-domain node in a model importing an opset below 7: the opset from which
/// the definition Cairn implements applies, when that is later than the model's opset
/// (the operator changed in between, or did not exist yet). `None`: the node is fine.
fn changed_since(op_type: &str, opset: i64) -> Option<i64> {
    if opset >= PER_OP_BELOW_OPSET {
        return None;
    }
    let table = crate::opset_floor::DEFINITION_SINCE;
    let since = table.binary_search_by(|(op, _)| (*op).cmp(op_type)).map_or(1, |i| table[i].1);
    (since > opset).then_some(since)
}

fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// Imports a graph at nesting `depth` (1 for the main graph). Not yet validated: the main
/// graph is validated as is, a subgraph in the scope of the outer names it reads.
fn import_graph(mut g: GraphProto, opsets: &DomainOpsets, external_dir: Option<&Path>, depth: usize) -> Result<Graph, Error> {
    if depth > MAX_SUBGRAPH_DEPTH {
        return Err(Error::Model(format!(
            "subgraphs nest more than {MAX_SUBGRAPH_DEPTH} levels deep (graph '{}'); Cairn refuses deeper nesting",
            g.name
        )));
    }
    if let Some(s) = g.sparse_initializer.first() {
        let name = s.values.as_ref().map_or("?", |v| v.name.as_str());
        return Err(Error::tensor(name, "sparse initializers are not supported"));
    }
    let mut initializers = HashMap::with_capacity(g.initializer.len());
    // String initializers and Constants become nodes yielding string tensors (docs/adr/0031).
    let mut nodes = Vec::with_capacity(g.node.len());
    // Each TensorProto is dropped as soon as it is converted, so the protobuf's copy
    // of the weights shrinks while Cairn's grows: peak memory is one copy, not two.
    for t in std::mem::take(&mut g.initializer) {
        if t.name.is_empty() {
            return Err(Error::Model("an initializer has no name".into()));
        }
        if t.data_type == crate::proto::data_type::STRING {
            nodes.push(cairn_core::ops::string_constant_node(&t.name, &t.name, convert_strings(&t)?));
            continue;
        }
        let tensor = convert(&t, external_dir)?;
        initializers.insert(t.name, Arc::new(tensor));
    }
    let inputs = g.input.iter().map(|v| value_info(v, depth)).collect::<Result<Vec<_>, _>>()?;
    let outputs = g.output.iter().map(|v| value_info(v, depth)).collect::<Result<Vec<_>, _>>()?;

    let registry = Registry::global();
    let mut missing = MissingOps::default();
    let mut legacy: Vec<LegacyNode> = Vec::new();
    for (index, n) in g.node.into_iter().enumerate() {
        let name = if n.name.is_empty() { format!("{}_{index}", n.op_type) } else { n.name.clone() };
        if n.op_type == "Constant" && is_default_domain(&n.domain) {
            if let Some(strings) = string_constant(&n)? {
                let out = n.output.first().cloned().unwrap_or_default();
                nodes.push(cairn_core::ops::string_constant_node(&name, &out, strings));
                continue;
            }
            let (out, value) = constant(&n, &name)?;
            initializers.insert(out, Arc::new(value));
            continue;
        }
        let opset = opsets.version(&n.domain);
        // An operator Cairn lacks is reported as missing below, whatever the opset.
        let known = registry.supports(&n.domain, &n.op_type);
        if let Some(since) = (known && is_default_domain(&n.domain)).then(|| changed_since(&n.op_type, opset)).flatten() {
            match legacy.iter_mut().find(|l| l.op_type == n.op_type) {
                Some(l) => l.count += 1,
                None => legacy.push(LegacyNode { node: name, op_type: n.op_type.clone(), since, count: 1 }),
            }
            continue;
        }
        let (attrs, captures) = attributes(&n, opsets, external_dir, depth)?;
        let mut inputs: Vec<Option<String>> = n.input.iter().map(|i| (!i.is_empty()).then(|| i.clone())).collect();
        inputs.extend(captures.into_iter().map(Some));
        let spec = NodeSpec { name, domain: n.domain.clone(), op_type: n.op_type.clone(), attrs, inputs, outputs: n.output.clone() };
        match Node::build(spec, opset, registry) {
            Ok(node) => nodes.push(node),
            // Collect every unsupported op so the user learns the whole list at once.
            Err(e @ cairn_core::Error::UnsupportedOp { .. }) => missing.add(&n.domain, &n.op_type, opset, e),
            Err(e) => return Err(e.into()),
        }
    }
    missing.into_result()?;
    if !legacy.is_empty() {
        return Err(Error::LegacyOpset { opset: opsets.default, nodes: legacy });
    }
    Ok(Graph { inputs, outputs, initializers, nodes, opset: opsets.default })
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

/// A graph attribute: the body, validated in the scope of the outer names it reads.
fn subgraph(g: &GraphProto, opsets: &DomainOpsets, external_dir: Option<&Path>, depth: usize) -> Result<Subgraph, Error> {
    let body = import_graph(g.clone(), opsets, external_dir, depth + 1)?;
    let captures = body.free_names();
    let body = body.validated_in_scope(&captures).map_err(|e| Error::Model(format!("subgraph '{}': {e}", g.name)))?;
    Ok(Subgraph { graph: Arc::new(body), captures })
}

/// The tensor type a value declares. Sequences and optionals of tensors are declared by
/// their element type (docs/adr/0010); a subgraph's input may omit its type (old exporters
/// write Loop bodies so), which the eager interpreter never relies on.
fn tensor_type(v: &ValueInfoProto, depth: usize) -> Result<Option<&crate::proto::type_proto::Tensor>, Error> {
    let mut ty = v.r#type.as_ref();
    // Unwrap sequence/optional nesting (bounded by protobuf's recursion limit at decode).
    loop {
        match ty.and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => return Ok(Some(t)),
            Some(type_proto::Value::SequenceType(n) | type_proto::Value::OptionalType(n)) => ty = n.elem_type.as_deref(),
            Some(_) => {
                return Err(Error::Model(format!(
                    "'{}' is a map or sparse value; of the sequence, map, optional and sparse types Cairn handles sequences and optionals of tensors",
                    v.name
                )))
            }
            None if depth > 1 => return Ok(None),
            None => return Err(Error::Model(format!("'{}' declares no type", v.name))),
        }
    }
}

fn value_info(v: &ValueInfoProto, depth: usize) -> Result<ValueInfo, Error> {
    let Some(tensor) = tensor_type(v, depth)? else {
        return Ok(ValueInfo { name: v.name.clone(), dtype: cairn_core::DType::F32, dims: None });
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

/// A node's attributes, and the outer-scope names its subgraphs read (the union over its
/// graph attributes, in first-use order; every subgraph gets the whole list so that the
/// node's trailing inputs line up with each body's captures).
fn attributes(n: &NodeProto, opsets: &DomainOpsets, external_dir: Option<&Path>, depth: usize) -> Result<(Attrs, Vec<String>), Error> {
    let mut attrs = Attrs::new();
    let mut captures: Vec<String> = Vec::new();
    for a in &n.attribute {
        let attr = match (a.r#type, a.g.as_deref()) {
            (at::GRAPH, Some(g)) | (0, Some(g)) => {
                let sub = subgraph(g, opsets, external_dir, depth).map_err(|e| match e {
                    Error::Model(m) => Error::Model(format!("attribute '{}' of node '{}' ({}): {m}", a.name, n.name, n.op_type)),
                    e => e,
                })?;
                captures.extend(sub.captures.iter().filter(|c| !captures.contains(c)).cloned().collect::<Vec<_>>());
                Attr::Graph(sub)
            }
            (at::GRAPH, None) => return Err(Error::Model(format!("attribute '{}' of node '{}' has no graph", a.name, n.name))),
            _ => attribute(a, n)?,
        };
        attrs.insert(a.name.clone(), attr);
    }
    for attr in attrs.values_mut() {
        if let Attr::Graph(sub) = attr {
            sub.captures = captures.clone();
        }
    }
    Ok((attrs, captures))
}

/// ONNX's text form of a type: "tensor(float)", "seq(tensor(int64))", "optional(...)".
fn type_text(t: Option<&crate::proto::TypeProto>) -> String {
    match t.and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => format!("tensor({})", crate::proto::data_type::name(t.elem_type).to_lowercase()),
        Some(type_proto::Value::SequenceType(n)) => format!("seq({})", type_text(n.elem_type.as_deref())),
        Some(type_proto::Value::OptionalType(n)) => format!("optional({})", type_text(n.elem_type.as_deref())),
        Some(type_proto::Value::MapType(_)) => "map".into(),
        Some(type_proto::Value::SparseTensorType(_)) => "sparse_tensor".into(),
        None => "undefined".into(),
    }
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
        at::TYPE_PROTO => Attr::Type(type_text(a.tp.as_ref())),
        at::GRAPH | at::GRAPHS | at::TENSORS | at::SPARSE_TENSOR | at::SPARSE_TENSORS | at::TYPE_PROTOS => {
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

/// The value of a `Constant` node that holds strings (`value` of type string,
/// `value_string`, `value_strings`); `None` for a numeric one.
fn string_constant(n: &NodeProto) -> Result<Option<cairn_core::StringTensor>, Error> {
    let Some(a) = n.attribute.first() else { return Ok(None) };
    let utf8 = |b: &[u8]| {
        String::from_utf8(b.to_vec()).map_err(|_| Error::Model(format!("Constant node '{}' holds a string that is not UTF-8", n.name)))
    };
    let bad = |e: cairn_core::Error| Error::Model(format!("Constant node '{}': {e}", n.name));
    Ok(match a.name.as_str() {
        "value" => match a.t.as_ref() {
            Some(t) if t.data_type == crate::proto::data_type::STRING => Some(convert_strings(t)?),
            _ => None,
        },
        "value_string" => Some(cairn_core::StringTensor::new(vec![], vec![utf8(&a.s)?]).map_err(bad)?),
        "value_strings" => {
            let v = a.strings.iter().map(|s| utf8(s)).collect::<Result<Vec<_>, _>>()?;
            Some(cairn_core::StringTensor::new(vec![v.len()], v).map_err(bad)?)
        }
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::changed_since;

    #[test]
    fn the_opset_floor_table_is_sorted_for_binary_search() {
        let t = crate::opset_floor::DEFINITION_SINCE;
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn old_opsets_are_judged_per_operator() {
        // Not never changed; Relu dropped `consumed_inputs` at 6; Gemm changed at 6 and 7;
        // Concat's axis became required at 4.
        assert_eq!(changed_since("Not", 1), None);
        assert_eq!(changed_since("Relu", 5), Some(6));
        assert_eq!(changed_since("Relu", 6), None);
        assert_eq!(changed_since("Gemm", 6), Some(7));
        assert_eq!(changed_since("Concat", 3), Some(4));
        assert_eq!(changed_since("Concat", 4), None);
        // Introduced after opset 7: not defined at opset 5.
        assert!(changed_since("Einsum", 5).is_some());
        // From opset 7 on nothing is refused here.
        assert_eq!(changed_since("Gemm", 7), None);
    }
}
