//! End-to-end tests of `cairn optimize --quantize int8` and `cairn eval`: a calibrated
//! int8 model that runs and follows its original, atomic output, and clear errors on
//! hostile calibration directories (unreadable files, NaNs, nothing to read).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("run cairn")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-optimize-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A float32 .npy file of `shape`.
fn write_npy(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    values.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// `n` deterministic input images for the test classifier ([1, 3, 16, 16]).
fn inputs(dir: &Path, n: usize, seed: u64) {
    let mut s = seed;
    for i in 0..n {
        let v: Vec<f32> = (0..3 * 16 * 16)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        write_npy(&dir.join(format!("in_{i:02}.npy")), &[1, 3, 16, 16], &v);
    }
}

/// A failure is one `error:` line (plus an optional hint), exit code 1 (no panic), and
/// leaves no output file behind.
fn assert_clean_failure(o: &Output, expect: &str, out: &Path) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:") || l.starts_with("hint:")).collect();
    assert!(lines.first().is_some_and(|l| l.contains(expect)), "expected '{expect}' in: {err}");
    assert!(!out.exists(), "a failed optimize left {}", out.display());
    let dir = out.parent().unwrap();
    let stray: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

#[test]
fn quantized_model_runs_and_follows_the_original() {
    let dir = temp_dir("ok");
    let (calib, eval) = (dir.join("calib"), dir.join("eval"));
    std::fs::create_dir_all(&calib).unwrap();
    std::fs::create_dir_all(&eval).unwrap();
    inputs(&calib, 16, 1);
    inputs(&eval, 24, 2); // disjoint from calibration
    let model = data("classifier_v1.onnx");
    let out = dir.join("int8.onnx");
    for method in ["minmax", "percentile", "mse", "entropy"] {
        let o = cairn(&[
            "optimize",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--quantize",
            "int8",
            "--calibrate",
            calib.to_str().unwrap(),
            "--calibration",
            method,
            "--report",
        ]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        assert!(stderr(&o).contains("quantized 3 layers to int8"), "{}", stderr(&o));
    }
    // The int8 model runs on the int8 kernels (fused at load) ...
    let o = cairn(&["run", out.to_str().unwrap(), "--random", "--profile"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let profile = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(profile.contains("Conv+int8"), "{profile}");
    // ... and follows the original on held-out inputs.
    let o = cairn(&["eval", model.to_str().unwrap(), out.to_str().unwrap(), "--inputs", eval.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["inputs"], 24);
    assert!(r["mean_cosine"].as_f64().unwrap() > 0.99, "{r}");
    assert!(r["top1_agreement"].as_f64().unwrap() >= 0.8, "{r}");
    assert!(!r["layers"].as_array().unwrap().is_empty(), "per-layer errors: {r}");
    // int8 weights (this model is small, so scales, int32 biases and names weigh more
    // than in a real one, where the file shrinks to ~27%).
    let (before, after) = (std::fs::metadata(&model).unwrap().len(), std::fs::metadata(&out).unwrap().len());
    assert!(after * 2 <= before, "{before} -> {after}");
}

#[test]
fn hostile_calibration_inputs_fail_clearly() {
    let dir = temp_dir("hostile");
    let model = data("classifier_v1.onnx");
    let m = model.to_str().unwrap();
    let out = dir.join("out.onnx");
    let o = out.to_str().unwrap();
    // An image that is not an image, next to good inputs.
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    inputs(&bad, 2, 3);
    std::fs::write(bad.join("photo.png"), b"not really a png").unwrap();
    assert_clean_failure(&cairn(&["optimize", m, "-o", o, "--quantize", "int8", "--calibrate", bad.to_str().unwrap()]), "photo.png", &out);
    // A truncated .npy.
    let trunc = dir.join("trunc");
    std::fs::create_dir_all(&trunc).unwrap();
    std::fs::write(trunc.join("x.npy"), b"\x93NUMPY\x01\x00").unwrap();
    assert_clean_failure(&cairn(&["optimize", m, "-o", o, "--quantize", "int8", "--calibrate", trunc.to_str().unwrap()]), "x.npy", &out);
    // NaN in an input.
    let nan = dir.join("nan");
    std::fs::create_dir_all(&nan).unwrap();
    let mut v = vec![0.5f32; 3 * 16 * 16];
    v[7] = f32::NAN;
    write_npy(&nan.join("nan.npy"), &[1, 3, 16, 16], &v);
    assert_clean_failure(&cairn(&["optimize", m, "-o", o, "--quantize", "int8", "--calibrate", nan.to_str().unwrap()]), "NaN", &out);
    // A wrong shape.
    let shape = dir.join("shape");
    std::fs::create_dir_all(&shape).unwrap();
    write_npy(&shape.join("small.npy"), &[1, 3, 8, 8], &[0.0; 3 * 64]);
    assert_clean_failure(
        &cairn(&["optimize", m, "-o", o, "--quantize", "int8", "--calibrate", shape.to_str().unwrap()]),
        "small.npy",
        &out,
    );
    // Nothing to read; no directory; no --calibrate; unknown method.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_clean_failure(
        &cairn(&["optimize", m, "-o", o, "--quantize", "int8", "--calibrate", empty.to_str().unwrap()]),
        "no .npy inputs",
        &out,
    );
    assert_clean_failure(
        &cairn(&["optimize", m, "-o", o, "--quantize", "int8", "--calibrate", dir.join("missing").to_str().unwrap()]),
        "cannot read",
        &out,
    );
    assert_clean_failure(&cairn(&["optimize", m, "-o", o, "--quantize", "int8"]), "--calibrate", &out);
    assert_clean_failure(
        &cairn(&["optimize", m, "-o", o, "--quantize", "int8", "--calibrate", bad.to_str().unwrap(), "--calibration", "magic"]),
        "magic",
        &out,
    );
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `--sensitivity` with `--prune`: each block pruned alone at several ratios, then per-block
/// ratios that spare the more sensitive block while removing exactly the overall ratio;
/// the pruned model (one block has a residual Add) runs and is evaluated.
#[test]
fn sensitivity_guides_pruning() {
    let dir = temp_dir("prune-sens");
    let calib = dir.join("calib");
    std::fs::create_dir_all(&calib).unwrap();
    inputs(&calib, 8, 5);
    let model = data("blocks.onnx");
    let (out, table) = (dir.join("pruned.onnx"), dir.join("sensitivity.json"));
    let o = cairn(&[
        "optimize",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--prune",
        "0.5",
        "--sensitivity",
        "--calibrate",
        calib.to_str().unwrap(),
        "--sensitivity-json",
        table.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("pruning sensitivity"), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(stderr(&o).contains("hidden channels 80 -> 40 (50.0% removed)"), "{}", stderr(&o));
    let t = json_file(&table);
    let blocks = t["pruning"].as_array().unwrap();
    assert_eq!(blocks.len(), 2, "{t}");
    let removed: f64 = blocks.iter().map(|b| (b["hidden"].as_f64().unwrap() * b["ratio"].as_f64().unwrap()).round()).sum();
    assert_eq!(removed, 40.0, "{t}");
    // The block that hurts more when pruned alone at 50% is pruned less.
    let kl_at_half =
        |b: &serde_json::Value| b["probes"].as_array().unwrap().iter().find(|p| p["ratio"] == 0.5).unwrap()["mean_kl"].as_f64().unwrap();
    let (a, b) = (&blocks[0], &blocks[1]);
    let (fragile, robust) = if kl_at_half(a) > kl_at_half(b) { (a, b) } else { (b, a) };
    assert!(fragile["ratio"].as_f64().unwrap() < robust["ratio"].as_f64().unwrap(), "{t}");
    let o = cairn(&["eval", model.to_str().unwrap(), out.to_str().unwrap(), "--inputs", calib.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Without calibration inputs there is nothing to measure on.
    assert_clean_failure(
        &cairn(&["optimize", model.to_str().unwrap(), "-o", dir.join("x.onnx").to_str().unwrap(), "--prune", "0.5", "--sensitivity"]),
        "--calibrate",
        &dir.join("x.onnx"),
    );
}

/// `--keep-sensitive N` keeps the N layers that hurt most when quantized alone in f32,
/// and the table says which.
#[test]
fn most_sensitive_layers_stay_f32() {
    let dir = temp_dir("quant-sens");
    let calib = dir.join("calib");
    std::fs::create_dir_all(&calib).unwrap();
    inputs(&calib, 8, 6);
    let model = data("blocks.onnx");
    let (out, table) = (dir.join("int8.onnx"), dir.join("sensitivity.json"));
    let o = cairn(&[
        "optimize",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
        "--calibrate",
        calib.to_str().unwrap(),
        "--keep-sensitive",
        "2",
        "--sensitivity",
        "--sensitivity-json",
        table.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("quantized 6 layers to int8"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("quantization sensitivity"));
    let t = json_file(&table);
    let layers = t["quantization"].as_array().unwrap();
    assert_eq!(layers.len(), 8, "{t}");
    let kept: Vec<bool> = layers.iter().map(|l| l["kept_f32"].as_bool().unwrap()).collect();
    assert_eq!(kept, [true, true, false, false, false, false, false, false], "most sensitive first: {t}");
    let kls: Vec<f64> = layers.iter().map(|l| l["mean_kl"].as_f64().unwrap()).collect();
    assert!(kls.windows(2).all(|w| w[0] >= w[1]), "{kls:?}");
    let o = cairn(&["run", out.to_str().unwrap(), "--random"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Sensitivity options need something to measure.
    let x = dir.join("x.onnx");
    assert_clean_failure(
        &cairn(&["optimize", model.to_str().unwrap(), "-o", x.to_str().unwrap(), "--keep-sensitive", "1"]),
        "--quantize",
        &x,
    );
    assert_clean_failure(
        &cairn(&[
            "optimize",
            model.to_str().unwrap(),
            "-o",
            x.to_str().unwrap(),
            "--quantize",
            "int8",
            "--calibrate",
            calib.to_str().unwrap(),
            "--sensitivity-json",
            x.with_extension("json").to_str().unwrap(),
        ]),
        "--sensitivity",
        &x,
    );
}

#[test]
fn zero_range_activation_is_handled() {
    // All-zero inputs: every activation has range [0, 0]; quantization must not divide by zero.
    let dir = temp_dir("zero");
    let calib = dir.join("calib");
    std::fs::create_dir_all(&calib).unwrap();
    write_npy(&calib.join("zeros.npy"), &[1, 3, 16, 16], &[0.0; 3 * 16 * 16]);
    let out = dir.join("int8.onnx");
    let o = cairn(&[
        "optimize",
        data("classifier_v1.onnx").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
        "--calibrate",
        calib.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("were 0 on every calibration input"), "{}", stderr(&o));
    let o = cairn(&["run", out.to_str().unwrap(), "--random"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
