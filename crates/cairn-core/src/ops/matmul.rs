//! MatMul (numpy semantics, batched with broadcasting) and Gemm.

use super::broadcast::broadcast_shapes;
use super::float_io::{f32_values, write_f32};
use crate::{bail_shape, required, DType, Fact, Op, Registry, Result, Tensor, TensorMut, TensorRef};
use cairn_kernels::{gemm, sgemm, Activation, Bias, Epilogue, Isa, LhsOperand, MatRef, PackedB, RhsOperand, Transpose};
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    r.register("MatMul", |_| Ok(Box::new(MatMul { alpha: 1.0, min_rank: 0, fused: String::new() })));
    r.register("Gemm", |ctx| {
        if ctx.opset < 7 {
            ctx.ignore("broadcast");
        }
        Ok(Box::new(Gemm {
            alpha: ctx.float("alpha", 1.0)?,
            beta: ctx.float("beta", 1.0)?,
            trans_a: ctx.int("transA", 0)? != 0,
            trans_b: ctx.int("transB", 0)? != 0,
        }))
    });
}

/// MatMul; the fusion pass folds a following scalar Div or Mul into `alpha` (attention's
/// `Q K^T / sqrt(d)`: the GEMM scales A while it packs it, instead of a pass over the scores).
#[derive(Debug)]
pub(crate) struct MatMul {
    alpha: f32,
    /// The absorbed scale's rank: the output gets leading ones up to it, as its broadcast did.
    min_rank: usize,
    /// What the fusion pass folded in ("+Div(scale)"), empty for the plain operator.
    fused: String,
}

impl MatMul {
    /// `alpha * (A B)` with at least `min_rank` dimensions, built by the fusion pass;
    /// `fused` names what it absorbed.
    pub(crate) fn scaled(alpha: f32, min_rank: usize, fused: String) -> MatMul {
        MatMul { alpha, min_rank, fused }
    }
}

/// Shapes of a MatMul after 1-D promotion: (batch shape, m, k, n, output shape).
pub(crate) fn matmul_shapes(a: &[usize], b: &[usize]) -> Result<(Vec<usize>, usize, usize, usize, Vec<usize>)> {
    if a.is_empty() || b.is_empty() {
        bail_shape!("MatMul", "inputs must have rank >= 1, got {a:?} and {b:?}");
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        bail_shape!("MatMul", "inner dimensions differ: {a:?} x {b:?}");
    }
    let batch = broadcast_shapes(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]], "MatMul")?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok((batch, m, k, n, out))
}

impl Op for MatMul {
    fn op_type(&self) -> &str {
        "MatMul"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let a = required(inputs, 0, "MatMul")?;
        let b = required(inputs, 1, "MatMul")?;
        // f16 and bf16 run through the f32 GEMM, f64 on its own f64 loop.
        if a.dtype != b.dtype || !a.dtype.is_float() {
            bail_shape!("MatMul", "is implemented for f32, f64, f16 and bf16 inputs of one dtype, got {} and {}", a.dtype, b.dtype);
        }
        let mut shape = matmul_shapes(&a.shape, &b.shape)?.4;
        while shape.len() < self.min_rank {
            shape.insert(0, 1);
        }
        Ok(vec![Fact::new(a.dtype, shape)])
    }
    fn macs(&self, inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        let k = inputs[0].and_then(|a| a.shape.last().copied()).unwrap_or(0);
        (outputs[0].numel() * k) as u64
    }
    fn fused(&self) -> &str {
        &self.fused
    }
    fn built_by_pass(&self) -> bool {
        !self.fused.is_empty()
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let a = required(inputs, 0, "MatMul")?;
        let b = required(inputs, 1, "MatMul")?;
        let (batch, m, k, n, _) = matmul_shapes(a.shape, b.shape)?;
        let a_batch = &a.shape[..a.shape.len().saturating_sub(2)];
        let b_batch = &b.shape[..b.shape.len().saturating_sub(2)];
        let sa = super::broadcast::broadcast_strides(a_batch, &batch);
        let sb = super::broadcast::broadcast_strides(b_batch, &batch);
        let nb: usize = batch.iter().product();
        if nb == 0 {
            return Ok(());
        }
        if let (crate::DataRef::F64(av), crate::DataRef::F64(bv), crate::DataMut::F64(y)) = (a.data, b.data, &mut outputs[0].data) {
            super::broadcast::for_each_offset(&batch, [&sa, &sb], |i, [ia, ib]| {
                let (a, b, y) = (&av[ia * m * k..][..m * k], &bv[ib * k * n..][..k * n], &mut y[i * m * n..][..m * n]);
                for r in 0..m {
                    for c in 0..n {
                        y[r * n + c] = (0..k).map(|t| a[r * k + t] * b[t * n + c]).sum::<f64>() * self.alpha as f64;
                    }
                }
            });
            return Ok(());
        }
        let (av, bv) = (f32_values(&a, "MatMul")?, f32_values(&b, "MatMul")?);
        write_f32(&mut outputs[0], "MatMul", |y| {
            matmul_f32(&batch, (&sa, &sb), (m, k, n), self.alpha, (&av, &bv), y);
            Ok(())
        })
    }
}

/// Batched f32 GEMM over broadcast batch strides.
fn matmul_f32(
    batch: &[usize],
    (sa, sb): (&[usize], &[usize]),
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    (av, bv): (&[f32], &[f32]),
    y: &mut [f32],
) {
    super::broadcast::for_each_offset(batch, [sa, sb], |i, [ia, ib]| {
        sgemm(
            m,
            n,
            k,
            alpha,
            &av[ia * m * k..][..m * k],
            k,
            Transpose::No,
            &bv[ib * k * n..][..k * n],
            n,
            Transpose::No,
            0.0,
            &mut y[i * m * n..][..m * n],
            n,
        );
    });
}

#[derive(Debug)]
struct Gemm {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
}

impl Gemm {
    fn dims(&self, a: &[usize], b: &[usize]) -> Result<(usize, usize, usize)> {
        if a.len() != 2 || b.len() != 2 {
            bail_shape!("Gemm", "inputs must be 2-D, got {a:?} and {b:?}");
        }
        let (m, k) = if self.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
        let (k2, n) = if self.trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
        if k != k2 {
            bail_shape!("Gemm", "inner dimensions differ: {a:?} x {b:?} (transA={}, transB={})", self.trans_a, self.trans_b);
        }
        Ok((m, k, n))
    }
}

impl Op for Gemm {
    fn op_type(&self) -> &str {
        "Gemm"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let a = required(inputs, 0, "Gemm")?;
        let b = required(inputs, 1, "Gemm")?;
        if a.dtype != DType::F32 || b.dtype != DType::F32 {
            bail_shape!("Gemm", "is implemented for f32, got {} and {}", a.dtype, b.dtype);
        }
        let (m, _, n) = self.dims(&a.shape, &b.shape)?;
        if let Some(c) = inputs.get(2).copied().flatten() {
            if broadcast_shapes(&[&c.shape, &[m, n]], "Gemm")? != [m, n] {
                bail_shape!("Gemm", "C {:?} must broadcast to [{m}, {n}]", c.shape);
            }
        }
        Ok(vec![Fact::new(DType::F32, vec![m, n])])
    }
    fn macs(&self, inputs: &[Option<&Fact>], _outputs: &[Fact]) -> u64 {
        match (inputs[0], inputs[1]) {
            (Some(a), Some(b)) => self.dims(&a.shape, &b.shape).map_or(0, |(m, k, n)| (m * k * n) as u64),
            _ => 0,
        }
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let a = required(inputs, 0, "Gemm")?;
        let b = required(inputs, 1, "Gemm")?;
        let (m, k, n) = self.dims(a.shape, b.shape)?;
        let y = outputs[0].f32s_mut()?;
        let mut beta = 0.0;
        if let Some(c) = inputs.get(2).copied().flatten() {
            let cv = c.f32s()?;
            let strides = super::broadcast::broadcast_strides(c.shape, &[m, n]);
            super::broadcast::for_each_offset(&[m, n], [&strides], |i, [ic]| y[i] = cv[ic]);
            beta = self.beta;
        }
        let t = |x: bool| if x { Transpose::Yes } else { Transpose::No };
        sgemm(m, n, k, self.alpha, a.f32s()?, a.shape[1], t(self.trans_a), b.f32s()?, b.shape[1], t(self.trans_b), beta, y, n);
        Ok(())
    }
}

/// Which op a [`FusedMatMul`] came from: MatMul broadcasts leading dims, Gemm is 2-D only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MatMulForm {
    MatMul,
    Gemm,
}

/// `y = act(a * B + bias + residual)` with a constant `B` prepacked at load for this
/// machine's GEMM kernel: fully connected layers and transformer projections.
/// Inputs: `[a]` or `[a, residual]`.
#[derive(Debug)]
pub(crate) struct FusedMatMul {
    form: MatMulForm,
    weights: Weights,
    bias: Option<Vec<f32>>,
    activation: Activation,
    has_residual: bool,
    /// What was fused, for `inspect`.
    fused: String,
}

/// The constant right operand, in the form the GEMM reads fastest without wasting memory.
#[derive(Debug)]
enum Weights {
    /// Row-major `[k, n]` and unscaled Gemm weights: the GEMM reads them in place, so the
    /// weight is shared with the graph, never copied (a bundle stores Gemm weights this way).
    InPlace { b: Arc<Tensor>, k: usize, n: usize },
    /// Transposed or scaled weights, packed once at load.
    Packed(PackedB),
}

impl Weights {
    fn dims(&self) -> (usize, usize) {
        match self {
            Weights::InPlace { k, n, .. } => (*k, *n),
            Weights::Packed(p) => (p.rows(), p.cols()),
        }
    }
}

impl FusedMatMul {
    /// `b` is `[k, n]`, or `[n, k]` with `trans_b`; `alpha` is folded into a packed copy.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        form: MatMulForm,
        b: &Arc<Tensor>,
        trans_b: bool,
        alpha: f32,
        bias: Option<Vec<f32>>,
        activation: Activation,
        has_residual: bool,
        fused: String,
    ) -> Result<FusedMatMul> {
        let (rows, cols) = (b.shape()[0], b.shape()[1]);
        let (k, n) = if trans_b { (cols, rows) } else { (rows, cols) };
        if bias.as_ref().is_some_and(|b| b.len() != n) {
            bail_shape!("MatMul", "fused bias must have {n} values");
        }
        // A row-major weight could be read in place, but only the Gemm form (classifier
        // heads: one row of A per image) keeps it so: a transformer's MatMul multiplies
        // 128+ rows, and read in place its B rows lie `n` floats apart, 1.5-6 KiB for the
        // usual widths, so a panel's rows fall into a few cache sets and evict each other
        // (MiniLM natively: 49 -> 41 ms packed). Packing costs no memory once loaded: the
        // fuse pass frees the initializer this op was its only reader of.
        let weights = if form == MatMulForm::Gemm && !trans_b && alpha == 1.0 {
            b.f32s()?; // checked here so that `run` can rely on it
            Weights::InPlace { b: Arc::clone(b), k, n }
        } else {
            let scaled: Vec<f32>;
            let mut data = b.f32s()?;
            if alpha != 1.0 {
                scaled = data.iter().map(|v| alpha * v).collect();
                data = &scaled;
            }
            let trans = if trans_b { Transpose::Yes } else { Transpose::No };
            Weights::Packed(PackedB::new(Isa::current(), MatRef::new(data, cols, trans), k, n))
        };
        Ok(FusedMatMul { form, weights, bias, activation, has_residual, fused })
    }

    fn out_shape(&self, a: &[usize]) -> Result<Vec<usize>> {
        let (k, n) = self.weights.dims();
        let ok = match self.form {
            MatMulForm::Gemm => a.len() == 2 && a[1] == k,
            MatMulForm::MatMul => a.last() == Some(&k),
        };
        if !ok {
            bail_shape!(self.op_type(), "input {a:?} does not fit weights [{k}, {n}]");
        }
        let mut out = a.to_vec();
        *out.last_mut().expect("rank >= 1") = n;
        Ok(out)
    }
}

impl Op for FusedMatMul {
    fn op_type(&self) -> &str {
        match self.form {
            MatMulForm::MatMul => "MatMul",
            MatMulForm::Gemm => "Gemm",
        }
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let a = required(inputs, 0, self.op_type())?;
        if a.dtype != DType::F32 {
            bail_shape!(self.op_type(), "is implemented for f32, got {}", a.dtype);
        }
        let out = self.out_shape(&a.shape)?;
        if self.has_residual {
            let r = required(inputs, 1, self.op_type())?;
            if r.shape != out || r.dtype != DType::F32 {
                bail_shape!(self.op_type(), "fused residual {:?} {} must match the output {out:?} f32", r.shape, r.dtype);
            }
        }
        Ok(vec![Fact::new(DType::F32, out)])
    }

    fn macs(&self, _inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        (outputs[0].numel() * self.weights.dims().0) as u64
    }

    fn fused(&self) -> &str {
        &self.fused
    }

    fn built_by_pass(&self) -> bool {
        true
    }

    fn owned_parameters(&self) -> (usize, usize) {
        let (k, n) = self.weights.dims();
        let bias = self.bias.as_ref().map_or(0, Vec::len);
        let bytes = match &self.weights {
            Weights::InPlace { b, .. } => b.byte_len(),
            Weights::Packed(p) => p.bytes(),
        };
        (k * n + bias, bytes + 4 * bias)
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let a = required(inputs, 0, self.op_type())?;
        let (k, n) = self.weights.dims();
        let rows = a.len().checked_div(k).unwrap_or_else(|| a.shape[..a.shape.len() - 1].iter().product());
        let residual = if self.has_residual { Some(required(inputs, 1, self.op_type())?.f32s()?) } else { None };
        let epilogue = Epilogue {
            bias: self.bias.as_deref().map_or(Bias::None, Bias::PerCol),
            residual: residual.map(|r| (r, n)),
            activation: self.activation,
        };
        let y = outputs[0].f32s_mut()?;
        let lhs = LhsOperand::Strided { mat: MatRef::new(a.f32s()?, k.max(1), Transpose::No), alpha: 1.0 };
        let rhs = match &self.weights {
            Weights::InPlace { b, .. } => RhsOperand::Strided(MatRef::new(b.f32s()?, n.max(1), Transpose::No)),
            Weights::Packed(p) => RhsOperand::Packed(p),
        };
        gemm(rows, n, k, lhs, rhs, y, n, false, &epilogue);
        Ok(())
    }
}
