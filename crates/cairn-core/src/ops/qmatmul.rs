//! Quantized matrix products: `QLinearMatMul`, `MatMulInteger`, onnxruntime's
//! `com.microsoft.QGemm`, and the int8 MatMul/Gemm the `qdq` pass builds.
//!
//! The constant operand B (`[k, n]`, or `[n, k]` when transposed) is the kernel's
//! packed left operand as Bᵀ, and the activations are read transposed in place, so
//! `C = A·B` is computed as `Cᵀ = Bᵀ·Aᵀ` with a transposed store: per-output-channel
//! scales become per-row scales of the GEMM. A batch of leading dims of A is a loop.

use super::qparams::{q8, q8_out, scalar_f32, scalar_i32, Bias, QOutSpec};
use crate::{bail_shape, required, DType, Fact, Op, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::qgemm::{qgemm, PackedQA, QEpilogue, QKernel, QRhs};
use cairn_kernels::Activation;

pub fn register(r: &mut Registry) {
    r.register("QLinearMatMul", |_| Ok(Box::new(QMatMul::standard(Form::QLinear))));
    r.register("MatMulInteger", |_| Ok(Box::new(QMatMul::standard(Form::Integer))));
    r.register_in("com.microsoft", "QGemm", |ctx| {
        if ctx.int("transA", 0)? != 0 {
            return Err(ctx.unsupported("transA", "a transposed A is not implemented"));
        }
        let form = Form::QGemm { alpha: ctx.float("alpha", 1.0)?, trans_b: ctx.int("transB", 0)? != 0 };
        Ok(Box::new(QMatMul::standard(form)))
    });
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point
    QLinear,
    /// a, b, [a_zero_point], [b_zero_point]; output i32
    Integer,
    /// A, a_scale, a_zp, B, b_scale, b_zp, [C (i32)], [y_scale, y_zp]; f32 out without y_scale
    QGemm { alpha: f32, trans_b: bool },
    /// a, [a_scale], [a_zero_point]
    Prepared,
}

/// The constant operand, packed, with its scales, bias and the output quantization.
#[derive(Debug)]
pub(crate) struct QMatMulWeights {
    k: usize,
    n: usize,
    packed: PackedQA,
    /// Per output column (n) or one; includes Gemm's alpha.
    w_scale: Vec<f32>,
    bias: Option<Bias>,
    out: QOutSpec,
}

impl QMatMulWeights {
    /// `b` is `[k, n]`, or `[n, k]` with `trans_b`; zero points per column or one.
    pub(crate) fn new(
        b: TensorRef,
        trans_b: bool,
        b_zero: Option<TensorRef>,
        w_scale: Vec<f32>,
        bias: Option<Bias>,
        out: QOutSpec,
    ) -> Result<QMatMulWeights> {
        let op = "QLinearMatMul";
        if b.rank() != 2 {
            bail_shape!(op, "the constant operand must be 2-D, got {:?}", b.shape);
        }
        let (k, n) = if trans_b { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
        if k > cairn_kernels::qgemm::MAX_K {
            bail_shape!(op, "k = {k} is too long for i32 accumulation");
        }
        let zero: Vec<i32> = b_zero.map_or(vec![0], |z| z.to_f32_vec().iter().map(|&v| v as i32).collect());
        if !(zero.len() == 1 || zero.len() == n)
            || !(w_scale.len() == 1 || w_scale.len() == n)
            || bias.as_ref().is_some_and(|b| b.len() != n)
        {
            bail_shape!(op, "scales, zero points and bias must have 1 or {n} values");
        }
        let (rs, cs) = if trans_b { (k, 1) } else { (1, n) };
        let packed = PackedQA::new(QKernel::current(), q8(b, op)?, n, k, rs, cs, &zero);
        Ok(QMatMulWeights { k, n, packed, w_scale, bias, out })
    }
}

#[derive(Debug)]
pub(crate) struct QMatMul {
    form: Form,
    prepared: Option<QMatMulWeights>,
    activation: Activation,
    fused: String,
}

impl QMatMul {
    fn standard(form: Form) -> QMatMul {
        QMatMul { form, prepared: None, activation: Activation::Identity, fused: String::new() }
    }

    pub(crate) fn prepared(weights: QMatMulWeights, activation: Activation, fused: String) -> QMatMul {
        QMatMul { form: Form::Prepared, prepared: Some(weights), activation, fused }
    }

    fn weights_from_inputs(&self, inputs: &[Option<TensorRef>]) -> Result<QMatMulWeights> {
        let op = self.op_type();
        let get = |i: usize| inputs.get(i).copied().flatten();
        let out_q = |s: usize, z: usize| -> Result<QOutSpec> {
            let zero = get(z);
            Ok(QOutSpec::Q {
                dtype: zero.map_or(DType::U8, |z| z.dtype()),
                scale: scalar_f32(required(inputs, s, op)?, op)?,
                zero: zero.map(|z| scalar_i32(z, op)).transpose()?.unwrap_or(0),
            })
        };
        match self.form {
            Form::QLinear => {
                QMatMulWeights::new(required(inputs, 3, op)?, false, get(5), required(inputs, 4, op)?.to_f32_vec(), None, out_q(6, 7)?)
            }
            Form::Integer => QMatMulWeights::new(required(inputs, 1, op)?, false, get(3), vec![1.0], None, QOutSpec::I32),
            Form::QGemm { alpha, trans_b } => {
                let scale = required(inputs, 4, op)?.to_f32_vec().iter().map(|s| s * alpha).collect();
                let bias = get(6).map(|c| c.i32s().map(|v| Bias::Int(v.to_vec()))).transpose()?;
                let out = if get(7).is_some() { out_q(7, 8)? } else { QOutSpec::F32 };
                QMatMulWeights::new(required(inputs, 3, op)?, trans_b, get(5), scale, bias, out)
            }
            Form::Prepared => unreachable!("prepared ops hold their weights"),
        }
    }

    fn out_dtype(&self, inputs: &[Option<&Fact>]) -> DType {
        match (&self.prepared, self.form) {
            (Some(p), _) => p.out.dtype(),
            (None, Form::QLinear) => inputs.get(7).copied().flatten().map_or(DType::U8, |z| z.dtype),
            (None, Form::Integer) => DType::I32,
            (None, Form::QGemm { .. }) => match inputs.get(8).copied().flatten() {
                Some(z) => z.dtype,
                None if inputs.get(7).copied().flatten().is_some() => DType::U8,
                None => DType::F32,
            },
            (None, Form::Prepared) => DType::F32,
        }
    }
}

impl Op for QMatMul {
    fn op_type(&self) -> &str {
        match self.form {
            Form::Integer => "MatMulInteger",
            Form::QGemm { .. } => "QGemm",
            _ => "QLinearMatMul",
        }
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let op = self.op_type();
        let a = required(inputs, 0, op)?;
        if !matches!(a.dtype, DType::U8 | DType::I8) || a.rank() == 0 {
            bail_shape!(op, "A must be u8 or i8 with rank >= 1, got {} {:?}", a.dtype, a.shape);
        }
        let (k, n) = match (&self.prepared, self.form) {
            (Some(p), _) => (p.k, p.n),
            (None, form) => {
                let b = required(inputs, if form == Form::Integer { 1 } else { 3 }, op)?;
                if form == Form::QLinear && b.rank() > 2 {
                    let shape = super::matmul::matmul_shapes(&a.shape, &b.shape)?.4;
                    return Ok(vec![Fact::new(self.out_dtype(inputs), shape)]);
                }
                if b.rank() != 2 {
                    bail_shape!(op, "B must be 2-D (batched B is not implemented), got {:?}", b.shape);
                }
                match form {
                    Form::QGemm { trans_b: true, .. } => (b.shape[1], b.shape[0]),
                    _ => (b.shape[0], b.shape[1]),
                }
            }
        };
        if a.shape[a.rank() - 1] != k {
            bail_shape!(op, "A {:?} and B (k = {k}, n = {n}) do not fit", a.shape);
        }
        let mut shape = a.shape[..a.rank() - 1].to_vec();
        shape.push(n);
        Ok(vec![Fact::new(self.out_dtype(inputs), shape)])
    }

    fn macs(&self, _inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        (outputs[0].numel() * self.prepared.as_ref().map_or(0, |p| p.k)) as u64
    }

    fn fused(&self) -> &str {
        &self.fused
    }

    fn built_by_pass(&self) -> bool {
        self.form == Form::Prepared
    }

    fn owned_parameters(&self) -> (usize, usize) {
        self.prepared.as_ref().map_or((0, 0), |p| (p.k * p.n, p.packed.bytes()))
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.op_type();
        if self.prepared.is_none() && self.form == Form::QLinear && required(inputs, 3, op)?.rank() > 2 {
            return qlinear_batched(inputs, &mut outputs[0]);
        }
        let owned;
        let p = match &self.prepared {
            Some(p) => p,
            None => {
                owned = self.weights_from_inputs(inputs)?;
                &owned
            }
        };
        let (si, zi) = match self.form {
            Form::Integer => (None, 2),
            _ => (Some(1), 2),
        };
        let a_scale = match si.and_then(|i| inputs.get(i).copied().flatten()) {
            Some(s) => scalar_f32(s, op)?,
            None => 1.0,
        };
        let a_zero = inputs.get(zi).copied().flatten().map(|z| scalar_i32(z, op)).transpose()?.unwrap_or(0);
        let a = required(inputs, 0, op)?;
        let ad = q8(a, op)?;
        let (k, n) = (p.k, p.n);
        let m = a.len().checked_div(k).unwrap_or(0);
        let scale: Vec<f32> = p.w_scale.iter().map(|w| w * a_scale).collect();
        let (bias, acc_bias) = p.bias.as_ref().map_or((None, None), |b| b.parts());
        let (out_scale, out_zero) = p.out.scale_zero();
        // A real-valued output whose activation is not a clamp (GELU after a dynamically
        // quantized MatMul) gets it in one vectorized pass over the finished output: the
        // GEMM stores Cᵀ column by column, where only a per-element activation fits.
        let after = matches!(outputs[0].data, crate::DataMut::F32(_)) && self.activation.clamp_bounds().is_none();
        let activation = if after { Activation::Identity } else { self.activation };
        let epi = QEpilogue { scale: &scale, bias, acc_bias, activation, out_scale, out_zero };
        let out = q8_out(&mut outputs[0].data, 0, m * n, op)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        // All rows of A (every batch) form one GEMM: Cᵀ[n x m] = Bᵀ · Aᵀ.
        qgemm(n, m, k, &p.packed, QRhs { data: ad, zero: a_zero, k_stride: 1, n_stride: k }, out, 1, n, &epi);
        if let (true, crate::DataMut::F32(y)) = (after, &mut outputs[0].data) {
            self.activation.apply(&mut y[..m * n]);
        }
        Ok(())
    }
}

/// QLinearMatMul with a batched B (`[..., k, n]`, broadcast against A's batch), the
/// reference way: integer products accumulated in i32, scaled by
/// `a_scale * b_scale / y_scale` (computed in the scales' dtype, as onnx's reference
/// does), rounded half to even and saturated. Per-tensor quantization only.
fn qlinear_batched(inputs: &[Option<TensorRef>], out: &mut TensorMut) -> Result<()> {
    let op = "QLinearMatMul";
    let (a, b) = (required(inputs, 0, op)?, required(inputs, 3, op)?);
    let (batch, m, k, n, _) = super::matmul::matmul_shapes(a.shape, b.shape)?;
    let zero = |i: usize| inputs.get(i).copied().flatten().map(|z| scalar_i32(z, op)).transpose().map(|z| z.unwrap_or(0));
    let (za, zb, zy) = (zero(2)?, zero(5)?, zero(7)?);
    let scale_t = required(inputs, 1, op)?;
    let (sa, sb, sy) = (scalar_f32(scale_t, op)?, scalar_f32(required(inputs, 4, op)?, op)?, scalar_f32(required(inputs, 6, op)?, op)?);
    let in_dtype = |v: f32| match scale_t.dtype() {
        DType::F16 => half::f16::from_f32(v).to_f32(),
        DType::BF16 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    };
    let multiplier = in_dtype(in_dtype(sa * sb) / sy) as f64;
    let ints = |t: TensorRef| -> Result<Vec<i32>> {
        Ok(match q8(t, op)? {
            cairn_kernels::qgemm::Q8::U8(v) => v.iter().map(|&x| x as i32).collect(),
            cairn_kernels::qgemm::Q8::I8(v) => v.iter().map(|&x| x as i32).collect(),
        })
    };
    let (av, bv) = (ints(a)?, ints(b)?);
    let a_batch = &a.shape[..a.rank().saturating_sub(2)];
    let b_batch = &b.shape[..b.rank() - 2];
    let (stride_a, stride_b) = (super::broadcast::broadcast_strides(a_batch, &batch), super::broadcast::broadcast_strides(b_batch, &batch));
    let mut acc = vec![0f64; batch.iter().product::<usize>() * m * n];
    super::broadcast::for_each_offset(&batch, [&stride_a, &stride_b], |i, [ia, ib]| {
        let (a, b) = (&av[ia * m * k..][..m * k], &bv[ib * k * n..][..k * n]);
        for r in 0..m {
            for c in 0..n {
                let dot: i32 = (0..k).map(|t| (a[r * k + t] - za) * (b[t * n + c] - zb)).sum();
                acc[(i * m + r) * n + c] = (dot as f64 * multiplier + zy as f64).round_ties_even();
            }
        }
    });
    match &mut out.data {
        crate::DataMut::U8(y) => y.iter_mut().zip(&acc).for_each(|(y, &v)| *y = v.clamp(0.0, 255.0) as u8),
        crate::DataMut::I8(y) => y.iter_mut().zip(&acc).for_each(|(y, &v)| *y = v.clamp(-128.0, 127.0) as i8),
        other => bail_shape!(op, "writes u8 or i8, got {}", other.dtype()),
    }
    Ok(())
}
