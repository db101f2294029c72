//! RotaryEmbedding (opset 23): rotates pairs of each head's first `rotary_embedding_dim`
//! features by position-dependent angles given as cos/sin caches.
//!
//! Input is `[batch, heads, seq, head_size]`, or `[batch, seq, heads * head_size]` with
//! `num_heads`. Caches are `[max_position, rot/2]` indexed by `position_ids [batch, seq]`,
//! or `[batch, seq, rot/2]` when there are no position ids. Pairs are `(x[i], x[i + rot/2])`
//! or, with `interleaved`, `(x[2i], x[2i + 1])`; features past `rot` are copied.
//! f16 and bf16 run in f32 and are rounded once (docs/adr/0014-f16-compute.md).

use super::float_io::{f32_values, is_half, write_f32};
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("RotaryEmbedding", |ctx: &OpContext| {
        let nonneg = |name: &str, v: i64| -> Result<usize> {
            usize::try_from(v).map_err(|_| crate::Error::InvalidAttr { attr: name.into(), detail: format!("{v} must not be negative") })
        };
        Ok(Box::new(Rotary {
            interleaved: ctx.int("interleaved", 0)? != 0,
            rotary_dim: nonneg("rotary_embedding_dim", ctx.int("rotary_embedding_dim", 0)?)?,
            num_heads: nonneg("num_heads", ctx.int("num_heads", 0)?)?,
        }))
    });
}

const OP: &str = "RotaryEmbedding";

#[derive(Debug)]
struct Rotary {
    interleaved: bool,
    /// 0 means the whole head.
    rotary_dim: usize,
    /// Required for 3-D inputs only.
    num_heads: usize,
}

/// Sizes, and where head h of token (b, s) starts in the input.
struct Layout {
    b: usize,
    s: usize,
    heads: usize,
    head_size: usize,
    rot: usize,
    /// 4-D `[batch, heads, seq, head]` rather than 3-D `[batch, seq, heads * head]`.
    heads_first: bool,
}

impl Layout {
    fn offset(&self, b: usize, s: usize, h: usize) -> usize {
        if self.heads_first {
            ((b * self.heads + h) * self.s + s) * self.head_size
        } else {
            ((b * self.s + s) * self.heads + h) * self.head_size
        }
    }
}

impl Rotary {
    fn layout(&self, x: &[usize], cos: &[usize], sin: &[usize], pos: Option<&[usize]>) -> Result<Layout> {
        let (b, s, heads, head_size, heads_first) = match *x {
            [b, h, s, d] => (b, s, h, d, true),
            [b, s, w] => {
                if self.num_heads == 0 || w % self.num_heads != 0 {
                    bail_shape!(
                        OP,
                        "a 3-D input [batch, seq, hidden] needs num_heads dividing hidden {w}, got num_heads {}",
                        self.num_heads
                    );
                }
                (b, s, self.num_heads, w / self.num_heads, false)
            }
            _ => bail_shape!(OP, "input must be [batch, heads, seq, head_size] or [batch, seq, hidden], got {x:?}"),
        };
        let rot = if self.rotary_dim == 0 { head_size } else { self.rotary_dim };
        if rot > head_size || rot % 2 != 0 {
            bail_shape!(OP, "rotary_embedding_dim {rot} must be even and at most the head size {head_size}");
        }
        if cos != sin {
            bail_shape!(OP, "cos_cache {cos:?} and sin_cache {sin:?} must have one shape");
        }
        let ok = match pos {
            Some(p) => p == [b, s] && cos.len() == 2 && cos[1] == rot / 2,
            None => cos == [b, s, rot / 2],
        };
        if !ok {
            bail_shape!(
                OP,
                "caches must be [max_position, {0}] with position_ids [{b}, {s}], or [{b}, {s}, {0}] without; got caches {cos:?}, position_ids {pos:?}",
                rot / 2
            );
        }
        Ok(Layout { b, s, heads, head_size, rot, heads_first })
    }
}

impl Op for Rotary {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, OP)?;
        let (cos, sin) = (required(inputs, 1, OP)?, required(inputs, 2, OP)?);
        let pos = inputs.get(3).copied().flatten();
        if !(x.dtype == DType::F32 || is_half(x.dtype)) || cos.dtype != x.dtype || sin.dtype != x.dtype {
            bail_shape!(OP, "input and caches must share one of f32, f16, bf16, got {}, {}, {}", x.dtype, cos.dtype, sin.dtype);
        }
        if pos.is_some_and(|p| p.dtype != DType::I64) {
            bail_shape!(OP, "position_ids must be int64");
        }
        self.layout(&x.shape, &cos.shape, &sin.shape, pos.map(|p| p.shape.as_slice()))?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, OP)?;
        let (cos_t, sin_t) = (required(inputs, 1, OP)?, required(inputs, 2, OP)?);
        let pos = inputs.get(3).copied().flatten();
        let l = self.layout(x.shape, cos_t.shape, sin_t.shape, pos.map(|p| p.shape))?;
        let positions = pos.map(|p| p.to_i64_vec()).transpose()?;
        let max_pos = cos_t.shape[0];
        if let Some(bad) = positions.iter().flatten().find(|&&p| p < 0 || p as usize >= max_pos) {
            bail_shape!(OP, "position id {bad} is outside the caches' {max_pos} positions");
        }
        let (xs, cos, sin) = (f32_values(&x, OP)?, f32_values(&cos_t, OP)?, f32_values(&sin_t, OP)?);
        let half = l.rot / 2;
        let interleaved = self.interleaved;
        write_f32(&mut outputs[0], OP, |y| {
            y.copy_from_slice(&xs);
            for b in 0..l.b {
                for s in 0..l.s {
                    let row = match &positions {
                        Some(p) => p[b * l.s + s] as usize,
                        None => b * l.s + s,
                    };
                    let (c, sn) = (&cos[row * half..][..half], &sin[row * half..][..half]);
                    for h in 0..l.heads {
                        let at = l.offset(b, s, h);
                        let (src, dst) = (&xs[at..][..l.rot], &mut y[at..][..l.rot]);
                        for i in 0..half {
                            let (i1, i2) = if interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                            let (x1, x2) = (src[i1], src[i2]);
                            dst[i1] = c[i] * x1 - sn[i] * x2;
                            dst[i2] = sn[i] * x1 + c[i] * x2;
                        }
                    }
                }
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
    fn quarter_turn_swaps_the_halves() {
        // One head of size 4, position 1 has angle pi/2 on both pairs: (a, b, c, d) -> (-c, -d, a, b).
        let op = Rotary { interleaved: false, rotary_dim: 0, num_heads: 0 };
        let x = Tensor::from_f32(vec![1, 1, 1, 4], vec![1., 2., 3., 4.]).unwrap();
        let cos = Tensor::from_f32(vec![2, 2], vec![1., 1., 0., 0.]).unwrap();
        let sin = Tensor::from_f32(vec![2, 2], vec![0., 0., 1., 1.]).unwrap();
        let pos = Tensor::from_i64(vec![1, 1], vec![1]).unwrap();
        let out = crate::plan::run_owned(&op, &[x, cos, sin, pos].map(|t| Some(Arc::new(t)))).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[-3., -4., 1., 2.]);
    }

    #[test]
    fn position_outside_the_cache_is_an_error() {
        let op = Rotary { interleaved: true, rotary_dim: 0, num_heads: 0 };
        let x = Tensor::from_f32(vec![1, 1, 1, 2], vec![1., 2.]).unwrap();
        let cos = Tensor::from_f32(vec![1, 1], vec![1.]).unwrap();
        let pos = Tensor::from_i64(vec![1, 1], vec![5]).unwrap();
        let err = crate::plan::run_owned(&op, &[x, cos.clone(), cos, pos].map(|t| Some(Arc::new(t)))).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }
}
