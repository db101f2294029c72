//! What a model's BatchNormalizations say about its activations on the data it was trained
//! on. A BatchNormalization in inference form maps its input to `scale * x̂ + shift`, where
//! `x̂` was normalized with the running statistics of the training set: over that data, its
//! output channel `c` has mean `shift[c]` and standard deviation `|scale[c]|`. That is a
//! description of the *training distribution*, which a handful of calibration photos is not:
//! measured on EfficientNet-Lite0, the variance of a hidden channel over the calibration set
//! correlates with the BatchNormalization's by only 0.05-0.45 in most blocks, and ranking
//! channels by the calibration variance drops channels that are idle on those photos but
//! busy on others (docs/adr/0018, "Priors from BatchNormalization").
//!
//! [`batchnorm_priors`] reads them before the BatchNormalizations are folded into their
//! convolutions (the folded conv takes over the BN's output name, so the priors stay keyed
//! by the value they describe); [`clamped_normal_moments`] carries a prior through the
//! activation after it (Relu, Relu6 = Clip(0, 6)), assuming the pre-activation is normal
//! (the same assumption as data-free bias correction, Nagel et al. 2019).

use cairn_core::{Attr, Graph};
use std::collections::HashMap;

/// Per output channel of one BatchNormalization: mean and standard deviation of its output
/// over the training data.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelPrior {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Priors keyed by the BatchNormalization's output value name.
pub type Priors = HashMap<String, ChannelPrior>;

/// The prior of every inference-form BatchNormalization of `graph` whose scale and shift
/// are constant f32 vectors of one length.
pub fn batchnorm_priors(graph: &Graph) -> Priors {
    let vector = |name: Option<&String>| -> Option<Vec<f64>> {
        let t = graph.initializers.get(name?)?;
        Some(t.f32s().ok()?.iter().map(|&v| v as f64).collect())
    };
    let mut out = Priors::new();
    for n in graph.nodes.iter().filter(|n| n.is_inference_batch_norm() && n.outputs.len() == 1) {
        let (Some(scale), Some(shift)) =
            (vector(n.inputs.get(1).and_then(Option::as_ref)), vector(n.inputs.get(2).and_then(Option::as_ref)))
        else {
            continue;
        };
        if scale.len() != shift.len() || scale.is_empty() || matches!(n.attrs.get("spatial"), Some(Attr::Int(0))) {
            continue;
        }
        out.insert(n.outputs[0].clone(), ChannelPrior { mean: shift, std: scale.iter().map(|s| s.abs()).collect() });
    }
    out
}

/// Mean and variance of `clamp(z, lo, hi)` for `z ~ N(mean, std²)` (either bound may be
/// infinite). Quadrature over ±8 standard deviations (the tails beyond carry < 1e-15 of the
/// mass) in steps of 0.01 std: within ~1e-5 std of the closed form where a clamp's kink
/// falls between two steps, enough to rank channels and compensate a bias, and simpler than
/// the closed form's erf terms for half-open and degenerate cases.
pub fn clamped_normal_moments(mean: f64, std: f64, lo: f64, hi: f64) -> (f64, f64) {
    if std <= 0.0 || !std.is_finite() {
        return (mean.clamp(lo, hi), 0.0);
    }
    const STEPS: usize = 1600;
    const SPAN: f64 = 8.0;
    let (mut w_sum, mut m1, mut m2) = (0.0, 0.0, 0.0);
    for i in 0..=STEPS {
        let t = -SPAN + 2.0 * SPAN * i as f64 / STEPS as f64;
        let w = (-0.5 * t * t).exp();
        let a = (mean + std * t).clamp(lo, hi);
        w_sum += w;
        m1 += w * a;
        m2 += w * a * a;
    }
    let mu = m1 / w_sum;
    (mu, (m2 / w_sum - mu * mu).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclamped_moments_are_the_normal_ones() {
        let (m, v) = clamped_normal_moments(1.5, 2.0, f64::NEG_INFINITY, f64::INFINITY);
        assert!((m - 1.5).abs() < 1e-9 && (v - 4.0).abs() < 1e-6, "{m} {v}");
    }

    #[test]
    fn relu_of_a_standard_normal() {
        // E[max(z, 0)] = 1/sqrt(2π); E[max(z, 0)²] = 1/2.
        let (m, v) = clamped_normal_moments(0.0, 1.0, 0.0, f64::INFINITY);
        let want_m = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
        assert!((m - want_m).abs() < 1e-5, "{m}");
        assert!((v - (0.5 - want_m * want_m)).abs() < 1e-5, "{v}");
    }

    #[test]
    fn relu6_far_outside_its_range_is_constant() {
        assert_eq!(clamped_normal_moments(-40.0, 1.0, 0.0, 6.0), (0.0, 0.0));
        let (m, v) = clamped_normal_moments(50.0, 1.0, 0.0, 6.0);
        assert!((m - 6.0).abs() < 1e-12 && v < 1e-12);
        assert_eq!(clamped_normal_moments(3.0, 0.0, 0.0, 6.0), (3.0, 0.0));
    }
}
