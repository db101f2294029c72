//! The random generators of the default domain: RandomUniform, RandomNormal, their *Like
//! variants, Bernoulli and Multinomial.
//!
//! Each node owns one generator (rand's `StdRng`), seeded from the `seed` attribute when
//! it is given (the same seed gives the same stream, run after run of a fresh session)
//! and from the process's hash randomness otherwise. Like onnxruntime's kernels, the
//! generator advances from run to run, so two runs of one session draw different values.
//! No engine's stream is reproduced: onnxruntime draws from `std::default_random_engine`
//! and onnx's reference from numpy, whose outputs depend on their own generators; what
//! is specified (distribution, dtype, shape) is what Cairn matches. These ops report
//! `is_random`, so no pass folds them into a constant.

use super::cast::{convert, onnx_dtype};
use crate::{required, DType, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub fn register(r: &mut Registry) {
    r.register("RandomUniform", |ctx| build(ctx, Dist::uniform(ctx)?, Source::Shape(shape_attr(ctx)?)));
    r.register("RandomNormal", |ctx| build(ctx, Dist::normal(ctx)?, Source::Shape(shape_attr(ctx)?)));
    r.register("RandomUniformLike", |ctx| build(ctx, Dist::uniform(ctx)?, Source::Like));
    r.register("RandomNormalLike", |ctx| build(ctx, Dist::normal(ctx)?, Source::Like));
    r.register("Bernoulli", |ctx| build(ctx, Dist::Bernoulli, Source::Like));
    r.register("Multinomial", |ctx| {
        let sample_size = ctx.int("sample_size", 1)?;
        let sample_size = usize::try_from(sample_size)
            .ok()
            .filter(|&s| s >= 1)
            .ok_or_else(|| Error::InvalidAttr { attr: "sample_size".into(), detail: format!("{sample_size} must be at least 1") })?;
        build(ctx, Dist::Multinomial { sample_size }, Source::Like)
    });
}

/// What is drawn per output element.
#[derive(Debug, Clone, Copy)]
enum Dist {
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        scale: f64,
    },
    /// 1 with the probability the input element holds, else 0.
    Bernoulli,
    /// `sample_size` class indices per row of unnormalized log-probabilities.
    Multinomial {
        sample_size: usize,
    },
}

impl Dist {
    fn uniform(ctx: &OpContext) -> Result<Dist> {
        let (low, high) = (ctx.float("low", 0.0)? as f64, ctx.float("high", 1.0)? as f64);
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return Err(Error::InvalidAttr {
                attr: "low".into(),
                detail: format!("low {low} and high {high} must be finite, low <= high"),
            });
        }
        Ok(Dist::Uniform { low, high })
    }

    fn normal(ctx: &OpContext) -> Result<Dist> {
        let (mean, scale) = (ctx.float("mean", 0.0)? as f64, ctx.float("scale", 1.0)? as f64);
        if !(mean.is_finite() && scale.is_finite() && scale >= 0.0) {
            return Err(Error::InvalidAttr {
                attr: "scale".into(),
                detail: format!("mean {mean} and scale {scale} must be finite, scale >= 0"),
            });
        }
        Ok(Dist::Normal { mean, scale })
    }
}

/// Where the output shape comes from.
#[derive(Debug)]
enum Source {
    /// The `shape` attribute (RandomUniform, RandomNormal).
    Shape(Vec<usize>),
    /// The input's shape (the *Like ops, Bernoulli; Multinomial takes its batch dim).
    Like,
}

fn shape_attr(ctx: &OpContext) -> Result<Vec<usize>> {
    ctx.usizes_opt("shape")?.ok_or_else(|| Error::InvalidAttr { attr: "shape".into(), detail: "is required".into() })
}

fn build(ctx: &OpContext, dist: Dist, source: Source) -> Result<Box<dyn Op>> {
    let dtype = match ctx.int_opt("dtype")? {
        Some(code) => Some(onnx_dtype(code).ok_or_else(|| ctx.unsupported("dtype", format!("ONNX data type {code}")))?),
        // RandomUniform/RandomNormal default to float; Multinomial to int32; the others follow the input.
        None => match (&dist, &source) {
            (Dist::Multinomial { .. }, _) => Some(DType::I32),
            (_, Source::Shape(_)) => Some(DType::F32),
            _ => None,
        },
    };
    let allowed = |d: DType| match dist {
        Dist::Uniform { .. } | Dist::Normal { .. } => d.is_float(),
        Dist::Multinomial { .. } => matches!(d, DType::I32 | DType::I64),
        Dist::Bernoulli => !d.is_narrow(),
    };
    if let Some(d) = dtype.filter(|&d| !allowed(d)) {
        return Err(ctx.unsupported("dtype", format!("{} cannot hold {:?} draws", d, dist)));
    }
    let seed = ctx.float_opt("seed")?;
    Ok(Box::new(Random { op: ctx.op_type.to_string(), dist, source, dtype, rng: Mutex::new(generator(seed)) }))
}

/// The node's generator: from the seed's bits when given, else from fresh process randomness
/// (std's hasher keys: random per process where the platform has an entropy source, and no
/// dependency on one in the browser) mixed with a counter so two nodes never share a stream.
fn generator(seed: Option<f32>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(u64::from(s.to_bits())),
        None => {
            static NODES: AtomicU64 = AtomicU64::new(0);
            let keys = std::collections::hash_map::RandomState::new();
            StdRng::seed_from_u64(keys.hash_one(NODES.fetch_add(1, Ordering::Relaxed)))
        }
    }
}

#[derive(Debug)]
struct Random {
    op: String,
    dist: Dist,
    source: Source,
    /// None: the input's dtype.
    dtype: Option<DType>,
    rng: Mutex<StdRng>,
}

impl Random {
    fn draw(&self, input: Option<&TensorRef>, n: usize) -> Result<Vec<f64>> {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match self.dist {
            Dist::Uniform { low, high } => (0..n).map(|_| low + (high - low) * rng.random::<f64>()).collect(),
            Dist::Normal { mean, scale } => (0..n).map(|_| mean + scale * standard_normal(&mut rng)).collect(),
            Dist::Bernoulli => {
                let p = input.ok_or_else(|| Error::shape(&self.op, "input 0 is required"))?.to_f64_vec();
                p.iter().map(|&p| f64::from(u8::from(rng.random::<f64>() < p))).collect()
            }
            Dist::Multinomial { sample_size } => {
                let x = input.ok_or_else(|| Error::shape(&self.op, "input 0 is required"))?;
                let classes = x
                    .shape
                    .get(1)
                    .copied()
                    .filter(|&c| c > 0 && x.shape.len() == 2)
                    .ok_or_else(|| Error::shape(&self.op, "input must be [batch, classes]"))?;
                let logits = x.to_f64_vec();
                let mut out = Vec::with_capacity(n);
                let mut cumulative = vec![0.0; classes];
                for (b, row) in logits.chunks_exact(classes.max(1)).enumerate().take(x.shape[0]) {
                    categorical(row, &mut cumulative).map_err(|e| Error::Input(format!("Multinomial: batch row {b}: {e}")))?;
                    let total = cumulative[classes - 1];
                    for _ in 0..sample_size {
                        let u = rng.random::<f64>() * total;
                        // The first class whose cumulative weight exceeds u.
                        out.push(cumulative.partition_point(|&c| c <= u).min(classes - 1) as f64);
                    }
                }
                out
            }
        })
    }
}

/// One standard normal draw (Box-Muller; the second value of the pair is dropped so that
/// each element costs the same two uniforms whatever the tensor size).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Fills `cumulative` with the running sums of softmax weights of `logits` (unnormalized
/// log-probabilities), shifted by the max so that exp never overflows.
fn categorical(logits: &[f64], cumulative: &mut [f64]) -> std::result::Result<(), String> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if logits.iter().any(|v| v.is_nan()) || max == f64::INFINITY {
        return Err("a log-probability is NaN or +inf".into());
    }
    if max == f64::NEG_INFINITY {
        return Err("every class has probability 0 (all log-probabilities are -inf)".into());
    }
    let mut sum = 0.0;
    for (c, &l) in cumulative.iter_mut().zip(logits) {
        sum += (l - max).exp();
        *c = sum;
    }
    Ok(())
}

impl Op for Random {
    fn op_type(&self) -> &str {
        &self.op
    }

    fn is_random(&self) -> bool {
        true
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (dtype, shape) = match &self.source {
            Source::Shape(shape) => (self.dtype.unwrap_or(DType::F32), shape.clone()),
            Source::Like => {
                let x = required(inputs, 0, &self.op)?;
                let dtype = self.dtype.unwrap_or(x.dtype);
                match self.dist {
                    Dist::Multinomial { sample_size } => {
                        if x.rank() != 2 || x.shape[1] == 0 || !x.dtype.is_float() {
                            return Err(Error::shape(
                                &self.op,
                                format!("input must be float [batch, classes] with classes >= 1, got {} {:?}", x.dtype, x.shape),
                            ));
                        }
                        (dtype, vec![x.shape[0], sample_size])
                    }
                    Dist::Bernoulli if !x.dtype.is_float() => {
                        return Err(Error::shape(&self.op, format!("input holds probabilities: a float dtype, got {}", x.dtype)));
                    }
                    _ if !dtype.is_float() && !matches!(self.dist, Dist::Bernoulli) => {
                        return Err(Error::shape(&self.op, format!("output dtype {dtype} is not a float dtype; set the dtype attribute")));
                    }
                    _ => (dtype, x.shape.clone()),
                }
            }
        };
        crate::checked_numel(&shape)?;
        Ok(vec![Fact::new(dtype, shape)])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let out = &mut outputs[0];
        let values = self.draw(inputs.first().and_then(|x| x.as_ref()), out.len())?;
        if values.len() != out.len() {
            return Err(Error::shape(&self.op, format!("drew {} values for {} outputs", values.len(), out.len())));
        }
        convert(DataRef::F64(&values), &mut out.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attr, Attrs, Tensor, TensorData};
    use std::sync::Arc;

    fn op(op: &str, attrs: &[(&str, Attr)], n_inputs: usize) -> Box<dyn Op> {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Registry::global().build("n", "", op, 22, &attrs, n_inputs, 1).unwrap()
    }

    fn run(op: &dyn Op, x: Option<Tensor>) -> Result<Tensor> {
        let out = crate::plan::run_owned(op, &[x.map(Arc::new)])?;
        Ok(out.into_iter().next().unwrap())
    }

    #[test]
    fn a_seed_gives_one_stream_and_no_seed_two() {
        let attrs = [("shape", Attr::Ints(vec![3, 4])), ("seed", Attr::Float(5.0))];
        let a = run(&*op("RandomNormal", &attrs, 0), None).unwrap();
        assert_eq!(a, run(&*op("RandomNormal", &attrs, 0), None).unwrap(), "same seed, same values");
        let unseeded = [("shape", Attr::Ints(vec![3, 4]))];
        let (b, c) = (run(&*op("RandomNormal", &unseeded, 0), None).unwrap(), run(&*op("RandomNormal", &unseeded, 0), None).unwrap());
        assert_ne!(b, c, "two unseeded nodes draw different values");
        // One seeded node advances: its second run differs from its first.
        let node = op("RandomUniform", &attrs, 0);
        assert_ne!(run(&*node, None).unwrap(), run(&*node, None).unwrap());
    }

    #[test]
    fn uniform_draws_stay_in_range_with_the_right_mean() {
        let attrs = [("shape", Attr::Ints(vec![20000])), ("low", Attr::Float(-2.0)), ("high", Attr::Float(6.0)), ("dtype", Attr::Int(11))];
        let y = run(&*op("RandomUniform", &attrs, 0), None).unwrap();
        let v = y.view().to_f64_vec();
        assert_eq!(y.dtype(), DType::F64);
        assert!(v.iter().all(|&x| (-2.0..6.0).contains(&x)));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean - 2.0).abs() < 0.1, "{mean}");
    }

    #[test]
    fn normal_like_keeps_shape_and_has_the_asked_moments() {
        let x = Tensor::new(vec![100, 200], TensorData::I64(vec![0; 20000])).unwrap();
        let attrs = [("mean", Attr::Float(3.0)), ("scale", Attr::Float(0.5)), ("dtype", Attr::Int(1))];
        let y = run(&*op("RandomNormalLike", &attrs, 1), Some(x)).unwrap();
        assert_eq!((y.shape(), y.dtype()), (&[100usize, 200][..], DType::F32));
        let v = y.view().to_f64_vec();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((mean - 3.0).abs() < 0.02 && (sd - 0.5).abs() < 0.02, "{mean} {sd}");
    }

    #[test]
    fn bernoulli_follows_each_probability() {
        let p: Vec<f32> = (0..3000).map(|i| [0.0, 1.0, 0.25][i % 3]).collect();
        let y = run(&*op("Bernoulli", &[("dtype", Attr::Int(9))], 1), Some(Tensor::from_f32(vec![3000], p).unwrap())).unwrap();
        let TensorData::Bool(v) = y.data() else { panic!("bool output") };
        assert!(v.iter().step_by(3).all(|&b| b == 0) && v.iter().skip(1).step_by(3).all(|&b| b == 1));
        let ones = v.iter().skip(2).step_by(3).filter(|&&b| b == 1).count();
        assert!((200..300).contains(&ones), "{ones} of 1000 at p = 0.25");
    }

    #[test]
    fn multinomial_samples_by_softmax_weight() {
        // Row 0: class 2 only; row 1: classes 0 and 1 at 1:3 (log 1, log 3).
        let logits = vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0, 0.0, 3f32.ln(), f32::NEG_INFINITY];
        let x = Tensor::from_f32(vec![2, 3], logits).unwrap();
        let y = run(&*op("Multinomial", &[("sample_size", Attr::Int(4000)), ("dtype", Attr::Int(7))], 1), Some(x)).unwrap();
        assert_eq!(y.shape(), &[2, 4000]);
        let v = y.i64s().unwrap();
        assert!(v[..4000].iter().all(|&c| c == 2));
        let ones = v[4000..].iter().filter(|&&c| c == 1).count();
        assert!(v[4000..].iter().all(|&c| c < 2) && (2800..3200).contains(&ones), "{ones}");
    }

    #[test]
    fn hostile_attributes_and_inputs_are_errors() {
        let build = |op: &str, attrs: &[(&str, Attr)]| {
            let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            Registry::global().build("n", "", op, 22, &attrs, 1, 1).map(|_| ()).unwrap_err().to_string()
        };
        assert!(build("Multinomial", &[("sample_size", Attr::Int(0))]).contains("sample_size"));
        assert!(build("RandomUniform", &[]).contains("shape"));
        assert!(build("RandomUniform", &[("shape", Attr::Ints(vec![2])), ("dtype", Attr::Int(6))]).contains("dtype"));
        assert!(build("RandomNormal", &[("shape", Attr::Ints(vec![2])), ("scale", Attr::Float(f32::NAN))]).contains("scale"));
        // A shape whose element count overflows is refused by infer, not allocated.
        let huge = op("RandomUniform", &[("shape", Attr::Ints(vec![1 << 40, 1 << 40]))], 0);
        assert!(matches!(huge.infer(&[]), Err(Error::TooLarge(_))));
        // NaN logits name the row.
        let x = Tensor::from_f32(vec![1, 2], vec![f32::NAN, 0.0]).unwrap();
        let e = run(&*op("Multinomial", &[], 1), Some(x)).unwrap_err().to_string();
        assert!(e.contains("row 0"), "{e}");
    }
}
