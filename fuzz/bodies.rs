//! What each fuzz target does with its bytes, as plain functions: the libFuzzer targets in
//! fuzz_targets/ call them, and `cargo test` replays the committed seeds and crash artifacts
//! through them (crates/cairn-cli/tests/fuzz_corpus.rs) so that a fixed crash stays fixed
//! without a sanitizer build. Any panic, overflow, hang or OOM in them is a bug.
// Each fuzz target binary uses one of these functions.
#![allow(dead_code)]

use cairn_bundle::{Loader, Manifest};
use cairn_core::{plan::PlanLimits, DType, Dim, Graph, Session, StringTensor, Tensor, Value};
use cairn_onnx::proto::{
    attribute_type, data_type, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
    ValueInfoProto,
};
use prost::Message;
use std::collections::HashMap;

/// Small enough that one execution stays fast and cannot exhaust memory.
const LIMITS: PlanLimits = PlanLimits { max_arena_bytes: 64 << 20, max_loop_iterations: 256 };

/// ONNX bytes -> import, inference preparation, a run on zero inputs.
pub fn import_model(data: &[u8]) {
    if let Ok(model) = cairn_onnx::load_bytes(data, None) {
        prepare_and_run(model.graph);
    }
}

/// TF.js: the bytes before the first NUL are model.json, the rest is the shard
/// `group1-shard1of1.bin` -> import, inference preparation, a run on zero inputs.
pub fn import_tfjs(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, rest) = data.split_at(split);
    let shards: HashMap<String, Vec<u8>> = [("group1-shard1of1.bin".to_string(), rest.get(1..).unwrap_or_default().to_vec())].into();
    if let Ok(model) = cairn_tfjs::load_bytes(json, &shards) {
        prepare_and_run(model.graph);
    }
}

/// .tflite bytes -> verified import, inference preparation, a run on zero inputs.
pub fn import_tflite(data: &[u8]) {
    if let Ok(model) = cairn_tflite::load_bytes(data) {
        prepare_and_run(model.graph);
    }
}

/// The same preparation every loader runs (folding, fusion, prepacking), then a run on
/// zero inputs (symbolic dimensions as 1) under [`LIMITS`].
fn prepare_and_run(graph: Graph) {
    let mut inputs = HashMap::new();
    for info in graph.runtime_inputs() {
        let shape: Vec<usize> = info
            .dims
            .iter()
            .flatten()
            .map(|d| match d {
                Dim::Known(n) => *n,
                Dim::Sym(_) => 1,
            })
            .collect();
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > 1 << 16) {
            return; // keep each execution fast
        }
        // String inputs (docs/adr/0031) get short non-empty strings, so that string ops run.
        let v = if info.dtype == DType::Str {
            let n = shape.iter().product();
            let Ok(s) = StringTensor::new(shape, vec!["a B".to_string(); n]) else { return };
            Value::Strings(s.into())
        } else {
            let Ok(t) = Tensor::zeros(info.dtype, shape) else { return };
            Value::tensor(t)
        };
        inputs.insert(info.name.clone(), v);
    }
    let Ok((graph, _)) = cairn_core::passes::prepare_for_inference(graph) else { return };
    let _ = Session::with_limits(graph, LIMITS).run_values(inputs);
}

/// The bundle loader: a manifest and one shard, split at a 2-byte length prefix. So that
/// the fuzzer gets past the sha256 check into the safetensors parser and weight placement,
/// the manifest's first shard entry is rewritten to name the shard bytes given: what a
/// hostile server could do.
pub fn load_bundle(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let len = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (manifest_bytes, shard) = rest.split_at(len);
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(manifest_bytes) else {
        let _ = Manifest::parse(manifest_bytes);
        return;
    };
    if let Some(first) = value.get_mut("shards").and_then(|s| s.get_mut(0)).and_then(|s| s.as_object_mut()) {
        let sha = cairn_bundle::sha256_hex(shard);
        first.insert("path".into(), format!("shards/{sha}.safetensors").into());
        first.insert("sha256".into(), sha.into());
        first.insert("bytes".into(), (shard.len() as u64).into());
    }
    let Ok(manifest) = Manifest::parse(value.to_string().as_bytes()) else { return };
    let Ok(mut loader) = Loader::new(manifest, 64 << 20) else { return };
    if loader.accept_shard(0, shard).is_ok() {
        if let Ok(graph) = loader.graph() {
            let _ = cairn_core::passes::prepare_for_inference(graph);
        }
    }
}

/// The parsers of subgraphs and sequence/optional values. The first byte picks what the rest is:
///   0  a GraphProto, run as the body of `Loop(M = 3, cond = true, x)`
///   1  a GraphProto, run as both branches of an `If`
///   2  a GraphProto, run as the body of a `Scan` over `x` with one state value
///   3  a SequenceProto / OptionalProto value (`value_from_bytes`)
pub fn subgraph_sequence(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 4 == 3 {
        let _ = cairn_onnx::value_from_bytes(rest, Some(&nested(type_proto::Value::SequenceType)));
        let _ = cairn_onnx::value_from_bytes(rest, Some(&nested(type_proto::Value::OptionalType)));
        return;
    }
    let Ok(body) = GraphProto::decode(rest) else { return };
    let Some(bytes) = wrap(mode % 4, body) else { return };
    let Ok(model) = cairn_onnx::load_bytes(&bytes, None) else { return };
    let session = Session::with_limits(model.graph, LIMITS);
    let x = Tensor::from_f32(vec![2, 3], vec![0.5; 6]).expect("a 2x3 tensor");
    let _ = session.run(HashMap::from([("x".to_string(), x)]));
}

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

/// A Hugging Face tokenizer.json, NUL, a text (UTF-8, lossily) -> the tokenizer a text bundle
/// loads (natively, in the worker's wasm tokenizer module and on the edge: the same
/// `TextTokenizer`), with the file's own truncation and with the bundle's max length, then
/// the text alone, in a padded batch, and in text pairs. A hostile bundle may ship any tokenizer.json, and a
/// panic in the browser's wasm would end the worker.
pub fn load_tokenizer(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, rest) = data.split_at(split);
    let text = String::from_utf8_lossy(rest.get(1..).unwrap_or_default());
    for max_length in [None, Some(8)] {
        if let Ok(tokenizer) = cairn_text::TextTokenizer::from_json(json, max_length) {
            let _ = tokenizer.encode(&text);
            let _ = tokenizer.encode_batch(&[&text, "", "a b"]);
            // Pairs (cross-encoders, NLI): the pair template and pair truncation.
            let _ = tokenizer.encode_batch_inputs(&[(&text, Some("a b")), ("", Some(&text)), ("x", None)]);
            let _ = tokenizer.encode_input("a b", Some(&text));
        }
    }
}
