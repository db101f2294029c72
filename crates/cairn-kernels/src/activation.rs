//! Activations that kernels apply in their epilogue, while the output tile is
//! still in cache, instead of as a separate pass over memory.

use crate::math::exp_fast;
use crate::vmath::per_isa;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    #[default]
    Identity,
    Relu,
    /// Clip to `[min, max]` (ReLU6 is `Clip { min: 0, max: 6 }`).
    Clip {
        min: f32,
        max: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// x * clamp(x / 6 + 0.5, 0, 1)
    HardSwish,
    Sigmoid,
    /// x * sigmoid(x), also called Swish.
    Silu,
    Tanh,
    /// x * 0.5 * (1 + erf(x / sqrt 2)), the exact form exporters write.
    Gelu,
    /// The tanh approximation of GELU.
    GeluTanh,
}

impl Activation {
    /// Applies the activation in place. The cheap cases are written as plain
    /// loops over slices so LLVM vectorizes them for the target; inlined so that the
    /// loops are compiled for the caller's ISA (an AVX2 kernel gets AVX2 clamps).
    #[inline(always)]
    pub fn apply(self, xs: &mut [f32]) {
        match self {
            Activation::Identity => {}
            Activation::Relu => xs.iter_mut().for_each(|x| *x = if *x < 0.0 { 0.0 } else { *x }),
            Activation::Clip { min, max } => xs.iter_mut().for_each(|x| *x = clip(*x, min, max)),
            Activation::LeakyRelu { alpha } => xs.iter_mut().for_each(|x| *x = if *x < 0.0 { alpha * *x } else { *x }),
            Activation::HardSigmoid { alpha, beta } => xs.iter_mut().for_each(|x| *x = clip(alpha * *x + beta, 0.0, 1.0)),
            Activation::HardSwish => xs.iter_mut().for_each(|x| *x *= clip(*x * (1.0 / 6.0) + 0.5, 0.0, 1.0)),
            Activation::Sigmoid | Activation::Silu | Activation::Tanh | Activation::GeluTanh => apply_costly(self, xs),
            Activation::Gelu => crate::vmath::gelu_in_place(xs),
        }
    }

    /// The bounds of a clamping activation (identity, ReLU, Clip), which a kernel applies
    /// in registers; `None` for the others, which need a pass over stored values.
    pub fn clamp_bounds(self) -> Option<(f32, f32)> {
        match self {
            Activation::Identity => Some((f32::NEG_INFINITY, f32::INFINITY)),
            Activation::Relu => Some((0.0, f32::INFINITY)),
            Activation::Clip { min, max } => Some((min, max)),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn apply_one(self, x: f32) -> f32 {
        if matches!(self, Activation::Sigmoid | Activation::Silu | Activation::Tanh | Activation::GeluTanh) {
            return costly(self, x); // one value: not worth a dispatch
        }
        let mut v = [x];
        self.apply(&mut v);
        v[0]
    }
}

/// Clamps like ONNX Clip: NaN stays NaN.
#[inline(always)]
pub(crate) fn clip(x: f32, min: f32, max: f32) -> f32 {
    if x < min {
        min
    } else if x > max {
        max
    } else {
        x
    }
}

per_isa! {
    /// The activations that cost more than a compare per element, compiled for the CPU's
    /// widest ISA: `apply` inlines into callers compiled for the baseline (the GEMM
    /// driver's edge and row epilogues), where `exp_fast` ran on 4 SSE lanes instead of 16.
    /// Same formulas, so the same bits on every ISA.
    pub fn apply_costly(act: Activation, xs: &mut [f32]) {
        // One loop per function, so that each vectorizes on its own.
        match act {
            Activation::Sigmoid => xs.iter_mut().for_each(|x| *x = costly(Activation::Sigmoid, *x)),
            Activation::Silu => xs.iter_mut().for_each(|x| *x = costly(Activation::Silu, *x)),
            Activation::Tanh => xs.iter_mut().for_each(|x| *x = costly(Activation::Tanh, *x)),
            Activation::GeluTanh => xs.iter_mut().for_each(|x| *x = costly(Activation::GeluTanh, *x)),
            cheap => cheap.apply(xs),
        }
    }
}

/// One value through one of [`apply_costly`]'s functions (others pass unchanged).
#[inline(always)]
fn costly(act: Activation, v: f32) -> f32 {
    match act {
        Activation::Sigmoid => sigmoid(v),
        Activation::Silu => v * sigmoid(v),
        Activation::Tanh => v.tanh(),
        Activation::GeluTanh => 0.5 * v * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()),
        _ => v,
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}
