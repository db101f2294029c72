//! The optimizer-update operators of the `ai.onnx.preview.training` domain (opset 1):
//! Adagrad, Adam and Momentum (standard and Nesterov). Cairn runs inference; these are here
//! for completeness of the ONNX operator set (onnxruntime ships them in its training build
//! only). Each is a deterministic element-wise formula, written as the ONNX operator spec
//! and its reference (`onnx/reference/ops/aionnx_preview_training`) define it.
//!
//! One node may update several tensors. Inputs are `R` (learning rate, float scalar), `T`
//! (update count, int64 scalar), then n tensors to optimize, their n gradients and n of each
//! optimizer state (Adagrad: H; Momentum: V; Adam: V then H). Outputs are the n new tensors,
//! then the n new values of each state, in the same order. Arithmetic is in f64 (the
//! reference mixes f32 tensors with Python-float attributes, which numpy widens) and the
//! results are rounded to the tensors' dtype.

use super::cast::convert;
use crate::{bail_shape, required, DType, DataRef, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub const TRAINING_DOMAIN: &str = "ai.onnx.preview.training";

pub fn register(r: &mut Registry) {
    r.register_in(TRAINING_DOMAIN, "Adagrad", |ctx| {
        let rule = Rule::Adagrad {
            decay_factor: ctx.float("decay_factor", 0.0)? as f64,
            epsilon: ctx.float("epsilon", 1e-6)? as f64,
            norm_coefficient: ctx.float("norm_coefficient", 0.0)? as f64,
        };
        Update::build(ctx, rule)
    });
    r.register_in(TRAINING_DOMAIN, "Momentum", |ctx| {
        // All four attributes are required by the spec: there is no default momentum.
        let nesterov = match ctx.string_req("mode")?.as_str() {
            "standard" => false,
            "nesterov" => true,
            other => {
                return Err(Error::InvalidAttr { attr: "mode".into(), detail: format!("'{other}' is not \"standard\" or \"nesterov\"") })
            }
        };
        let rule = Rule::Momentum {
            alpha: ctx.float_req("alpha")? as f64,
            beta: ctx.float_req("beta")? as f64,
            norm_coefficient: ctx.float_req("norm_coefficient")? as f64,
            nesterov,
        };
        Update::build(ctx, rule)
    });
    r.register_in(TRAINING_DOMAIN, "Adam", |ctx| {
        let rule = Rule::Adam {
            alpha: ctx.float("alpha", 0.9)? as f64,
            beta: ctx.float("beta", 0.999)? as f64,
            epsilon: ctx.float("epsilon", 1e-6)? as f64,
            norm_coefficient: ctx.float("norm_coefficient", 0.0)? as f64,
            norm_coefficient_post: ctx.float("norm_coefficient_post", 0.0)? as f64,
        };
        Update::build(ctx, rule)
    });
}

/// One optimizer's update rule and its attributes (already widened to f64).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    Adagrad { decay_factor: f64, epsilon: f64, norm_coefficient: f64 },
    Momentum { alpha: f64, beta: f64, norm_coefficient: f64, nesterov: bool },
    Adam { alpha: f64, beta: f64, epsilon: f64, norm_coefficient: f64, norm_coefficient_post: f64 },
}

impl Rule {
    fn name(&self) -> &'static str {
        match self {
            Rule::Adagrad { .. } => "Adagrad",
            Rule::Momentum { .. } => "Momentum",
            Rule::Adam { .. } => "Adam",
        }
    }

    /// Optimizer states per optimized tensor (inputs after X and G; outputs after X_new).
    fn states(&self) -> usize {
        match self {
            Rule::Adagrad { .. } | Rule::Momentum { .. } => 1,
            Rule::Adam { .. } => 2,
        }
    }

    /// Updates one tensor in place: `x` and `states` become their new values. `r` is the
    /// learning rate and `t` the update count, shared by every tensor of the node.
    fn apply(&self, r: f64, t: i64, x: &mut [f64], g: &[f64], states: &mut [Vec<f64>]) {
        match *self {
            Rule::Adagrad { decay_factor, epsilon, norm_coefficient } => {
                // The learning rate decays with the update count.
                let rate = r / (1.0 + t as f64 * decay_factor);
                let h = &mut states[0];
                for ((x, &g), h) in x.iter_mut().zip(g).zip(h.iter_mut()) {
                    let g = norm_coefficient * *x + g;
                    *h += g * g;
                    *x -= rate * g / (h.sqrt() + epsilon);
                }
            }
            Rule::Momentum { alpha, beta, norm_coefficient, nesterov } => {
                // The first update (t = 0) takes the whole gradient.
                let beta = if t > 0 { beta } else { 1.0 };
                let v = &mut states[0];
                for ((x, &g), v) in x.iter_mut().zip(g).zip(v.iter_mut()) {
                    let g = norm_coefficient * *x + g;
                    *v = alpha * *v + beta * g;
                    *x -= if nesterov { r * (g + alpha * *v) } else { r * *v };
                }
            }
            Rule::Adam { alpha, beta, epsilon, norm_coefficient, norm_coefficient_post } => {
                // Bias correction of both moments applies from the first counted update on.
                let rate = if t > 0 {
                    let t = t as f64;
                    r * (1.0 - beta.powf(t)).sqrt() / (1.0 - alpha.powf(t))
                } else {
                    r
                };
                let (v, h) = states.split_at_mut(1);
                for (((x, &g), v), h) in x.iter_mut().zip(g).zip(v[0].iter_mut()).zip(h[0].iter_mut()) {
                    let g = norm_coefficient * *x + g;
                    *v = alpha * *v + (1.0 - alpha) * g;
                    *h = beta * *h + (1.0 - beta) * g * g;
                    *x = (1.0 - norm_coefficient_post) * (*x - rate * *v / (h.sqrt() + epsilon));
                }
            }
        }
    }
}

/// A node of one of the three operators, updating `n` tensors.
#[derive(Debug)]
struct Update {
    rule: Rule,
    n: usize,
}

impl Update {
    /// Checks the variadic input and output counts against the rule's state count.
    fn build(ctx: &OpContext, rule: Rule) -> Result<Box<dyn Op>> {
        let op = rule.name();
        let per_tensor = 2 + rule.states();
        let variadic = ctx.n_inputs.saturating_sub(2);
        if ctx.n_inputs < 2 + per_tensor || !variadic.is_multiple_of(per_tensor) {
            bail_shape!(
                op,
                "takes R, T, then n tensors, n gradients and n of each of its {} state(s) ({per_tensor} inputs per tensor after R and T), got {} inputs",
                rule.states(),
                ctx.n_inputs
            );
        }
        let n = variadic / per_tensor;
        let want_outputs = n * (1 + rule.states());
        if ctx.n_outputs != want_outputs {
            bail_shape!(
                op,
                "updates {n} tensor(s), so it has {want_outputs} outputs (new tensors, then new states), got {}",
                ctx.n_outputs
            );
        }
        Ok(Box::new(Update { rule, n }))
    }

    /// Input index of the `k`-th group (0 = X, 1 = G, 2.. = states) for tensor `i`.
    fn input(&self, k: usize, i: usize) -> usize {
        2 + k * self.n + i
    }
}

fn scalar_check(op: &str, name: &str, f: &Fact, dtype_ok: bool, want: &str) -> Result<()> {
    if !dtype_ok {
        bail_shape!(op, "{name} must be a {want} scalar, got {}", f.dtype);
    }
    if f.numel() != 1 {
        bail_shape!(op, "{name} must be a scalar (one element), got shape {:?}", f.shape);
    }
    Ok(())
}

impl Op for Update {
    fn op_type(&self) -> &str {
        self.rule.name()
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let op = self.rule.name();
        let r = required(inputs, 0, op)?;
        scalar_check(op, "R (learning rate)", r, matches!(r.dtype, DType::F32 | DType::F64), "float or double")?;
        let t = required(inputs, 1, op)?;
        scalar_check(op, "T (update count)", t, t.dtype == DType::I64, "int64")?;
        let groups = 2 + self.rule.states();
        let mut facts = vec![Vec::with_capacity(self.n); groups - 1];
        for i in 0..self.n {
            let x = required(inputs, self.input(0, i), op)?;
            if !matches!(x.dtype, DType::F32 | DType::F64) {
                bail_shape!(op, "tensor {i} to optimize must be float or double, got {}", x.dtype);
            }
            for k in 1..groups {
                let other = required(inputs, self.input(k, i), op)?;
                if other.dtype != x.dtype || other.shape != x.shape {
                    let what = if k == 1 { "gradient".to_string() } else { format!("state {}", k - 1) };
                    bail_shape!(
                        op,
                        "the {what} of tensor {i} must match it ({} {:?}), got {} {:?}",
                        x.dtype,
                        x.shape,
                        other.dtype,
                        other.shape
                    );
                }
            }
            // Outputs: X_new, then each state's new value, all shaped like X.
            for group in facts.iter_mut() {
                group.push(Fact::new(x.dtype, x.shape.clone()));
            }
        }
        Ok(facts.into_iter().flatten().collect())
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.rule.name();
        let r = required(inputs, 0, op)?.to_f64_vec();
        let t = required(inputs, 1, op)?.to_i64_vec()?;
        let (Some(&r), Some(&t)) = (r.first(), t.first()) else {
            bail_shape!(op, "R and T must each hold one value");
        };
        let states = self.rule.states();
        for i in 0..self.n {
            let mut x = required(inputs, self.input(0, i), op)?.to_f64_vec();
            let g = required(inputs, self.input(1, i), op)?.to_f64_vec();
            let mut s = (0..states).map(|k| Ok(required(inputs, self.input(2 + k, i), op)?.to_f64_vec())).collect::<Result<Vec<_>>>()?;
            self.rule.apply(r, t, &mut x, &g, &mut s);
            convert(DataRef::F64(&x), &mut outputs[i].data)?;
            for (k, state) in s.iter().enumerate() {
                convert(DataRef::F64(state), &mut outputs[(1 + k) * self.n + i].data)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attr, Attrs, Tensor};
    use std::sync::Arc;

    fn build(op_type: &str, attrs: &[(&str, Attr)], n_inputs: usize, n_outputs: usize) -> Result<Box<dyn Op>> {
        let mut r = Registry::default();
        register(&mut r);
        let a: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        r.build("node", TRAINING_DOMAIN, op_type, 1, &a, n_inputs, n_outputs)
    }

    fn f32s(v: &[f32]) -> Option<Arc<Tensor>> {
        Some(Arc::new(Tensor::from_f32(vec![v.len()], v.to_vec()).unwrap()))
    }

    fn scalars(r: f32, t: i64) -> Vec<Option<Arc<Tensor>>> {
        vec![Some(Arc::new(Tensor::scalar_f32(r))), Some(Arc::new(Tensor::from_i64(vec![], vec![t]).unwrap()))]
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() <= 1e-6 * w.abs().max(1.0), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn adagrad_decays_the_rate_and_accumulates_squares() {
        let op = build("Adagrad", &[("decay_factor", Attr::Float(0.5)), ("epsilon", Attr::Float(0.0))], 5, 2).unwrap();
        let mut inputs = scalars(1.0, 2);
        inputs.extend([f32s(&[1.0, 2.0]), f32s(&[3.0, -4.0]), f32s(&[16.0, 9.0])]);
        let out = crate::plan::run_owned(op.as_ref(), &inputs).unwrap();
        // rate = 1 / (1 + 2 * 0.5) = 0.5; h = 16 + 9 = 25, 9 + 16 = 25; x -= 0.5 * g / 5.
        close(out[0].f32s().unwrap(), &[1.0 - 0.3, 2.0 + 0.4]);
        close(out[1].f32s().unwrap(), &[25.0, 25.0]);
    }

    /// Momentum's four attributes (alpha 0.5, no norm term).
    fn momentum_attrs(beta: f32, mode: &str) -> [(&'static str, Attr); 4] {
        [("alpha", Attr::Float(0.5)), ("beta", Attr::Float(beta)), ("norm_coefficient", Attr::Float(0.0)), ("mode", Attr::Str(mode.into()))]
    }

    #[test]
    fn momentum_takes_the_whole_gradient_at_step_zero_then_beta() {
        let attrs = |mode: &str| momentum_attrs(0.25, mode);
        for (mode, t, want_v, want_x) in [
            // v = 0.5 * 2 + 1 * 4 = 5; x = 10 - 0.1 * 5.
            ("standard", 0, 5.0, 9.5),
            // v = 0.5 * 2 + 0.25 * 4 = 2; x = 10 - 0.1 * 2.
            ("standard", 3, 2.0, 9.8),
            // v = 5; x = 10 - 0.1 * (4 + 0.5 * 5).
            ("nesterov", 0, 5.0, 9.35),
        ] {
            let op = build("Momentum", &attrs(mode), 5, 2).unwrap();
            let mut inputs = scalars(0.1, t);
            inputs.extend([f32s(&[10.0]), f32s(&[4.0]), f32s(&[2.0])]);
            let out = crate::plan::run_owned(op.as_ref(), &inputs).unwrap();
            close(out[0].f32s().unwrap(), &[want_x]);
            close(out[1].f32s().unwrap(), &[want_v]);
        }
    }

    #[test]
    fn adam_corrects_bias_and_updates_two_tensors_in_order() {
        let attrs = [("alpha", Attr::Float(0.5)), ("beta", Attr::Float(0.75)), ("epsilon", Attr::Float(0.0))];
        let op = build("Adam", &attrs, 10, 6).unwrap();
        let mut inputs = scalars(1.0, 1);
        // Tensors a = [1], b = [2, 3]; gradients [2], [4, -2]; V and H all zero.
        inputs.extend([f32s(&[1.0]), f32s(&[2.0, 3.0]), f32s(&[2.0]), f32s(&[4.0, -2.0])]);
        inputs.extend([f32s(&[0.0]), f32s(&[0.0, 0.0]), f32s(&[0.0]), f32s(&[0.0, 0.0])]);
        let out = crate::plan::run_owned(op.as_ref(), &inputs).unwrap();
        // rate = sqrt(1 - 0.75) / (1 - 0.5) = 1; v = g / 2; h = g^2 / 4; x -= v / sqrt(h) = sign(g).
        close(out[0].f32s().unwrap(), &[0.0]);
        close(out[1].f32s().unwrap(), &[1.0, 4.0]);
        close(out[2].f32s().unwrap(), &[1.0]);
        close(out[3].f32s().unwrap(), &[2.0, -1.0]);
        close(out[4].f32s().unwrap(), &[1.0]);
        close(out[5].f32s().unwrap(), &[4.0, 1.0]);
    }

    #[test]
    fn double_tensors_stay_double() {
        let op = build("Adagrad", &[("epsilon", Attr::Float(0.0))], 5, 2).unwrap();
        let f64s = |v: Vec<f64>| Some(Arc::new(Tensor::new(vec![v.len()], crate::TensorData::F64(v)).unwrap()));
        let r = Some(Arc::new(Tensor::new(vec![], crate::TensorData::F64(vec![0.5])).unwrap()));
        let t = Some(Arc::new(Tensor::from_i64(vec![], vec![0]).unwrap()));
        // h = 0 + 3^2; x = 1 - 0.5 * 3 / 3: exact in f64, and the outputs keep the dtype.
        let out = crate::plan::run_owned(op.as_ref(), &[r, t, f64s(vec![1.0]), f64s(vec![3.0]), f64s(vec![0.0])]).unwrap();
        assert_eq!(out[0].f64s().unwrap(), &[0.5]);
        assert_eq!(out[1].f64s().unwrap(), &[9.0]);
    }

    #[test]
    fn bad_nodes_are_errors() {
        let momentum = |mode: &str| momentum_attrs(0.5, mode);
        assert!(build("Momentum", &momentum("heavy-ball"), 5, 2).unwrap_err().to_string().contains("nesterov"));
        assert!(build("Momentum", &momentum("standard")[..3], 5, 2).unwrap_err().to_string().contains("mode"));
        // Adam needs 4 inputs per tensor: 7 inputs cannot be split.
        assert!(build("Adam", &[], 7, 3).unwrap_err().to_string().contains("inputs"));
        assert!(build("Adagrad", &[], 5, 3).unwrap_err().to_string().contains("outputs"));
    }

    #[test]
    fn mismatched_shapes_and_non_scalar_rates_are_errors() {
        let op = build("Adagrad", &[], 5, 2).unwrap();
        let mut inputs = scalars(1.0, 0);
        inputs.extend([f32s(&[1.0, 2.0]), f32s(&[1.0]), f32s(&[0.0, 0.0])]);
        assert!(crate::plan::run_owned(op.as_ref(), &inputs).unwrap_err().to_string().contains("gradient"));
        let mut inputs = vec![f32s(&[1.0, 2.0]), scalars(1.0, 0).pop().unwrap()];
        inputs.extend([f32s(&[1.0]), f32s(&[1.0]), f32s(&[0.0])]);
        assert!(crate::plan::run_owned(op.as_ref(), &inputs).unwrap_err().to_string().contains("scalar"));
    }
}
