//! FusedMatMul: `alpha * op(A) x op(B)` with optional transposes of the last two axes and
//! numpy broadcasting of the batch axes, one GEMM call per batch matrix.

use super::MS_DOMAIN;
use crate::ops::broadcast::{broadcast_shapes, broadcast_strides, for_each_offset};
use crate::{bail_shape, required, DType, Fact, Op, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::{sgemm, Transpose};

pub fn register(r: &mut Registry) {
    r.register_in(MS_DOMAIN, "FusedMatMul", |ctx| {
        for attr in ["transBatchA", "transBatchB"] {
            if ctx.int(attr, 0)? != 0 {
                return Err(ctx.unsupported(attr, "transposing the batch axes is not implemented"));
            }
        }
        Ok(Box::new(FusedMatMul {
            alpha: ctx.float("alpha", 1.0)?,
            trans_a: ctx.int("transA", 0)? != 0,
            trans_b: ctx.int("transB", 0)? != 0,
        }))
    });
}

#[derive(Debug)]
struct FusedMatMul {
    alpha: f32,
    trans_a: bool,
    trans_b: bool,
}

/// (batch shape, m, k, n) of a product, checked.
struct Dims {
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
}

impl FusedMatMul {
    fn dims(&self, a: &[usize], b: &[usize]) -> Result<Dims> {
        if a.len() < 2 || b.len() < 2 {
            bail_shape!("FusedMatMul", "both inputs must have rank 2 or more, got {a:?} and {b:?}");
        }
        let (ra, ca) = (a[a.len() - 2], a[a.len() - 1]);
        let (rb, cb) = (b[b.len() - 2], b[b.len() - 1]);
        let (m, k) = if self.trans_a { (ca, ra) } else { (ra, ca) };
        let (k2, n) = if self.trans_b { (cb, rb) } else { (rb, cb) };
        if k != k2 {
            bail_shape!("FusedMatMul", "inner dimensions differ: {a:?} x {b:?} (transA {}, transB {})", self.trans_a, self.trans_b);
        }
        let batch = broadcast_shapes(&[&a[..a.len() - 2], &b[..b.len() - 2]], "FusedMatMul")?;
        Ok(Dims { batch, m, k, n })
    }
}

impl Op for FusedMatMul {
    fn op_type(&self) -> &str {
        "FusedMatMul"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (a, b) = (required(inputs, 0, "FusedMatMul")?, required(inputs, 1, "FusedMatMul")?);
        if a.dtype != DType::F32 || b.dtype != DType::F32 {
            bail_shape!("FusedMatMul", "Cairn computes FusedMatMul on float32, got {} and {}", a.dtype, b.dtype);
        }
        let d = self.dims(&a.shape, &b.shape)?;
        let mut shape = d.batch;
        shape.extend([d.m, d.n]);
        Ok(vec![Fact::new(DType::F32, shape)])
    }
    fn macs(&self, _inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        outputs.first().map_or(0, |o| o.numel() as u64)
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (a, b) = (required(inputs, 0, "FusedMatMul")?, required(inputs, 1, "FusedMatMul")?);
        let d = self.dims(a.shape, b.shape)?;
        let (ad, bd) = (a.f32s()?, b.f32s()?);
        let (a_mat, b_mat) = (d.m * d.k, d.k * d.n);
        // Batch strides in whole matrices: broadcast axes stride 0.
        let a_strides = broadcast_strides(&a.shape[..a.rank() - 2], &d.batch);
        let b_strides = broadcast_strides(&b.shape[..b.rank() - 2], &d.batch);
        let lda = if self.trans_a { d.m } else { d.k };
        let ldb = if self.trans_b { d.k } else { d.n };
        let ta = if self.trans_a { Transpose::Yes } else { Transpose::No };
        let tb = if self.trans_b { Transpose::Yes } else { Transpose::No };
        let y = outputs[0].f32s_mut()?;
        let mn = d.m * d.n;
        for_each_offset(&d.batch, [&a_strides, &b_strides], |i, [ia, ib]| {
            let out = &mut y[i * mn..(i + 1) * mn];
            sgemm(d.m, d.n, d.k, self.alpha, &ad[ia * a_mat..], lda, ta, &bd[ib * b_mat..], ldb, tb, 0.0, out, d.n);
        });
        Ok(())
    }
}
