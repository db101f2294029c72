//! Activations: elementwise nonlinearities and the softmax family.

use super::broadcast::map2;
use super::float_io::{f32_values, is_half, write_f32};
use crate::{
    bail_shape, normalize_axis, required, DType, DataMut, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef,
};
use cairn_kernels::math::erf;

pub fn register(r: &mut Registry) {
    r.register("Relu", |_| Ok(Box::new(Act::Relu)));
    r.register("Sigmoid", |_| Ok(Box::new(Act::Sigmoid)));
    r.register("Tanh", |_| Ok(Box::new(Act::Tanh)));
    r.register("HardSwish", |_| Ok(Box::new(Act::HardSwish)));
    r.register("Softplus", |_| Ok(Box::new(Act::Softplus)));
    r.register("Softsign", |_| Ok(Box::new(Act::Softsign)));
    r.register("Mish", |_| Ok(Box::new(Act::Mish)));
    r.register("LeakyRelu", |ctx| Ok(Box::new(Act::LeakyRelu(ctx.float("alpha", 0.01)?))));
    r.register("Elu", |ctx| Ok(Box::new(Act::Elu(ctx.float("alpha", 1.0)?))));
    r.register("Celu", |ctx| Ok(Box::new(Act::Celu(ctx.float("alpha", 1.0)?))));
    r.register("ThresholdedRelu", |ctx| Ok(Box::new(Act::ThresholdedRelu(ctx.float("alpha", 1.0)?))));
    r.register("Selu", |ctx| Ok(Box::new(Act::Selu(ctx.float("alpha", 1.673_263_2)?, ctx.float("gamma", 1.050_701)?))));
    r.register("HardSigmoid", |ctx| Ok(Box::new(Act::HardSigmoid(ctx.float("alpha", 0.2)?, ctx.float("beta", 0.5)?))));
    r.register("Gelu", |ctx| match ctx.string("approximate", "none")?.as_str() {
        "none" => Ok(Box::new(Act::Gelu) as Box<dyn Op>),
        "tanh" => Ok(Box::new(Act::GeluTanh)),
        other => Err(ctx.unsupported("approximate", format!("'{other}' is not a Gelu approximation"))),
    });
    r.register("Clip", build_clip);
    r.register("PRelu", |_| Ok(Box::new(PRelu)));
    r.register("Softmax", |ctx| build_softmax(ctx, SoftmaxKind::Softmax));
    r.register("LogSoftmax", |ctx| build_softmax(ctx, SoftmaxKind::LogSoftmax));
    r.register("Hardmax", |ctx| build_softmax(ctx, SoftmaxKind::Hardmax));
}

/// A pointwise f32 activation. `Clip` carries bounds known at build time;
/// clip bounds given as inputs are handled by [`ClipInputs`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Act {
    Relu,
    Sigmoid,
    Tanh,
    HardSwish,
    Softplus,
    Softsign,
    Mish,
    Gelu,
    GeluTanh,
    LeakyRelu(f32),
    Elu(f32),
    Celu(f32),
    ThresholdedRelu(f32),
    Selu(f32, f32),
    HardSigmoid(f32, f32),
    Clip(f32, f32),
}

impl Act {
    #[inline(always)]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            Act::Relu => x.max(0.0),
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::Tanh => x.tanh(),
            Act::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Act::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            Act::Softsign => x / (1.0 + x.abs()),
            Act::Mish => x * (if x > 20.0 { x } else { x.exp().ln_1p() }).tanh(),
            Act::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Act::GeluTanh => 0.5 * x * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()),
            Act::LeakyRelu(a) => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            Act::Elu(a) => {
                if x < 0.0 {
                    a * (x.exp() - 1.0)
                } else {
                    x
                }
            }
            Act::Celu(a) => x.max(0.0) + (a * ((x / a).exp() - 1.0)).min(0.0),
            Act::ThresholdedRelu(a) => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            Act::Selu(a, g) => {
                if x <= 0.0 {
                    g * (a * x.exp() - a)
                } else {
                    g * x
                }
            }
            Act::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            // NaN passes through, like onnxruntime.
            Act::Clip(lo, hi) => {
                if x.is_nan() {
                    x
                } else {
                    x.max(lo).min(hi)
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Act::Relu => "Relu",
            Act::Sigmoid => "Sigmoid",
            Act::Tanh => "Tanh",
            Act::HardSwish => "HardSwish",
            Act::Softplus => "Softplus",
            Act::Softsign => "Softsign",
            Act::Mish => "Mish",
            Act::Gelu | Act::GeluTanh => "Gelu",
            Act::LeakyRelu(_) => "LeakyRelu",
            Act::Elu(_) => "Elu",
            Act::Celu(_) => "Celu",
            Act::ThresholdedRelu(_) => "ThresholdedRelu",
            Act::Selu(..) => "Selu",
            Act::HardSigmoid(..) => "HardSigmoid",
            Act::Clip(..) => "Clip",
        }
    }
}

impl Op for Act {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name())?;
        if x.dtype != DType::F32 && !is_half(x.dtype) {
            bail_shape!(self.name(), "is implemented for f32, f16 and bf16, got {}", x.dtype);
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = f32_values(&required(inputs, 0, self.name())?, self.name())?;
        let act = *self;
        write_f32(&mut outputs[0], self.name(), |y| {
            y.iter_mut().zip(x.iter()).for_each(|(y, &x)| *y = act.apply(x));
            Ok(())
        })
    }
    fn in_place_input(&self) -> Option<usize> {
        Some(0)
    }
    fn run_in_place(&self, _inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let act = *self;
        match &mut outputs[0].data {
            DataMut::F16(y) => y.iter_mut().for_each(|y| *y = half::f16::from_f32(act.apply(y.to_f32()))),
            DataMut::BF16(y) => y.iter_mut().for_each(|y| *y = half::bf16::from_f32(act.apply(y.to_f32()))),
            DataMut::F32(y) => y.iter_mut().for_each(|y| *y = act.apply(*y)),
            other => bail_shape!(self.name(), "is implemented for f32, f16 and bf16, got {}", other.dtype()),
        }
        Ok(())
    }
}

fn build_clip(ctx: &OpContext) -> Result<Box<dyn Op>> {
    if ctx.opset < 11 {
        return Ok(Box::new(Act::Clip(ctx.float("min", f32::MIN)?, ctx.float("max", f32::MAX)?)));
    }
    Ok(Box::new(ClipInputs))
}

/// Clip from opset 11: bounds are optional inputs (usually constants, then folded per plan).
#[derive(Debug)]
struct ClipInputs;

impl Op for ClipInputs {
    fn op_type(&self) -> &str {
        "Clip"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Clip")?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Clip")?;
        let (lo, hi) = clip_bounds(inputs)?;
        match (x.data, &mut outputs[0].data) {
            (DataRef::F32(x), DataMut::F32(y)) => {
                let act = Act::Clip(lo.map_or(f32::MIN, |v| v as f32), hi.map_or(f32::MAX, |v| v as f32));
                y.iter_mut().zip(x).for_each(|(y, &v)| *y = act.apply(v));
            }
            (x, _) if is_integer(x.dtype()) => crate::with_same_dtype!(x, &mut outputs[0].data, |s, d| d.copy_from_slice(s))?,
            (other, _) => bail_shape!("Clip", "is not implemented for {}", other.dtype()),
        }
        clip_integers(&mut outputs[0].data, lo, hi);
        Ok(())
    }
    fn in_place_input(&self) -> Option<usize> {
        Some(0)
    }
    fn run_in_place(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (lo, hi) = clip_bounds(inputs)?;
        match &mut outputs[0].data {
            DataMut::F32(y) => {
                let act = Act::Clip(lo.map_or(f32::MIN, |v| v as f32), hi.map_or(f32::MAX, |v| v as f32));
                y.iter_mut().for_each(|y| *y = act.apply(*y));
            }
            y if is_integer(y.dtype()) => clip_integers(&mut outputs[0].data, lo, hi),
            other => bail_shape!("Clip", "is not implemented for {}", other.dtype()),
        }
        Ok(())
    }
}

/// Clip's optional `min` and `max` inputs (scalars of the input's type).
fn clip_bounds(inputs: &[Option<TensorRef>]) -> Result<(Option<f64>, Option<f64>)> {
    let bound = |i: usize| -> Result<Option<f64>> {
        match inputs.get(i).copied().flatten() {
            None => Ok(None),
            Some(t) if t.len() == 1 => Ok(Some(match t.data {
                DataRef::I64(v) => v[0] as f64,
                DataRef::I32(v) => v[0] as f64,
                _ => t.to_f32_vec()[0] as f64,
            })),
            Some(t) => Err(Error::shape("Clip", format!("bounds must be scalars, got shape {:?}", t.shape))),
        }
    };
    Ok((bound(1)?, bound(2)?))
}

fn is_integer(dtype: DType) -> bool {
    matches!(dtype, DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32 | DType::U32 | DType::I64 | DType::U64)
}

/// Clips integer data in place (float data is clipped by [`Act::Clip`]). A missing bound
/// is the type's own limit; bounds come as f64 (exact for every type but 64-bit extremes,
/// which `clip_bounds` reads exactly for i64).
fn clip_integers(data: &mut DataMut, lo: Option<f64>, hi: Option<f64>) {
    macro_rules! clip {
        ($y:expr, $t:ty) => {{
            let (lo, hi) = (lo.map_or(<$t>::MIN, |v| v as $t), hi.map_or(<$t>::MAX, |v| v as $t));
            $y.iter_mut().for_each(|v| *v = (*v).max(lo).min(hi));
        }};
    }
    match data {
        DataMut::I64(y) => clip!(y, i64),
        DataMut::I32(y) => clip!(y, i32),
        DataMut::I16(y) => clip!(y, i16),
        DataMut::I8(y) => clip!(y, i8),
        DataMut::U64(y) => clip!(y, u64),
        DataMut::U32(y) => clip!(y, u32),
        DataMut::U16(y) => clip!(y, u16),
        DataMut::U8(y) => clip!(y, u8),
        _ => {}
    }
}

/// `x < 0 ? slope * x : x`, slope broadcast to x.
#[derive(Debug)]
struct PRelu;

impl Op for PRelu {
    fn op_type(&self) -> &str {
        "PRelu"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "PRelu")?;
        let s = required(inputs, 1, "PRelu")?;
        let out = super::broadcast::broadcast_shapes(&[&x.shape, &s.shape], "PRelu")?;
        if out != x.shape {
            bail_shape!("PRelu", "slope {:?} must broadcast to X {:?}", s.shape, x.shape);
        }
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "PRelu")?;
        let s = required(inputs, 1, "PRelu")?;
        let out = &mut outputs[0];
        let shape = out.shape;
        map2(x.f32s()?, x.shape, s.f32s()?, s.shape, out.f32s_mut()?, shape, |x, s| if x < 0.0 { s * x } else { x });
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum SoftmaxKind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// Softmax over `axis`. Before opset 13 the input is coerced to 2-D at `axis` and the
/// whole trailing block is normalized; from 13 only the single axis is.
#[derive(Debug)]
struct Softmax {
    kind: SoftmaxKind,
    axis: i64,
    legacy_2d: bool,
}

fn build_softmax(ctx: &OpContext, kind: SoftmaxKind) -> Result<Box<dyn Op>> {
    let legacy_2d = ctx.opset < 13;
    let axis = ctx.int("axis", if legacy_2d { 1 } else { -1 })?;
    Ok(Box::new(Softmax { kind, axis, legacy_2d }))
}

impl Softmax {
    fn name(&self) -> &'static str {
        match self.kind {
            SoftmaxKind::Softmax => "Softmax",
            SoftmaxKind::LogSoftmax => "LogSoftmax",
            SoftmaxKind::Hardmax => "Hardmax",
        }
    }
}

impl Op for Softmax {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name())?;
        if !x.dtype.is_float() {
            bail_shape!(self.name(), "is implemented for f32, f64, f16 and bf16, got {}", x.dtype);
        }
        normalize_axis(self.axis, x.rank().max(1), self.name())?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name())?;
        let shape = x.shape;
        let axis = normalize_axis(self.axis, shape.len().max(1), self.name())?.min(shape.len());
        // View as [outer, n, inner]: the normalized run has stride `inner`.
        let (outer, n, inner) = if self.legacy_2d {
            (shape[..axis].iter().product::<usize>(), shape[axis..].iter().product::<usize>(), 1)
        } else if shape.is_empty() {
            (1, 1, 1)
        } else {
            (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
        };
        if let (DataRef::F64(x), DataMut::F64(y)) = (x.data, &mut outputs[0].data) {
            // f64 is normalized in f64 (onnx's reference precision).
            let mut buf = vec![0.0f64; n];
            for o in 0..outer {
                for i in 0..inner {
                    let base = o * n * inner + i;
                    buf.iter_mut().enumerate().for_each(|(k, b)| *b = x[base + k * inner]);
                    normalize_f64(&mut buf, self.kind);
                    buf.iter().enumerate().for_each(|(k, b)| y[base + k * inner] = *b);
                }
            }
            return Ok(());
        }
        let x = f32_values(&x, self.name())?;
        let kind = self.kind;
        write_f32(&mut outputs[0], self.name(), |y| softmax_f32(&x, y, (outer, n, inner), kind))
    }
}

fn softmax_f32(x: &[f32], y: &mut [f32], (outer, n, inner): (usize, usize, usize), kind: SoftmaxKind) -> Result<()> {
    if inner == 1 && kind == SoftmaxKind::Softmax {
        // The common case (attention scores, classifier heads): contiguous runs.
        if n > 0 {
            cairn_kernels::vmath::softmax_rows_into(&x[..outer * n], &mut y[..outer * n], n);
        }
        return Ok(());
    }
    let mut buf = vec![0.0f32; n];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            for (k, b) in buf.iter_mut().enumerate() {
                *b = x[base + k * inner];
            }
            normalize(&mut buf, kind);
            for (k, b) in buf.iter().enumerate() {
                y[base + k * inner] = *b;
            }
        }
    }
    Ok(())
}

fn normalize(v: &mut [f32], kind: SoftmaxKind) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    match kind {
        SoftmaxKind::Hardmax => {
            let first = v.iter().position(|&x| x == max);
            for (i, x) in v.iter_mut().enumerate() {
                *x = (Some(i) == first) as u8 as f32;
            }
        }
        SoftmaxKind::Softmax => {
            let mut sum = 0.0f32;
            for x in v.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            v.iter_mut().for_each(|x| *x /= sum);
        }
        SoftmaxKind::LogSoftmax => {
            let sum: f32 = v.iter().map(|&x| (x - max).exp()).sum();
            let log = sum.ln();
            v.iter_mut().for_each(|x| *x = *x - max - log);
        }
    }
}

fn normalize_f64(v: &mut [f64], kind: SoftmaxKind) {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match kind {
        SoftmaxKind::Hardmax => {
            let first = v.iter().position(|&x| x == max);
            v.iter_mut().enumerate().for_each(|(i, x)| *x = (Some(i) == first) as u8 as f64);
        }
        SoftmaxKind::Softmax => {
            v.iter_mut().for_each(|x| *x = (*x - max).exp());
            let sum: f64 = v.iter().sum();
            v.iter_mut().for_each(|x| *x /= sum);
        }
        SoftmaxKind::LogSoftmax => {
            let log = v.iter().map(|&x| (x - max).exp()).sum::<f64>().ln();
            v.iter_mut().for_each(|x| *x = *x - max - log);
        }
    }
}
