//! Hostile and malformed model files: every one must be a clear error, never a panic
//! or an allocation the file does not justify.

use cairn_onnx::proto::{
    attribute_type, data_type, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            denotation: String::new(),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_node"),
        op_type: op.into(),
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![value("x", &[1, 4])],
            output: vec![value("y", &[1, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn relu_model() -> Vec<u8> {
    model(vec![node("Relu", &["x"], &["y"])], vec![]).encode_to_vec()
}

#[test]
fn the_valid_model_loads_and_runs() {
    let m = cairn_onnx::load_bytes(&relu_model(), None).unwrap();
    let s = cairn_core::Session::new(m.graph);
    let x = cairn_core::Tensor::from_f32(vec![1, 4], vec![-1.0, 2.0, -3.0, 4.0]).unwrap();
    let out = s.run([("x".to_string(), x)].into()).unwrap();
    assert_eq!(out[0].1.f32s().unwrap(), &[0.0, 2.0, 0.0, 4.0]);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = relu_model();
    for len in 0..bytes.len() {
        // Some prefixes are themselves valid protobuf; they must still not panic.
        let _ = cairn_onnx::load_bytes(&bytes[..len], None);
    }
    assert!(cairn_onnx::load_bytes(&bytes[..bytes.len() / 2], None).is_err());
}

#[test]
fn other_file_kinds_are_refused() {
    for bytes in [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], b"PK\x03\x04\x14\0\0\0", b"hello, I am a text file\n", b"", &[0xff; 64]] {
        let err = cairn_onnx::load_bytes(bytes, None).unwrap_err().to_string();
        assert!(err.contains("not an ONNX model") || err.contains("opset"), "{err}");
    }
}

#[test]
fn lying_tensor_sizes_are_refused_before_allocating() {
    let lie = TensorProto {
        name: "w".into(),
        dims: vec![1_000_000, 1_000_000],
        data_type: data_type::FLOAT,
        raw_data: vec![0; 4],
        ..Default::default()
    };
    let m = model(vec![node("Add", &["x", "w"], &["y"])], vec![lie]).encode_to_vec();
    let err = cairn_onnx::load_bytes(&m, None).unwrap_err().to_string();
    assert!(err.contains("raw_data holds 4 bytes"), "{err}");

    let overflow =
        TensorProto { name: "w".into(), dims: vec![1 << 40, 1 << 40, 1 << 40], data_type: data_type::FLOAT, ..Default::default() };
    let m = model(vec![node("Add", &["x", "w"], &["y"])], vec![overflow]).encode_to_vec();
    assert!(cairn_onnx::load_bytes(&m, None).is_err());

    let negative = TensorProto { name: "w".into(), dims: vec![-4], data_type: data_type::FLOAT, ..Default::default() };
    let m = model(vec![node("Add", &["x", "w"], &["y"])], vec![negative]).encode_to_vec();
    assert!(cairn_onnx::load_bytes(&m, None).unwrap_err().to_string().contains("invalid dimension"));
}

#[test]
fn absurd_declared_dims_fail_at_planning_not_by_allocating() {
    let mut m = model(vec![node("Relu", &["x"], &["y"])], vec![]);
    m.graph.as_mut().unwrap().input = vec![value("x", &[1 << 30, 1 << 30])];
    let loaded = cairn_onnx::load_bytes(&m.encode_to_vec(), None).unwrap();
    let s = cairn_core::Session::new(loaded.graph);
    let x = cairn_core::Tensor::zeros(cairn_core::DType::F32, vec![1, 4]).unwrap();
    assert!(s.run([("x".to_string(), x)].into()).unwrap_err().to_string().contains("shape"));
}

#[test]
fn cycles_duplicates_and_dangling_values_are_graph_errors() {
    let cycle = model(vec![node("Relu", &["z"], &["y"]), node("Relu", &["y"], &["z"])], vec![]).encode_to_vec();
    assert!(cairn_onnx::load_bytes(&cycle, None).unwrap_err().to_string().contains("cycle"));
    let dup = model(vec![node("Relu", &["x"], &["y"]), node("Relu", &["x"], &["y"])], vec![]).encode_to_vec();
    assert!(cairn_onnx::load_bytes(&dup, None).unwrap_err().to_string().contains("defined twice"));
    let dangling = model(vec![node("Relu", &["nowhere"], &["y"])], vec![]).encode_to_vec();
    assert!(cairn_onnx::load_bytes(&dangling, None).unwrap_err().to_string().contains("nothing defines"));
}

#[test]
fn unknown_ops_and_attributes_name_node_op_and_opset() {
    let m = model(vec![node("FancyNewOp", &["x"], &["y"])], vec![]).encode_to_vec();
    let err = cairn_onnx::load_bytes(&m, None).unwrap_err().to_string();
    assert!(err.contains("FancyNewOp") && err.contains("FancyNewOp_node") && err.contains("17"), "{err}");
    let mut relu = node("Relu", &["x"], &["y"]);
    relu.attribute.push(AttributeProto { name: "mystery".into(), r#type: attribute_type::INT, i: 3, ..Default::default() });
    let err = cairn_onnx::load_bytes(&model(vec![relu], vec![]).encode_to_vec(), None).unwrap_err().to_string();
    assert!(err.contains("mystery") && err.contains("Relu"), "{err}");
}

#[test]
fn external_data_cannot_escape_the_model_directory_or_overread() {
    let dir = std::env::temp_dir().join(format!("cairn-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("weights.bin"), [0u8; 8]).unwrap();
    let ext = |location: &str, len: i64| TensorProto {
        name: "w".into(),
        dims: vec![len],
        data_type: data_type::FLOAT,
        data_location: 1,
        external_data: vec![StringStringEntryProto { key: "location".into(), value: location.into() }],
        ..Default::default()
    };
    for (loc, len, want) in
        [("../etc/passwd", 1, "relative path"), ("/etc/passwd", 1, "relative path"), ("weights.bin", 4, "holds 8 bytes")]
    {
        let m = model(vec![node("Add", &["x", "w"], &["y"])], vec![ext(loc, len)]).encode_to_vec();
        let err = cairn_onnx::load_bytes(&m, Some(&dir)).unwrap_err().to_string();
        assert!(err.contains(want), "{loc}: {err}");
    }
    let ok = model(vec![node("Add", &["x", "w"], &["y"])], vec![ext("weights.bin", 2)]).encode_to_vec();
    assert!(cairn_onnx::load_bytes(&ok, Some(&dir)).is_ok());
}

/// Every file the fuzzer found (kept as seeds in fuzz/seeds/import_model) loads and runs on zeros
/// without panicking: each once crashed a kernel.
#[test]
fn fuzz_findings_stay_fixed() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/import_model");
    for entry in std::fs::read_dir(&seeds).expect("fuzz/seeds/import_model exists") {
        let path = entry.expect("readable dir").path();
        let Ok(model) = cairn_onnx::load(&path) else { continue };
        let inputs: std::collections::HashMap<String, cairn_core::Tensor> = model
            .graph
            .runtime_inputs()
            .filter_map(|i| {
                let shape: Vec<usize> = i.dims.iter().flatten().map(|d| if let cairn_core::Dim::Known(n) = d { *n } else { 1 }).collect();
                cairn_core::Tensor::zeros(i.dtype, shape).ok().map(|t| (i.name.clone(), t))
            })
            .collect();
        let Ok((graph, _)) = cairn_core::passes::prepare_for_inference(model.graph) else { continue };
        let _ = cairn_core::Session::new(graph).run(inputs); // an error is fine, a panic is not
    }
}

/// Opsets 1 to 6 load node by node (ADR 0027): an operator unchanged since the model's
/// opset is accepted, changed ones are listed in one error with the opset Cairn follows.
#[test]
fn old_opsets_are_accepted_per_operator() {
    let at = |opset: i64, nodes: Vec<NodeProto>| {
        let mut m = model(nodes, vec![]);
        m.opset_import[0].version = opset;
        cairn_onnx::load_bytes(&m.encode_to_vec(), None)
    };
    // Relu and Neg dropped `consumed_inputs` at opset 6; Identity never changed.
    assert!(at(1, vec![node("Identity", &["x"], &["y"])]).is_ok());
    assert!(at(6, vec![node("Relu", &["x"], &["y"])]).is_ok());
    let err = at(5, vec![node("Relu", &["x"], &["r"]), node("Relu", &["r"], &["s"]), node("Neg", &["s"], &["y"])]).unwrap_err();
    assert!(matches!(err, cairn_onnx::Error::LegacyOpset { opset: 5, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("Relu at node 'Relu_node' (x2; Cairn's definition applies from opset 6)"), "{msg}");
    assert!(msg.contains("Neg at node"), "{msg}");
    // Opset 0 does not exist.
    assert!(matches!(at(0, vec![node("Identity", &["x"], &["y"])]).unwrap_err(), cairn_onnx::Error::Opset { .. }));
}

/// Issue 13's string and random operators on hostile files (docs/adr/0031).
#[test]
fn lying_string_tensors_bad_patterns_and_huge_samples_are_errors() {
    let strings = |dims: Vec<i64>, data: Vec<&[u8]>| TensorProto {
        name: "s".into(),
        dims,
        data_type: data_type::STRING,
        string_data: data.into_iter().map(|b| b.to_vec()).collect(),
        ..Default::default()
    };
    let load = |nodes: Vec<NodeProto>, inits: Vec<TensorProto>| {
        let mut m = model(nodes, inits);
        let g = m.graph.as_mut().unwrap();
        g.input.clear();
        // Outputs of any shape (the string and sampling ops decide theirs).
        if let Some(type_proto::Value::TensorType(t)) = g.output[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.shape = None;
        }
        m.opset_import[0].version = 20;
        cairn_onnx::load_bytes(&m.encode_to_vec(), None)
    };
    let concat = || vec![node("StringConcat", &["s", "s"], &["y"])];
    // Declared [1000000] but 1 string; a huge declared count; bytes that are not UTF-8.
    let err = load(concat(), vec![strings(vec![1_000_000], vec![b"a"])]).unwrap_err().to_string();
    assert!(err.contains("promise 1000000 strings but string_data holds 1"), "{err}");
    assert!(load(concat(), vec![strings(vec![1 << 40, 1 << 40, 1 << 40], vec![])]).is_err());
    let err = load(concat(), vec![strings(vec![1], vec![b"\xff\xfe"])]).unwrap_err().to_string();
    assert!(err.contains("not valid UTF-8"), "{err}");
    // The honest one loads and runs.
    let ok = load(concat(), vec![strings(vec![2], vec![b"a", b"b"])]).unwrap();
    let out = cairn_core::Session::new(ok.graph).run_values(Default::default()).unwrap();
    assert_eq!(
        out[0].1,
        cairn_core::Value::Strings(cairn_core::StringTensor::new(vec![2], vec!["aa".into(), "bb".into()]).unwrap().into())
    );

    // A regex that does not compile: a load error naming the pattern.
    let mut re = node("RegexFullMatch", &["s"], &["y"]);
    re.attribute.push(AttributeProto { name: "pattern".into(), r#type: attribute_type::STRING, s: b"(a|".to_vec(), ..Default::default() });
    let err = load(vec![re], vec![strings(vec![1], vec![b"a"])]).unwrap_err().to_string();
    assert!(err.contains("does not compile"), "{err}");

    // Multinomial asked for 2^40 samples per row: refused by the memory limit, not allocated.
    let mut mn = node("Multinomial", &["p"], &["y"]);
    mn.attribute.push(AttributeProto { name: "sample_size".into(), r#type: attribute_type::INT, i: 1 << 40, ..Default::default() });
    let p =
        TensorProto { name: "p".into(), dims: vec![1, 2], data_type: data_type::FLOAT, float_data: vec![0.0, 0.0], ..Default::default() };
    let m = load(vec![mn], vec![p]).unwrap();
    let err = cairn_core::Session::new(m.graph).run(Default::default()).unwrap_err().to_string();
    assert!(err.contains("too large") || err.contains("memory"), "{err}");
}
