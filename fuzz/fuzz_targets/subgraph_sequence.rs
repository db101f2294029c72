//! Fuzzes the parsers issue 13 added: subgraph import (captures, nesting, Loop/If/Scan bodies)
//! and sequence/optional values. The first byte picks what the rest is:
//!   0  a GraphProto, run as the body of `Loop(M = 3, cond = true, x)`
//!   1  a GraphProto, run as both branches of an `If`
//!   2  a GraphProto, run as the body of a `Scan` over `x` with one state value
//!   3  a SequenceProto / OptionalProto value (`value_from_bytes`)
//! Loaded models run eagerly under small limits: any panic, hang or OOM is a bug.
#![no_main]

use cairn_core::{plan::PlanLimits, Session, Tensor};
use cairn_onnx::proto::{
    attribute_type, data_type, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
    ValueInfoProto,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::collections::HashMap;

fn typed(name: &str, elem_type: i32) -> ValueInfoProto {
    let t = type_proto::Tensor { elem_type, shape: None };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(t)), denotation: String::new() }),
        doc_string: String::new(),
    }
}

fn nested(kind: fn(Box<type_proto::Nested>) -> type_proto::Value) -> TypeProto {
    let elem = TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: data_type::FLOAT, shape: None })),
        denotation: String::new(),
    };
    TypeProto { value: Some(kind(Box::new(type_proto::Nested { elem_type: Some(Box::new(elem)) }))), denotation: String::new() }
}

fn wrap(mode: u8, body: GraphProto) -> Option<Vec<u8>> {
    let graph_attr = |name: &str| AttributeProto {
        name: name.into(),
        r#type: attribute_type::GRAPH,
        g: Some(Box::new(body.clone())),
        ..Default::default()
    };
    let scalar = |name: &str, dt: i32, v: i64| TensorProto {
        name: name.into(),
        data_type: dt,
        int64_data: if dt == data_type::INT64 { vec![v] } else { vec![] },
        int32_data: if dt == data_type::BOOL { vec![v as i32] } else { vec![] },
        ..Default::default()
    };
    let (node, initializer) = match mode {
        0 => (
            NodeProto {
                op_type: "Loop".into(),
                input: vec!["M".into(), "c".into(), "x".into()],
                output: vec!["y".into()],
                attribute: vec![graph_attr("body")],
                ..Default::default()
            },
            vec![scalar("M", data_type::INT64, 3), scalar("c", data_type::BOOL, 1)],
        ),
        1 => (
            NodeProto {
                op_type: "If".into(),
                input: vec!["c".into()],
                output: vec!["y".into()],
                attribute: vec![graph_attr("then_branch"), graph_attr("else_branch")],
                ..Default::default()
            },
            vec![scalar("c", data_type::BOOL, 1)],
        ),
        2 => {
            let n = AttributeProto { name: "num_scan_inputs".into(), r#type: attribute_type::INT, i: 1, ..Default::default() };
            (
                NodeProto {
                    op_type: "Scan".into(),
                    input: vec!["x".into(), "x".into()],
                    output: vec!["y".into()],
                    attribute: vec![graph_attr("body"), n],
                    ..Default::default()
                },
                vec![],
            )
        }
        _ => return None,
    };
    let graph = GraphProto {
        node: vec![node],
        initializer,
        input: vec![typed("x", data_type::FLOAT)],
        output: vec![typed("y", data_type::FLOAT)],
        ..Default::default()
    };
    Some(
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 4 == 3 {
        let _ = cairn_onnx::value_from_bytes(rest, Some(&nested(type_proto::Value::SequenceType)));
        let _ = cairn_onnx::value_from_bytes(rest, Some(&nested(type_proto::Value::OptionalType)));
        return;
    }
    let Ok(body) = GraphProto::decode(rest) else { return };
    let Some(bytes) = wrap(mode % 4, body) else { return };
    let Ok(model) = cairn_onnx::load_bytes(&bytes, None) else { return };
    let limits = PlanLimits { max_arena_bytes: 64 << 20, max_loop_iterations: 256 };
    let session = Session::with_limits(model.graph, limits);
    let x = Tensor::from_f32(vec![2, 3], vec![0.5; 6]).expect("a 2x3 tensor");
    let _ = session.run(HashMap::from([("x".to_string(), x)]));
});
