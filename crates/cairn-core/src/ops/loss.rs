//! Losses of the default domain that exporters leave in inference graphs:
//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (f32).
//!
//! Both follow onnx's reference (`onnx/reference/ops/op_negative_log_likelihood_loss.py`):
//! targets equal to `ignore_index` contribute 0 and weigh 0; `mean` divides by the sum of
//! the weights gathered per target (by the count of non-ignored targets without weights).

use crate::{bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("NegativeLogLikelihoodLoss", |ctx| Ok(Box::new(Loss { softmax: false, cfg: LossConfig::parse(ctx)? })));
    r.register("SoftmaxCrossEntropyLoss", |ctx| Ok(Box::new(Loss { softmax: true, cfg: LossConfig::parse(ctx)? })));
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reduction {
    None,
    Sum,
    Mean,
}

#[derive(Debug)]
struct LossConfig {
    reduction: Reduction,
    ignore_index: Option<i64>,
}

impl LossConfig {
    fn parse(ctx: &OpContext) -> Result<LossConfig> {
        let reduction = match ctx.string("reduction", "mean")?.as_str() {
            "none" => Reduction::None,
            "sum" => Reduction::Sum,
            "mean" => Reduction::Mean,
            other => return Err(Error::InvalidAttr { attr: "reduction".into(), detail: format!("'{other}' is not none, sum or mean") }),
        };
        Ok(LossConfig { reduction, ignore_index: ctx.int_opt("ignore_index")? })
    }
}

/// NegativeLogLikelihoodLoss (`softmax: false`, input holds log-probabilities) or
/// SoftmaxCrossEntropyLoss (`softmax: true`, input holds scores; output 1 is log_prob).
#[derive(Debug)]
struct Loss {
    softmax: bool,
    cfg: LossConfig,
}

impl Loss {
    fn name(&self) -> &'static str {
        if self.softmax {
            "SoftmaxCrossEntropyLoss"
        } else {
            "NegativeLogLikelihoodLoss"
        }
    }
}

impl Op for Loss {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let op = self.name();
        let x = required(inputs, 0, op)?;
        let t = required(inputs, 1, op)?;
        if x.dtype != DType::F32 {
            bail_shape!(op, "is implemented for f32 input, got {}", x.dtype);
        }
        if !matches!(t.dtype, DType::I32 | DType::I64) {
            bail_shape!(op, "target must be i32 or i64, got {}", t.dtype);
        }
        // target is input's shape without the class dim (dim 1).
        let mut want = x.shape.clone();
        if want.len() < 2 {
            bail_shape!(op, "input must have shape [N, C, ...], got {:?}", x.shape);
        }
        want.remove(1);
        if t.shape != want {
            bail_shape!(op, "target must have shape {:?} for input {:?}, got {:?}", want, x.shape, t.shape);
        }
        if let Some(w) = inputs.get(2).copied().flatten() {
            if w.shape != [x.shape[1]] || w.dtype != DType::F32 {
                bail_shape!(op, "weight must be f32 [{}], got {} {:?}", x.shape[1], w.dtype, w.shape);
            }
        }
        let loss_shape = if self.cfg.reduction == Reduction::None { want } else { vec![] };
        let mut out = vec![Fact::new(DType::F32, loss_shape)];
        if self.softmax {
            out.push(Fact::new(DType::F32, x.shape.clone()));
        }
        Ok(out)
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.name();
        let x = required(inputs, 0, op)?;
        let target = required(inputs, 1, op)?.to_i64_vec()?;
        let weight = inputs.get(2).copied().flatten().map(|w| w.f32s()).transpose()?;
        let (n, c) = (x.shape[0], x.shape[1]);
        let inner: usize = x.shape[2..].iter().product();
        let log_prob = if self.softmax { log_softmax_axis1(x.f32s()?, n, c, inner) } else { x.f32s()?.to_vec() };

        let mut losses = vec![0.0f32; n * inner];
        let mut weights = vec![0.0f32; n * inner];
        for b in 0..n {
            for d in 0..inner {
                let j = b * inner + d;
                let t = target[j];
                if Some(t) == self.cfg.ignore_index {
                    continue;
                }
                let class = usize::try_from(t)
                    .ok()
                    .filter(|&k| k < c)
                    .ok_or_else(|| Error::shape(op, format!("target {t} is out of range for {c} classes (and is not ignore_index)")))?;
                let w = weight.map_or(1.0, |w| w[class]);
                losses[j] = -log_prob[(b * c + class) * inner + d] * w;
                weights[j] = w;
            }
        }
        let out = outputs[0].f32s_mut()?;
        match self.cfg.reduction {
            Reduction::None => out.copy_from_slice(&losses),
            Reduction::Sum => out[0] = losses.iter().sum(),
            // Without weights or ignore_index every weight is 1: the plain mean.
            Reduction::Mean => out[0] = losses.iter().sum::<f32>() / weights.iter().sum::<f32>(),
        }
        if self.softmax {
            if let Some(lp) = outputs.get_mut(1) {
                lp.f32s_mut()?.copy_from_slice(&log_prob);
            }
        }
        Ok(())
    }
}

/// log(softmax(x)) over dim 1 of an [N, C, inner] layout, max-subtracted for stability.
fn log_softmax_axis1(x: &[f32], n: usize, c: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for b in 0..n {
        for d in 0..inner {
            let at = |k: usize| (b * c + k) * inner + d;
            let max = (0..c).map(|k| x[at(k)]).fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = (0..c).map(|k| (x[at(k)] - max).exp()).sum();
            let log_sum = sum.ln();
            for k in 0..c {
                out[at(k)] = x[at(k)] - max - log_sum;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    #[test]
    fn mean_with_ignore_index_divides_by_the_kept_weights() {
        let op = Loss { softmax: false, cfg: LossConfig { reduction: Reduction::Mean, ignore_index: Some(1) } };
        let x = Tensor::from_f32(vec![3, 2], vec![-1., -2., -3., -4., -5., -6.]).unwrap();
        let t = Tensor::from_i64(vec![3], vec![0, 1, 1]).unwrap();
        let w = Tensor::from_f32(vec![2], vec![2., 3.]).unwrap();
        let mut y = Tensor::zeros(DType::F32, vec![]).unwrap();
        op.run(&[Some(x.view()), Some(t.view()), Some(w.view())], &mut [y.view_mut()]).unwrap();
        // Only the first target counts: (1 * 2) / 2.
        assert_eq!(y.f32s().unwrap(), &[1.0]);
    }

    #[test]
    fn out_of_range_target_is_an_error() {
        let op = Loss { softmax: true, cfg: LossConfig { reduction: Reduction::Sum, ignore_index: None } };
        let x = Tensor::from_f32(vec![1, 2], vec![0.5, 0.5]).unwrap();
        let t = Tensor::from_i64(vec![1], vec![2]).unwrap();
        let mut y = Tensor::zeros(DType::F32, vec![]).unwrap();
        let mut lp = Tensor::zeros(DType::F32, vec![1, 2]).unwrap();
        assert!(op.run(&[Some(x.view()), Some(t.view())], &mut [y.view_mut(), lp.view_mut()]).is_err());
    }
}
