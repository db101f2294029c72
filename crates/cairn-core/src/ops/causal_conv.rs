//! CausalConvWithState (opset 27): the depthwise causal 1-D convolution of state-space and
//! gated-delta LLM layers, carrying its last `k - 1` inputs from one call to the next.
//!
//! `output[b, c, t] = act(bias[c] + sum_j w[c, 0, j] * padded[b, c, t + j])`, where `padded`
//! is `past_state` (zeros when omitted) followed by `input`; `present_state` is the last
//! `k - 1` positions of `padded`. f16 and bf16 run in f32 (docs/adr/0014-f16-compute.md);
//! the convolution is rounded to the input's dtype before the activation, as the spec's
//! reference does.

use super::float_io::{f32_values, is_half, write_f32};
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("CausalConvWithState", build);
}

fn build(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let silu = match ctx.string("activation", "none")?.as_str() {
        "none" => false,
        "silu" | "swish" => true,
        other => return Err(ctx.unsupported("activation", format!("'{other}' is not one of none, silu, swish"))),
    };
    Ok(Box::new(CausalConv { silu }))
}

#[derive(Debug)]
struct CausalConv {
    silu: bool,
}

const OP: &str = "CausalConvWithState";

/// Rounds an f32 to the precision of `dtype` (f16 or bf16), or leaves it (f32).
pub(crate) fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => half::f16::from_f32(v).to_f32(),
        DType::BF16 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

impl Op for CausalConv {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, OP)?;
        let w = required(inputs, 1, OP)?;
        if !(x.dtype == DType::F32 || is_half(x.dtype)) {
            bail_shape!(OP, "is defined for f32, f16 and bf16, got {}", x.dtype);
        }
        let [b, c, l] = x.shape[..] else { bail_shape!(OP, "input must be [batch, channels, length], got {:?}", x.shape) };
        let k = match w.shape[..] {
            [wc, 1, k] if wc == c && k >= 1 => k,
            _ => bail_shape!(OP, "weight must be [{c}, 1, k] with k >= 1 (depthwise), got {:?}", w.shape),
        };
        let mut all = vec![("weight", w)];
        if let Some(bias) = inputs.get(2).copied().flatten() {
            if bias.shape != [c] {
                bail_shape!(OP, "bias must be [{c}], got {:?}", bias.shape);
            }
            all.push(("bias", bias));
        }
        if let Some(past) = inputs.get(3).copied().flatten() {
            if past.shape != [b, c, k - 1] {
                bail_shape!(OP, "past_state must be [{b}, {c}, {}], got {:?}", k - 1, past.shape);
            }
            all.push(("past_state", past));
        }
        if let Some((name, f)) = all.iter().find(|(_, f)| f.dtype != x.dtype) {
            bail_shape!(OP, "{name} has dtype {}, input has {}", f.dtype, x.dtype);
        }
        Ok(vec![Fact::new(x.dtype, vec![b, c, l]), Fact::new(x.dtype, vec![b, c, k - 1])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, OP)?;
        let w = required(inputs, 1, OP)?;
        let (b, c, l, k) = (x.shape[0], x.shape[1], x.shape[2], w.shape[2]);
        let dtype = x.dtype();
        let xs = f32_values(&x, OP)?;
        let ws = f32_values(&w, OP)?;
        let bias = inputs.get(2).copied().flatten().map(|t| f32_values(&t, OP)).transpose()?;
        let past = inputs.get(3).copied().flatten().map(|t| f32_values(&t, OP)).transpose()?;
        // padded[b, c, :] = past (or zeros) ++ input
        let width = k - 1 + l;
        let mut padded = vec![0.0f32; b * c * width];
        for bc in 0..b * c {
            let row = &mut padded[bc * width..][..width];
            if let Some(p) = &past {
                row[..k - 1].copy_from_slice(&p[bc * (k - 1)..][..k - 1]);
            }
            row[k - 1..].copy_from_slice(&xs[bc * l..][..l]);
        }
        let silu = self.silu;
        write_f32(&mut outputs[0], OP, |y| {
            for bc in 0..b * c {
                let ch = bc % c;
                let (row, taps) = (&padded[bc * width..][..width], &ws[ch * k..][..k]);
                for t in 0..l {
                    let mut acc = bias.as_ref().map_or(0.0, |b| b[ch]);
                    acc += taps.iter().zip(&row[t..t + k]).map(|(w, x)| w * x).sum::<f32>();
                    let v = round_to(dtype, acc);
                    y[bc * l + t] = if silu { v / (1.0 + (-v).exp()) } else { v };
                }
            }
            Ok(())
        })?;
        write_f32(&mut outputs[1], OP, |s| {
            for bc in 0..b * c {
                s[bc * (k - 1)..][..k - 1].copy_from_slice(&padded[bc * width + l..][..k - 1]);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::sync::Arc;

    #[test]
    fn state_carries_the_last_inputs_across_calls() {
        // One channel, k = 3, weights [1, 2, 3]: y[t] = x[t-2] + 2 x[t-1] + 3 x[t].
        let op = CausalConv { silu: false };
        let w = Arc::new(Tensor::from_f32(vec![1, 1, 3], vec![1., 2., 3.]).unwrap());
        let x = Arc::new(Tensor::from_f32(vec![1, 1, 4], vec![1., 2., 3., 4.]).unwrap());
        let out = crate::plan::run_owned(&op, &[Some(x), Some(w.clone())]).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[3., 8., 14., 20.]);
        assert_eq!(out[1].f32s().unwrap(), &[3., 4.]);
        // The next chunk continues the sequence: same result as one call on all 6 values.
        let x2 = Arc::new(Tensor::from_f32(vec![1, 1, 2], vec![5., 6.]).unwrap());
        let state = Arc::new(out[1].clone());
        let out2 = crate::plan::run_owned(&op, &[Some(x2), Some(w), None, Some(state)]).unwrap();
        assert_eq!(out2[0].f32s().unwrap(), &[3. + 8. + 15., 4. + 10. + 18.]);
    }

    #[test]
    fn rejects_a_non_depthwise_weight() {
        let op = CausalConv { silu: false };
        let x = Fact::new(DType::F32, vec![1, 2, 4]);
        let w = Fact::new(DType::F32, vec![2, 2, 3]);
        assert!(op.infer(&[Some(&x), Some(&w)]).unwrap_err().to_string().contains("depthwise"));
    }
}
