//! Normalizations: BatchNormalization (inference), LayerNormalization,
//! InstanceNormalization, LRN.

use crate::{bail_shape, normalize_axis, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("BatchNormalization", |ctx: &OpContext| {
        ctx.ignore("momentum");
        if ctx.int("training_mode", 0)? != 0 {
            return Err(ctx.unsupported("training_mode", "training mode is not supported"));
        }
        if ctx.int("spatial", 1)? != 1 {
            return Err(ctx.unsupported("spatial", "spatial=0 is not supported"));
        }
        ctx.ignore("is_test");
        ctx.ignore("consumed_inputs");
        if ctx.n_outputs > 1 {
            return Err(ctx.unsupported("outputs", "running mean/var outputs exist only in training mode"));
        }
        Ok(Box::new(BatchNorm { epsilon: ctx.float("epsilon", 1e-5)? }))
    });
    r.register("InstanceNormalization", |ctx| Ok(Box::new(InstanceNorm { epsilon: ctx.float("epsilon", 1e-5)? })));
    r.register("LayerNormalization", |ctx| {
        if ctx.int("stash_type", 1)? != 1 {
            return Err(ctx.unsupported("stash_type", "only float32 statistics are supported"));
        }
        Ok(Box::new(LayerNorm { axis: ctx.int("axis", -1)?, epsilon: ctx.float("epsilon", 1e-5)? }))
    });
    r.register("LRN", |ctx| {
        let size = ctx.int_req("size")?;
        if size < 1 {
            return Err(crate::Error::InvalidAttr { attr: "size".into(), detail: format!("must be positive, got {size}") });
        }
        Ok(Box::new(Lrn {
            size: size as usize,
            alpha: ctx.float("alpha", 1e-4)?,
            beta: ctx.float("beta", 0.75)?,
            bias: ctx.float("bias", 1.0)?,
        }))
    });
}

fn same_as_input(op: &str, inputs: &[Option<&Fact>], min_rank: usize) -> Result<Fact> {
    let x = required(inputs, 0, op)?;
    if x.dtype != DType::F32 || x.rank() < min_rank {
        bail_shape!(op, "needs an f32 input of rank >= {min_rank}, got {} {:?}", x.dtype, x.shape);
    }
    Ok(Fact::new(DType::F32, x.shape.clone()))
}

/// Checks that input `i` is a vector of `n` f32 values.
fn channel_vector<'a>(inputs: &[Option<TensorRef<'a>>], i: usize, n: usize, op: &str) -> Result<&'a [f32]> {
    let t = required(inputs, i, op)?;
    let v = t.f32s()?;
    if v.len() != n {
        bail_shape!(op, "input {i} must have {n} values, got shape {:?}", t.shape);
    }
    Ok(v)
}

#[derive(Debug)]
struct BatchNorm {
    epsilon: f32,
}

impl Op for BatchNorm {
    fn op_type(&self) -> &str {
        "BatchNormalization"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        Ok(vec![same_as_input("BatchNormalization", inputs, 2)?])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let (n, c) = (x.shape[0], x.shape[1]);
        let plane: usize = x.shape[2..].iter().product();
        let scale = channel_vector(inputs, 1, c, self.op_type())?;
        let bias = channel_vector(inputs, 2, c, self.op_type())?;
        let mean = channel_vector(inputs, 3, c, self.op_type())?;
        let var = channel_vector(inputs, 4, c, self.op_type())?;
        let xs = x.f32s()?;
        let y = outputs[0].f32s_mut()?;
        for b in 0..n {
            for ch in 0..c {
                let (k, off) = self.affine(scale[ch], bias[ch], mean[ch], var[ch]);
                let base = (b * c + ch) * plane;
                for (o, &v) in y[base..base + plane].iter_mut().zip(&xs[base..base + plane]) {
                    *o = v * k + off;
                }
            }
        }
        Ok(())
    }
    fn in_place_input(&self) -> Option<usize> {
        Some(0)
    }
    fn run_in_place(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let shape = outputs[0].shape;
        let (n, c) = (shape[0], shape[1]);
        let plane: usize = shape[2..].iter().product();
        let scale = channel_vector(inputs, 1, c, self.op_type())?;
        let bias = channel_vector(inputs, 2, c, self.op_type())?;
        let mean = channel_vector(inputs, 3, c, self.op_type())?;
        let var = channel_vector(inputs, 4, c, self.op_type())?;
        let y = outputs[0].f32s_mut()?;
        for b in 0..n {
            for ch in 0..c {
                let (k, off) = self.affine(scale[ch], bias[ch], mean[ch], var[ch]);
                let base = (b * c + ch) * plane;
                y[base..base + plane].iter_mut().for_each(|v| *v = *v * k + off);
            }
        }
        Ok(())
    }
}

impl BatchNorm {
    /// The per-channel `y = x * k + off` that inference-mode BatchNormalization is.
    fn affine(&self, scale: f32, bias: f32, mean: f32, var: f32) -> (f32, f32) {
        let k = scale / (var + self.epsilon).sqrt();
        (k, bias - mean * k)
    }
}

#[derive(Debug)]
struct InstanceNorm {
    epsilon: f32,
}

impl Op for InstanceNorm {
    fn op_type(&self) -> &str {
        "InstanceNormalization"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        Ok(vec![same_as_input("InstanceNormalization", inputs, 3)?])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let (n, c) = (x.shape[0], x.shape[1]);
        let plane: usize = x.shape[2..].iter().product();
        let scale = channel_vector(inputs, 1, c, self.op_type())?;
        let bias = channel_vector(inputs, 2, c, self.op_type())?;
        let xs = x.f32s()?;
        let y = outputs[0].f32s_mut()?;
        for b in 0..n {
            for ch in 0..c {
                let base = (b * c + ch) * plane;
                normalize_run(&xs[base..base + plane], &mut y[base..base + plane], self.epsilon, |_| scale[ch], |_| bias[ch]);
            }
        }
        Ok(())
    }
}

/// y = (x - mean) / sqrt(var + eps) * scale(i) + bias(i) over one run; returns (mean, inv_std).
fn normalize_run(x: &[f32], y: &mut [f32], eps: f32, scale: impl Fn(usize) -> f32, bias: impl Fn(usize) -> f32) -> (f32, f32) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps as f64).sqrt();
    for (i, (o, &v)) in y.iter_mut().zip(x).enumerate() {
        *o = ((v as f64 - mean) * inv) as f32 * scale(i) + bias(i);
    }
    (mean as f32, inv as f32)
}

#[derive(Debug)]
struct LayerNorm {
    axis: i64,
    epsilon: f32,
}

impl Op for LayerNorm {
    fn op_type(&self) -> &str {
        "LayerNormalization"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let y = same_as_input("LayerNormalization", inputs, 1)?;
        let axis = normalize_axis(self.axis, y.rank(), self.op_type())?;
        let mut stat = y.shape.clone();
        stat[axis..].iter_mut().for_each(|d| *d = 1);
        Ok(vec![y, Fact::new(DType::F32, stat.clone()), Fact::new(DType::F32, stat)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let axis = normalize_axis(self.axis, x.rank(), self.op_type())?;
        let inner: usize = x.shape[axis..].iter().product();
        let outer: usize = x.shape[..axis].iter().product();
        // Scale and bias broadcast over the normalized block; expand them to its size once.
        let expand = |i: usize| -> Result<Option<Vec<f32>>> {
            let Some(t) = inputs.get(i).copied().flatten() else { return Ok(None) };
            let block = &x.shape[axis..];
            let mut out = vec![0.0f32; inner];
            let strides = super::broadcast::broadcast_strides(t.shape, block);
            if t.shape.len() > block.len() {
                bail_shape!("LayerNormalization", "scale/bias {:?} must broadcast to {:?}", t.shape, block);
            }
            let v = t.f32s()?;
            super::broadcast::for_each_offset(block, [&strides], |j, [s]| out[j] = v[s]);
            Ok(Some(out))
        };
        let scale = expand(1)?.ok_or_else(|| crate::Error::shape("LayerNormalization", "Scale is required"))?;
        let bias = expand(2)?;
        let xs = x.f32s()?;
        let mut stats = vec![(0.0f32, 0.0f32); outer];
        {
            let y = outputs[0].f32s_mut()?;
            for (o, st) in stats.iter_mut().enumerate() {
                let r = o * inner..(o + 1) * inner;
                *st = normalize_run(&xs[r.clone()], &mut y[r], self.epsilon, |i| scale[i], |i| bias.as_ref().map_or(0.0, |b| b[i]));
            }
        }
        if let Some(mean) = outputs.get_mut(1) {
            mean.f32s_mut()?.iter_mut().zip(&stats).for_each(|(m, s)| *m = s.0);
        }
        if let Some(inv) = outputs.get_mut(2) {
            inv.f32s_mut()?.iter_mut().zip(&stats).for_each(|(m, s)| *m = s.1);
        }
        Ok(())
    }
}

/// Local response normalization across channels (AlexNet, section 3.3).
#[derive(Debug)]
struct Lrn {
    size: usize,
    alpha: f32,
    beta: f32,
    bias: f32,
}

impl Op for Lrn {
    fn op_type(&self) -> &str {
        "LRN"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        Ok(vec![same_as_input("LRN", inputs, 3)?])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "LRN")?;
        let (n, c) = (x.shape[0], x.shape[1]);
        let plane: usize = x.shape[2..].iter().product();
        let xs = x.f32s()?;
        let y = outputs[0].f32s_mut()?;
        let lo = (self.size - 1) / 2;
        let hi = self.size - 1 - lo; // ceil((size-1)/2)
        let mut sq = vec![0.0f32; plane];
        for b in 0..n {
            for ch in 0..c {
                sq.fill(0.0);
                for k in ch.saturating_sub(lo)..=(ch + hi).min(c - 1) {
                    let src = &xs[(b * c + k) * plane..][..plane];
                    sq.iter_mut().zip(src).for_each(|(s, &v)| *s += v * v);
                }
                let base = (b * c + ch) * plane;
                for i in 0..plane {
                    y[base + i] = xs[base + i] / (self.bias + self.alpha / self.size as f32 * sq[i]).powf(self.beta);
                }
            }
        }
        Ok(())
    }
}
