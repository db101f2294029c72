//! `ai.onnx.preview.FlexAttention`: scaled dot-product attention over rank-4 Q, K, V
//! (grouped-query heads allowed) with two optional subgraphs, `score_mod` applied to the
//! scores before the softmax and `prob_mod` to the probabilities after it.
//!
//! Following onnx's reference (`reference/ops/aionnx_preview/op_flex_attention.py`):
//! Q and K are each multiplied by `sqrt(scale)` in their own dtype, the scores are cast to
//! the softmax precision (f32 for f16/bf16/f32 inputs, f64 for f64, or
//! `softmax_precision`), the subgraphs see tensors of that dtype, and the output is cast
//! to V's dtype. Without subgraphs the op runs on the planned path; with them, on the
//! eager interpreter, which runs subgraphs (docs/adr/0010-control-flow-and-dynamic-shapes.md).

use super::cast::{convert, onnx_dtype};
use crate::eager::{split_captures, EvalContext};
use crate::{
    bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, Subgraph, Tensor, TensorData, TensorMut, TensorRef, Value,
};
use std::sync::Arc;

pub const PREVIEW_DOMAIN: &str = "ai.onnx.preview";

pub fn register(r: &mut Registry) {
    r.register_in(PREVIEW_DOMAIN, "FlexAttention", |ctx: &OpContext| {
        let precision = match ctx.int_opt("softmax_precision")? {
            None => None,
            Some(code) => match onnx_dtype(code) {
                Some(d @ (DType::F32 | DType::F64 | DType::F16 | DType::BF16)) => Some(d),
                _ => {
                    return Err(ctx.unsupported("softmax_precision", format!("ONNX type {code} is not float, float16, bfloat16 or double")))
                }
            },
        };
        Ok(Box::new(FlexAttention {
            scale: ctx.float_opt("scale")?,
            score_mod: ctx.graph_opt("score_mod")?,
            prob_mod: ctx.graph_opt("prob_mod")?,
            precision,
        }))
    });
}

const OP: &str = "FlexAttention";

#[derive(Debug)]
struct FlexAttention {
    scale: Option<f32>,
    score_mod: Option<Subgraph>,
    prob_mod: Option<Subgraph>,
    precision: Option<DType>,
}

/// [batch, q_heads, q_len, head], K's [kv_heads, kv_len], V's head size.
struct Dims {
    b: usize,
    hq: usize,
    l: usize,
    e: usize,
    hkv: usize,
    s: usize,
    ev: usize,
}

fn dims(q: &[usize], k: &[usize], v: &[usize]) -> Result<Dims> {
    let (&[b, hq, l, e], &[kb, hkv, s, ek], &[vb, vh, vs, ev]) = (q, k, v) else {
        bail_shape!(OP, "Q, K and V must be rank 4, got {q:?}, {k:?}, {v:?}");
    };
    if kb != b || vb != b || vh != hkv || vs != s || ek != e {
        bail_shape!(OP, "Q {q:?}, K {k:?} and V {v:?} disagree (batch, KV heads, KV length or head size)");
    }
    if hkv == 0 || hq % hkv != 0 {
        bail_shape!(OP, "Q's {hq} heads must be a multiple of K's {hkv}");
    }
    Ok(Dims { b, hq, l, e, hkv, s, ev })
}

/// Rounds to the precision of `dtype` (f32, f16, bf16), or keeps f64.
fn round_to(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F32 => v as f32 as f64,
        DType::F16 => half::f16::from_f64(v).to_f64(),
        DType::BF16 => half::bf16::from_f64(v).to_f64(),
        _ => v,
    }
}

impl FlexAttention {
    fn compute_dtype(&self, input: DType) -> DType {
        self.precision.unwrap_or(if input == DType::F64 { DType::F64 } else { DType::F32 })
    }

    fn check(&self, q: DType, k: DType, v: DType) -> Result<()> {
        if !q.is_float() || k != q || v != q {
            bail_shape!(OP, "Q, K and V must share one float dtype, got {q}, {k}, {v}");
        }
        Ok(())
    }

    /// The whole computation; `modify(which, tensor)` runs a subgraph (0 score_mod, 1 prob_mod).
    fn compute(&self, q: TensorRef, k: TensorRef, v: TensorRef, mut modify: impl FnMut(usize, Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let d = dims(q.shape, k.shape, v.shape)?;
        let (in_dtype, cdt) = (q.dtype(), self.compute_dtype(q.dtype()));
        let scale = self.scale.map_or(1.0 / (d.e as f64).sqrt(), |s| s as f64);
        let root = round_to(in_dtype, (scale as f32).sqrt() as f64);
        let qs: Vec<f64> = q.to_f64_vec().iter().map(|&x| round_to(in_dtype, x * root)).collect();
        let ks: Vec<f64> = k.to_f64_vec().iter().map(|&x| round_to(in_dtype, x * root)).collect();
        let vs = v.to_f64_vec();
        let group = d.hq / d.hkv;
        let rows = d.b * d.hq * d.l;
        let mut scores = vec![0.0f64; rows * d.s];
        for b in 0..d.b {
            for h in 0..d.hq {
                let kvh = b * d.hkv + h / group;
                for i in 0..d.l {
                    let qrow = &qs[((b * d.hq + h) * d.l + i) * d.e..][..d.e];
                    for j in 0..d.s {
                        let krow = &ks[(kvh * d.s + j) * d.e..][..d.e];
                        let dot: f64 = qrow.iter().zip(krow).map(|(a, b)| a * b).sum();
                        scores[((b * d.hq + h) * d.l + i) * d.s + j] = round_to(cdt, round_to(in_dtype, dot));
                    }
                }
            }
        }
        let shape = vec![d.b, d.hq, d.l, d.s];
        let through = |which: usize, values: Vec<f64>, modify: &mut dyn FnMut(usize, Tensor) -> Result<Tensor>| -> Result<Vec<f64>> {
            let mut data = TensorData::zeros(cdt, values.len());
            convert(crate::DataRef::F64(&values), &mut data.as_mut())?;
            let out = modify(which, Tensor::new(shape.clone(), data)?)?;
            if out.shape() != shape.as_slice() {
                bail_shape!(OP, "a modifier subgraph must keep the shape {shape:?}, gave {:?}", out.shape());
            }
            Ok(out.view().to_f64_vec().into_iter().map(|x| round_to(cdt, x)).collect())
        };
        if self.score_mod.is_some() {
            scores = through(0, scores, &mut modify)?;
        }
        for row in scores.chunks_exact_mut(d.s.max(1)).take(rows) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            row.iter_mut().for_each(|x| *x = (*x - max).exp());
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|x| *x = round_to(cdt, *x / sum));
        }
        if self.prob_mod.is_some() {
            scores = through(1, scores, &mut modify)?;
        }
        let mut out = vec![0.0f64; rows * d.ev];
        for b in 0..d.b {
            for h in 0..d.hq {
                let kvh = b * d.hkv + h / group;
                for i in 0..d.l {
                    let r = (b * d.hq + h) * d.l + i;
                    for m in 0..d.ev {
                        out[r * d.ev + m] = (0..d.s).map(|j| scores[r * d.s + j] * round_to(cdt, vs[(kvh * d.s + j) * d.ev + m])).sum();
                    }
                }
            }
        }
        let mut data = TensorData::zeros(v.dtype(), out.len());
        convert(crate::DataRef::F64(&out), &mut data.as_mut())?;
        Tensor::new(vec![d.b, d.hq, d.l, d.ev], data)
    }
}

impl Op for FlexAttention {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (q, k, v) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?, required(inputs, 2, OP)?);
        self.check(q.dtype, k.dtype, v.dtype)?;
        let d = dims(&q.shape, &k.shape, &v.shape)?;
        Ok(vec![Fact::new(v.dtype, vec![d.b, d.hq, d.l, d.ev])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (q, k, v) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?, required(inputs, 2, OP)?);
        let y = self.compute(q, k, v, |_, _| Err(Error::shape(OP, "modifier subgraphs run on the eager interpreter only")))?;
        outputs[0].data.copy_from(y.view().data)
    }
    fn runs_eagerly(&self) -> bool {
        self.score_mod.is_some() || self.prob_mod.is_some()
    }
    fn eval(&self, inputs: &[Option<Value>], cx: &EvalContext) -> Result<Vec<Value>> {
        let n_captures = self.score_mod.as_ref().or(self.prob_mod.as_ref()).map_or(0, |g| g.captures.len());
        let (own, captured) = split_captures(OP, inputs, n_captures)?;
        let tensor = |i: usize| -> Result<&Arc<Tensor>> {
            own.get(i).and_then(|v| v.as_ref()).ok_or_else(|| Error::shape(OP, format!("input {i} is required")))?.as_tensor(OP)
        };
        let (q, k, v) = (tensor(0)?, tensor(1)?, tensor(2)?);
        self.check(q.dtype(), k.dtype(), v.dtype())?;
        let y = self.compute(q.view(), k.view(), v.view(), |which, t| {
            let graph = if which == 0 { &self.score_mod } else { &self.prob_mod };
            let graph = graph.as_ref().ok_or_else(|| Error::shape(OP, "no such modifier"))?;
            let mut outs = graph.run(OP, vec![Value::Tensor(Arc::new(t))], captured, cx)?;
            if outs.len() != 1 {
                bail_shape!(OP, "a modifier subgraph must have one output, has {}", outs.len());
            }
            crate::eager::into_tensor(OP, outs.remove(0))
        })?;
        Ok(vec![Value::Tensor(Arc::new(y))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_gives_its_value() {
        // A single key: the softmax is 1 whatever the score, so Y = V.
        let op = FlexAttention { scale: None, score_mod: None, prob_mod: None, precision: None };
        let q = Arc::new(Tensor::from_f32(vec![1, 2, 1, 2], vec![1., 2., 3., 4.]).unwrap());
        let k = Arc::new(Tensor::from_f32(vec![1, 1, 1, 2], vec![5., 6.]).unwrap());
        let v = Arc::new(Tensor::from_f32(vec![1, 1, 1, 3], vec![7., 8., 9.]).unwrap());
        let out = crate::plan::run_owned(&op, &[Some(q), Some(k), Some(v)]).unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 1, 3]);
        assert_eq!(out[0].f32s().unwrap(), &[7., 8., 9., 7., 8., 9.]);
    }

    #[test]
    fn heads_must_group() {
        let op = FlexAttention { scale: None, score_mod: None, prob_mod: None, precision: None };
        let (q, k) = (Fact::new(DType::F32, vec![1, 3, 1, 2]), Fact::new(DType::F32, vec![1, 2, 1, 2]));
        assert!(op.infer(&[Some(&q), Some(&k), Some(&k)]).is_err());
    }
}
