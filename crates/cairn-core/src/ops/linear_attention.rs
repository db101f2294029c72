//! LinearAttention (opset 27): the recurrent state update of linear-attention LLM layers,
//! one token at a time over a `[d_k, d_v]` state per key/value head.
//!
//! For each step t, with the key/value head's state S:
//! - `gated`, `gated_delta`: `S *= exp(decay_t)` (one decay per head, or per key dim);
//! - `delta`, `gated_delta`: `v_t = beta_t * (v_t - S^T k_t)`;
//! - always: `S += k_t v_t^T`, then `o_t = scale * q_t^T S` for every query head of the group.
//!
//! The state is accumulated in f32 whatever the activations' dtype, as the spec's
//! reference does; f16 and bf16 are widened and rounded once per output
//! (docs/adr/0014-f16-compute.md). `chunk_size` is a tuning hint with no effect on results.

use super::float_io::{f32_values, is_half, write_f32};
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("LinearAttention", build);
}

const OP: &str = "LinearAttention";

#[derive(Debug)]
struct LinearAttention {
    q_heads: usize,
    kv_heads: usize,
    /// 0 means 1/sqrt(d_k).
    scale: f32,
    gating: bool,
    delta: bool,
}

fn build(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let (q_heads, kv_heads) = (ctx.int_req("q_num_heads")?, ctx.int_req("kv_num_heads")?);
    if q_heads <= 0 || kv_heads <= 0 || q_heads % kv_heads != 0 {
        return Err(crate::Error::InvalidAttr {
            attr: "q_num_heads".into(),
            detail: format!("{q_heads} must be a positive multiple of kv_num_heads {kv_heads}"),
        });
    }
    let (gating, delta) = match ctx.string("update_rule", "gated_delta")?.as_str() {
        "linear" => (false, false),
        "gated" => (true, false),
        "delta" => (false, true),
        "gated_delta" => (true, true),
        other => return Err(ctx.unsupported("update_rule", format!("'{other}' is not one of linear, gated, delta, gated_delta"))),
    };
    ctx.ignore("chunk_size");
    Ok(Box::new(LinearAttention { q_heads: q_heads as usize, kv_heads: kv_heads as usize, scale: ctx.float("scale", 0.0)?, gating, delta }))
}

/// The sizes every input is checked against.
struct Dims {
    b: usize,
    t: usize,
    dk: usize,
    dv: usize,
    /// Decay per key dim (`[B, T, H_kv * d_k]`) rather than per head (`[B, T, H_kv]`).
    decay_per_dim: bool,
    /// Beta per head (`[B, T, H_kv]`) rather than shared (`[B, T, 1]`).
    beta_per_head: bool,
}

impl LinearAttention {
    fn dims(&self, shapes: [Option<&[usize]>; 6]) -> Result<Dims> {
        let [Some(q), Some(k), Some(v), past, decay, beta] = shapes else { bail_shape!(OP, "query, key and value are required") };
        let [b, t, qw] = q[..] else { bail_shape!(OP, "query must be [batch, seq, q_num_heads * d_k], got {q:?}") };
        let (hq, hkv) = (self.q_heads, self.kv_heads);
        if qw % hq != 0 {
            bail_shape!(OP, "query's last dim {qw} is not a multiple of q_num_heads {hq}");
        }
        let dk = qw / hq;
        if k != [b, t, hkv * dk] {
            bail_shape!(OP, "key must be [{b}, {t}, {}] (kv_num_heads * d_k), got {k:?}", hkv * dk);
        }
        let [vb, vt, vw] = v[..] else { bail_shape!(OP, "value must be [batch, seq, kv_num_heads * d_v], got {v:?}") };
        if vb != b || vt != t || vw % hkv != 0 {
            bail_shape!(OP, "value must be [{b}, {t}, kv_num_heads * d_v], got {v:?}");
        }
        let dv = vw / hkv;
        if let Some(p) = past {
            if p != [b, hkv, dk, dv] {
                bail_shape!(OP, "past_state must be [{b}, {hkv}, {dk}, {dv}], got {p:?}");
            }
        }
        let decay_per_dim = match (self.gating, decay) {
            (true, None) => bail_shape!(OP, "the gated update rules need the decay input"),
            (false, Some(_)) => bail_shape!(OP, "decay is only used by the gated update rules"),
            (_, None) => false,
            (_, Some(d)) if d == [b, t, hkv] => false,
            (_, Some(d)) if d == [b, t, hkv * dk] => true,
            (_, Some(d)) => bail_shape!(OP, "decay must be [{b}, {t}, {hkv}] or [{b}, {t}, {}], got {d:?}", hkv * dk),
        };
        let beta_per_head = match (self.delta, beta) {
            (true, None) => bail_shape!(OP, "the delta update rules need the beta input"),
            (false, Some(_)) => bail_shape!(OP, "beta is only used by the delta update rules"),
            (_, None) => false,
            (_, Some(s)) if s == [b, t, hkv] => true,
            (_, Some(s)) if s == [b, t, 1] => false,
            (_, Some(s)) => bail_shape!(OP, "beta must be [{b}, {t}, {hkv}] or [{b}, {t}, 1], got {s:?}"),
        };
        Ok(Dims { b, t, dk, dv, decay_per_dim, beta_per_head })
    }
}

impl Op for LinearAttention {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let q = required(inputs, 0, OP)?;
        let shape = |i: usize| inputs.get(i).copied().flatten().map(|f| f.shape.as_slice());
        let d = self.dims([shape(0), shape(1), shape(2), shape(3), shape(4), shape(5)])?;
        let float = |t: DType| t == DType::F32 || is_half(t);
        for (i, f) in inputs.iter().enumerate().take(6) {
            if let Some(f) = f {
                let ok = if i == 3 { float(f.dtype) } else { f.dtype == q.dtype };
                if !ok || !float(q.dtype) {
                    bail_shape!(OP, "input {i} has dtype {}; query, key, value, decay and beta share one of f32, f16, bf16", f.dtype);
                }
            }
        }
        let state_dtype = inputs.get(3).copied().flatten().map_or(q.dtype, |p| p.dtype);
        Ok(vec![Fact::new(q.dtype, vec![d.b, d.t, self.q_heads * d.dv]), Fact::new(state_dtype, vec![d.b, self.kv_heads, d.dk, d.dv])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let input = |i: usize| inputs.get(i).copied().flatten();
        let d = self.dims([0, 1, 2, 3, 4, 5].map(|i| input(i).map(|t| t.shape)))?;
        let values = |i: usize| input(i).map(|t| f32_values(&t, OP)).transpose();
        let (q, k, v) = (values(0)?.unwrap_or_default(), values(1)?.unwrap_or_default(), values(2)?.unwrap_or_default());
        let (past, decay, beta) = (values(3)?, values(4)?, values(5)?);
        let (hq, hkv, Dims { b, t, dk, dv, .. }) = (self.q_heads, self.kv_heads, &d);
        let (b, t, dk, dv) = (*b, *t, *dk, *dv);
        let group = hq / hkv;
        let scale = if self.scale == 0.0 { 1.0 / (dk as f32).sqrt() } else { self.scale };
        let mut state = past.map_or_else(|| vec![0.0f32; b * hkv * dk * dv], |p| p.into_owned());
        let mut out = vec![0.0f32; b * t * hq * dv];
        let mut vt = vec![0.0f32; dv];
        for bi in 0..b {
            for h in 0..hkv {
                let s = &mut state[(bi * hkv + h) * dk * dv..][..dk * dv];
                for ti in 0..t {
                    let row = bi * t + ti;
                    let kt = &k[(row * hkv + h) * dk..][..dk];
                    vt.copy_from_slice(&v[(row * hkv + h) * dv..][..dv]);
                    if let Some(decay) = &decay {
                        for (di, s_row) in s.chunks_exact_mut(dv).enumerate() {
                            let g = if d.decay_per_dim { decay[(row * hkv + h) * dk + di] } else { decay[row * hkv + h] };
                            let f = g.exp();
                            s_row.iter_mut().for_each(|x| *x *= f);
                        }
                    }
                    if let Some(beta) = &beta {
                        let bt = if d.beta_per_head { beta[row * hkv + h] } else { beta[row] };
                        for (m, x) in vt.iter_mut().enumerate() {
                            let retrieved: f32 = (0..dk).map(|di| s[di * dv + m] * kt[di]).sum();
                            *x = bt * (*x - retrieved);
                        }
                    }
                    for (di, s_row) in s.chunks_exact_mut(dv).enumerate() {
                        s_row.iter_mut().zip(&vt).for_each(|(x, &vm)| *x += kt[di] * vm);
                    }
                    // Every query head of this key/value head's group reads the same state.
                    for qh in h * group..(h + 1) * group {
                        let qt = &q[(row * hq + qh) * dk..][..dk];
                        let o = &mut out[(row * hq + qh) * dv..][..dv];
                        for (m, o) in o.iter_mut().enumerate() {
                            *o = scale * (0..dk).map(|di| qt[di] * s[di * dv + m]).sum::<f32>();
                        }
                    }
                }
            }
        }
        write_f32(&mut outputs[0], OP, |y| {
            y.copy_from_slice(&out);
            Ok(())
        })?;
        write_f32(&mut outputs[1], OP, |y| {
            y.copy_from_slice(&state);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::sync::Arc;

    fn t(shape: &[usize], v: &[f32]) -> Option<Arc<Tensor>> {
        Some(Arc::new(Tensor::from_f32(shape.to_vec(), v.to_vec()).unwrap()))
    }

    #[test]
    fn linear_rule_accumulates_outer_products() {
        // One head, d_k = d_v = 1, scale 1: S_t = sum k v, o_t = q_t S_t.
        let op = LinearAttention { q_heads: 1, kv_heads: 1, scale: 1.0, gating: false, delta: false };
        let (q, k, v) = (t(&[1, 3, 1], &[1., 2., 3.]), t(&[1, 3, 1], &[1., 1., 2.]), t(&[1, 3, 1], &[2., 3., 1.]));
        let out = crate::plan::run_owned(&op, &[q, k, v]).unwrap();
        // S = 2, 5, 7
        assert_eq!(out[0].f32s().unwrap(), &[2., 10., 21.]);
        assert_eq!(out[1].f32s().unwrap(), &[7.]);
    }

    #[test]
    fn gated_delta_decays_then_corrects() {
        let op = LinearAttention { q_heads: 1, kv_heads: 1, scale: 1.0, gating: true, delta: true };
        let (q, k, v) = (t(&[1, 1, 1], &[1.]), t(&[1, 1, 1], &[2.]), t(&[1, 1, 1], &[3.]));
        let (past, decay, beta) = (t(&[1, 1, 1, 1], &[4.]), t(&[1, 1, 1], &[0.0f32.ln_1p()]), t(&[1, 1, 1], &[0.5]));
        let out = crate::plan::run_owned(&op, &[q, k, v, past, decay, beta]).unwrap();
        // S = 4 * e^0 = 4; v = 0.5 * (3 - 4*2) = -2.5; S = 4 + 2 * -2.5 = -1.
        assert_eq!(out[1].f32s().unwrap(), &[-1.]);
        assert_eq!(out[0].f32s().unwrap(), &[-1.]);
    }

    #[test]
    fn missing_decay_for_a_gated_rule_is_an_error() {
        let op = LinearAttention { q_heads: 1, kv_heads: 1, scale: 0.0, gating: true, delta: false };
        let f = Fact::new(DType::F32, vec![1, 2, 4]);
        assert!(op.infer(&[Some(&f), Some(&f), Some(&f)]).unwrap_err().to_string().contains("decay"));
    }
}
