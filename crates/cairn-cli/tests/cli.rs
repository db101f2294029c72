//! End-to-end tests of the `cairn` binary: output, JSON, and error behaviour.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("run cairn")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A failing command prints exactly one `error:` line, maybe a `hint:` line, and exits 1 (not 101: no panic).
fn assert_clean_failure(o: &Output, expect_in_error: &str) {
    let (_, err) = text(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("note:")).collect();
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(expect_in_error), "expected '{expect_in_error}' in: {err}");
    assert!(lines.len() <= 2 && lines.get(1).is_none_or(|l| l.starts_with("hint: ")), "{err}");
}

#[test]
fn inspect_shows_io_and_costs() {
    let o = cairn(&["inspect", data("relu.onnx").to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("x") && out.contains("[batch, 4]"), "{out}");
    assert!(out.contains("Relu"), "{out}");
    assert!(out.contains("working memory"), "{out}");
}

#[test]
fn inspect_json_is_machine_readable() {
    let o = cairn(&["inspect", data("relu.onnx").to_str().unwrap(), "--json", "--dim", "batch=8"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["inputs"][0]["name"], "x");
    assert_eq!(v["inputs"][0]["shape"][0], "batch");
    assert_eq!(v["bound_dims"]["batch"], 8);
    assert_eq!(v["ops"]["Relu"], 1);
    // Input and output of 8x4 f32: Relu overwrites its input in place, one 128-byte block.
    assert_eq!(v["peak_working_bytes"], 128);
}

#[test]
fn run_reads_and_writes_npy() {
    let dir = std::env::temp_dir().join(format!("cairn-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("y.npy");
    let input = format!("x={}", data("x.npy").display());
    let o = cairn(&["run", data("relu.onnx").to_str().unwrap(), "--input", &input, "--output", out_path.to_str().unwrap(), "--runs", "3"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("median"), "{out}");
    let bytes = std::fs::read(&out_path).unwrap();
    // Last 16 bytes: relu([-1, 2, -3, 4]) as little-endian f32.
    let tail: Vec<f32> = bytes[bytes.len() - 16..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(tail, vec![0.0, 2.0, 0.0, 4.0]);
}

#[test]
fn run_converts_float64_with_a_note() {
    let o = cairn(&["run", data("relu.onnx").to_str().unwrap(), "--input", data("x_f64.npy").to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("float64 converted"), "{err}");
    assert!(out.contains("[0.000000, 2.000000, 0.000000, 4.000000]"), "{out}");
}

#[test]
fn run_random_json() {
    let o = cairn(&["run", data("relu.onnx").to_str().unwrap(), "--random", "--dim", "batch=3", "--json"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([3, 4]));
}

#[test]
fn errors_are_one_line_with_a_hint() {
    let model = data("relu.onnx");
    let m = model.to_str().unwrap();
    assert_clean_failure(&cairn(&["run", m]), "input 'x' was not given");
    assert_clean_failure(&cairn(&["run", "/nonexistent/model.onnx", "--random"]), "does not exist");
    assert_clean_failure(&cairn(&["inspect", data("x.npy").to_str().unwrap()]), "cannot load");
    assert_clean_failure(&cairn(&["run", data("missing_ops.onnx").to_str().unwrap(), "--random"]), "Frobnicate");
    assert_clean_failure(&cairn(&["run", m, "--input", "y=/dev/null"]), "");
    let wrong_shape = format!("x={}", data("x.npy").display());
    // NonZero runs now (data-dependent shapes): what fails is the input shape the model declares.
    assert_clean_failure(&cairn(&["run", data("unsupported.onnx").to_str().unwrap(), "--input", &wrong_shape]), "must have shape [4]");
    assert_clean_failure(&cairn(&["run", m, "--random", "--runs", "0"]), "--runs");
}

#[test]
fn unsupported_op_error_names_each_op_with_its_domain_and_opset() {
    let o = cairn(&["run", data("missing_ops.onnx").to_str().unwrap(), "--random"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for expected in [
        "3 operator(s)",
        "Frobnicate (com.example opset 3) x2",
        "Twiddle (com.example opset 3) x1",
        "NoSuchFusion (com.microsoft opset 1) x1",
        "first at node 'frob1'",
        "hint: `cairn ops`",
    ] {
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
    }
}

#[test]
fn a_string_model_gets_a_hint_about_strings_not_float64() {
    let o = cairn(&["run", data("string_io.onnx").to_str().unwrap(), "--random"]);
    // String models load (docs/adr/0031) but `cairn run` feeds numbers only: a clean refusal.
    assert_clean_failure(&o, "string tensor");
    let (_, err) = text(&o);
    assert!(err.contains("hint: string tensors run through the library") && err.contains("token ids"), "{err}");
    assert!(!err.contains("float64"), "float64 is supported; the hint must not blame it: {err}");
}

#[test]
fn inspect_lists_a_string_models_ops_and_io() {
    let o = cairn(&["inspect", data("string_io.onnx").to_str().unwrap(), "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(out.as_bytes()).expect("valid JSON");
    assert_eq!(v["inputs"][0]["name"], "text", "{out}");
    assert_eq!(v["inputs"][0]["dtype"], "string", "{out}");
    assert_eq!(v["ops"]["StringNormalizer"], 1, "{out}");
}

#[test]
fn inspect_lists_every_missing_op_at_once_with_counts() {
    let model = data("missing_ops.onnx");
    let o = cairn(&["inspect", model.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "inspecting an unrunnable model is still an inspection: {err}");
    assert!(out.contains("3 operator(s) it lacks, used by 4 of 5 nodes"), "{out}");
    let row =
        |op: &str| out.lines().find(|l| l.trim_start().starts_with(op)).unwrap_or_else(|| panic!("no row for {op}: {out}")).to_string();
    let words = |l: String| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(row("Frobnicate")), ["Frobnicate", "com.example", "3", "2"]);
    assert_eq!(words(row("Twiddle")), ["Twiddle", "com.example", "3", "1"]);
    assert_eq!(words(row("NoSuchFusion")), ["NoSuchFusion", "com.microsoft", "1", "1"]);

    let o = cairn(&["inspect", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["loadable"], false);
    assert_eq!(v["inputs"], serde_json::json!(["x"]));
    let missing = v["missing_ops"].as_array().unwrap();
    assert_eq!(missing.len(), 3);
    assert_eq!(missing[0], serde_json::json!({"domain": "com.example", "op_type": "Frobnicate", "opset": 3, "nodes": 2}));
    assert_eq!(v["ops"]["com.example.Frobnicate"], 2);
    assert_eq!(v["ops"]["Relu"], 1);
}

#[test]
fn run_random_fills_ids_masks_and_type_ids_by_name_and_range() {
    let o = cairn(&["run", data("bert_like.onnx").to_str().unwrap(), "--random", "--dim", "sequence=64", "--json", "--seed", "3"]);
    let (out, err) = text(&o);
    // With ids in [0, 10) the 2-row token type table would be indexed out of range.
    assert!(o.status.success(), "{err}");
    assert!(err.contains("input_ids: i64 [1, 64], ids in [0, 30) (rows of 'word'"), "{err}");
    assert!(err.contains("token_type_ids: i64 [1, 64], all zeros"), "{err}");
    assert!(err.contains("attention_mask: i64 [1, 64], all ones"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout stays JSON");
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([1, 64, 4]));
}

#[test]
fn help_describes_every_subcommand() {
    let (out, _) = text(&cairn(&["--help"]));
    let commands: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("Commands:")).skip(1).take_while(|l| l.starts_with("  ")).collect();
    assert!(commands.len() >= 10, "{out}");
    for line in commands {
        assert!(line.split_whitespace().count() >= 3, "subcommand without a description: '{line}'");
    }
}

#[test]
fn shape_chains_fold_when_planning_for_any_batch() {
    for batch in ["1", "7"] {
        let o = cairn(&["inspect", data("shape_chain.onnx").to_str().unwrap(), "--json", "--dim", &format!("batch={batch}")]);
        assert!(o.status.success(), "{}", text(&o).1);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["plan_folded_nodes"], 4, "Shape, Gather, Unsqueeze, Concat fold");
        assert_eq!(v["plan_steps"], 1, "only the Reshape runs");
    }
    let o = cairn(&["run", data("shape_chain.onnx").to_str().unwrap(), "--random", "--dim", "batch=5", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([5, 12]));
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", text(o).1);
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

#[test]
fn pack_verify_run_and_diff_a_bundle() {
    let dir = temp_dir("pack");
    let bundle = dir.join("classifier");
    let b = bundle.to_str().unwrap();
    let v1 = data("classifier_v1.onnx");
    let labels = data("classifier_labels.txt");
    let pack = |model: &Path| {
        json(&cairn(&[
            "pack",
            model.to_str().unwrap(),
            "-o",
            b,
            "--shard-size",
            "0.004",
            "--image-size",
            "16",
            "--mean",
            "0.485,0.456,0.406",
            "--std",
            "0.229,0.224,0.225",
            "--labels",
            labels.to_str().unwrap(),
            "--json",
        ]))
    };
    let first = pack(&v1);
    assert!(first["shards"].as_u64().unwrap() >= 3, "{first}");
    let levels = first["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2, "a progressive bundle has a coarse and a full level");
    assert!(levels[0]["fidelity"]["top1_agreement"].as_f64().unwrap() > 0.9, "{first}");

    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "cairn-bundle/1");
    assert_eq!(manifest["inputs"][0]["preprocess"]["size"], serde_json::json!([16, 16]));
    assert_eq!(manifest["inputs"][0]["preprocess"]["layout"], "nchw");
    assert_eq!(manifest["outputs"][0]["labels"][3], "class 3");

    let report = json(&cairn(&["verify", b, "--json"]));
    assert_eq!(report["ok"], true, "{report}");

    // The bundle computes exactly what the ONNX file does.
    let from_onnx = json(&cairn(&["run", v1.to_str().unwrap(), "--random", "--json"]));
    let from_bundle = json(&cairn(&["run", b, "--random", "--json"]));
    assert_eq!(from_onnx["outputs"][0]["first_values"], from_bundle["outputs"][0]["first_values"]);

    // A new version differing in the last layer: only that layer's shards change.
    let old_manifest = dir.join("v1-manifest.json");
    std::fs::copy(bundle.join("manifest.json"), &old_manifest).unwrap();
    let second = pack(&data("classifier_v2.onnx"));
    assert!(second["write"]["shards_reused"].as_u64().unwrap() > 0, "{second}");
    let plan = json(&cairn(&["diff", old_manifest.to_str().unwrap(), b, "--json"]));
    let fetch = plan["fetch"].as_array().unwrap().len() as u64;
    assert!(fetch > 0 && fetch < second["shards"].as_u64().unwrap(), "{plan}");
    assert_eq!(plan["fetch"].as_array().unwrap().len() as u64, second["write"]["shards_written"].as_u64().unwrap());

    // A corrupted shard fails verification, naming the shard, with exit code 1.
    let shards: Vec<PathBuf> = std::fs::read_dir(bundle.join("shards")).unwrap().map(|e| e.unwrap().path()).collect();
    let mut bytes = std::fs::read(&shards[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&shards[0], bytes).unwrap();
    let o = cairn(&["verify", b]);
    assert_eq!(o.status.code(), Some(1));
    let (_, err) = text(&o);
    let name = shards[0].file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name) && err.contains("sha256"), "{err}");
    let o = cairn(&["run", b, "--random"]);
    assert_clean_failure(&o, "sha256");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pack_refuses_bad_options_clearly() {
    let dir = temp_dir("pack-bad");
    let out = dir.join("m");
    let v1 = data("classifier_v1.onnx");
    let o = cairn(&["pack", v1.to_str().unwrap(), "-o", out.to_str().unwrap(), "--image-size", "big"]);
    assert_clean_failure(&o, "--image-size");
    let labels = dir.join("labels.txt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&labels, "a\nb\n").unwrap();
    let o = cairn(&["pack", v1.to_str().unwrap(), "-o", out.to_str().unwrap(), "--labels", labels.to_str().unwrap()]);
    assert_clean_failure(&o, "2 labels");
    assert!(!out.join("manifest.json").exists(), "a failed pack writes nothing");
    let o = cairn(&["verify", dir.to_str().unwrap()]);
    assert_clean_failure(&o, "manifest.json");
    // Fidelity inputs that do not fit the model are named in the error.
    let inputs = dir.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(data("x.npy"), inputs.join("wrong_shape.npy")).unwrap();
    let o = cairn(&["pack", v1.to_str().unwrap(), "-o", out.to_str().unwrap(), "--fidelity-inputs", inputs.to_str().unwrap()]);
    assert_clean_failure(&o, "wrong_shape.npy does not fit the model");
    std::fs::write(inputs.join("wrong_shape.npy"), b"not numpy").unwrap();
    let o = cairn(&["pack", v1.to_str().unwrap(), "-o", out.to_str().unwrap(), "--fidelity-inputs", inputs.to_str().unwrap()]);
    assert_clean_failure(&o, "wrong_shape.npy");
    assert!(!out.join("manifest.json").exists(), "a failed pack writes nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}
