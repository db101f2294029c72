//! A full-integer CONV_2D's int32 bias must reach the int8 epilogue as an integer: XNNPACK
//! (the TFLite interpreter's default kernels) adds it to the i32 accumulator and scales the sum
//! once, while a bias turned into a real value first (`bias * bias_scale` in f32, then
//! `/ out_scale`) rounds twice more and can land on the other side of a half (ADR 0032).

mod common;

use cairn_core::{Session, Tensor, TensorData};
use cairn_tflite::schema_generated::tflite::{ActivationFunctionType, BuiltinOperator, TensorType};
use common::*;

// Found by a search over scales and biases: at x = -78 the sum (acc + bias) * scale is
// -37.49999964 in f64 and exactly -37.5 in f32 (a tie, to even: -38), while the real-bias
// path computes -37.50000x and rounds away from it.
const SX: f32 = 0.022_501_91;
const ZX: i32 = 3;
const SW: f32 = 0.000_665_411_4;
const W: i8 = 123;
const BIAS: i32 = -199_867;
const SY: f32 = 0.083_781_08;
const ZY: i32 = -5;

/// x [1, 16, 16, 1] int8 -> CONV_2D 1x1 (one channel, int32 bias, no activation) -> y int8.
fn model_bytes() -> Vec<u8> {
    let mut x = t("x", &[1, 16, 16, 1], TensorType::INT8);
    x.quant = Some((vec![SX], vec![ZX as i64], 0));
    let mut w = t("w", &[1, 1, 1, 1], TensorType::INT8);
    w.data = Some(vec![W as u8]);
    w.quant = Some((vec![SW], vec![0], 0));
    let mut b = t("b", &[1], TensorType::INT32);
    b.data = Some(i32s(&[BIAS]));
    // As TFLite's converter writes it: input scale times filter scale.
    b.quant = Some((vec![SX * SW], vec![0], 0));
    let mut y = t("y", &[1, 16, 16, 1], TensorType::INT8);
    y.quant = Some((vec![SY], vec![ZY as i64], 0));
    let ops = [Op {
        code: BuiltinOperator::CONV_2D,
        inputs: vec![0, 1, 2],
        outputs: vec![3],
        options: Opts::Conv { act: ActivationFunctionType::NONE },
    }];
    model(&[x, w, b, y], &ops, &[0], &[3], 0)
}

/// XNNPACK's fp32 requantization, written out: the integer sum, one f32 product with
/// `input_scale * kernel_scale / output_scale`, the clamp shifted by the zero point, rounding
/// half to even, then the zero point added as an integer.
fn xnnpack(x: i8) -> i8 {
    let acc = W as i64 * (x as i64 - ZX as i64) + BIAS as i64;
    let scale = SX * SW / SY;
    let f = (acc as f32 * scale).clamp((-128 - ZY) as f32, (127 - ZY) as f32);
    (f.round_ties_even() as i32 + ZY) as i8
}

/// What the epilogue computes when the bias is first turned into a real value.
fn real_bias(x: i8) -> i8 {
    let acc = W as i64 * (x as i64 - ZX as i64);
    let si = SX * SW / SY;
    let bi = (BIAS as f32 * (SX * SW)) / SY;
    let f = (acc as f32 * si + bi).clamp((-128 - ZY) as f32, (127 - ZY) as f32);
    (f.round_ties_even() as i32 + ZY) as i8
}

#[test]
fn the_int32_bias_is_added_to_the_accumulator_as_xnnpack_does() {
    let m = cairn_tflite::load_bytes(&model_bytes()).unwrap();
    let (graph, stats) = cairn_core::passes::prepare_for_inference(m.graph).unwrap();
    assert_eq!(stats.qdq.int8_convs, 1, "the quantized CONV_2D must become one int8 convolution");
    let xq: Vec<i8> = (-128..=127).collect();
    let want: Vec<i8> = xq.iter().map(|&x| xnnpack(x)).collect();
    // The case must tell the two paths apart, or the test could not fail.
    let differ: Vec<i8> = xq.iter().copied().filter(|&x| real_bias(x) != xnnpack(x)).collect();
    assert_eq!(differ, [-78], "the near tie this test is built on");
    let s = Session::new(graph);
    let y = s.run([("x".to_string(), Tensor::new(vec![1, 16, 16, 1], TensorData::I8(xq)).unwrap())].into()).unwrap().remove(0).1;
    match y.data() {
        TensorData::I8(got) => {
            let wrong: Vec<(i8, i8, i8)> =
                (-128..=127i8).zip(got.iter().zip(&want)).filter(|(_, (g, w))| g != w).map(|(x, (g, w))| (x, *g, *w)).collect();
            assert!(wrong.is_empty(), "(x, got, XNNPACK's) where they differ: {wrong:?}");
        }
        other => panic!("expected i8 output, got {}", other.dtype()),
    }
}
