//! `.tflite` files through the CLI: detected by extension or by the `TFL3` identifier,
//! run with int8 inputs from .npy, refused with a readable error when corrupt.

use std::path::PathBuf;
use std::process::{Command, Output};

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("run cairn")
}

/// The fuzz seeds are small valid models written by the importer's test builders.
fn seed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/import_tflite").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cairn-cli-tflite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn inspect_and_run_a_tflite_model_with_int8_input() {
    let model = seed("conv_int8.tflite");
    let out = cairn(&["inspect", model.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("TensorFlow Lite"), "{text}");
    let input = text.lines().find(|l| l.trim_start().starts_with("x ")).unwrap_or_else(|| panic!("no input 'x' listed: {text}"));
    assert!(input.contains("i8") && input.contains("[1, 3, 3, 2]"), "{text}");

    // An int8 .npy input: magic, version 1.0, header, 18 bytes.
    let header = "{'descr': '|i1', 'fortran_order': False, 'shape': (1, 3, 3, 2), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad % 64));
    npy.extend((header.len() as u16).to_le_bytes());
    npy.extend(header.as_bytes());
    npy.extend((0..18u8).map(|v| v.wrapping_mul(7)));
    let input = tmp("x.npy");
    std::fs::write(&input, npy).unwrap();
    let out = cairn(&["run", model.to_str().unwrap(), "--input", &format!("x={}", input.display()), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run --json prints JSON");
    let y = &run["outputs"][0];
    assert_eq!((y["name"].as_str(), y["dtype"].as_str()), (Some("y"), Some("i8")), "{run}");
    assert_eq!(y["shape"], serde_json::json!([1, 3, 3, 2]), "{run}");
    let values: Vec<f64> = y["first_values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(!values.is_empty() && values.iter().all(|v| v.fract() == 0.0 && (-128.0..=127.0).contains(v)), "{run}");
}

#[test]
fn the_tfl3_identifier_is_detected_without_the_extension_and_corruption_is_explained() {
    let renamed = tmp("model.bin");
    std::fs::copy(seed("conv_f32.tflite"), &renamed).unwrap();
    let out = cairn(&["inspect", renamed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut bytes = std::fs::read(seed("conv_f32.tflite")).unwrap();
    bytes.truncate(bytes.len() / 2);
    let broken = tmp("broken.tflite");
    std::fs::write(&broken, bytes).unwrap();
    let out = cairn(&["run", broken.to_str().unwrap(), "--random"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not a valid TFLite model"), "{err}");
}
