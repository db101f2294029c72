//! Activations by the names Keras and TF use, as Cairn ops (layout-neutral: they keep it).

use crate::builder::{Builder, Value};
use crate::Error;
use cairn_core::{Attr, Attrs};

fn alpha(a: f32) -> Attrs {
    let mut attrs = Attrs::new();
    attrs.insert("alpha".into(), Attr::Float(a));
    attrs
}

/// Clamps to [lo, hi] (Clip with its bounds as inputs, as opset 11+ wants).
pub fn clip(b: &mut Builder, out: &str, x: &Value, lo: f32, hi: Option<f32>) -> Value {
    let lo_name = b.scalar(&format!("{out}/min"), lo);
    let hi_name = hi.map(|h| b.scalar(&format!("{out}/max"), h));
    let mut extra = vec![lo_name.as_str()];
    if let Some(h) = &hi_name {
        extra.push(h);
    }
    b.unary("Clip", out, x, &extra, Attrs::new())
}

/// `name` applied to `x` with its result named `out`; `None` when Cairn has no such activation.
pub fn apply(b: &mut Builder, out: &str, x: &Value, name: &str) -> Result<Option<Value>, Error> {
    let unary = |b: &mut Builder, op: &str, attrs: Attrs| b.unary(op, out, x, &[], attrs);
    Ok(Some(match name {
        "linear" | "identity" => b.unary("Identity", out, x, &[], Attrs::new()),
        "relu" => unary(b, "Relu", Attrs::new()),
        "relu6" => clip(b, out, x, 0.0, Some(6.0)),
        "sigmoid" => unary(b, "Sigmoid", Attrs::new()),
        "tanh" => unary(b, "Tanh", Attrs::new()),
        "elu" => unary(b, "Elu", alpha(1.0)),
        "selu" => unary(b, "Selu", Attrs::new()),
        "softplus" => unary(b, "Softplus", Attrs::new()),
        "softsign" => unary(b, "Softsign", Attrs::new()),
        "exponential" => unary(b, "Exp", Attrs::new()),
        "mish" => unary(b, "Mish", Attrs::new()),
        // tf.keras.activations.hard_swish and Keras 3's hard_silu: x * relu6(x + 3) / 6, as ONNX HardSwish.
        "hard_swish" | "hard_silu" | "hardswish" => unary(b, "HardSwish", Attrs::new()),
        // Keras 2: clip(0.2 x + 0.5); Keras 3: relu6(x + 3) / 6.
        "hard_sigmoid" => {
            let mut attrs = alpha(0.2);
            attrs.insert("beta".into(), Attr::Float(0.5));
            unary(b, "HardSigmoid", attrs)
        }
        "swish" | "silu" => {
            let sigmoid = b.fresh(&format!("{out}/sigmoid"));
            let s = b.unary("Sigmoid", &sigmoid, x, &[], Attrs::new());
            b.binary("Mul", out, x, &s)?
        }
        "gelu" => unary(b, "Gelu", Attrs::new()),
        "leaky_relu" => unary(b, "LeakyRelu", alpha(0.2)),
        "softmax" => softmax(b, out, x, -1)?,
        "log_softmax" => {
            let axis = Builder::stored_axis(x, -1)?;
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(axis));
            unary(b, "LogSoftmax", attrs)
        }
        _ => return Ok(None),
    }))
}

pub fn softmax(b: &mut Builder, out: &str, x: &Value, axis: i64) -> Result<Value, Error> {
    let mut attrs = Attrs::new();
    attrs.insert("axis".into(), Attr::Int(Builder::stored_axis(x, axis)?));
    Ok(b.unary("Softmax", out, x, &[], attrs))
}
