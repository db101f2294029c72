//! How the importer reads declared dims and reports missing operators, as onnxruntime does:
//! `-1`, a named dim and an empty dim all mean "dynamic"; every op Cairn lacks is listed
//! at once, each with its domain and the opset of that domain the model imports.

use cairn_core::{Dim, Session, Tensor};
use cairn_onnx::proto::tensor_shape_proto::{dimension::Value, Dimension};
use cairn_onnx::proto::ValueInfoProto;
use cairn_onnx::proto::{data_type, type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto};
use prost::Message;

/// A declared dim as an exporter may write it.
enum Declared {
    Size(i64),
    Named(&'static str),
    Empty,
}

fn float_value(name: &str, dims: &[Declared]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d {
                Declared::Size(n) => Some(Value::DimValue(*n)),
                Declared::Named(p) => Some(Value::DimParam(p.to_string())),
                Declared::Empty => None,
            },
            denotation: String::new(),
        })
        .collect();
    let tensor = type_proto::Tensor { elem_type: data_type::FLOAT, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), denotation: String::new() }),
        doc_string: String::new(),
    }
}

fn one_node_model(op: (&str, &str), dims: &[Declared], opsets: &[(&str, i64)]) -> Vec<u8> {
    let (domain, op_type) = op;
    let node = NodeProto {
        input: vec!["x".into()],
        output: vec!["y".into()],
        name: format!("the_{op_type}"),
        op_type: op_type.into(),
        domain: domain.into(),
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: opsets.iter().map(|(d, v)| OperatorSetIdProto { domain: d.to_string(), version: *v }).collect(),
        graph: Some(GraphProto {
            node: vec![node],
            input: vec![float_value("x", dims)],
            output: vec![float_value("y", dims)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn minus_one_named_and_empty_dims_are_dynamic_and_run_at_any_size() {
    let dims = [Declared::Size(-1), Declared::Named("seq"), Declared::Empty, Declared::Size(2)];
    let m = cairn_onnx::load_bytes(&one_node_model(("", "Relu"), &dims, &[("", 17)]), None).expect("a -1 dim must load");
    let declared = m.graph.inputs[0].dims.clone().unwrap();
    assert!(matches!(&declared[0], Dim::Sym(_)), "{declared:?}");
    assert_eq!(declared[1], Dim::Sym("seq".into()));
    assert!(matches!(&declared[2], Dim::Sym(_)), "{declared:?}");
    assert_eq!(declared[3], Dim::Known(2));
    // The two unnamed dims bind independently of each other.
    assert_ne!(declared[0], declared[2]);
    let session = Session::new(m.graph);
    for shape in [vec![1, 3, 5, 2], vec![4, 1, 2, 2]] {
        let n: usize = shape.iter().product();
        let x = Tensor::from_f32(shape.clone(), (0..n).map(|i| i as f32 - 3.0).collect()).unwrap();
        let out = session.run([("x".to_string(), x)].into()).unwrap();
        assert_eq!(out[0].1.shape(), &shape[..]);
        assert_eq!(out[0].1.f32s().unwrap()[..4], [0.0, 0.0, 0.0, 0.0]);
    }
}

#[test]
fn question_mark_dims_are_placeholders_not_one_shared_name() {
    let dims = [Declared::Size(-1), Declared::Size(3), Declared::Named("?"), Declared::Named("?")];
    let m = cairn_onnx::load_bytes(&one_node_model(("", "Relu"), &dims, &[("", 11)]), None).unwrap();
    let declared = m.graph.inputs[0].dims.clone().unwrap();
    assert_ne!(declared[2], declared[3], "{declared:?}");
    let x = Tensor::from_f32(vec![1, 3, 48, 192], vec![1.0; 3 * 48 * 192]).unwrap();
    let out = Session::new(m.graph).run([("x".to_string(), x)].into()).unwrap();
    assert_eq!(out[0].1.shape(), &[1, 3, 48, 192]);
}

#[test]
fn other_negative_dims_are_dynamic_too_and_huge_ones_are_refused() {
    assert!(cairn_onnx::load_bytes(&one_node_model(("", "Relu"), &[Declared::Size(-7)], &[("", 17)]), None).is_ok());
    let err = cairn_onnx::load_bytes(&one_node_model(("", "Relu"), &[Declared::Size(i64::MAX)], &[("", 17)]), None).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn a_missing_contrib_op_names_its_own_domain_and_opset() {
    let bytes = one_node_model(("com.microsoft", "NoSuchFusedThing"), &[Declared::Size(4)], &[("", 17), ("com.microsoft", 1)]);
    let err = cairn_onnx::load_bytes(&bytes, None).unwrap_err();
    let cairn_onnx::Error::UnsupportedOps { ops, .. } = &err else { panic!("{err}") };
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].domain.as_str(), ops[0].op_type.as_str(), ops[0].opset, ops[0].count), ("com.microsoft", "NoSuchFusedThing", 1, 1));
    let text = err.to_string();
    assert!(text.contains("NoSuchFusedThing (com.microsoft opset 1) x1") && text.contains("the_NoSuchFusedThing"), "{text}");
    // The default domain's opset is named as `ai.onnx`, with its own version.
    let err = cairn_onnx::load_bytes(&one_node_model(("", "NoSuchOp"), &[Declared::Size(4)], &[("", 13)]), None).unwrap_err();
    assert!(err.to_string().contains("NoSuchOp (ai.onnx opset 13) x1"), "{err}");
}

#[test]
fn a_model_without_the_default_domain_lists_its_domains() {
    let bytes = one_node_model(("ai.onnx.ml", "Scaler"), &[Declared::Size(4)], &[("ai.onnx.ml", 3)]);
    let err = cairn_onnx::load_bytes(&bytes, None).unwrap_err();
    let cairn_onnx::Error::UnsupportedOps { ops, .. } = &err else { panic!("{err}") };
    assert_eq!((ops[0].domain.as_str(), ops[0].opset, ops[0].count), ("ai.onnx.ml", 3, 1));
}
