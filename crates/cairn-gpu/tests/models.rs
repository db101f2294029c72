//! Whole models on the GPU against the CPU engine: MobileNetV2-1.0 (random weights,
//! tools/build_mobilenetv2.py) and the pretrained EfficientNet-Lite0 with every operator on
//! the GPU, the MiniLM-L6 encoder with its integer steps (embedding lookups, the mask's cast)
//! on the CPU; outputs within 1e-4 of the output's scale, and the runs' counters.

mod common;

use common::{compare_by, gpu, tensor, Metric};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

/// `target/<file>`, made by `tools/<tool> <arg>` if it is not there yet.
fn model(file: &str, tool: &str, arg: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("target").join(file);
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let status =
            Command::new("python3").arg(root.join("tools").join(tool)).arg(root.join("target").join(arg)).status().expect("python3 runs");
        assert!(status.success(), "tools/{tool} failed (hint: pip install -r tools/requirements.txt)");
    }
    path
}

fn mobilenetv2() -> PathBuf {
    model("models/mobilenetv2.onnx", "build_mobilenetv2.py", "models/mobilenetv2.onnx")
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
        "MobileNetV2 on the GPU: {} dispatches, {} bytes uploaded, {} read back, {} read-backs; fell back: {:?}; built with {} bytes; value buffers {} bytes pooled, {} unpooled",
        stats.counters.dispatches,
        stats.counters.bytes_uploaded,
        stats.counters.bytes_read_back,
        stats.counters.read_backs,
        stats.fallback,
        stats.bytes_uploaded_at_build,
        stats.value_bytes,
        stats.value_bytes_unpooled
    );
    assert!(stats.value_bytes * 2 < stats.value_bytes_unpooled, "pooling should at least halve the value buffers");
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

#[test]
fn efficientnet_lite0_runs_fully_on_the_gpu_and_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let path = model("models/efficientnet_lite0.onnx", "convert_efficientnet_lite0.py", "models/efficientnet_lite0.onnx");
    let graph = cairn_onnx::load(&path).unwrap().graph;
    let inputs = HashMap::from([("input".to_string(), tensor(&[1, 3, 224, 224], 11))]);
    let (stats, _) = compare_by(gpu, graph, inputs, 1e-4, Metric::OutputScale);
    eprintln!(
        "EfficientNet-Lite0 on the GPU: {} dispatches, {} bytes uploaded, {} read back; fell back: {:?}; value buffers {} bytes pooled, {} unpooled",
        stats.counters.dispatches,
        stats.counters.bytes_uploaded,
        stats.counters.bytes_read_back,
        stats.fallback,
        stats.value_bytes,
        stats.value_bytes_unpooled
    );
    assert!(stats.value_bytes * 2 < stats.value_bytes_unpooled, "pooling should at least halve the value buffers");
    assert!(stats.fallback.is_empty(), "fell back: {:?}", stats.fallback);
    assert_eq!(stats.counters.read_backs, 1);
    // 49 convolutions (BatchNormalization, Clip and the 9 residual Adds fused in), the pool and the classifier.
    assert_eq!(stats.counters.dispatches, 51);
}

fn minilm() -> PathBuf {
    model("text-model/minilm_l6.onnx", "convert_minilm.py", "text-model")
}

/// Token ids, a mask with the second text padded, and zero token types, [batch, seq] int64.
fn text_inputs(batch: usize, seq: usize) -> HashMap<String, cairn_core::Tensor> {
    let ids: Vec<i64> = (0..batch * seq).map(|i| 101 + (i as i64 * 7919) % 20000).collect();
    let mut mask = vec![1i64; batch * seq];
    if batch > 1 {
        mask[seq + seq * 3 / 4..].iter_mut().for_each(|m| *m = 0); // the second text is shorter: padding
    }
    let t = |v: Vec<i64>| cairn_core::Tensor::from_i64(vec![batch, seq], v).unwrap();
    HashMap::from([
        ("input_ids".to_string(), t(ids)),
        ("attention_mask".to_string(), t(mask)),
        ("token_type_ids".to_string(), t(vec![0; batch * seq])),
    ])
}

#[test]
fn minilm_encoder_runs_fully_on_the_gpu_at_64_and_128_tokens() {
    let Some(gpu) = gpu() else { return };
    let graph = cairn_onnx::load(&minilm()).unwrap().graph;
    for seq in [64, 128] {
        // The CPU engine's own spread (plain folded operators against the fused path), for
        // the element-by-element error of hidden states near zero.
        let (plain, _) = cairn_core::passes::fold::fold_constants(graph.clone()).unwrap();
        let (fused, _) = cairn_core::passes::prepare_for_inference(graph.clone()).unwrap();
        let a = cairn_core::Session::new(plain).run(text_inputs(2, seq)).unwrap();
        let b = cairn_core::Session::new(fused).run(text_inputs(2, seq)).unwrap();
        eprintln!(
            "{seq} tokens, CPU plain vs CPU fused: max relative error {:.2e}, max error / max |value| {:.2e}",
            common::max_rel_err(&a[0].1, &b[0].1),
            common::scaled_err(&a[0].1, &b[0].1)
        );
        let (stats, _) = compare_by(gpu.clone(), graph.clone(), text_inputs(2, seq), 1e-4, Metric::OutputScale);
        eprintln!(
            "MiniLM-L6 on the GPU, 2 x {seq} tokens: {} dispatches, {} bytes uploaded, {} read back, {} read-backs; fell back: {:?}; value buffers {} bytes pooled, {} unpooled",
            stats.counters.dispatches,
            stats.counters.bytes_uploaded,
            stats.counters.bytes_read_back,
            stats.counters.read_backs,
            stats.fallback,
            stats.value_bytes,
            stats.value_bytes_unpooled
        );
        // The embedding Gathers read the int64 ids as i32 on the GPU, the mask's Unsqueeze is
        // a view and its Cast a kernel: nothing falls back, and the run reads back once.
        assert!(stats.fallback.is_empty(), "fell back: {:?}", stats.fallback);
        assert_eq!(stats.counters.read_backs, 1);
        // The three [2, seq] int64 inputs go up as i32; the [2, seq, 384] output comes down.
        assert_eq!(stats.counters.bytes_uploaded, 3 * 2 * seq as u64 * 4);
        assert_eq!(stats.counters.bytes_read_back, 2 * seq as u64 * 384 * 4);
        assert!(stats.value_bytes * 2 < stats.value_bytes_unpooled, "pooling should at least halve the value buffers");
    }
}

#[test]
fn token_ids_out_of_the_vocabulary_are_an_input_error_not_a_wrong_answer() {
    let Some(gpu) = gpu() else { return };
    let graph = cairn_onnx::load(&minilm()).unwrap().graph;
    let mut session = cairn_gpu::GpuSession::new(gpu, graph).unwrap();
    for bad in [30522i64, -30523, 1 << 40] {
        let mut inputs = text_inputs(1, 8);
        let mut ids = vec![101i64; 8];
        ids[5] = bad;
        inputs.insert("input_ids".into(), cairn_core::Tensor::from_i64(vec![1, 8], ids).unwrap());
        let Err(err) = pollster::block_on(session.run(inputs)) else { panic!("an out-of-range id fails the run") };
        let msg = err.to_string();
        eprintln!("id {bad}: {msg}");
        assert!(matches!(err, cairn_gpu::GpuError::Input(_)), "{msg}");
        assert!(msg.contains(&bad.to_string()) && msg.contains("30522"), "{msg}");
    }
    // Negative ids count from the end, as on the CPU; the session still runs after the errors.
    let mut inputs = text_inputs(1, 8);
    inputs.insert("input_ids".into(), cairn_core::Tensor::from_i64(vec![1, 8], vec![-1, 5, 7, 101, -30522, 2000, 3, 4]).unwrap());
    pollster::block_on(session.run(inputs)).unwrap();
}
