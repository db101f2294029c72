//! Small TF.js models exported by Keras / tensorflowjs (tools/tfjs/make_fixtures.py) run
//! through the importer and Cairn's executor, against Keras's (or TF.js's) own outputs.
//! Together they cover the Keras layers the importer maps (LSTM/GRU excepted: Cairn has no
//! recurrent op yet), both Keras topology dialects, and a uint8-quantized graph model.

use cairn_core::{passes::prepare_for_inference, Session, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Imports, prepares (folding, fusion) and runs the fixture; returns the largest absolute error.
fn max_error(name: &str) -> f32 {
    let dir = fixture(name);
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let floats = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<f32>>();
    let shape: Vec<usize> = expected["input_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let model = cairn_tfjs::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    let input_name = model.graph.inputs[0].name.clone();
    let (graph, _) = prepare_for_inference(model.graph).unwrap();
    let session = Session::new(graph);
    let x = Tensor::from_f32(shape, floats(&expected["input"])).unwrap();
    let outputs = session.run(HashMap::from([(input_name, x)])).unwrap();
    let want = expected["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), want.len(), "{name}: output count");
    let mut worst = 0f32;
    for ((out_name, got), want) in outputs.iter().zip(want) {
        let (got, want) = (got.view().to_f32_vec(), floats(want));
        assert_eq!(got.len(), want.len(), "{name}: output '{out_name}' size");
        worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
    }
    worst
}

#[test]
fn keras3_functional_zoo_matches_keras() {
    let e = max_error("zoo_keras3");
    assert!(e < 1e-5, "max error {e}");
}

#[test]
fn keras2_functional_zoo_matches_keras() {
    let e = max_error("zoo_keras2");
    assert!(e < 1e-5, "max error {e}");
}

#[test]
fn keras2_sequential_without_input_layer_matches_keras() {
    let e = max_error("sequential_keras2");
    assert!(e < 1e-5, "max error {e}");
}

#[test]
fn uint8_quantized_graph_model_matches_tfjs() {
    let e = max_error("graph_uint8");
    assert!(e < 1e-5, "max error {e}");
}

#[test]
fn normalization_layer_matches_keras() {
    let e = max_error("normalization_keras3");
    assert!(e < 1e-5, "max error {e}");
}

#[test]
fn embedding_layer_matches_keras() {
    let e = max_error("embedding_keras3");
    assert!(e < 1e-5, "max error {e}");
}

#[test]
fn a_directory_and_its_model_json_load_the_same_graph() {
    let a = cairn_tfjs::load(&fixture("zoo_keras3")).unwrap();
    let b = cairn_tfjs::load(&fixture("zoo_keras3").join("model.json")).unwrap();
    assert_eq!(a.graph.nodes.len(), b.graph.nodes.len());
    assert_eq!(a.meta.format, "layers-model");
}

#[test]
fn spatial_layers_pay_no_transpose_per_layer() {
    // One layout change at the input, and one before each Flatten/Reshape that needs NHWC order.
    let g = cairn_tfjs::load(&fixture("zoo_keras3")).unwrap().graph;
    let transposes = g.nodes.iter().filter(|n| n.op_type == "Transpose").count();
    let convs = g.nodes.iter().filter(|n| n.op_type == "Conv").count();
    assert!(convs >= 5, "{convs} convs");
    assert!(transposes <= 3, "{transposes} transposes for {convs} convs");
}
