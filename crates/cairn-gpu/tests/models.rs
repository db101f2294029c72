//! MobileNetV2-1.0 (random weights, tools/build_mobilenetv2.py) on the GPU against the CPU
//! engine: every operator on the GPU, outputs within 1e-4 relative, and the run's counters.

mod common;

use common::{compare_by, gpu, tensor, Metric};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

/// The model under target/models, built by the repo's tool if it is not there yet.
fn mobilenetv2() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("target/models/mobilenetv2.onnx");
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let status = Command::new("python3").arg(root.join("tools/build_mobilenetv2.py")).arg(&path).status().expect("python3 runs");
        assert!(status.success(), "tools/build_mobilenetv2.py failed (hint: pip install -r tools/requirements.txt)");
    }
    path
}

#[test]
fn mobilenetv2_runs_fully_on_the_gpu_and_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let model = cairn_onnx::load(&mobilenetv2()).unwrap();
    let inputs = HashMap::from([("input".to_string(), tensor(&[1, 3, 224, 224], 7))]);
    // The CPU engine's own spread: fused and prepacked (as loaders run it) against plain
    // folded operators; a different summation order alone moves the logits this much.
    let (plain, _) = cairn_core::passes::fold::fold_constants(model.graph.clone()).unwrap();
    let (fused, _) = cairn_core::passes::prepare_for_inference(model.graph.clone()).unwrap();
    let a = cairn_core::Session::new(plain).run(inputs.clone()).unwrap();
    let b = cairn_core::Session::new(fused).run(inputs.clone()).unwrap();
    eprintln!(
        "CPU plain vs CPU fused: max relative error {:.2e}, max error / max |value| {:.2e}",
        common::max_rel_err(&a[0].1, &b[0].1),
        common::scaled_err(&a[0].1, &b[0].1)
    );
    let (stats, mut session) = compare_by(gpu, model.graph, inputs.clone(), 1e-4, Metric::OutputScale);
    eprintln!(
        "MobileNetV2 on the GPU: {} dispatches, {} bytes uploaded, {} read back, {} read-backs; fell back: {:?}; built with {} bytes",
        stats.counters.dispatches,
        stats.counters.bytes_uploaded,
        stats.counters.bytes_read_back,
        stats.counters.read_backs,
        stats.fallback,
        stats.bytes_uploaded_at_build
    );
    assert!(stats.fallback.is_empty(), "fell back: {:?}", stats.fallback);
    assert_eq!(stats.counters.read_backs, 1);
    assert_eq!(stats.counters.bytes_uploaded, 3 * 224 * 224 * 4);
    assert_eq!(stats.counters.bytes_read_back, 1000 * 4);
    // 52 convolutions (BatchNormalization, Clip and the 10 residual Adds fused in), the
    // global pool and the classifier; Flatten is a view.
    assert_eq!(stats.counters.dispatches, 54);
    let (_, again) = pollster::block_on(session.run(inputs)).unwrap();
    assert_eq!(again.bytes_uploaded_at_build, 0, "weights stay on the device");
}
