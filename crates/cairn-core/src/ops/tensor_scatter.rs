//! TensorScatter (opset 24): writes an update into a fixed-size KV cache along its sequence
//! axis, at a per-batch write index (`linear`), or wrapping around (`circular`).

use crate::{bail_shape, normalize_axis, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("TensorScatter", |ctx: &OpContext| {
        let circular = match ctx.string("mode", "linear")?.as_str() {
            "linear" => false,
            "circular" => true,
            other => return Err(ctx.unsupported("mode", format!("'{other}' is not linear or circular"))),
        };
        Ok(Box::new(TensorScatter { axis: ctx.int("axis", -2)?, circular }))
    });
}

const OP: &str = "TensorScatter";

#[derive(Debug)]
struct TensorScatter {
    axis: i64,
    circular: bool,
}

impl TensorScatter {
    /// The sequence axis (never the batch axis 0, which indexes `write_indices`).
    fn check(&self, cache: &[usize], update: &[usize], indices: Option<&[usize]>) -> Result<usize> {
        let axis = normalize_axis(self.axis, cache.len(), OP)?;
        if axis == 0 {
            bail_shape!(OP, "axis must not be the batch axis 0");
        }
        let fits =
            update.len() == cache.len() && (0..cache.len()).all(|i| if i == axis { update[i] <= cache[i] } else { update[i] == cache[i] });
        if !fits {
            bail_shape!(OP, "update {update:?} must match past_cache {cache:?} except along axis {axis}, where it may be shorter");
        }
        if let Some(ix) = indices {
            if ix != [cache[0]] {
                bail_shape!(OP, "write_indices must be [{}] (one per batch), got {ix:?}", cache[0]);
            }
        }
        Ok(axis)
    }
}

impl Op for TensorScatter {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (cache, update) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?);
        let indices = inputs.get(2).copied().flatten();
        if update.dtype != cache.dtype {
            bail_shape!(OP, "update has dtype {}, past_cache {}", update.dtype, cache.dtype);
        }
        if indices.is_some_and(|i| i.dtype != DType::I64) {
            bail_shape!(OP, "write_indices must be int64");
        }
        self.check(&cache.shape, &update.shape, indices.map(|i| i.shape.as_slice()))?;
        Ok(vec![Fact::new(cache.dtype, cache.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (cache, update) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?);
        let indices = inputs.get(2).copied().flatten();
        let axis = self.check(cache.shape, update.shape, indices.map(|i| i.shape))?;
        let starts = match indices {
            Some(i) => i.to_i64_vec()?,
            None => vec![0; cache.shape[0]],
        };
        let (max_len, len) = (cache.shape[axis], update.shape[axis]);
        let inner: usize = cache.shape[axis + 1..].iter().product();
        let prefixes: usize = cache.shape[..axis].iter().product();
        let per_batch = prefixes / cache.shape[0].max(1);
        // Where each (prefix, step) row goes, checked before anything is written.
        let mut rows = Vec::with_capacity(prefixes * len);
        for p in 0..prefixes {
            let start = starts[p / per_batch.max(1)];
            for j in 0..len {
                let at = start + j as i64;
                let at = if self.circular && max_len > 0 { at.rem_euclid(max_len as i64) } else { at };
                if at < 0 || at as usize >= max_len {
                    bail_shape!(OP, "write index {start} + {len} steps runs past the cache's {max_len} positions (mode linear)");
                }
                rows.push(((p * len + j) * inner, (p * max_len + at as usize) * inner));
            }
        }
        let out = &mut outputs[0];
        out.data.copy_from(cache.data)?;
        crate::with_same_dtype!(update.data, &mut out.data, |src, dst| {
            for &(from, to) in &rows {
                dst[to..to + inner].copy_from_slice(&src[from..from + inner]);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::sync::Arc;

    #[test]
    fn circular_write_wraps_around() {
        let op = TensorScatter { axis: 1, circular: true };
        let cache = Tensor::from_f32(vec![1, 3], vec![0., 0., 0.]).unwrap();
        let update = Tensor::from_f32(vec![1, 2], vec![7., 8.]).unwrap();
        let at = Tensor::from_i64(vec![1], vec![2]).unwrap();
        let out = crate::plan::run_owned(&op, &[cache, update, at].map(|t| Some(Arc::new(t)))).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[8., 0., 7.]);
    }

    #[test]
    fn linear_write_past_the_end_is_an_error() {
        let op = TensorScatter { axis: 1, circular: false };
        let cache = Tensor::from_f32(vec![1, 3], vec![0., 0., 0.]).unwrap();
        let update = Tensor::from_f32(vec![1, 2], vec![7., 8.]).unwrap();
        let at = Tensor::from_i64(vec![1], vec![2]).unwrap();
        assert!(crate::plan::run_owned(&op, &[cache, update, at].map(|t| Some(Arc::new(t)))).is_err());
    }
}
