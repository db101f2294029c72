//! TFLite operators to Cairn's (ONNX-standard) operators, one module per family.
//! Adding an operator is one arm in [`import`] and a function in its family's module.

mod conv;
mod elementwise;
mod quant;
mod reduce;
mod shape;
mod shape_math;
mod sparse;

use crate::builder::{attrs, Builder};
use crate::layout::Layout;
use crate::schema_generated::tflite::{self, ActivationFunctionType as Act, BuiltinOperator as B};
use crate::Error;
use cairn_core::{Attr, Attrs};

/// Which operator an operator code names.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OpCode {
    Builtin(B),
    Custom(String),
}

impl OpCode {
    pub fn of(c: &tflite::OperatorCode) -> OpCode {
        // Files from before schema 3a keep codes below 127 in `deprecated_builtin_code` only.
        let code = (c.deprecated_builtin_code() as i32).max(c.builtin_code().0);
        if code == B::CUSTOM.0 {
            OpCode::Custom(c.custom_code().unwrap_or("").to_string())
        } else {
            OpCode::Builtin(B(code))
        }
    }

    pub fn name(&self) -> String {
        match self {
            OpCode::Builtin(b) => b.variant_name().map_or_else(|| format!("builtin operator {}", b.0), str::to_string),
            OpCode::Custom(s) => format!("custom operator '{s}'"),
        }
    }
}

/// One operator of the file, its tensors resolved to indices (`None`: an omitted optional input).
pub(crate) struct Call<'a, 'f> {
    pub index: usize,
    pub code: &'a OpCode,
    pub op: &'a tflite::Operator<'f>,
    pub inputs: &'a [Option<usize>],
    pub outputs: &'a [usize],
}

pub(crate) enum OpError {
    /// Cairn does not import this operator (or this form of it); collected and reported together.
    Unsupported(String),
    Invalid(Error),
}

impl From<Error> for OpError {
    fn from(e: Error) -> OpError {
        OpError::Invalid(e)
    }
}

impl From<cairn_core::Error> for OpError {
    fn from(e: cairn_core::Error) -> OpError {
        OpError::Invalid(e.into())
    }
}

pub(crate) type OpResult<T = ()> = Result<T, OpError>;

impl Call<'_, '_> {
    pub fn invalid(&self, detail: impl Into<String>) -> OpError {
        OpError::Invalid(Error::op(self.index, &self.code.name(), detail))
    }

    pub fn unsupported(&self, detail: &str) -> OpError {
        OpError::Unsupported(format!("{} ({detail})", self.code.name()))
    }

    /// Input `k`, which the operator requires.
    pub fn input(&self, k: usize) -> OpResult<usize> {
        self.inputs.get(k).copied().flatten().ok_or_else(|| self.invalid(format!("input {k} is missing")))
    }

    pub fn opt_input(&self, k: usize) -> Option<usize> {
        self.inputs.get(k).copied().flatten()
    }

    pub fn output(&self, k: usize) -> OpResult<usize> {
        self.outputs.get(k).copied().ok_or_else(|| self.invalid(format!("output {k} is missing")))
    }

    /// The builtin options table of the operator's kind, or an error naming what is missing.
    pub fn options<T>(&self, found: Option<T>) -> OpResult<T> {
        found.ok_or_else(|| self.invalid("its options are missing or of another operator's kind"))
    }
}

/// Imports one operator into the graph.
pub(crate) fn import(b: &mut Builder, c: &Call) -> OpResult {
    let code = match c.code {
        OpCode::Builtin(code) => *code,
        OpCode::Custom(name) if name == "Convolution2DTransposeBias" => return conv::transpose_conv_bias(b, c),
        OpCode::Custom(_) => return Err(OpError::Unsupported(c.code.name())),
    };
    if shape_math::fold(b, c, code)? {
        return Ok(());
    }
    match code {
        B::CONV_2D => conv::conv2d(b, c),
        B::DEPTHWISE_CONV_2D => conv::depthwise(b, c),
        B::FULLY_CONNECTED => conv::fully_connected(b, c),
        B::TRANSPOSE_CONV => conv::transpose_conv(b, c),
        B::AVERAGE_POOL_2D | B::MAX_POOL_2D => reduce::pool(b, c, code == B::MAX_POOL_2D),
        B::MEAN | B::SUM | B::REDUCE_MAX | B::REDUCE_MIN | B::REDUCE_PROD => reduce::reduce(b, c, code),
        B::SOFTMAX => reduce::softmax(b, c),
        B::RESIZE_BILINEAR | B::RESIZE_NEAREST_NEIGHBOR => reduce::resize(b, c, code == B::RESIZE_BILINEAR),
        B::ADD | B::SUB | B::MUL | B::DIV | B::MAXIMUM | B::MINIMUM | B::PRELU | B::POW | B::SQUARED_DIFFERENCE => {
            elementwise::binary(b, c, code)
        }
        B::RELU
        | B::RELU6
        | B::RELU_N1_TO_1
        | B::RELU_0_TO_1
        | B::LOGISTIC
        | B::TANH
        | B::HARD_SWISH
        | B::LEAKY_RELU
        | B::ELU
        | B::EXP
        | B::LOG
        | B::SQRT
        | B::RSQRT
        | B::NEG
        | B::ABS
        | B::SQUARE => elementwise::unary(b, c, code),
        B::CONCATENATION => shape::concat(b, c),
        B::PAD | B::PADV2 => shape::pad(b, c),
        B::RESHAPE | B::SQUEEZE | B::EXPAND_DIMS => shape::reshape(b, c),
        B::STRIDED_SLICE => shape::strided_slice(b, c),
        B::TRANSPOSE => shape::transpose(b, c),
        B::DEPTH_TO_SPACE => shape::depth_to_space(b, c),
        B::QUANTIZE | B::DEQUANTIZE => quant::convert(b, c, code == B::DEQUANTIZE),
        B::DENSIFY => sparse::densify(b, c),
        _ => Err(OpError::Unsupported(c.code.name())),
    }
}

/// Emits `op_type(inputs)` for tensor `out` in `layout`, then the fused activation, then
/// (for a quantized `out`) the `QuantizeLinear` that `passes::qdq` folds into the int8 op.
// The node's parts stay separate arguments: every caller builds them in place.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(
    b: &mut Builder,
    c: &Call,
    out: usize,
    layout: Layout,
    op_type: &str,
    inputs: Vec<Option<String>>,
    at: Attrs,
    act: Act,
) -> OpResult {
    let y = b.out(out, layout);
    if act == Act::NONE {
        b.node(op_type, inputs, vec![y.clone()], at);
    } else {
        let t = b.temp(&format!("{y}:{op_type}"));
        b.node(op_type, inputs, vec![t.clone()], at);
        activation(b, c, act, &t, Some(y.clone()))?;
    }
    b.finish(out, layout, y)?;
    Ok(())
}

/// A fused activation on `x`, written to `into` (or a new value); returns the value's name.
pub(crate) fn activation(b: &mut Builder, c: &Call, act: Act, x: &str, into: Option<String>) -> OpResult<String> {
    let y = into.unwrap_or_else(|| b.temp(&format!("{x}:act")));
    let clip = |b: &mut Builder, lo: f32, hi: f32| {
        let (lo, hi) = (b.scalar("clip_min", lo), b.scalar("clip_max", hi));
        ("Clip", vec![Some(x.to_string()), Some(lo), Some(hi)])
    };
    let (op, inputs) = match act {
        Act::RELU => ("Relu", vec![Some(x.to_string())]),
        Act::RELU6 => clip(b, 0.0, 6.0),
        Act::RELU_N1_TO_1 => clip(b, -1.0, 1.0),
        Act::TANH => ("Tanh", vec![Some(x.to_string())]),
        other => return Err(c.unsupported(&format!("fused activation {}", other.variant_name().unwrap_or("?")))),
    };
    b.node(op, inputs, vec![y.clone()], Attrs::new());
    Ok(y)
}

/// The values of a constant integer tensor (shapes, axes, paddings, sizes).
pub(crate) fn const_ints(b: &Builder, c: &Call, i: usize, what: &str) -> OpResult<Vec<i64>> {
    let t = b.tensors[i].constant.as_ref().ok_or_else(|| c.invalid(format!("the {what} must be a constant in the file")))?;
    t.view().to_i64_vec().map_err(|_| c.invalid(format!("the {what} must be integers, got {}", t.dtype())))
}

/// TFLite padding to ONNX's `auto_pad` (TensorFlow's SAME puts the odd pixel at the end).
pub(crate) fn auto_pad(c: &Call, p: tflite::Padding) -> OpResult<Attr> {
    match p {
        tflite::Padding::SAME => Ok(Attr::Str("SAME_UPPER".into())),
        tflite::Padding::VALID => Ok(Attr::Str("VALID".into())),
        other => Err(c.invalid(format!("padding {:?} is not SAME or VALID", other.0))),
    }
}

pub(crate) fn pair(h: i32, w: i32) -> Attr {
    Attr::Ints(vec![h as i64, w as i64])
}

/// Attributes from pairs, re-exported for the family modules.
pub(crate) fn at<const N: usize>(pairs: [(&str, Attr); N]) -> Attrs {
    attrs(pairs)
}
