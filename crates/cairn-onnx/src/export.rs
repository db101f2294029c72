//! Cairn's IR back to an ONNX protobuf: what `cairn optimize` writes. Only standard
//! operators can be saved (nodes a load-time pass built hold prepacked state, not ONNX).

use crate::proto::{
    attribute_type as at, data_type as dt, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::{Error, ModelMeta};
use cairn_core::{Attr, DType, Dim, Graph, Tensor, ValueInfo};
use prost::Message;

/// The IR version written: ONNX 1.14+ readers accept it, and it allows opset 21.
const IR_VERSION: i64 = 9;

/// Serializes `graph` as an ONNX model. `extra_domains` adds opset imports (e.g. com.microsoft).
pub fn save_bytes(graph: &Graph, meta: &ModelMeta) -> Result<Vec<u8>, Error> {
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    let mut domains: Vec<String> = Vec::new();
    for n in &graph.nodes {
        if n.op.built_by_pass() {
            return Err(Error::Model(format!(
                "node '{}' ({}) was built by a load-time pass and cannot be saved as ONNX",
                n.name, n.op_type
            )));
        }
        if !n.domain.is_empty() && !domains.contains(&n.domain) {
            domains.push(n.domain.clone());
        }
        let attribute = n.attrs.iter().map(|(k, v)| attribute(k, v)).collect::<Result<Vec<_>, _>>()?;
        nodes.push(NodeProto {
            input: n.inputs.iter().map(|i| i.clone().unwrap_or_default()).collect(),
            output: n.outputs.clone(),
            name: n.name.clone(),
            op_type: n.op_type.clone(),
            domain: n.domain.clone(),
            attribute,
            doc_string: String::new(),
        });
    }
    let mut names: Vec<&String> = graph.initializers.keys().collect();
    names.sort(); // a stable file for the same graph
    let initializer = names.into_iter().map(|name| tensor(name, &graph.initializers[name])).collect::<Result<Vec<_>, _>>()?;
    let g = GraphProto {
        node: nodes,
        name: "cairn".into(),
        initializer,
        input: graph.inputs.iter().map(value_info).collect(),
        output: graph.outputs.iter().map(value_info).collect(),
        ..Default::default()
    };
    let mut opset_import = vec![OperatorSetIdProto { domain: String::new(), version: graph.opset }];
    opset_import.extend(domains.into_iter().map(|domain| OperatorSetIdProto { domain, version: 1 }));
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import,
        producer_name: "cairn".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: meta.doc_string.clone(),
        metadata_props: meta
            .metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto { key: key.clone(), value: value.clone() })
            .collect(),
        graph: Some(g),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}

fn code(d: DType) -> i32 {
    match d {
        DType::F32 => dt::FLOAT,
        DType::F16 => dt::FLOAT16,
        DType::I8 => dt::INT8,
        DType::U8 => dt::UINT8,
        DType::I32 => dt::INT32,
        DType::I64 => dt::INT64,
        DType::Bool => dt::BOOL,
        DType::BF16 => dt::BFLOAT16,
        DType::F64 => dt::DOUBLE,
        DType::I16 => dt::INT16,
        DType::U16 => dt::UINT16,
        DType::U32 => dt::UINT32,
        DType::U64 => dt::UINT64,
        narrow => narrow.onnx_code() as i32,
    }
}

fn tensor(name: &str, t: &Tensor) -> Result<TensorProto, Error> {
    Ok(TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: code(t.dtype()),
        name: name.to_string(),
        // Sub-byte types are packed in files (low bits first).
        raw_data: if t.dtype().is_narrow() { cairn_core::narrow::pack(t.dtype(), t.bytes()) } else { t.bytes().to_vec() },
        ..Default::default()
    })
}

fn value_info(v: &ValueInfo) -> ValueInfoProto {
    let shape = v.dims.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                value: Some(match d {
                    Dim::Known(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
                    Dim::Sym(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
                }),
                denotation: String::new(),
            })
            .collect(),
    });
    ValueInfoProto {
        name: v.name.clone(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: code(v.dtype), shape })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

fn attribute(name: &str, a: &Attr) -> Result<AttributeProto, Error> {
    let mut p = AttributeProto { name: name.to_string(), ..Default::default() };
    match a {
        Attr::Int(v) => (p.r#type, p.i) = (at::INT, *v),
        Attr::Float(v) => (p.r#type, p.f) = (at::FLOAT, *v),
        Attr::Str(v) => (p.r#type, p.s) = (at::STRING, v.as_bytes().to_vec()),
        Attr::Tensor(t) => (p.r#type, p.t) = (at::TENSOR, Some(tensor("", t)?)),
        Attr::Ints(v) => (p.r#type, p.ints) = (at::INTS, v.clone()),
        Attr::Floats(v) => (p.r#type, p.floats) = (at::FLOATS, v.clone()),
        Attr::Strs(v) => (p.r#type, p.strings) = (at::STRINGS, v.iter().map(|s| s.as_bytes().to_vec()).collect()),
        Attr::Graph(_) => return Err(Error::Model(format!("attribute '{name}' holds a subgraph, which Cairn cannot save"))),
        Attr::Type(_) => return Err(Error::Model(format!("attribute '{name}' holds a type, which Cairn cannot save"))),
    }
    Ok(p)
}
