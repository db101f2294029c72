//! The default-domain `Attention` operator (opsets 23 to 25): scaled dot-product
//! attention with grouped-query heads, a boolean or additive mask, causal and
//! sliding-window masking, a KV cache (`past_key`/`past_value` in, `present_*` out),
//! per-batch valid KV lengths (`nonpad_kv_seqlen`), softcap and the optional
//! `qk_matmul_output`.
//!
//! A reference kernel in f32 (f16 and bf16 inputs are widened, outputs narrowed; statistics
//! are f32 whatever `softmax_precision` says, which only asks for at least that much)
//! following onnx's reference `onnx/reference/ops/op_attention.py`, including its
//! choices where the spec text is loose: modes 0 and 1 of `qk_matmul_output` both
//! give the softcapped scores without the bias, and a row whose bias masks every key
//! gives zeros, not NaN. `com.microsoft.Attention` is a different operator.

use super::broadcast::broadcast_strides;
use super::cast::convert;
use crate::{bail_shape, required, DType, DataRef, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("Attention", |ctx| Ok(Box::new(Attention::parse(ctx)?)));
}

#[derive(Debug)]
struct Attention {
    is_causal: bool,
    q_num_heads: Option<usize>,
    kv_num_heads: Option<usize>,
    qk_mode: i64,
    scale: Option<f32>,
    softcap: f32,
    /// -1: unbounded on that side.
    left_window: i64,
    right_window: i64,
}

impl Attention {
    fn parse(ctx: &OpContext) -> Result<Attention> {
        ctx.ignore("softmax_precision"); // Cairn's softmax is always f32, the widest the spec asks for here
        let heads = |name: &str| -> Result<Option<usize>> {
            match ctx.int_opt(name)? {
                None => Ok(None),
                Some(h) if h > 0 => Ok(Some(h as usize)),
                Some(h) => Err(crate::Error::InvalidAttr { attr: name.into(), detail: format!("must be positive, got {h}") }),
            }
        };
        let qk_mode = ctx.int("qk_matmul_output_mode", 0)?;
        if !(0..=3).contains(&qk_mode) {
            return Err(crate::Error::InvalidAttr { attr: "qk_matmul_output_mode".into(), detail: format!("must be 0..3, got {qk_mode}") });
        }
        Ok(Attention {
            is_causal: ctx.int("is_causal", 0)? != 0,
            q_num_heads: heads("q_num_heads")?,
            kv_num_heads: heads("kv_num_heads")?,
            qk_mode,
            scale: ctx.float_opt("scale")?,
            softcap: ctx.float("softcap", 0.0)?,
            left_window: ctx.int("left_window_size", -1)?.max(-1),
            right_window: ctx.int("right_window_size", -1)?.max(-1),
        })
    }
}

/// The sizes every step needs, from the input shapes.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    q_heads: usize,
    kv_heads: usize,
    q_len: usize,
    kv_len: usize,
    past_len: usize,
    head: usize,
    v_head: usize,
    /// Inputs were [batch, seq, heads * head] rather than [batch, heads, seq, head].
    packed: bool,
}

impl Dims {
    fn total_kv(&self) -> usize {
        self.past_len + self.kv_len
    }
}

fn opt<T: Copy>(inputs: &[Option<T>], i: usize) -> Option<T> {
    inputs.get(i).copied().flatten()
}

impl Attention {
    fn dims(&self, inputs: &[Option<&Fact>]) -> Result<Dims> {
        let op = "Attention";
        let (q, k, v) = (required(inputs, 0, op)?, required(inputs, 1, op)?, required(inputs, 2, op)?);
        if !matches!(q.dtype, DType::F32 | DType::F16 | DType::BF16) || k.dtype != q.dtype || v.dtype != q.dtype {
            bail_shape!(op, "is implemented for f32, f16 and bf16 Q, K, V of one dtype, got {}, {}, {}", q.dtype, k.dtype, v.dtype);
        }
        if q.rank() != k.rank() || q.rank() != v.rank() || !(q.rank() == 3 || q.rank() == 4) {
            bail_shape!(op, "Q, K, V must all be 3-D or all 4-D, got {:?}, {:?}, {:?}", q.shape, k.shape, v.shape);
        }
        let packed = q.rank() == 3;
        let d = if packed {
            let (Some(qh), Some(kh)) = (self.q_num_heads, self.kv_num_heads) else {
                bail_shape!(op, "3-D inputs need the q_num_heads and kv_num_heads attributes");
            };
            if q.shape[2] % qh != 0 || k.shape[2] % kh != 0 || v.shape[2] % kh != 0 {
                bail_shape!(op, "hidden sizes {}, {}, {} do not split into {qh} and {kh} heads", q.shape[2], k.shape[2], v.shape[2]);
            }
            Dims {
                batch: q.shape[0],
                q_heads: qh,
                kv_heads: kh,
                q_len: q.shape[1],
                kv_len: k.shape[1],
                past_len: 0,
                head: q.shape[2] / qh,
                v_head: v.shape[2] / kh,
                packed,
            }
        } else {
            Dims {
                batch: q.shape[0],
                q_heads: q.shape[1],
                kv_heads: k.shape[1],
                q_len: q.shape[2],
                kv_len: k.shape[2],
                past_len: 0,
                head: q.shape[3],
                v_head: v.shape[3],
                packed,
            }
        };
        let (kb, kl, kd) = if packed { (k.shape[0], k.shape[1], k.shape[2] / d.kv_heads) } else { (k.shape[0], k.shape[2], k.shape[3]) };
        let (vb, vl) = if packed { (v.shape[0], v.shape[1]) } else { (v.shape[0], v.shape[2]) };
        if kb != d.batch || vb != d.batch || kd != d.head || vl != kl || (!packed && v.shape[1] != d.kv_heads) {
            bail_shape!(op, "K {:?} and V {:?} do not fit Q {:?}", k.shape, v.shape, q.shape);
        }
        if d.kv_heads == 0 || d.q_heads % d.kv_heads != 0 {
            bail_shape!(op, "{} query heads cannot share {} key/value heads", d.q_heads, d.kv_heads);
        }
        let mut d = d;
        match (opt(inputs, 4), opt(inputs, 5)) {
            (None, None) => {}
            (Some(pk), Some(pv)) => {
                let want_k = [d.batch, d.kv_heads, pk.shape.get(2).copied().unwrap_or(0), d.head];
                let want_v = [d.batch, d.kv_heads, want_k[2], d.v_head];
                if pk.shape != want_k || pv.shape != want_v || pk.dtype != q.dtype || pv.dtype != q.dtype {
                    bail_shape!(op, "past_key {:?} / past_value {:?} must be {:?} / {:?}", pk.shape, pv.shape, want_k, want_v);
                }
                d.past_len = want_k[2];
            }
            _ => bail_shape!(op, "past_key and past_value must be given together"),
        }
        if let Some(m) = opt(inputs, 3) {
            if m.rank() > 4 || m.rank() == 0 || (m.dtype != DType::Bool && m.dtype != q.dtype) {
                bail_shape!(op, "attn_mask must be bool or {} of rank 1..4, got {} {:?}", q.dtype, m.dtype, m.shape);
            }
            let last = *m.shape.last().unwrap_or(&0);
            let mut shape = m.shape.clone();
            *shape.last_mut().expect("rank >= 1") = d.total_kv();
            let full = [d.batch, d.q_heads, d.q_len, d.total_kv()];
            if last > d.total_kv() || super::broadcast::broadcast_shapes(&[&shape, &full], op)? != full {
                bail_shape!(op, "attn_mask {:?} does not broadcast to {:?}", m.shape, full);
            }
        }
        if let Some(n) = opt(inputs, 6) {
            if n.shape != [d.batch] || !matches!(n.dtype, DType::I64 | DType::I32) {
                bail_shape!(op, "nonpad_kv_seqlen must be an integer [{}], got {} {:?}", d.batch, n.dtype, n.shape);
            }
            if d.past_len > 0 {
                bail_shape!(op, "nonpad_kv_seqlen cannot be combined with past_key/past_value");
            }
        }
        Ok(d)
    }

    /// Additive bias for query `i` and key `j` of batch `b`, head `h`: 0 or -inf from the
    /// causal, window and padding rules, plus the mask's value.
    #[allow(clippy::too_many_arguments)]
    fn bias(&self, d: &Dims, mask: Option<&MaskView>, nonpad: Option<&[i64]>, b: usize, h: usize, i: usize, j: usize) -> f32 {
        let mut bias = 0.0f32;
        if let Some(m) = mask {
            bias += m.at(b, h, i, j);
        }
        // The causal frontier: the query's position among the keys.
        let offset = match nonpad {
            Some(n) if d.past_len == 0 => n[b] - d.q_len as i64,
            _ => d.past_len as i64,
        };
        let diff = i as i64 + offset - j as i64;
        if self.is_causal && diff < 0 {
            return f32::NEG_INFINITY;
        }
        if (self.left_window >= 0 && diff > self.left_window) || (self.right_window >= 0 && -diff > self.right_window) {
            return f32::NEG_INFINITY;
        }
        if let Some(n) = nonpad {
            if j as i64 >= n[b] {
                return f32::NEG_INFINITY;
            }
        }
        bias
    }
}

/// The mask broadcast to [batch, q_heads, q_len, mask_len], read as an additive bias;
/// keys past its last dim are masked (onnx pads it with -inf / false).
struct MaskView {
    values: Vec<f32>,
    is_bool: bool,
    strides: Vec<usize>,
    len: usize,
}

impl MaskView {
    fn new(m: &TensorRef, d: &Dims) -> MaskView {
        let len = *m.shape.last().unwrap_or(&0);
        MaskView {
            values: m.to_f32_vec(),
            is_bool: m.dtype() == DType::Bool,
            strides: broadcast_strides(m.shape, &[d.batch, d.q_heads, d.q_len, len]),
            len,
        }
    }
    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> f32 {
        if j >= self.len {
            return f32::NEG_INFINITY;
        }
        let v = self.values[b * self.strides[0] + h * self.strides[1] + i * self.strides[2] + j * self.strides[3]];
        match (self.is_bool, v != 0.0) {
            (true, true) => 0.0,
            (true, false) => f32::NEG_INFINITY,
            (false, _) => v,
        }
    }
}

/// Reads a Q/K/V-like tensor as f32 in [batch, heads, seq, head] order.
fn heads_first(t: &TensorRef, packed: bool, heads: usize) -> Vec<f32> {
    let x = t.to_f32_vec();
    if !packed {
        return x;
    }
    let (b, s, hidden) = (t.shape[0], t.shape[1], t.shape[2]);
    let hd = hidden / heads;
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for si in 0..s {
            for h in 0..heads {
                let src = (bi * s + si) * hidden + h * hd;
                let dst = ((bi * heads + h) * s + si) * hd;
                out[dst..dst + hd].copy_from_slice(&x[src..src + hd]);
            }
        }
    }
    out
}

/// `past ++ new` along the sequence dim of [batch, heads, seq, head] tensors.
fn concat_seq(past: Option<&[f32]>, new: &[f32], d: &Dims, head: usize) -> Vec<f32> {
    let Some(past) = past else { return new.to_vec() };
    let mut out = Vec::with_capacity(past.len() + new.len());
    for bh in 0..d.batch * d.kv_heads {
        out.extend_from_slice(&past[bh * d.past_len * head..(bh + 1) * d.past_len * head]);
        out.extend_from_slice(&new[bh * d.kv_len * head..(bh + 1) * d.kv_len * head]);
    }
    out
}

fn write(out: &mut TensorMut, values: &[f32]) -> Result<()> {
    convert(DataRef::F32(values), &mut out.data)
}

impl Op for Attention {
    fn op_type(&self) -> &str {
        "Attention"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let d = self.dims(inputs)?;
        let dt = required(inputs, 0, "Attention")?.dtype;
        let y = if d.packed { vec![d.batch, d.q_len, d.q_heads * d.v_head] } else { vec![d.batch, d.q_heads, d.q_len, d.v_head] };
        Ok(vec![
            Fact::new(dt, y),
            Fact::new(dt, vec![d.batch, d.kv_heads, d.total_kv(), d.head]),
            Fact::new(dt, vec![d.batch, d.kv_heads, d.total_kv(), d.v_head]),
            Fact::new(dt, vec![d.batch, d.q_heads, d.q_len, d.total_kv()]),
        ])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let facts: Vec<Option<Fact>> = inputs.iter().map(|t| t.map(|t| Fact::new(t.dtype(), t.shape.to_vec()))).collect();
        let d = self.dims(&facts.iter().map(|f| f.as_ref()).collect::<Vec<_>>())?;
        let (q, k, v) = (required(inputs, 0, "Attention")?, required(inputs, 1, "Attention")?, required(inputs, 2, "Attention")?);
        // bf16 keeps 8 bits of mantissa: there the reference's roundings to the input dtype
        // (Q and K each scaled by sqrt(scale), the scores, the biased scores, the softmax
        // steps) move results by more than the comparison tolerance, so they are repeated
        // here. f16 and f32 results agree with one final rounding.
        let bf = q.dtype() == DType::BF16;
        let r = |x: f32| if bf { half::bf16::from_f32(x).to_f32() } else { x };
        let q = heads_first(&q, d.packed, d.q_heads);
        let past_k = opt(inputs, 4).map(|t| t.to_f32_vec());
        let past_v = opt(inputs, 5).map(|t| t.to_f32_vec());
        let keys = concat_seq(past_k.as_deref(), &heads_first(&k, d.packed, d.kv_heads), &d, d.head);
        let values = concat_seq(past_v.as_deref(), &heads_first(&v, d.packed, d.kv_heads), &d, d.v_head);
        let mask = opt(inputs, 3).map(|m| MaskView::new(&m, &d));
        let nonpad = opt(inputs, 6).map(|n| n.to_i64_vec()).transpose()?;
        let scale = self.scale.unwrap_or(1.0 / (d.head as f32).sqrt());
        let t = d.total_kv();
        let group = d.q_heads / d.kv_heads;

        let mut y = vec![0.0f32; d.batch * d.q_heads * d.q_len * d.v_head];
        let mut qk_out = vec![0.0f32; d.batch * d.q_heads * d.q_len * t];
        let mut scores = vec![0.0f32; t];
        let mut biased = vec![0.0f32; t];
        for b in 0..d.batch {
            for h in 0..d.q_heads {
                let kvh = b * d.kv_heads + h / group;
                let kmat = &keys[kvh * t * d.head..(kvh + 1) * t * d.head];
                let vmat = &values[kvh * t * d.v_head..(kvh + 1) * t * d.v_head];
                for i in 0..d.q_len {
                    let row = ((b * d.q_heads + h) * d.q_len + i) * d.head;
                    let qrow = &q[row..row + d.head];
                    let mut row_max_bias = f32::NEG_INFINITY;
                    for j in 0..t {
                        let krow = &kmat[j * d.head..(j + 1) * d.head];
                        let mut s = if bf {
                            let root = r(scale.sqrt());
                            r(qrow.iter().zip(krow).map(|(a, b)| r(a * root) * r(b * root)).sum())
                        } else {
                            qrow.iter().zip(krow).map(|(a, b)| a * b).sum::<f32>() * scale
                        };
                        if self.softcap > 0.0 {
                            s = self.softcap * (s / self.softcap).tanh();
                        }
                        let bias = self.bias(&d, mask.as_ref(), nonpad.as_deref(), b, h, i, j);
                        row_max_bias = row_max_bias.max(bias);
                        scores[j] = s;
                        biased[j] = r(s + bias);
                    }
                    // Softmax; a row whose bias masks every key attends to nothing (zeros).
                    if row_max_bias == f32::NEG_INFINITY {
                        biased.fill(0.0);
                    } else {
                        let max = biased.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let max = if max == f32::NEG_INFINITY { 0.0 } else { max };
                        let mut sum = 0.0;
                        for p in biased.iter_mut() {
                            *p = r(r(*p - max).exp());
                            sum += *p;
                        }
                        if bf {
                            let sum = r(sum);
                            biased.iter_mut().for_each(|p| *p = r(*p / sum));
                        } else {
                            let inv = if sum == 0.0 { 1.0 } else { 1.0 / sum };
                            biased.iter_mut().for_each(|p| *p *= inv);
                        }
                    }
                    let out_row = ((b * d.q_heads + h) * d.q_len + i) * t;
                    let qk_row = &mut qk_out[out_row..out_row + t];
                    match self.qk_mode {
                        0 | 1 => qk_row.copy_from_slice(&scores),
                        2 => {
                            for (j, o) in qk_row.iter_mut().enumerate() {
                                *o = scores[j] + self.bias(&d, mask.as_ref(), nonpad.as_deref(), b, h, i, j);
                            }
                        }
                        _ => qk_row.copy_from_slice(&biased),
                    }
                    let yrow = ((b * d.q_heads + h) * d.q_len + i) * d.v_head;
                    let yrow = &mut y[yrow..yrow + d.v_head];
                    for (j, &p) in biased.iter().enumerate() {
                        if p != 0.0 {
                            yrow.iter_mut().zip(&vmat[j * d.v_head..(j + 1) * d.v_head]).for_each(|(o, &v)| *o += p * v);
                        }
                    }
                }
            }
        }
        if d.packed {
            // [batch, heads, seq, v_head] -> [batch, seq, heads * v_head]
            let mut packed = vec![0.0f32; y.len()];
            for b in 0..d.batch {
                for h in 0..d.q_heads {
                    for i in 0..d.q_len {
                        let src = ((b * d.q_heads + h) * d.q_len + i) * d.v_head;
                        let dst = (b * d.q_len + i) * d.q_heads * d.v_head + h * d.v_head;
                        packed[dst..dst + d.v_head].copy_from_slice(&y[src..src + d.v_head]);
                    }
                }
            }
            y = packed;
        }
        write(&mut outputs[0], &y)?;
        if let Some(o) = outputs.get_mut(1) {
            write(o, &keys)?;
        }
        if let Some(o) = outputs.get_mut(2) {
            write(o, &values)?;
        }
        if let Some(o) = outputs.get_mut(3) {
            write(o, &qk_out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;

    fn plain() -> Attention {
        Attention {
            is_causal: false,
            q_num_heads: None,
            kv_num_heads: None,
            qk_mode: 0,
            scale: None,
            softcap: 0.0,
            left_window: -1,
            right_window: -1,
        }
    }

    #[test]
    fn one_key_returns_its_value_and_causal_masks_the_future() {
        // One head, two queries, two keys; value rows are [1] and [3].
        let q = Tensor::from_f32(vec![1, 1, 2, 1], vec![1., 1.]).unwrap();
        let k = Tensor::from_f32(vec![1, 1, 2, 1], vec![0., 0.]).unwrap();
        let v = Tensor::from_f32(vec![1, 1, 2, 1], vec![1., 3.]).unwrap();
        let mut y = Tensor::zeros(DType::F32, vec![1, 1, 2, 1]).unwrap();
        plain().run(&[Some(q.view()), Some(k.view()), Some(v.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[2., 2.]); // equal scores: the mean of the values
        let causal = Attention { is_causal: true, ..plain() };
        causal.run(&[Some(q.view()), Some(k.view()), Some(v.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[1., 2.]); // the first query sees only the first key
    }

    #[test]
    fn a_fully_masked_row_gives_zeros_and_bad_shapes_are_errors() {
        let q = Tensor::from_f32(vec![1, 1, 1, 2], vec![1., 2.]).unwrap();
        let kv = Tensor::from_f32(vec![1, 1, 1, 2], vec![3., 4.]).unwrap();
        let mask = Tensor::new(vec![1, 1], crate::TensorData::Bool(vec![0])).unwrap();
        let mut y = Tensor::zeros(DType::F32, vec![1, 1, 1, 2]).unwrap();
        plain().run(&[Some(q.view()), Some(kv.view()), Some(kv.view()), Some(mask.view())], &mut [y.view_mut()]).unwrap();
        assert_eq!(y.f32s().unwrap(), &[0., 0.]);
        let bad = Tensor::from_f32(vec![1, 1, 1, 3], vec![0.; 3]).unwrap();
        let f = |t: &Tensor| Fact::new(t.dtype(), t.shape().to_vec());
        assert!(plain().infer(&[Some(&f(&q)), Some(&f(&bad)), Some(&f(&kv))]).is_err());
    }
}
