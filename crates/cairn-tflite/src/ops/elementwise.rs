//! Element-wise operators. Broadcasting follows NumPy on the file's shapes, so an operand of
//! lower rank than a 4-D NCHW partner is first given the 4-D NHWC shape the broadcast implies,
//! then moved to NCHW (constants fold at load, so weights pay nothing at run time).

use super::{at, emit, Call, OpResult};
use crate::builder::{ints_attr, Builder};
use crate::layout::{Layout, TO_NCHW};
use crate::schema_generated::tflite::{ActivationFunctionType as Act, BuiltinOperator as B};
use cairn_core::{Attr, Attrs};

pub(super) fn binary(b: &mut Builder, c: &Call, code: B) -> OpResult {
    let (x, y, out) = (c.input(0)?, c.input(1)?, c.output(0)?);
    let (op, act) = match code {
        B::ADD => ("Add", c.op.builtin_options_as_add_options().map_or(Act::NONE, |o| o.fused_activation_function())),
        B::SUB => ("Sub", c.op.builtin_options_as_sub_options().map_or(Act::NONE, |o| o.fused_activation_function())),
        B::MUL => ("Mul", c.op.builtin_options_as_mul_options().map_or(Act::NONE, |o| o.fused_activation_function())),
        B::DIV => ("Div", c.op.builtin_options_as_div_options().map_or(Act::NONE, |o| o.fused_activation_function())),
        B::MAXIMUM => ("Max", Act::NONE),
        B::MINIMUM => ("Min", Act::NONE),
        B::PRELU => ("PRelu", Act::NONE),
        B::POW => ("Pow", Act::NONE),
        _ => ("SquaredDifference", Act::NONE),
    };
    let layout = if b.rank(out) == 4 { Layout::Nchw } else { Layout::File };
    let xf = operand(b, x, layout)?;
    let yf = operand(b, y, layout)?;
    if op == "SquaredDifference" {
        let d = b.apply("Sub", &[&xf, &yf], Attrs::new());
        return emit(b, c, out, layout, "Mul", vec![Some(d.clone()), Some(d)], Attrs::new(), act);
    }
    emit(b, c, out, layout, op, vec![Some(xf), Some(yf)], Attrs::new(), act)
}

/// Operand `i` of an element-wise op whose output is 4-D in `layout`.
fn operand(b: &mut Builder, i: usize, layout: Layout) -> OpResult<String> {
    let rank = b.rank(i);
    let numel: usize = b.tensors[i].shape.iter().product();
    if layout == Layout::File || rank == 4 || numel == 1 {
        return Ok(b.real(i, layout)?);
    }
    let v = b.real(i, Layout::File)?;
    let mut shape4 = vec![1i64; 4usize.saturating_sub(rank)];
    shape4.extend(b.tensors[i].shape.iter().map(|&d| d as i64));
    if shape4.len() != 4 {
        return Ok(v);
    }
    let s = b.ints("broadcast4", &shape4);
    let r = b.apply("Reshape", &[&v, &s], Attrs::new());
    Ok(b.apply("Transpose", &[&r], at([("perm", ints_attr(&TO_NCHW))])))
}

pub(super) fn unary(b: &mut Builder, c: &Call, code: B) -> OpResult {
    let (x, out) = (c.input(0)?, c.output(0)?);
    let layout = b.layout_of(x);
    let xf = b.real(x, layout)?;
    let clip = |b: &mut Builder, lo: f32, hi: f32| -> (String, Vec<Option<String>>) {
        let (lo, hi) = (b.scalar("clip_min", lo), b.scalar("clip_max", hi));
        ("Clip".into(), vec![Some(xf.clone()), Some(lo), Some(hi)])
    };
    let one = |op: &str| (op.to_string(), vec![Some(xf.clone())]);
    let mut attrs = Attrs::new();
    let (op, inputs) = match code {
        B::RELU => one("Relu"),
        B::RELU6 => clip(b, 0.0, 6.0),
        B::RELU_N1_TO_1 => clip(b, -1.0, 1.0),
        B::RELU_0_TO_1 => clip(b, 0.0, 1.0),
        B::LOGISTIC => one("Sigmoid"),
        B::TANH => one("Tanh"),
        B::HARD_SWISH => one("HardSwish"),
        B::ELU => one("Elu"),
        B::EXP => one("Exp"),
        B::LOG => one("Log"),
        B::SQRT => one("Sqrt"),
        B::NEG => one("Neg"),
        B::ABS => one("Abs"),
        B::SQUARE => ("Mul".into(), vec![Some(xf.clone()), Some(xf.clone())]),
        B::RSQRT => {
            let s = b.apply("Sqrt", &[&xf], Attrs::new());
            ("Reciprocal".into(), vec![Some(s)])
        }
        B::LEAKY_RELU => {
            let alpha = c.options(c.op.builtin_options_as_leaky_relu_options())?.alpha();
            attrs.insert("alpha".into(), Attr::Float(alpha));
            one("LeakyRelu")
        }
        _ => return Err(c.unsupported("unary")),
    };
    emit(b, c, out, layout, &op, inputs, attrs, Act::NONE)
}
