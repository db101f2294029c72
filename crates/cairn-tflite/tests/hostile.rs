//! Hostile and malformed .tflite files: every one must be a clear error, never a panic
//! or an allocation the file does not justify.

mod common;

use cairn_core::{Session, Tensor, TensorData};
use cairn_tflite::schema_generated::tflite::{BuiltinOperator, TensorType};
use common::*;

fn run(bytes: &[u8], x: Tensor) -> Tensor {
    let m = cairn_tflite::load_bytes(bytes).unwrap();
    let (graph, _) = cairn_core::passes::prepare_for_inference(m.graph).unwrap();
    let s = Session::new(graph);
    s.run([("x".to_string(), x)].into()).unwrap().remove(0).1
}

#[test]
fn the_valid_model_imports_and_runs_in_nhwc() {
    let x: Vec<f32> = (0..18).map(|v| v as f32 - 8.0).collect();
    let y = run(&conv_model(), Tensor::from_f32(vec![1, 3, 3, 2], x.clone()).unwrap());
    assert_eq!(y.shape(), &[1, 3, 3, 2], "outputs keep TFLite's NHWC shape");
    let want: Vec<f32> = x.chunks(2).flat_map(|p| [(p[0] - p[1] + 0.5).max(0.0), (2.0 * p[1]).max(0.0)]).collect();
    assert_eq!(y.f32s().unwrap(), want.as_slice());
}

/// The quantized CONV_2D of `int8_conv_model` in real arithmetic, per pixel: x = (q + 1) / 2;
/// y0 = relu(x0 - x1 + 0.5), y1 = relu(2 x1); q = round(y / 0.5) - 1 (int8 range).
fn int8_conv_reference(xq: &[i8]) -> Vec<[i32; 2]> {
    let real = |q: i8| (q as f32 + 1.0) * 0.5;
    xq.chunks(2)
        .map(|p| {
            let (a, b) = (real(p[0]), real(p[1]));
            [(a - b + 0.5).max(0.0), (2.0 * b).max(0.0)].map(|v| ((v / 0.5).round_ties_even() - 1.0).clamp(-128.0, 127.0) as i32)
        })
        .collect()
}

#[test]
fn the_int8_model_runs_on_the_int8_kernels_with_the_same_answer() {
    let m = cairn_tflite::load_bytes(&int8_conv_model()).unwrap();
    let (graph, stats) = cairn_core::passes::prepare_for_inference(m.graph).unwrap();
    assert_eq!(stats.qdq.int8_convs, 1, "the quantized CONV_2D must become one int8 convolution");
    let xq: Vec<i8> = (0..18).map(|v| (v * 3 - 20) as i8).collect();
    let s = Session::new(graph);
    let y = s.run([("x".to_string(), Tensor::new(vec![1, 3, 3, 2], TensorData::I8(xq.clone())).unwrap())].into()).unwrap().remove(0).1;
    let want: Vec<i8> = int8_conv_reference(&xq).into_iter().flatten().map(|q| q as i8).collect();
    match y.data() {
        TensorData::I8(got) => assert_eq!(got, &want),
        other => panic!("expected i8 output, got {}", other.dtype()),
    }
}

#[test]
fn inner_int8_activations_and_the_mean_stay_on_integer_kernels() {
    let m = cairn_tflite::load_bytes(&int8_conv_mean_model()).unwrap();
    let (graph, stats) = cairn_core::passes::prepare_for_inference(m.graph).unwrap();
    assert_eq!((stats.qdq.int8_convs, stats.qdq.int8_pools), (1, 1), "the conv and the MEAN must run on stored bytes");
    let float_ops: Vec<&str> = graph
        .nodes
        .iter()
        .map(|n| n.op_type.as_str())
        .filter(|op| matches!(*op, "DequantizeLinear" | "QuantizeLinear" | "ReduceMean"))
        .collect();
    assert!(float_ops.is_empty(), "no dequantize round trip may remain, found {float_ops:?}");
    let xq: Vec<i8> = (0..18).map(|v| (v * 3 - 20) as i8).collect();
    let s = Session::new(graph);
    let y = s.run([("x".to_string(), Tensor::new(vec![1, 3, 3, 2], TensorData::I8(xq.clone())).unwrap())].into()).unwrap().remove(0).1;
    // The inner tensor as int8 (as in the test above), then its mean requantized to (0.25, 3).
    let h = int8_conv_reference(&xq);
    let want: Vec<i8> = (0..2)
        .map(|c| {
            let mean = h.iter().map(|p| (p[c] + 1) as f64 * 0.5).sum::<f64>() / 9.0;
            ((mean / 0.25).round_ties_even() + 3.0).clamp(-128.0, 127.0) as i8
        })
        .collect();
    assert_eq!(y.shape(), &[1, 2]);
    match y.data() {
        TensorData::I8(got) => assert_eq!(got, &want),
        other => panic!("expected i8 output, got {}", other.dtype()),
    }
}

#[test]
fn quantized_pad_fills_with_the_zero_point_on_stored_bytes() {
    let m = cairn_tflite::load_bytes(&int8_pad_model()).unwrap();
    let (graph, _) = cairn_core::passes::prepare_for_inference(m.graph).unwrap();
    // The inner PAD (h1 -> h2, both carried as uint8) moves bytes; the two at the int8
    // graph input and output go through real values.
    let dq = graph.nodes.iter().filter(|n| n.op_type == "DequantizeLinear").count();
    assert_eq!(dq, 2, "only the PADs at the graph's int8 boundary may dequantize");
    let s = Session::new(graph);
    let x = Tensor::new(vec![1, 2, 2, 1], TensorData::I8(vec![5, -7, 127, -128])).unwrap();
    let y = s.run([("x".to_string(), x)].into()).unwrap().remove(0).1;
    assert_eq!(y.shape(), &[1, 5, 2, 1]);
    match y.data() {
        TensorData::I8(got) => assert_eq!(got, &[-1, -1, -1, -1, -1, -1, 5, -7, 127, -128]),
        other => panic!("expected i8 output, got {}", other.dtype()),
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = conv_model();
    for len in 0..bytes.len() {
        assert!(cairn_tflite::load_bytes(&bytes[..len]).is_err(), "a {len}-byte prefix must not load");
    }
}

#[test]
fn every_bit_flip_is_handled_without_a_panic() {
    let bytes = conv_model();
    let mut errors = 0;
    for pos in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut b = bytes.clone();
            b[pos] ^= 1 << bit;
            // Flips in weights or names still load; the rest must be errors, never panics.
            if cairn_tflite::load_bytes(&b).is_err() {
                errors += 1;
            }
        }
    }
    assert!(errors > bytes.len() / 2, "most flips hit offsets, lengths or tags and must be refused ({errors})");
}

#[test]
fn out_of_range_offsets_are_refused_by_the_verifier() {
    let mut bytes = conv_model();
    // The root offset points past the end of the file.
    let past_end = (bytes.len() as u32 + 64).to_le_bytes();
    bytes[0..4].copy_from_slice(&past_end);
    let e = cairn_tflite::load_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("not a valid TFLite model"), "{e}");
}

#[test]
fn other_files_are_refused_with_a_hint() {
    let e = cairn_tflite::load_bytes(b"\x08\x07\x12\x04onnx-ish bytes").unwrap_err().to_string();
    assert!(e.contains("\"TFL3\"") && e.contains("hint"), "{e}");
    assert!(cairn_tflite::load_bytes(b"").is_err());
}

#[test]
fn tensor_indices_out_of_range_are_refused() {
    let tensors = [t("x", &[1, 4], TensorType::FLOAT32), t("y", &[1, 4], TensorType::FLOAT32)];
    let ops = [Op { code: BuiltinOperator::RELU, inputs: vec![7], outputs: vec![1], options: Opts::None }];
    let e = cairn_tflite::load_bytes(&model(&tensors, &ops, &[0], &[1], 0)).unwrap_err().to_string();
    assert!(e.contains("tensor 7") && e.contains("has 2"), "{e}");
}

#[test]
fn cyclic_subgraph_references_are_refused() {
    // Subgraph 1's WHILE names subgraph 1 as its body: infinite recursion.
    let tensors = [t("x", &[1], TensorType::FLOAT32), t("y", &[1], TensorType::FLOAT32)];
    let ops = [Op { code: BuiltinOperator::WHILE, inputs: vec![0], outputs: vec![1], options: Opts::While(1, 1) }];
    let e = cairn_tflite::load_bytes(&model(&tensors, &ops, &[0], &[1], 1)).unwrap_err().to_string();
    assert!(e.contains("cyclic subgraph references"), "{e}");
    let ops = [Op { code: BuiltinOperator::WHILE, inputs: vec![0], outputs: vec![1], options: Opts::While(1, 9) }];
    let e = cairn_tflite::load_bytes(&model(&tensors, &ops, &[0], &[1], 1)).unwrap_err().to_string();
    assert!(e.contains("refers to subgraph 9"), "{e}");
}

#[test]
fn lying_buffer_sizes_and_huge_shapes_are_refused_before_allocating() {
    let mut w = t("w", &[2, 1, 1, 2], TensorType::FLOAT32);
    w.data = Some(f32s(&[1.0, 2.0, 3.0])); // 12 bytes for a 16-byte tensor
    let tensors = [t("x", &[1, 3, 3, 2], TensorType::FLOAT32), w, t("y", &[1, 3, 3, 2], TensorType::FLOAT32)];
    let ops =
        [Op { code: BuiltinOperator::CONV_2D, inputs: vec![0, 1, -1], outputs: vec![2], options: Opts::Conv { act: Default::default() } }];
    let e = cairn_tflite::load_bytes(&model(&tensors, &ops, &[0], &[2], 0)).unwrap_err().to_string();
    assert!(e.contains("holds 12 bytes") && e.contains("needs 16"), "{e}");

    let tensors = [t("x", &[1 << 20, 1 << 20, 1 << 20], TensorType::FLOAT32), t("y", &[1], TensorType::FLOAT32)];
    let ops = [Op { code: BuiltinOperator::RELU, inputs: vec![0], outputs: vec![1], options: Opts::None }];
    let e = cairn_tflite::load_bytes(&model(&tensors, &ops, &[0], &[1], 0)).unwrap_err().to_string();
    assert!(e.contains("more than"), "{e}");
}

#[test]
fn unsupported_operators_are_listed_together() {
    let tensors = [t("x", &[1, 4], TensorType::FLOAT32), t("y", &[1, 4], TensorType::FLOAT32), t("z", &[1, 4], TensorType::FLOAT32)];
    let ops = [
        Op { code: BuiltinOperator::LSTM, inputs: vec![0], outputs: vec![1], options: Opts::None },
        Op { code: BuiltinOperator::CUMSUM, inputs: vec![1], outputs: vec![2], options: Opts::None },
    ];
    let e = cairn_tflite::load_bytes(&model(&tensors, &ops, &[0], &[2], 0)).unwrap_err().to_string();
    assert!(e.contains("LSTM (x1)") && e.contains("CUMSUM (x1)") && e.contains("hint"), "{e}");
}
