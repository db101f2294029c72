//! The CLI on TF.js models: a model.json or its directory goes through the same commands as an
//! .onnx file, and `cairn pack` makes a normal bundle that runs the same.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cairn-tfjs/tests/fixtures").join(name)
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("run cairn")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn first_values(run_json: &str) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_str(run_json).unwrap();
    v["outputs"][0]["first_values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn inspect_takes_a_tfjs_directory_and_its_model_json() {
    let dir = fixture("zoo_keras3");
    for path in [dir.clone(), dir.join("model.json")] {
        let out = stdout(&cairn(&["inspect", path.to_str().unwrap()]));
        assert!(out.contains("TensorFlow.js layers-model"), "{out}");
        assert!(out.contains("[batch, 16, 16, 3]"), "{out}");
    }
}

#[test]
fn a_packed_tfjs_model_is_a_bundle_that_runs_like_the_model() {
    let work = std::env::temp_dir().join(format!("cairn-cli-tfjs-{}", std::process::id()));
    let bundle = work.join("zoo");
    let model = fixture("graph_uint8");
    stdout(&cairn(&["pack", model.to_str().unwrap(), "-o", bundle.to_str().unwrap()]));
    assert!(bundle.join("manifest.json").is_file());
    stdout(&cairn(&["verify", bundle.to_str().unwrap()]));
    let direct = first_values(&stdout(&cairn(&["run", model.to_str().unwrap(), "--random", "--json"])));
    let packed = first_values(&stdout(&cairn(&["run", bundle.to_str().unwrap(), "--random", "--json"])));
    assert_eq!(direct.len(), 5);
    for (a, b) in direct.iter().zip(&packed) {
        assert!((a - b).abs() < 1e-6, "{direct:?} vs {packed:?}");
    }
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn a_tfjs_model_with_a_missing_shard_fails_cleanly_with_the_shard_named() {
    let work = std::env::temp_dir().join(format!("cairn-cli-tfjs-missing-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(fixture("zoo_keras2").join("model.json"), work.join("model.json")).unwrap();
    let o = cairn(&["run", work.to_str().unwrap(), "--random"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("shard 'group1-shard1of1.bin' is missing"), "{err}");
    std::fs::remove_dir_all(&work).unwrap();
}
