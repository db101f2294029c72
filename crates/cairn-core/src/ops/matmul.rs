//! MatMul (numpy semantics, batched with broadcasting) and Gemm.

use super::broadcast::broadcast_shapes;
use crate::{bail_shape, required, DType, Fact, Op, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::{sgemm, Transpose};

pub fn register(r: &mut Registry) {
    r.register("MatMul", |_| Ok(Box::new(MatMul)));
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

#[derive(Debug)]
struct MatMul;

/// Shapes of a MatMul after 1-D promotion: (batch shape, m, k, n, output shape).
fn matmul_shapes(a: &[usize], b: &[usize]) -> Result<(Vec<usize>, usize, usize, usize, Vec<usize>)> {
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
        if a.dtype != DType::F32 || b.dtype != DType::F32 {
            bail_shape!("MatMul", "is implemented for f32, got {} and {}", a.dtype, b.dtype);
        }
        Ok(vec![Fact::new(DType::F32, matmul_shapes(&a.shape, &b.shape)?.4)])
    }
    fn macs(&self, inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        let k = inputs[0].and_then(|a| a.shape.last().copied()).unwrap_or(0);
        (outputs[0].numel() * k) as u64
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let a = required(inputs, 0, "MatMul")?;
        let b = required(inputs, 1, "MatMul")?;
        let (batch, m, k, n, _) = matmul_shapes(a.shape, b.shape)?;
        let (av, bv) = (a.f32s()?, b.f32s()?);
        let y = outputs[0].f32s_mut()?;
        let a_batch = &a.shape[..a.shape.len().saturating_sub(2)];
        let b_batch = &b.shape[..b.shape.len().saturating_sub(2)];
        let sa = super::broadcast::broadcast_strides(a_batch, &batch);
        let sb = super::broadcast::broadcast_strides(b_batch, &batch);
        let nb: usize = batch.iter().product();
        if nb == 0 {
            return Ok(());
        }
        super::broadcast::for_each_offset(&batch, [&sa, &sb], |i, [ia, ib]| {
            sgemm(m, n, k, 1.0, &av[ia * m * k..][..m * k], k, Transpose::No, &bv[ib * k * n..][..k * n], n, Transpose::No, 0.0, &mut y[i * m * n..][..m * n], n);
        });
        Ok(())
    }
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
