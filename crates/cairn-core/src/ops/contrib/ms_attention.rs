//! Attention (input projection, multi-head scaled dot-product attention) and
//! MultiHeadAttention (already-projected query, key and value).
//!
//! Masking follows onnxruntime's CPU provider: a masked score gets `mask_filter_value`
//! added (not -inf), so a fully masked row still averages its values.

use super::MS_DOMAIN;
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::{sgemm, Transpose};

pub fn register(r: &mut Registry) {
    r.register_in(MS_DOMAIN, "Attention", |ctx| {
        let params = Params::read(ctx)?;
        if ctx.int("do_rotary", 0)? != 0 {
            return Err(ctx.unsupported("do_rotary", "rotary embedding inside Attention is not implemented"));
        }
        if ctx.int("past_present_share_buffer", 0)? != 0 {
            return Err(ctx.unsupported("past_present_share_buffer", "past/present key-value caches are not implemented"));
        }
        if ctx.n_outputs > 1 {
            return Err(ctx.unsupported("present", "the present key-value output is not implemented"));
        }
        let qkv_hidden = ctx.ints_opt("qkv_hidden_sizes")?;
        Ok(Box::new(Attention { params, qkv_hidden }))
    });
    r.register_in(MS_DOMAIN, "MultiHeadAttention", |ctx| {
        let params = Params::read(ctx)?;
        if ctx.n_outputs > 1 {
            return Err(ctx.unsupported("present_key", "the present key/value outputs are not implemented"));
        }
        Ok(Box::new(MultiHeadAttention { params }))
    });
}

#[derive(Debug, Clone, Copy)]
struct Params {
    heads: usize,
    /// 0 means 1 / sqrt(head size).
    scale: f32,
    causal: bool,
    mask_filter_value: f32,
}

impl Params {
    fn read(ctx: &OpContext) -> Result<Params> {
        let heads = ctx.int_req("num_heads")?;
        if heads < 1 {
            return Err(crate::Error::InvalidAttr { attr: "num_heads".into(), detail: format!("{heads} must be at least 1") });
        }
        Ok(Params {
            heads: heads as usize,
            scale: ctx.float("scale", 0.0)?,
            causal: ctx.int("unidirectional", 0)? != 0,
            mask_filter_value: ctx.float("mask_filter_value", -10000.0)?,
        })
    }
}

/// Which key positions each (batch, query) row may see.
enum KeyMask {
    None,
    /// [B]: keys at or after this length are padding.
    Lengths(Vec<i64>),
    /// [B, L] raw 0/1 mask, or [B, S, L] per query.
    Raw {
        mask: Vec<i64>,
        per_query: bool,
    },
}

impl KeyMask {
    fn read(t: Option<TensorRef>, b: usize, s: usize, l: usize, op: &str) -> Result<KeyMask> {
        let Some(t) = t else { return Ok(KeyMask::None) };
        let v = t.to_i64_vec()?;
        Ok(match t.shape {
            [n] if *n == b => KeyMask::Lengths(v),
            [bb, ll] if *bb == b && *ll == l => KeyMask::Raw { mask: v, per_query: false },
            [bb, ss, ll] if *bb == b && *ss == s && *ll == l => KeyMask::Raw { mask: v, per_query: true },
            other => {
                bail_shape!(op, "mask {other:?} is not [batch], [batch, keys] or [batch, queries, keys] (batch {b}, queries {s}, keys {l})")
            }
        })
    }

    fn masked(&self, b: usize, i: usize, j: usize, s: usize, l: usize) -> bool {
        match self {
            KeyMask::None => false,
            KeyMask::Lengths(len) => (j as i64) >= len[b],
            KeyMask::Raw { mask, per_query: false } => mask[b * l + j] == 0,
            KeyMask::Raw { mask, per_query: true } => mask[(b * s + i) * l + j] == 0,
        }
    }
}

/// Row-major [rows, cols] views of projected q, k, v with their row strides (ld) and the
/// column where head 0 starts.
struct Heads<'a> {
    data: &'a [f32],
    ld: usize,
    offset: usize,
    rows: usize,
}

/// out[b, i, n*hv..] = softmax(scale * q_n k_n^T + bias + mask) v_n for every batch and head.
#[allow(clippy::too_many_arguments)]
fn attend(
    p: &Params,
    batch: usize,
    q: &Heads,
    k: &Heads,
    v: &Heads,
    head: usize,
    head_v: usize,
    mask: &KeyMask,
    attention_bias: Option<(&[f32], &[usize])>,
    out: &mut [f32],
) {
    let (s, l, n) = (q.rows, k.rows, p.heads);
    let scale = if p.scale == 0.0 { 1.0 / (head as f32).sqrt() } else { p.scale };
    let mut scores = vec![0.0f32; s * l];
    for b in 0..batch {
        for h in 0..n {
            let qa = &q.data[b * s * q.ld + q.offset + h * head..];
            let kb = &k.data[b * l * k.ld + k.offset + h * head..];
            sgemm(s, l, head, scale, qa, q.ld, Transpose::No, kb, k.ld, Transpose::Yes, 0.0, &mut scores, l);
            for i in 0..s {
                let row = &mut scores[i * l..(i + 1) * l];
                for (j, x) in row.iter_mut().enumerate() {
                    if let Some((bias, shape)) = attention_bias {
                        // [B or 1, N or 1, S, L]
                        let bb = if shape[0] == 1 { 0 } else { b };
                        let hh = if shape[1] == 1 { 0 } else { h };
                        *x += bias[((bb * shape[1] + hh) * s + i) * l + j];
                    }
                    if mask.masked(b, i, j, s, l) || (p.causal && j > i + l.saturating_sub(s)) {
                        *x += p.mask_filter_value;
                    }
                }
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut total = 0.0f32;
                row.iter_mut().for_each(|x| {
                    *x = (*x - max).exp();
                    total += *x;
                });
                row.iter_mut().for_each(|x| *x /= total);
            }
            let vb = &v.data[b * l * v.ld + v.offset + h * head_v..];
            let ld_out = n * head_v;
            let o = &mut out[b * s * ld_out + h * head_v..];
            sgemm(s, head_v, l, 1.0, &scores, l, Transpose::No, vb, v.ld, Transpose::No, 0.0, o, ld_out);
        }
    }
}

/// attention_bias [B or 1, N or 1, S, L], checked.
fn attention_bias<'a>(
    t: Option<TensorRef<'a>>,
    b: usize,
    n: usize,
    s: usize,
    l: usize,
    op: &str,
) -> Result<Option<(&'a [f32], &'a [usize])>> {
    let Some(t) = t else { return Ok(None) };
    match t.shape {
        [bb, nn, ss, ll] if (*bb == b || *bb == 1) && (*nn == n || *nn == 1) && *ss == s && *ll == l => Ok(Some((t.f32s()?, t.shape))),
        other => bail_shape!(op, "attention_bias {other:?} must be [batch or 1, heads or 1, {s}, {l}]"),
    }
}

#[derive(Debug)]
struct Attention {
    params: Params,
    qkv_hidden: Option<Vec<i64>>,
}

impl Attention {
    /// (q, k, v) hidden sizes from `qkv_hidden_sizes` or an even split of the weights.
    fn hidden_sizes(&self, total: usize) -> Result<(usize, usize, usize)> {
        let sizes = match &self.qkv_hidden {
            Some(v) if v.len() == 3 && v.iter().all(|&x| x > 0) && v.iter().sum::<i64>() as usize == total => {
                (v[0] as usize, v[1] as usize, v[2] as usize)
            }
            Some(v) => bail_shape!("Attention", "qkv_hidden_sizes {v:?} must be 3 positive sizes adding up to {total}"),
            None if total.is_multiple_of(3) => (total / 3, total / 3, total / 3),
            None => bail_shape!("Attention", "weights have {total} columns, not 3 equal parts"),
        };
        let n = self.params.heads;
        if sizes.0 != sizes.1 || !sizes.0.is_multiple_of(n) || !sizes.2.is_multiple_of(n) {
            bail_shape!("Attention", "hidden sizes {sizes:?} must split into {n} heads, with q and k equal");
        }
        Ok(sizes)
    }
}

impl Op for Attention {
    fn op_type(&self) -> &str {
        "Attention"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Attention")?;
        let w = required(inputs, 1, "Attention")?;
        if x.rank() != 3 || w.rank() != 2 || w.shape[0] != x.shape[2] || x.dtype != DType::F32 {
            bail_shape!(
                "Attention",
                "input must be float32 [batch, seq, hidden] and weights [hidden, q+k+v], got {:?} and {:?}",
                x.shape,
                w.shape
            );
        }
        if inputs.get(4).copied().flatten().is_some() {
            bail_shape!("Attention", "the past key-value input is not implemented");
        }
        let (_, _, hv) = self.hidden_sizes(w.shape[1])?;
        Ok(vec![Fact::new(DType::F32, vec![x.shape[0], x.shape[1], hv])])
    }
    fn macs(&self, inputs: &[Option<&Fact>], _outputs: &[Fact]) -> u64 {
        let (Some(Some(x)), Some(Some(w))) = (inputs.first(), inputs.get(1)) else { return 0 };
        let (b, s) = (x.shape[0] as u64, x.shape[1] as u64);
        b * s * (w.shape[0] * w.shape[1]) as u64 + 2 * b * s * s * (w.shape[1] / 3) as u64
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Attention")?;
        let w = required(inputs, 1, "Attention")?;
        let (b, s, hidden) = (x.shape[0], x.shape[1], x.shape[2]);
        let total = w.shape[1];
        let (hq, hk, hv) = self.hidden_sizes(total)?;
        // One GEMM projects all of q, k and v: [B*S, hidden] x [hidden, q+k+v] (+ bias).
        let mut qkv = vec![0.0f32; b * s * total];
        if let Some(bias) = inputs.get(2).copied().flatten() {
            let bias = super::last_axis_vector(bias, total, "Attention", "bias")?;
            qkv.chunks_mut(total).for_each(|row| row.copy_from_slice(bias));
        }
        let beta = if inputs.get(2).copied().flatten().is_some() { 1.0 } else { 0.0 };
        sgemm(b * s, total, hidden, 1.0, x.f32s()?, hidden, Transpose::No, w.f32s()?, total, Transpose::No, beta, &mut qkv, total);
        let mask = KeyMask::read(inputs.get(3).copied().flatten(), b, s, s, "Attention")?;
        let bias = attention_bias(inputs.get(5).copied().flatten(), b, self.params.heads, s, s, "Attention")?;
        let n = self.params.heads;
        let q = Heads { data: &qkv, ld: total, offset: 0, rows: s };
        let k = Heads { data: &qkv, ld: total, offset: hq, rows: s };
        let v = Heads { data: &qkv, ld: total, offset: hq + hk, rows: s };
        attend(&self.params, b, &q, &k, &v, hq / n, hv / n, &mask, bias, outputs[0].f32s_mut()?);
        Ok(())
    }
}

/// Inputs: query [B,S,D], key [B,L,D], value [B,L,Dv], bias [D+D+Dv], key_padding_mask,
/// attention_bias. Packed or 4-D key/value layouts and past key/value are refused.
#[derive(Debug)]
struct MultiHeadAttention {
    params: Params,
}

impl Op for MultiHeadAttention {
    fn op_type(&self) -> &str {
        "MultiHeadAttention"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let q = required(inputs, 0, "MultiHeadAttention")?;
        let (Some(Some(k)), Some(Some(v))) = (inputs.get(1), inputs.get(2)) else {
            bail_shape!("MultiHeadAttention", "packed query/key/value (no separate key and value) is not implemented");
        };
        let n = self.params.heads;
        let ok = q.rank() == 3
            && k.rank() == 3
            && v.rank() == 3
            && k.shape[0] == q.shape[0]
            && v.shape[0] == q.shape[0]
            && k.shape[1] == v.shape[1]
            && k.shape[2] == q.shape[2]
            && q.shape[2].is_multiple_of(n)
            && v.shape[2].is_multiple_of(n);
        if !ok || q.dtype != DType::F32 {
            bail_shape!(
                "MultiHeadAttention",
                "query {:?}, key {:?}, value {:?} must be float32 [batch, seq, heads*size] with matching sizes",
                q.shape,
                k.shape,
                v.shape
            );
        }
        if inputs.len() > 6 && inputs[6..].iter().any(Option::is_some) {
            bail_shape!("MultiHeadAttention", "past key/value inputs are not implemented");
        }
        Ok(vec![Fact::new(DType::F32, vec![q.shape[0], q.shape[1], v.shape[2]])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = "MultiHeadAttention";
        let (q, k, v) = (required(inputs, 0, op)?, required(inputs, 1, op)?, required(inputs, 2, op)?);
        let (b, s, d) = (q.shape[0], q.shape[1], q.shape[2]);
        let (l, dv) = (k.shape[1], v.shape[2]);
        let with_bias = |t: TensorRef, from: usize, width: usize| -> Result<Vec<f32>> {
            let mut data = t.f32s()?.to_vec();
            if let Some(bias) = inputs.get(3).copied().flatten() {
                let bias = super::last_axis_vector(bias, d + d + dv, op, "bias")?;
                data.chunks_mut(width).for_each(|row| row.iter_mut().zip(&bias[from..from + width]).for_each(|(x, b)| *x += b));
            }
            Ok(data)
        };
        let (qd, kd, vd) = (with_bias(q, 0, d)?, with_bias(k, d, d)?, with_bias(v, 2 * d, dv)?);
        let mask = KeyMask::read(inputs.get(4).copied().flatten(), b, s, l, op)?;
        let bias = attention_bias(inputs.get(5).copied().flatten(), b, self.params.heads, s, l, op)?;
        let n = self.params.heads;
        let qh = Heads { data: &qd, ld: d, offset: 0, rows: s };
        let kh = Heads { data: &kd, ld: d, offset: 0, rows: l };
        let vh = Heads { data: &vd, ld: dv, offset: 0, rows: l };
        attend(&self.params, b, &qh, &kh, &vh, d / n, dv / n, &mask, bias, outputs[0].f32s_mut()?);
        Ok(())
    }
}
