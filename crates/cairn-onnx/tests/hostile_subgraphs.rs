//! Hostile control flow and sequences (issue 13, item 4): an absurd Loop trip count, loops
//! with no way to end, subgraphs nested without bound, mismatched Scan inputs, sequence
//! positions out of range. Each must end in a clear error, never a hang or a panic.

use cairn_core::plan::PlanLimits;
use cairn_core::{Error, Session, Tensor, Value};
use cairn_onnx::proto::{
    attribute_type, data_type, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
    ValueInfoProto,
};
use prost::Message;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn typed(name: &str, elem_type: i32) -> ValueInfoProto {
    let tensor = type_proto::Tensor { elem_type, shape: None };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), denotation: String::new() }),
        doc_string: String::new(),
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().copied().unwrap_or("")),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::GRAPH, g: Some(Box::new(g)), ..Default::default() }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i, ..Default::default() }
}

fn scalar(name: &str, data_type: i32, v: i64) -> TensorProto {
    let mut t = TensorProto { name: name.into(), data_type, ..Default::default() };
    match data_type {
        data_type::BOOL => t.int32_data = vec![v as i32],
        _ => t.int64_data = vec![v],
    }
    t
}

fn model(graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn session(bytes: &[u8], limits: PlanLimits) -> Session {
    Session::with_limits(cairn_onnx::load_bytes(bytes, None).expect("the model loads").graph, limits)
}

fn x(n: usize) -> HashMap<String, Tensor> {
    HashMap::from([("x".to_string(), Tensor::from_f32(vec![n], vec![1.0; n]).unwrap())])
}

/// A Loop over `x` whose body passes its condition through and adds 1 to `x`; optionally
/// it also emits `x` as a scan output every iteration.
fn counting_loop(trip_count: Option<i64>, cond: Option<bool>, scan_output: bool) -> Vec<u8> {
    let mut body_nodes = vec![node("Identity", &["cond_in"], &["cond_out"], vec![]), node("Add", &["x_in", "one"], &["x_out"], vec![])];
    let mut body_outputs = vec![typed("cond_out", data_type::BOOL), typed("x_out", data_type::FLOAT)];
    if scan_output {
        body_nodes.push(node("Identity", &["x_in"], &["x_scan"], vec![]));
        body_outputs.push(typed("x_scan", data_type::FLOAT));
    }
    let body = GraphProto {
        name: "body".into(),
        node: body_nodes,
        input: vec![typed("i", data_type::INT64), typed("cond_in", data_type::BOOL), typed("x_in", data_type::FLOAT)],
        output: body_outputs,
        ..Default::default()
    };
    let mut initializer =
        vec![TensorProto { name: "one".into(), data_type: data_type::FLOAT, float_data: vec![1.0], ..Default::default() }];
    let m = trip_count.map(|m| {
        initializer.push(scalar("M", data_type::INT64, m));
        "M"
    });
    let c = cond.map(|c| {
        initializer.push(scalar("cond", data_type::BOOL, c as i64));
        "cond"
    });
    let mut outputs = vec!["y"];
    let mut graph_outputs = vec![typed("y", data_type::FLOAT)];
    if scan_output {
        outputs.push("ys");
        graph_outputs.push(typed("ys", data_type::FLOAT));
    }
    let lp = node("Loop", &[m.unwrap_or(""), c.unwrap_or(""), "x"], &outputs, vec![graph_attr("body", body)]);
    model(GraphProto {
        node: vec![lp],
        initializer,
        input: vec![typed("x", data_type::FLOAT)],
        output: graph_outputs,
        ..Default::default()
    })
}

fn is_too_large(e: &Error) -> bool {
    match e {
        Error::AtNode { source, .. } => is_too_large(source),
        Error::TooLarge(_) => true,
        _ => false,
    }
}

#[test]
fn a_loop_runs_its_trip_count_and_stacks_its_scan_output() {
    let s = session(&counting_loop(Some(5), Some(true), true), PlanLimits::default());
    let out = s.run(x(2)).unwrap();
    assert_eq!(out[0].1.f32s().unwrap(), &[6.0, 6.0]);
    assert_eq!(out[1].1.shape(), &[5, 2]);
    assert_eq!(out[1].1.f32s().unwrap()[8..], [5.0, 5.0]);
}

#[test]
fn an_absurd_trip_count_ends_with_an_error_not_a_hang() {
    let limits = PlanLimits { max_loop_iterations: 10_000, ..PlanLimits::default() };
    let s = session(&counting_loop(Some(i64::MAX), Some(true), false), limits);
    let started = Instant::now();
    let err = s.run(x(1)).unwrap_err();
    assert!(is_too_large(&err) && err.to_string().contains("max_loop_iterations"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_default_iteration_limit_stops_an_endless_loop_in_seconds() {
    let s = session(&counting_loop(Some(i64::MAX), Some(true), false), PlanLimits::default());
    let started = Instant::now();
    let err = s.run(x(1)).unwrap_err();
    assert!(is_too_large(&err), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

#[test]
fn a_loop_with_neither_trip_count_nor_condition_is_bounded_too() {
    let limits = PlanLimits { max_loop_iterations: 1000, ..PlanLimits::default() };
    let err = session(&counting_loop(None, None, false), limits).run(x(1)).unwrap_err();
    assert!(is_too_large(&err), "{err}");
}

#[test]
fn scan_outputs_that_outgrow_the_memory_limit_are_refused() {
    let limits = PlanLimits { max_arena_bytes: 1 << 20, ..PlanLimits::default() };
    let err = session(&counting_loop(Some(1 << 30), Some(true), true), limits).run(x(1024)).unwrap_err();
    assert!(is_too_large(&err) && err.to_string().contains("scan outputs"), "{err}");
}

/// `depth` Ifs nested in each other's then-branch, the innermost returning `x`; every
/// else-branch returns `x` too.
fn nested_ifs(depth: usize) -> Vec<u8> {
    let mut inner = GraphProto {
        name: "leaf".into(),
        node: vec![node("Identity", &["x"], &["leaf_out"], vec![])],
        output: vec![typed("leaf_out", data_type::FLOAT)],
        ..Default::default()
    };
    let leaf = inner.clone();
    for level in 0..depth {
        let out = format!("out{level}");
        // Only the then-branch nests (nesting both would double the file per level).
        let if_node = node("If", &["c"], &[&out], vec![graph_attr("then_branch", inner), graph_attr("else_branch", leaf.clone())]);
        inner = GraphProto {
            name: format!("level{level}"),
            node: vec![if_node],
            output: vec![typed(&out, data_type::FLOAT)],
            ..Default::default()
        };
    }
    inner.input = vec![typed("x", data_type::FLOAT)];
    inner.initializer = vec![scalar("c", data_type::BOOL, 1)];
    model(inner)
}

#[test]
fn nested_ifs_read_outer_values_through_every_level() {
    let s = session(&nested_ifs(4), PlanLimits::default());
    assert_eq!(s.run(x(3)).unwrap()[0].1.f32s().unwrap(), &[1.0, 1.0, 1.0]);
}

#[test]
fn subgraphs_nested_too_deep_are_refused_at_import() {
    // 20 levels: within protobuf's recursion limit, beyond Cairn's MAX_SUBGRAPH_DEPTH.
    let err = cairn_onnx::load_bytes(&nested_ifs(20), None).unwrap_err();
    assert!(err.to_string().contains("nest"), "{err}");
    // 200 levels: the decoder refuses first; neither may overflow the stack.
    let deep = std::thread::Builder::new().stack_size(64 << 20).spawn(|| nested_ifs(200)).unwrap().join().unwrap();
    assert!(cairn_onnx::load_bytes(&deep, None).is_err());
}

#[test]
fn a_body_reading_a_name_nothing_defines_is_refused() {
    let body = GraphProto {
        name: "then".into(),
        node: vec![node("Identity", &["nowhere"], &["t"], vec![])],
        output: vec![typed("t", data_type::FLOAT)],
        ..Default::default()
    };
    let if_node = node("If", &["c"], &["y"], vec![graph_attr("then_branch", body.clone()), graph_attr("else_branch", body)]);
    let g = GraphProto {
        node: vec![if_node],
        initializer: vec![scalar("c", data_type::BOOL, 1)],
        input: vec![typed("x", data_type::FLOAT)],
        output: vec![typed("y", data_type::FLOAT)],
        ..Default::default()
    };
    let err = cairn_onnx::load_bytes(&model(g), None).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

fn scan_of_two(len_a: usize, len_b: usize, num_scan_inputs: i64) -> (Vec<u8>, HashMap<String, Tensor>) {
    let body = GraphProto {
        name: "body".into(),
        node: vec![node("Add", &["a", "b"], &["s"], vec![])],
        input: vec![typed("a", data_type::FLOAT), typed("b", data_type::FLOAT)],
        output: vec![typed("s", data_type::FLOAT)],
        ..Default::default()
    };
    let scan = node("Scan", &["xa", "xb"], &["y"], vec![graph_attr("body", body), int_attr("num_scan_inputs", num_scan_inputs)]);
    let g = GraphProto {
        node: vec![scan],
        input: vec![typed("xa", data_type::FLOAT), typed("xb", data_type::FLOAT)],
        output: vec![typed("y", data_type::FLOAT)],
        ..Default::default()
    };
    let inputs = HashMap::from([
        ("xa".to_string(), Tensor::from_f32(vec![len_a, 2], vec![1.0; len_a * 2]).unwrap()),
        ("xb".to_string(), Tensor::from_f32(vec![len_b, 2], vec![2.0; len_b * 2]).unwrap()),
    ]);
    (model(g), inputs)
}

#[test]
fn mismatched_scan_lengths_are_an_error() {
    let (bytes, inputs) = scan_of_two(3, 3, 2);
    let out = session(&bytes, PlanLimits::default()).run(inputs).unwrap();
    assert_eq!(out[0].1.shape(), &[3, 2]);
    assert_eq!(out[0].1.f32s().unwrap(), &[3.0; 6]);
    let (bytes, inputs) = scan_of_two(3, 4, 2);
    let err = session(&bytes, PlanLimits::default()).run(inputs).unwrap_err();
    assert!(err.to_string().contains("must match"), "{err}");
    let (bytes, inputs) = scan_of_two(3, 3, 5);
    let err = session(&bytes, PlanLimits::default()).run(inputs).unwrap_err();
    assert!(err.to_string().contains("num_scan_inputs"), "{err}");
}

fn sequence_at(position: i64) -> Vec<u8> {
    model(GraphProto {
        node: vec![node("SequenceConstruct", &["x", "x"], &["seq"], vec![]), node("SequenceAt", &["seq", "pos"], &["y"], vec![])],
        initializer: vec![scalar("pos", data_type::INT64, position)],
        input: vec![typed("x", data_type::FLOAT)],
        output: vec![typed("y", data_type::FLOAT)],
        ..Default::default()
    })
}

#[test]
fn a_sequence_position_out_of_range_is_an_error() {
    assert_eq!(session(&sequence_at(-2), PlanLimits::default()).run(x(2)).unwrap()[0].1.f32s().unwrap(), &[1.0, 1.0]);
    for pos in [2, -3, i64::MAX, i64::MIN] {
        let err = session(&sequence_at(pos), PlanLimits::default()).run(x(2)).unwrap_err();
        assert!(err.to_string().contains("out of range"), "position {pos}: {err}");
    }
}

#[test]
fn a_sequence_output_needs_run_values() {
    let bytes = model(GraphProto {
        node: vec![node("SequenceConstruct", &["x"], &["seq"], vec![])],
        input: vec![typed("x", data_type::FLOAT)],
        output: vec![typed("seq", data_type::FLOAT)],
        ..Default::default()
    });
    let s = session(&bytes, PlanLimits::default());
    assert!(s.run(x(1)).unwrap_err().to_string().contains("run_values"));
    let inputs = x(1).into_iter().map(|(k, t)| (k, Value::tensor(t))).collect();
    match &s.run_values(inputs).unwrap()[0].1 {
        Value::Sequence(seq) => assert_eq!(seq.items.len(), 1),
        other => panic!("expected a sequence, got {}", other.describe()),
    }
}
