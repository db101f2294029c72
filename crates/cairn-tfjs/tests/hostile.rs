//! Hostile model.json files: each must fail with an error that names the problem, never
//! panic, and never allocate what the files do not justify.

use std::collections::HashMap;

type Shards = HashMap<String, Vec<u8>>;

const SHARD: &str = "group1-shard1of1.bin";

/// A one-layer Sequential model (Dense 2 -> 1) and its weights manifest.
fn dense_model(kernel_shape: &str, paths: &str, extra_weight: &str) -> String {
    format!(
        r#"{{"format":"layers-model","modelTopology":{{"model_config":{{"class_name":"Sequential","config":{{"name":"s","layers":[
            {{"class_name":"Dense","config":{{"name":"d","units":1,"activation":"linear","use_bias":false,"batch_input_shape":[null,2]}}}}]}}}}}},
          "weightsManifest":[{{"paths":[{paths}],"weights":[{{"name":"d/kernel","shape":{kernel_shape},"dtype":"float32"}}{extra_weight}]}}]}}"#
    )
}

fn shards(bytes: usize) -> Shards {
    [(SHARD.to_string(), vec![0u8; bytes])].into()
}

fn load_err(json: &str, shards: &Shards) -> String {
    match cairn_tfjs::load_bytes(json.as_bytes(), shards) {
        Ok(_) => panic!("the hostile model loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_well_formed_base_model_loads() {
    let json = dense_model("[2,1]", &format!("\"{SHARD}\""), "");
    cairn_tfjs::load_bytes(json.as_bytes(), &shards(8)).expect("the base of the hostile cases is valid");
}

#[test]
fn a_manifest_that_claims_more_bytes_than_the_shard_holds() {
    let err = load_err(&dense_model("[2,1]", &format!("\"{SHARD}\""), ""), &shards(4));
    assert!(err.contains("describes 8 bytes but the shards hold 4"), "{err}");
}

#[test]
fn a_shard_longer_than_the_manifest_explains() {
    let err = load_err(&dense_model("[2,1]", &format!("\"{SHARD}\""), ""), &shards(12));
    assert!(err.contains("describes 8 bytes but the shards hold 12"), "{err}");
}

#[test]
fn a_missing_shard_is_named() {
    let err = load_err(&dense_model("[2,1]", "\"group1-shard2of2.bin\"", ""), &shards(8));
    assert!(err.contains("shard 'group1-shard2of2.bin' is missing"), "{err}");
}

#[test]
fn absurd_shapes_fail_before_any_allocation() {
    // 2^31 x 2^31 floats: 2^64 bytes, an overflow; and a dimension beyond the limit.
    let err = load_err(&dense_model("[2147483648,2147483648]", &format!("\"{SHARD}\""), ""), &shards(8));
    assert!(err.contains("overflow"), "{err}");
    let err = load_err(&dense_model("[4294967296,1]", &format!("\"{SHARD}\""), ""), &shards(8));
    assert!(err.contains("invalid dimension"), "{err}");
    let err = load_err(&dense_model("[-1,1]", &format!("\"{SHARD}\""), ""), &shards(8));
    assert!(err.contains("invalid dimension -1"), "{err}");
    // Large but representable: 2^30 floats = 4 GiB claimed, 8 bytes present: refused by size, not allocated.
    let err = load_err(&dense_model("[1073741824,1]", &format!("\"{SHARD}\""), ""), &shards(8));
    assert!(err.contains("describes 4294967296 bytes but the shards hold 8"), "{err}");
}

#[test]
fn shard_paths_may_not_leave_the_model_directory() {
    let dir = std::env::temp_dir().join(format!("cairn-tfjs-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for path in ["../../etc/passwd", "/etc/passwd"] {
        std::fs::write(dir.join("model.json"), dense_model("[2,1]", &format!("\"{path}\""), "")).unwrap();
        let err = cairn_tfjs::load(&dir.join("model.json")).unwrap_err().to_string();
        assert!(err.contains("must be a plain relative path"), "{path}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_quantization_and_dtypes_are_refused() {
    let q = r#","quantization":{"dtype":"uint8","scale":null,"min":0}"#;
    let json = dense_model("[2,1]", &format!("\"{SHARD}\""), &format!(r#",{{"name":"x","shape":[2],"dtype":"float32"{q}}}"#));
    assert!(load_err(&json, &shards(10)).contains("needs finite 'scale' and 'min'"));
    let json =
        dense_model("[2,1]", &format!("\"{SHARD}\""), r#",{"name":"x","shape":[2],"dtype":"float32","quantization":{"dtype":"int4"}}"#);
    assert!(load_err(&json, &shards(9)).contains("quantization dtype 'int4'"));
    let json = dense_model("[2,1]", &format!("\"{SHARD}\""), r#",{"name":"x","shape":[1],"dtype":"string"}"#);
    assert!(load_err(&json, &shards(9)).contains("dtype 'string' is not supported"));
}

#[test]
fn cyclic_inbound_nodes_are_an_error() {
    let json = r#"{"format":"layers-model","modelTopology":{"class_name":"Functional","config":{"name":"m",
        "layers":[{"class_name":"InputLayer","name":"in","config":{"batch_input_shape":[null,2]},"inbound_nodes":[]},
                  {"class_name":"ReLU","name":"a","config":{},"inbound_nodes":[[["b",0,0,{}]]]},
                  {"class_name":"ReLU","name":"b","config":{},"inbound_nodes":[[["a",0,0,{}]]]}],
        "input_layers":[["in",0,0]],"output_layers":[["b",0,0]]}},"weightsManifest":[]}"#;
    let err = load_err(json, &Shards::new());
    assert!(err.contains("cycle"), "{err}");
}

#[test]
fn inbound_nodes_naming_unknown_layers_are_an_error() {
    let json = r#"{"format":"layers-model","modelTopology":{"class_name":"Functional","config":{"name":"m",
        "layers":[{"class_name":"InputLayer","name":"in","config":{"batch_input_shape":[null,2]},"inbound_nodes":[]},
                  {"class_name":"ReLU","name":"a","config":{},"inbound_nodes":[[["ghost",0,0,{}]]]}],
        "input_layers":[["in",0,0]],"output_layers":[["a",0,0]]}},"weightsManifest":[]}"#;
    assert!(load_err(json, &Shards::new()).contains("reads from 'ghost', which is not a layer"));
}

#[test]
fn a_graph_model_cycle_and_a_dangling_input_are_errors() {
    let graph = |nodes: &str| format!(r#"{{"format":"graph-model","modelTopology":{{"node":[{nodes}]}},"weightsManifest":[]}}"#);
    let placeholder = r#"{"name":"x","op":"Placeholder","attr":{"shape":{"shape":{"dim":[{"size":"1"},{"size":"4"}]}}}}"#;
    let cyc = graph(&format!(r#"{placeholder},{{"name":"a","op":"Relu","input":["b"]}},{{"name":"b","op":"Relu","input":["a"]}}"#));
    assert!(load_err(&cyc, &Shards::new()).contains("cycle"));
    let dangling = graph(&format!(r#"{placeholder},{{"name":"a","op":"Relu","input":["nowhere:3"]}}"#));
    assert!(load_err(&dangling, &Shards::new()).contains("reads 'nowhere:3', which is not a node"));
}

#[test]
fn unsupported_ops_are_listed_together() {
    let json = r#"{"format":"graph-model","modelTopology":{"node":[
        {"name":"x","op":"Placeholder","attr":{"shape":{"shape":{"dim":[{"size":"1"}]}}}},
        {"name":"a","op":"Enter","input":["x"]},{"name":"b","op":"LoopCond","input":["a"]},{"name":"c","op":"Enter","input":["b"]}]},
        "weightsManifest":[]}"#;
    let err = load_err(json, &Shards::new());
    assert!(err.contains("Enter (x2), LoopCond (x1)"), "{err}");
}

#[test]
fn not_json_or_not_a_model_is_named() {
    for bad in ["", "not json", "[1,2,3]", "{\"weightsManifest\":[]}", &"[".repeat(100_000)] {
        let err = load_err(bad, &Shards::new());
        assert!(err.contains("not a TensorFlow.js model.json"), "{bad:.20}: {err}");
    }
}

#[test]
fn truncated_and_bit_flipped_fixtures_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zoo_keras3");
    let json = std::fs::read(dir.join("model.json")).unwrap();
    let shard: Shards = [(SHARD.to_string(), std::fs::read(dir.join(SHARD)).unwrap())].into();
    for cut in (0..json.len()).step_by(97) {
        let _ = cairn_tfjs::load_bytes(&json[..cut], &shard);
    }
    let mut state = 0x9e3779b97f4a7c15u64;
    for _ in 0..300 {
        let mut flipped = json.clone();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = (state % flipped.len() as u64) as usize;
        flipped[i] ^= 1 << (state >> 60 & 7);
        let _ = cairn_tfjs::load_bytes(&flipped, &shard);
    }
}
