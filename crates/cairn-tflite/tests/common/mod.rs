//! Small TFLite models built with the generated flatbuffers builders, for tests.
#![allow(dead_code)]

use cairn_tflite::schema_generated::tflite::*;
use flatbuffers::FlatBufferBuilder;

/// One tensor of a test model.
pub struct T {
    pub name: &'static str,
    pub shape: Vec<i32>,
    pub ty: TensorType,
    pub data: Option<Vec<u8>>,
    /// (scales, zero points, axis)
    pub quant: Option<(Vec<f32>, Vec<i64>, i32)>,
}

pub fn t(name: &'static str, shape: &[i32], ty: TensorType) -> T {
    T { name, shape: shape.to_vec(), ty, data: None, quant: None }
}

pub fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn i32s(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An operator: builtin code, inputs, outputs, and what to put in its options.
pub struct Op {
    pub code: BuiltinOperator,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options: Opts,
}

pub enum Opts {
    None,
    Conv {
        act: ActivationFunctionType,
    },
    /// WHILE with these condition and body subgraph indices.
    While(i32, i32),
}

/// A one-subgraph model (plus `extra_subgraphs` empty ones for the control-flow tests).
pub fn model(tensors: &[T], ops: &[Op], inputs: &[i32], outputs: &[i32], extra_subgraphs: usize) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let mut buffers = vec![Buffer::create(&mut fbb, &BufferArgs { data: None })];
    let mut ts = Vec::new();
    for tensor in tensors {
        let buffer = match &tensor.data {
            Some(d) => {
                let data = fbb.create_vector(d);
                buffers.push(Buffer::create(&mut fbb, &BufferArgs { data: Some(data) }));
                buffers.len() as u32 - 1
            }
            None => 0,
        };
        let quantization = tensor.quant.as_ref().map(|(s, z, axis)| {
            let (scale, zero_point) = (fbb.create_vector(s), fbb.create_vector(z));
            QuantizationParameters::create(
                &mut fbb,
                &QuantizationParametersArgs {
                    scale: Some(scale),
                    zero_point: Some(zero_point),
                    quantized_dimension: *axis,
                    ..Default::default()
                },
            )
        });
        let (shape, name) = (fbb.create_vector(&tensor.shape), fbb.create_string(tensor.name));
        ts.push(Tensor::create(
            &mut fbb,
            &TensorArgs { shape: Some(shape), type_: tensor.ty, buffer, name: Some(name), quantization, ..Default::default() },
        ));
    }
    let mut codes: Vec<BuiltinOperator> = Vec::new();
    let mut operators = Vec::new();
    for op in ops {
        let index = codes.iter().position(|c| *c == op.code).unwrap_or_else(|| {
            codes.push(op.code);
            codes.len() - 1
        });
        let (options_type, options) = match op.options {
            Opts::None => (BuiltinOptions::NONE, None),
            Opts::Conv { act } => {
                let o = Conv2DOptions::create(
                    &mut fbb,
                    &Conv2DOptionsArgs {
                        padding: Padding::SAME,
                        stride_w: 1,
                        stride_h: 1,
                        fused_activation_function: act,
                        dilation_w_factor: 1,
                        dilation_h_factor: 1,
                    },
                );
                (BuiltinOptions::Conv2DOptions, Some(o.as_union_value()))
            }
            Opts::While(cond, body) => {
                let o = WhileOptions::create(&mut fbb, &WhileOptionsArgs { cond_subgraph_index: cond, body_subgraph_index: body });
                (BuiltinOptions::WhileOptions, Some(o.as_union_value()))
            }
        };
        let (i, o) = (fbb.create_vector(&op.inputs), fbb.create_vector(&op.outputs));
        operators.push(Operator::create(
            &mut fbb,
            &OperatorArgs {
                opcode_index: index as u32,
                inputs: Some(i),
                outputs: Some(o),
                builtin_options_type: options_type,
                builtin_options: options,
                ..Default::default()
            },
        ));
    }
    let (tv, ov, iv, outv) = (fbb.create_vector(&ts), fbb.create_vector(&operators), fbb.create_vector(inputs), fbb.create_vector(outputs));
    let main = SubGraph::create(
        &mut fbb,
        &SubGraphArgs { tensors: Some(tv), inputs: Some(iv), outputs: Some(outv), operators: Some(ov), name: None },
    );
    let mut subgraphs = vec![main];
    for _ in 0..extra_subgraphs {
        // The control-flow tests only need the subgraphs to exist; they hold the same WHILE.
        let (tv, iv, outv) =
            (fbb.create_vector::<flatbuffers::WIPOffset<Tensor>>(&[]), fbb.create_vector::<i32>(&[]), fbb.create_vector::<i32>(&[]));
        let ov = fbb.create_vector(&operators);
        subgraphs.push(SubGraph::create(
            &mut fbb,
            &SubGraphArgs { tensors: Some(tv), inputs: Some(iv), outputs: Some(outv), operators: Some(ov), name: None },
        ));
    }
    let code_tables: Vec<_> = codes
        .iter()
        .map(|c| {
            OperatorCode::create(
                &mut fbb,
                &OperatorCodeArgs { deprecated_builtin_code: c.0.min(127) as i8, custom_code: None, version: 1, builtin_code: *c },
            )
        })
        .collect();
    let (cv, sv, bv) = (fbb.create_vector(&code_tables), fbb.create_vector(&subgraphs), fbb.create_vector(&buffers));
    let description = fbb.create_string("cairn test model");
    let root = Model::create(
        &mut fbb,
        &ModelArgs {
            version: 3,
            operator_codes: Some(cv),
            subgraphs: Some(sv),
            description: Some(description),
            buffers: Some(bv),
            ..Default::default()
        },
    );
    finish_model_buffer(&mut fbb, root);
    fbb.finished_data().to_vec()
}

/// x [1, 3, 3, 2] -> CONV_2D 1x1 (2 -> 2 channels, bias, fused ReLU) -> y [1, 3, 3, 2], float32.
pub fn conv_model() -> Vec<u8> {
    let mut w = t("w", &[2, 1, 1, 2], TensorType::FLOAT32);
    // out0 = x0 - x1, out1 = 2 x1
    w.data = Some(f32s(&[1.0, -1.0, 0.0, 2.0]));
    let mut b = t("b", &[2], TensorType::FLOAT32);
    b.data = Some(f32s(&[0.5, 0.0]));
    let tensors = [t("x", &[1, 3, 3, 2], TensorType::FLOAT32), w, b, t("y", &[1, 3, 3, 2], TensorType::FLOAT32)];
    let ops = [Op {
        code: BuiltinOperator::CONV_2D,
        inputs: vec![0, 1, 2],
        outputs: vec![3],
        options: Opts::Conv { act: ActivationFunctionType::RELU },
    }];
    model(&tensors, &ops, &[0], &[3], 0)
}

/// The full-integer convolution's input x [1, 3, 3, 2] (int8, scale 0.5, zero point -1),
/// per-channel int8 filter w and int32 bias b, shared by the int8 conv models below.
fn int8_conv_operands() -> [T; 3] {
    let mut x = t("x", &[1, 3, 3, 2], TensorType::INT8);
    x.quant = Some((vec![0.5], vec![-1], 0));
    let mut w = t("w", &[2, 1, 1, 2], TensorType::INT8);
    w.data = Some([64i8, -64, 0, 127].iter().map(|&v| v as u8).collect());
    w.quant = Some((vec![1.0 / 64.0, 2.0 / 127.0], vec![0, 0], 0));
    let mut b = t("b", &[2], TensorType::INT32);
    b.data = Some(i32s(&[64, 0]));
    b.quant = Some((vec![0.5 / 64.0, 1.0 / 127.0], vec![0, 0], 0));
    [x, w, b]
}

/// The same convolution, full-integer: int8 input/output (scale 0.5, zero point -1),
/// per-channel int8 filter, int32 bias.
pub fn int8_conv_model() -> Vec<u8> {
    let [x, w, b] = int8_conv_operands();
    let mut y = t("y", &[1, 3, 3, 2], TensorType::INT8);
    y.quant = Some((vec![0.5], vec![-1], 0));
    let ops = [Op {
        code: BuiltinOperator::CONV_2D,
        inputs: vec![0, 1, 2],
        outputs: vec![3],
        options: Opts::Conv { act: ActivationFunctionType::RELU },
    }];
    model(&[x, w, b, y], &ops, &[0], &[3], 0)
}

/// `int8_conv_model`'s convolution into an inner int8 tensor, then MEAN over H and W
/// (no keep_dims) to y [1, 2], int8 (scale 0.25, zero point 3): a global average pool.
pub fn int8_conv_mean_model() -> Vec<u8> {
    let [x, w, b] = int8_conv_operands();
    let mut h = t("h", &[1, 3, 3, 2], TensorType::INT8);
    h.quant = Some((vec![0.5], vec![-1], 0));
    let mut axes = t("axes", &[2], TensorType::INT32);
    axes.data = Some(i32s(&[1, 2]));
    let mut y = t("y", &[1, 2], TensorType::INT8);
    y.quant = Some((vec![0.25], vec![3], 0));
    let ops = [
        Op {
            code: BuiltinOperator::CONV_2D,
            inputs: vec![0, 1, 2],
            outputs: vec![3],
            options: Opts::Conv { act: ActivationFunctionType::RELU },
        },
        Op { code: BuiltinOperator::MEAN, inputs: vec![3, 4], outputs: vec![5], options: Opts::None },
    ];
    model(&[x, w, b, h, axes, y], &ops, &[0], &[5], 0)
}

/// Three PADs of an int8 tensor (scale 0.5, zero point -1), one row on top each:
/// x [1, 2, 2, 1] -> h1 -> h2 -> y [1, 5, 2, 1]; h1 and h2 are inner tensors.
pub fn int8_pad_model() -> Vec<u8> {
    let q = |name: &'static str, h: i32| {
        let mut v = t(name, &[1, h, 2, 1], TensorType::INT8);
        v.quant = Some((vec![0.5], vec![-1], 0));
        v
    };
    let mut pads = t("pads", &[4, 2], TensorType::INT32);
    pads.data = Some(i32s(&[0, 0, 1, 0, 0, 0, 0, 0]));
    let pad = |from: i32, to: i32| Op { code: BuiltinOperator::PAD, inputs: vec![from, 4], outputs: vec![to], options: Opts::None };
    model(&[q("x", 2), q("h1", 3), q("h2", 4), q("y", 5), pads], &[pad(0, 1), pad(1, 2), pad(2, 3)], &[0], &[3], 0)
}
