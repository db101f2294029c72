//! Normalizations: BatchNormalization (inference), LayerNormalization,
//! InstanceNormalization, LRN.

use crate::{bail_shape, normalize_axis, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("BatchNormalization", |ctx: &OpContext| {
        if ctx.int("spatial", 1)? != 1 {
            return Err(ctx.unsupported("spatial", "spatial=0 is not supported"));
        }
        ctx.ignore("is_test");
        ctx.ignore("consumed_inputs");
        // Opset 14+: training_mode = 1 normalizes with the batch's statistics and also
        // outputs the updated running mean and variance. Deterministic, so Cairn runs it.
        if ctx.int("training_mode", 0)? != 0 {
            if ctx.n_outputs > 3 {
                return Err(ctx.unsupported("outputs", format!("training mode has at most 3 outputs, the node declares {}", ctx.n_outputs)));
            }
            let momentum = ctx.float("momentum", 0.9)?;
            return Ok(Box::new(BatchNormTraining { epsilon: ctx.float("epsilon", 1e-5)?, momentum }));
        }
        ctx.ignore("momentum");
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

/// BatchNormalization with `training_mode = 1` (opset 14+), as the spec defines it:
/// `Y` normalized with the per-channel mean and (population) variance of this batch,
/// `running_mean = mean * momentum + batch_mean * (1 - momentum)`, and the same for the
/// variance. Statistics accumulate in f64 so a large batch keeps f32 precision.
#[derive(Debug)]
struct BatchNormTraining {
    epsilon: f32,
    momentum: f32,
}

impl Op for BatchNormTraining {
    fn op_type(&self) -> &str {
        "BatchNormalization"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let y = same_as_input("BatchNormalization", inputs, 2)?;
        let c = y.shape[1];
        Ok(vec![y, Fact::new(DType::F32, vec![c]), Fact::new(DType::F32, vec![c])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let (n, c) = (x.shape[0], x.shape[1]);
        let plane: usize = x.shape[2..].iter().product();
        let scale = channel_vector(inputs, 1, c, self.op_type())?;
        let bias = channel_vector(inputs, 2, c, self.op_type())?;
        let running_mean = channel_vector(inputs, 3, c, self.op_type())?;
        let running_var = channel_vector(inputs, 4, c, self.op_type())?;
        let xs = x.f32s()?;
        let count = (n * plane) as f64;
        if count == 0.0 {
            bail_shape!(self.op_type(), "training mode needs at least one element per channel, got shape {:?}", x.shape);
        }
        let channel = |ch: usize| (0..n).flat_map(move |b| xs[(b * c + ch) * plane..(b * c + ch + 1) * plane].iter().map(|&v| v as f64));
        let mut stats = Vec::with_capacity(c);
        for ch in 0..c {
            let mean = channel(ch).sum::<f64>() / count;
            let var = channel(ch).map(|v| (v - mean) * (v - mean)).sum::<f64>() / count;
            stats.push((mean, var));
        }
        let y = outputs[0].f32s_mut()?;
        for b in 0..n {
            for (ch, &(mean, var)) in stats.iter().enumerate() {
                let k = scale[ch] as f64 / (var + self.epsilon as f64).sqrt();
                let base = (b * c + ch) * plane;
                for (o, &v) in y[base..base + plane].iter_mut().zip(&xs[base..base + plane]) {
                    *o = ((v as f64 - mean) * k + bias[ch] as f64) as f32;
                }
            }
        }
        let m = self.momentum as f64;
        let update = |old: &[f32], batch: &dyn Fn(usize) -> f64, out: &mut TensorMut| -> Result<()> {
            for (ch, o) in out.f32s_mut()?.iter_mut().enumerate() {
                *o = (old[ch] as f64 * m + batch(ch) * (1.0 - m)) as f32;
            }
            Ok(())
        };
        if let Some(out) = outputs.get_mut(1) {
            update(running_mean, &|ch| stats[ch].0, out)?;
        }
        if let Some(out) = outputs.get_mut(2) {
            update(running_var, &|ch| stats[ch].1, out)?;
        }
        Ok(())
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
                normalize_run(&xs[base..base + plane], &mut y[base..base + plane], self.epsilon, (scale[ch], bias[ch]));
            }
        }
        Ok(())
    }
}

/// y = (x - mean) / sqrt(var + eps) * scale + bias over one run (InstanceNormalization's
/// channel plane, one scale and bias), in f64; returns (mean, inv_std). LayerNormalization's
/// per-element affine runs in `cairn_kernels::norm`.
fn normalize_run(x: &[f32], y: &mut [f32], eps: f32, (s, b): (f32, f32)) -> (f32, f32) {
    let n = x.len().max(1) as f64;
    let mean = sum_f64(x, |v| v) / n;
    let var = sum_f64(x, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps as f64).sqrt();
    y.iter_mut().zip(x).for_each(|(o, &v)| *o = ((v as f64 - mean) * inv) as f32 * s + b);
    (mean as f32, inv as f32)
}

/// The sum of `f(x)` in f64, kept in four partial sums: a single running f64 sum cannot
/// be vectorized (its order is fixed) and waited on each add's latency, which made
/// LayerNormalization 6% of a transformer encoder natively.
#[inline(always)]
fn sum_f64(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 4];
    let chunks = x.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v as f64);
        }
    }
    tail.iter().map(|&v| f(v as f64)).sum::<f64>() + (acc[0] + acc[1]) + (acc[2] + acc[3])
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
        let eps = self.epsilon;
        // f32 lanes (f64 across blocks) in the kernels crate, compiled per ISA: the
        // f64-per-element `normalize_run` was a sixth of MiniLM's non-GEMM time.
        let row = |o: usize, y: &mut [f32], st: &mut (f32, f32)| {
            cairn_kernels::norm::layer_norm_row(&xs[o * inner..(o + 1) * inner], y, &scale, bias.as_deref(), eps, st)
        };
        if outputs.len() == 1 {
            // Inference (no mean / inverse std wanted): blocks of rows on every thread.
            let y = outputs[0].f32s_mut()?;
            cairn_kernels::parallel::for_row_blocks(y, inner, |r0, block| {
                for (k, y) in block.chunks_exact_mut(inner.max(1)).enumerate() {
                    row(r0 + k, y, &mut (0.0, 0.0));
                }
            });
            return Ok(());
        }
        let mut stats = vec![(0.0f32, 0.0f32); outer];
        {
            let y = outputs[0].f32s_mut()?;
            for (o, st) in stats.iter_mut().enumerate() {
                row(o, &mut y[o * inner..(o + 1) * inner], st);
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

#[cfg(test)]
mod training_tests {
    use super::*;
    use crate::{Attr, Attrs, Tensor};

    fn build(training: i64, n_outputs: usize) -> Result<Box<dyn Op>> {
        let mut r = Registry::default();
        register(&mut r);
        let attrs: Attrs =
            [("training_mode".to_string(), Attr::Int(training)), ("momentum".to_string(), Attr::Float(0.9))].into_iter().collect();
        r.build("bn", "", "BatchNormalization", 15, &attrs, 5, n_outputs)
    }

    #[test]
    fn training_mode_uses_batch_statistics_and_updates_the_running_ones() {
        let op = build(1, 3).unwrap();
        // Two channels; channel 0 holds 1, 2, 3, 4 (mean 2.5, variance 1.25), channel 1 all 7.
        let x = Tensor::from_f32(vec![2, 2, 2], vec![1.0, 2.0, 7.0, 7.0, 3.0, 4.0, 7.0, 7.0]).unwrap();
        let scale = Tensor::from_f32(vec![2], vec![2.0, 1.0]).unwrap();
        let bias = Tensor::from_f32(vec![2], vec![0.5, -1.0]).unwrap();
        let mean = Tensor::from_f32(vec![2], vec![0.0, 10.0]).unwrap();
        let var = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
        let facts: Vec<Fact> = [&x, &scale, &bias, &mean, &var].iter().map(|t| Fact::new(t.dtype(), t.shape().to_vec())).collect();
        let out_facts = op.infer(&facts.iter().map(Some).collect::<Vec<_>>()).unwrap();
        assert_eq!(out_facts.iter().map(|f| f.shape.clone()).collect::<Vec<_>>(), [vec![2, 2, 2], vec![2], vec![2]]);
        let mut outs: Vec<Tensor> = out_facts.iter().map(|f| Tensor::zeros(f.dtype, f.shape.clone()).unwrap()).collect();
        let inputs: Vec<Option<TensorRef>> = [&x, &scale, &bias, &mean, &var].iter().map(|t| Some(t.view())).collect();
        let mut views: Vec<TensorMut> = outs.iter_mut().map(|t| t.view_mut()).collect();
        op.run(&inputs, &mut views).unwrap();
        let k = 2.0 / (1.25f32 + 1e-5).sqrt();
        let y = outs[0].view().to_f32_vec();
        for (got, want) in y.iter().zip([(1.0 - 2.5) * k + 0.5, (2.0 - 2.5) * k + 0.5, -1.0, -1.0, (3.0 - 2.5) * k + 0.5]) {
            assert!((got - want).abs() < 1e-5, "{y:?}");
        }
        let rm = outs[1].view().to_f32_vec();
        let rv = outs[2].view().to_f32_vec();
        assert!((rm[0] - 0.25).abs() < 1e-6 && (rm[1] - 9.7).abs() < 1e-5, "{rm:?}");
        assert!((rv[0] - 1.025).abs() < 1e-6 && (rv[1] - 1.8).abs() < 1e-5, "{rv:?}");
    }

    #[test]
    fn bad_training_nodes_are_errors() {
        assert!(build(1, 4).unwrap_err().to_string().contains("at most 3 outputs"));
        // Inference form: the running statistics are not outputs.
        assert!(build(0, 3).is_err());
        let op = build(1, 3).unwrap();
        let x = Fact::new(DType::F32, vec![0, 2, 3]);
        let v = Fact::new(DType::F32, vec![2]);
        let facts = [Some(&x), Some(&v), Some(&v), Some(&v), Some(&v)];
        let out = op.infer(&facts).unwrap();
        let xt = Tensor::zeros(DType::F32, vec![0, 2, 3]).unwrap();
        let vt = Tensor::zeros(DType::F32, vec![2]).unwrap();
        let mut outs: Vec<Tensor> = out.iter().map(|f| Tensor::zeros(f.dtype, f.shape.clone()).unwrap()).collect();
        let mut views: Vec<TensorMut> = outs.iter_mut().map(|t| t.view_mut()).collect();
        let inputs = [Some(xt.view()), Some(vt.view()), Some(vt.view()), Some(vt.view()), Some(vt.view())];
        assert!(op.run(&inputs, &mut views).unwrap_err().to_string().contains("at least one element"));
        // A statistics vector of the wrong length.
        let short = Tensor::zeros(DType::F32, vec![1]).unwrap();
        let x2 = Tensor::zeros(DType::F32, vec![1, 2, 1]).unwrap();
        let inputs = [Some(x2.view()), Some(short.view()), Some(vt.view()), Some(vt.view()), Some(vt.view())];
        let mut outs: Vec<Tensor> = [vec![1, 2, 1], vec![2], vec![2]].into_iter().map(|s| Tensor::zeros(DType::F32, s).unwrap()).collect();
        let mut views: Vec<TensorMut> = outs.iter_mut().map(|t| t.view_mut()).collect();
        assert!(op.run(&inputs, &mut views).is_err());
    }
}

#[cfg(test)]
mod layer_norm_tests {
    use super::*;
    use crate::{Attrs, Tensor};

    /// Inference (one output) splits rows over the threads; with the mean and inverse std
    /// asked for it runs on one thread. Y is the same either way, to the bit, on a tensor large
    /// enough to be split (an encoder's 128 tokens x 384).
    #[test]
    fn rows_on_threads_equal_rows_on_one_thread() {
        let (rows, d) = (128usize, 384usize);
        let x =
            Tensor::from_f32(vec![1, rows, d], (0..rows * d).map(|i| ((i as f32) * 0.37).sin() * 3.0 + (i % 7) as f32).collect()).unwrap();
        let scale = Tensor::from_f32(vec![d], (0..d).map(|i| 0.5 + (i as f32) * 0.01).collect()).unwrap();
        let bias = Tensor::from_f32(vec![d], (0..d).map(|i| (i as f32) * -0.003).collect()).unwrap();
        let run = |n_outputs: usize| {
            let mut r = Registry::default();
            register(&mut r);
            let op = r.build("ln", "", "LayerNormalization", 17, &Attrs::new(), 3, n_outputs).unwrap();
            let facts: Vec<Fact> = [&x, &scale, &bias].iter().map(|t| Fact::new(t.dtype(), t.shape().to_vec())).collect();
            let out_facts = op.infer(&facts.iter().map(Some).collect::<Vec<_>>()).unwrap();
            let mut outs: Vec<Tensor> =
                out_facts.iter().take(n_outputs).map(|f| Tensor::zeros(f.dtype, f.shape.clone()).unwrap()).collect();
            let inputs: Vec<Option<TensorRef>> = [&x, &scale, &bias].iter().map(|t| Some(t.view())).collect();
            let mut views: Vec<TensorMut> = outs.iter_mut().map(|t| t.view_mut()).collect();
            op.run(&inputs, &mut views).unwrap();
            outs.swap_remove(0).view().to_f32_vec()
        };
        let (split, whole) = (run(1), run(3));
        assert!(split.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(split.iter().all(|v| v.is_finite()));
    }
}
