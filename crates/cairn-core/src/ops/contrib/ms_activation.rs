//! Gelu-family activations with an optional bias over the last axis, and BiasAdd.

use super::{last_axis_vector, MS_DOMAIN};
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::math::erf;

pub fn register(r: &mut Registry) {
    r.register_in(MS_DOMAIN, "Gelu", |_| Ok(Box::new(BiasedAct { kind: Kind::Erf, name: "Gelu" })));
    r.register_in(MS_DOMAIN, "BiasGelu", |_| Ok(Box::new(BiasedAct { kind: Kind::Erf, name: "BiasGelu" })));
    r.register_in(MS_DOMAIN, "FastGelu", |_| Ok(Box::new(BiasedAct { kind: Kind::Tanh, name: "FastGelu" })));
    r.register_in(MS_DOMAIN, "QuickGelu", |ctx: &OpContext| {
        Ok(Box::new(BiasedAct { kind: Kind::Quick(ctx.float("alpha", 1.702)?), name: "QuickGelu" }))
    });
    r.register_in(MS_DOMAIN, "BiasAdd", |_| Ok(Box::new(BiasAdd)));
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// 0.5 x (1 + erf(x / sqrt 2)).
    Erf,
    /// onnxruntime's FastGelu: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    Tanh,
    /// x * sigmoid(alpha x) (CLIP's QuickGELU).
    Quick(f32),
}

impl Kind {
    fn apply(self, x: f32) -> f32 {
        match self {
            Kind::Erf => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Kind::Tanh => 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044715 * x * x * x)).tanh()),
            Kind::Quick(a) => x / (1.0 + (-a * x).exp()),
        }
    }
}

/// `act(x + bias)`, the bias (input 1, optional except for BiasGelu) over the last axis.
#[derive(Debug)]
struct BiasedAct {
    kind: Kind,
    name: &'static str,
}

impl Op for BiasedAct {
    fn op_type(&self) -> &str {
        self.name
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name)?;
        if x.dtype != DType::F32 {
            bail_shape!(self.name, "Cairn computes {} on float32, got {}", self.name, x.dtype);
        }
        if self.name == "BiasGelu" {
            required(inputs, 1, self.name)?;
        }
        Ok(vec![Fact::new(DType::F32, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name)?;
        let channels = x.shape.last().copied().unwrap_or(1);
        let bias = inputs.get(1).copied().flatten().map(|b| last_axis_vector(b, channels, self.name, "bias")).transpose()?;
        let y = outputs[0].f32s_mut()?;
        for (row_out, row_in) in y.chunks_mut(channels.max(1)).zip(x.f32s()?.chunks(channels.max(1))) {
            for (c, (o, &v)) in row_out.iter_mut().zip(row_in).enumerate() {
                *o = self.kind.apply(v + bias.map_or(0.0, |b| b[c]));
            }
        }
        Ok(())
    }
}

/// `X + bias + skip` (the residual add with its bias, as the optimizer fuses it).
#[derive(Debug)]
struct BiasAdd;

impl Op for BiasAdd {
    fn op_type(&self) -> &str {
        "BiasAdd"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "BiasAdd")?;
        let skip = required(inputs, 2, "BiasAdd")?;
        if skip.shape != x.shape {
            bail_shape!("BiasAdd", "skip {:?} must have the shape of X {:?}", skip.shape, x.shape);
        }
        Ok(vec![Fact::new(DType::F32, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "BiasAdd")?;
        let channels = x.shape.last().copied().unwrap_or(1).max(1);
        let bias = last_axis_vector(required(inputs, 1, "BiasAdd")?, channels, "BiasAdd", "bias")?;
        let skip = required(inputs, 2, "BiasAdd")?.f32s()?;
        for (i, ((o, &a), &s)) in outputs[0].f32s_mut()?.iter_mut().zip(x.f32s()?).zip(skip).enumerate() {
            *o = a + bias[i % channels] + s;
        }
        Ok(())
    }
}
