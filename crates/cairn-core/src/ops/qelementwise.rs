//! onnxruntime's quantized elementwise ops, as its QOperator format writes them:
//! `com.microsoft.QLinearAdd` (residual adds; also what the `qdq` pass makes of
//! `DequantizeLinear x2 -> Add -> QuantizeLinear`) and `QLinearGlobalAveragePool`.

use super::broadcast::{broadcast_shapes, map2};
use super::qparams::{scalar_f32, scalar_i32};
use crate::{bail_shape, required, DType, DataMut, DataRef, Fact, Op, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::qgemm::quantize;

pub const MS_DOMAIN: &str = "com.microsoft";

pub fn register(r: &mut Registry) {
    r.register_in(MS_DOMAIN, "QLinearAdd", |_| Ok(Box::new(QLinearAdd)));
    r.register_in(MS_DOMAIN, "QLinearGlobalAveragePool", |ctx| {
        if ctx.int("channels_last", 0)? != 0 {
            return Err(ctx.unsupported("channels_last", "only NCHW is implemented"));
        }
        Ok(Box::new(QLinearGlobalAveragePool))
    });
}

/// Real values of an 8-bit tensor.
fn dequantized(x: TensorRef, scale: f32, zero: i32, op: &str) -> Result<Vec<f32>> {
    Ok(match x.data {
        DataRef::U8(v) => v.iter().map(|&q| (q as i32 - zero) as f32 * scale).collect(),
        DataRef::I8(v) => v.iter().map(|&q| (q as i32 - zero) as f32 * scale).collect(),
        other => bail_shape!(op, "expects u8 or i8, got {}", other.dtype()),
    })
}

/// Quantizes real values into an 8-bit output.
fn store(out: &mut TensorMut, real: impl Iterator<Item = f32>, scale: f32, zero: i32, op: &str) -> Result<()> {
    let inv = 1.0 / scale;
    match &mut out.data {
        DataMut::U8(o) => o.iter_mut().zip(real).for_each(|(o, v)| *o = quantize(v, inv, zero, 0, 255) as u8),
        DataMut::I8(o) => o.iter_mut().zip(real).for_each(|(o, v)| *o = quantize(v, inv, zero, -128, 127) as i8),
        other => bail_shape!(op, "writes u8 or i8, not {}", other.dtype()),
    }
    Ok(())
}

fn check_8bit(f: &Fact, op: &str) -> Result<()> {
    if !matches!(f.dtype, DType::U8 | DType::I8) {
        bail_shape!(op, "expects u8 or i8, got {}", f.dtype);
    }
    Ok(())
}

/// `C = quantize(dequantize(A) + dequantize(B))`, with numpy broadcasting.
/// Inputs: A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp.
#[derive(Debug)]
pub(crate) struct QLinearAdd;

impl Op for QLinearAdd {
    fn op_type(&self) -> &str {
        "QLinearAdd"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (a, b) = (required(inputs, 0, "QLinearAdd")?, required(inputs, 3, "QLinearAdd")?);
        check_8bit(a, "QLinearAdd")?;
        check_8bit(b, "QLinearAdd")?;
        let dtype = inputs.get(7).copied().flatten().map_or(a.dtype, |z| z.dtype);
        Ok(vec![Fact::new(dtype, broadcast_shapes(&[&a.shape, &b.shape], "QLinearAdd")?)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = "QLinearAdd";
        let param = |i: usize| -> Result<(f32, i32)> {
            let zero = inputs.get(i + 1).copied().flatten().map(|z| scalar_i32(z, op)).transpose()?.unwrap_or(0);
            Ok((scalar_f32(required(inputs, i, op)?, op)?, zero))
        };
        let (a, b) = (required(inputs, 0, op)?, required(inputs, 3, op)?);
        let ((sa, za), (sb, zb), (sc, zc)) = (param(1)?, param(4)?, param(6)?);
        if a.shape == b.shape {
            if let (DataRef::U8(x), DataRef::U8(y), DataMut::U8(o)) = (a.data, b.data, &mut outputs[0].data) {
                // Residual adds of u8 activations: one vectorized pass, no temporaries.
                let inv = 1.0 / sc;
                let (ka, kb) = (sa * inv, sb * inv);
                let k0 = zc as f32 - za as f32 * ka - zb as f32 * kb;
                cairn_kernels::qconvert::add_u8(x, y, ka, kb, k0, o);
                return Ok(());
            }
        }
        let (ra, rb) = (dequantized(a, sa, za, op)?, dequantized(b, sb, zb, op)?);
        let shape = outputs[0].shape.to_vec();
        let mut sum = vec![0f32; outputs[0].len()];
        map2(&ra, a.shape, &rb, b.shape, &mut sum, &shape, |x, y| x + y);
        store(&mut outputs[0], sum.into_iter(), sc, zc, op)
    }
}

/// Mean over the spatial dims of NCHW, requantized. Inputs: X, x_scale, x_zp, y_scale, y_zp.
#[derive(Debug)]
struct QLinearGlobalAveragePool;

impl Op for QLinearGlobalAveragePool {
    fn op_type(&self) -> &str {
        "QLinearGlobalAveragePool"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        check_8bit(x, self.op_type())?;
        if x.rank() < 3 {
            bail_shape!(self.op_type(), "expects [N, C, spatial...], got {:?}", x.shape);
        }
        let mut shape = x.shape[..2].to_vec();
        shape.extend(std::iter::repeat_n(1, x.rank() - 2));
        let dtype = inputs.get(4).copied().flatten().map_or(x.dtype, |z| z.dtype);
        Ok(vec![Fact::new(dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.op_type();
        let x = required(inputs, 0, op)?;
        let zero = |i: usize| inputs.get(i).copied().flatten().map(|z| scalar_i32(z, op)).transpose().map(|z| z.unwrap_or(0));
        let (sx, zx) = (scalar_f32(required(inputs, 1, op)?, op)?, zero(2)?);
        let (sy, zy) = (scalar_f32(required(inputs, 3, op)?, op)?, zero(4)?);
        let planes = x.shape[0] * x.shape[1];
        let size: usize = x.shape[2..].iter().product();
        // Each plane's sum of stored values is exact in i64; the zero point and the scale are
        // applied once per plane, so the only rounding is the final quantization's.
        let sums: Vec<i64> = match x.data {
            DataRef::U8(v) => v.chunks(size.max(1)).take(planes).map(|p| p.iter().map(|&q| q as i64).sum()).collect(),
            DataRef::I8(v) => v.chunks(size.max(1)).take(planes).map(|p| p.iter().map(|&q| q as i64).sum()).collect(),
            other => bail_shape!(op, "expects u8 or i8, got {}", other.dtype()),
        };
        let k = sx as f64 / size.max(1) as f64;
        let means = sums.into_iter().map(|s| if size == 0 { 0.0 } else { ((s - zx as i64 * size as i64) as f64 * k) as f32 });
        store(&mut outputs[0], means, sy, zy, op)
    }
}
