//! QuantizeLinear and DequantizeLinear (per tensor and per axis, i8/u8).

use crate::{bail_shape, normalize_axis, required, DType, DataMut, DataRef, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::qconvert::{self, Q8Range};

pub fn register(r: &mut Registry) {
    r.register("QuantizeLinear", |ctx| build(ctx, true));
    r.register("DequantizeLinear", |ctx| build(ctx, false));
    r.register("DynamicQuantizeLinear", |_| Ok(Box::new(DynamicQuantizeLinear)));
}

/// `y, y_scale, y_zero_point = DynamicQuantizeLinear(x)`: u8, from the range of `x`
/// widened to include 0 (ONNX spec). NaNs are ignored for the range and map to the zero
/// point; an all-zero input gets scale 1 (the spec would divide by zero).
#[derive(Debug)]
struct DynamicQuantizeLinear;

impl Op for DynamicQuantizeLinear {
    fn op_type(&self) -> &str {
        "DynamicQuantizeLinear"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        if x.dtype != DType::F32 {
            bail_shape!(self.op_type(), "expects f32, got {}", x.dtype);
        }
        Ok(vec![Fact::new(DType::U8, x.shape.clone()), Fact::new(DType::F32, vec![]), Fact::new(DType::U8, vec![])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?.f32s()?;
        let (lo, hi) = qconvert::finite_range(x);
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero = cairn_kernels::qgemm::round_half_even((-lo / scale).clamp(0.0, 255.0)) as i32;
        let (y, rest) = outputs.split_at_mut(1);
        // Divides, as the spec does (a multiply by 1/scale rounds some ties the other way);
        // NaN maps to the zero point.
        qconvert::quantize(x, scale, zero, Q8Range::U8, y[0].u8s_mut()?);
        rest[0].f32s_mut()?[0] = scale;
        rest[1].u8s_mut()?[0] = zero as u8;
        Ok(())
    }
}

fn build(ctx: &OpContext, quantize: bool) -> Result<Box<dyn Op>> {
    let block = ctx.int("block_size", 0)?;
    if block < 0 {
        return Err(ctx.unsupported("block_size", format!("{block} is negative")));
    }
    let output_dtype = match ctx.int("output_dtype", 0)? {
        0 => None,
        code => Some(super::cast::onnx_dtype(code).ok_or_else(|| ctx.unsupported("output_dtype", format!("type {code}")))?),
    };
    if ctx.int("precision", 0)? != 0 {
        return Err(ctx.unsupported("precision", "a computation precision other than the inputs' is not implemented"));
    }
    Ok(Box::new(Linear {
        quantize,
        axis: ctx.int("axis", 1)?,
        block: block as usize,
        saturate: ctx.int("saturate", 1)? != 0,
        output_dtype,
    }))
}

#[derive(Debug)]
struct Linear {
    quantize: bool,
    axis: i64,
    /// Elements per scale along `axis` (blocked quantization); 0 = per tensor or per axis.
    block: usize,
    /// Float8 targets: clamp out-of-range values to the largest finite one.
    saturate: bool,
    output_dtype: Option<DType>,
}

/// The integer types QuantizeLinear rounds and clamps into.
fn int_range(dtype: DType) -> Option<(f64, f64)> {
    let r = match dtype {
        DType::U8 => (0, 255),
        DType::I8 => (-128, 127),
        DType::U16 => (0, 65535),
        DType::I16 => (-32768, 32767),
        narrow => crate::narrow::int_range(narrow)?,
    };
    Some((r.0 as f64, r.1 as f64))
}

impl Linear {
    /// (outer, channels, inner) of the quantization axis; channels = 1 per tensor.
    fn layout(&self, shape: &[usize], params: usize) -> Result<(usize, usize, usize)> {
        if params <= 1 {
            return Ok((1, 1, shape.iter().product()));
        }
        let axis = normalize_axis(self.axis, shape.len(), self.op_type())?;
        if shape[axis] != params {
            bail_shape!(self.op_type(), "scale has {params} values but axis {axis} of {shape:?} has {}", shape[axis]);
        }
        Ok((shape[..axis].iter().product(), params, shape[axis + 1..].iter().product()))
    }

    /// For every element of `x`, the index of its scale (and zero point): per tensor, per
    /// axis, or per block of `block` elements along the axis (the scale then has x's rank).
    fn scale_index(&self, shape: &[usize], scale_shape: &[usize]) -> Result<Vec<usize>> {
        let n: usize = shape.iter().product();
        let params: usize = scale_shape.iter().product();
        if self.block == 0 {
            let (_, ch, inner) = self.layout(shape, params)?;
            return Ok((0..n).map(|i| (i / inner.max(1)) % ch).collect());
        }
        let axis = normalize_axis(self.axis, shape.len(), self.op_type())?;
        let blocks = shape[axis].div_ceil(self.block);
        let mut expected = shape.to_vec();
        expected[axis] = blocks;
        if scale_shape != expected {
            bail_shape!(
                self.op_type(),
                "scale is {scale_shape:?}; blocks of {} along axis {axis} of {shape:?} need {expected:?}",
                self.block
            );
        }
        let inner: usize = shape[axis + 1..].iter().product();
        let len = shape[axis];
        Ok((0..n)
            .map(|i| {
                let (outer, a, k) = (i / (len * inner).max(1), (i / inner.max(1)) % len.max(1), i % inner.max(1));
                (outer * blocks + a / self.block) * inner + k
            })
            .collect())
    }

    /// Every dtype the spec allows, element by element (the reference path).
    fn run_reference(&self, x: TensorRef, scale: TensorRef, zp: Option<TensorRef>, out: &mut TensorMut) -> Result<()> {
        let index = self.scale_index(x.shape, scale.shape)?;
        let scales = scale.to_f64_vec();
        let zps = zp.map(|z| z.to_f64_vec()).unwrap_or_else(|| vec![0.0; scales.len()]);
        if zps.len() != scales.len() {
            bail_shape!(self.op_type(), "zero point ({}) and scale ({}) differ in length", zps.len(), scales.len());
        }
        let xs = x.to_f64_vec();
        if !self.quantize {
            let y: Vec<f64> = xs.iter().zip(&index).map(|(&v, &c)| (v - zps[c]) * scales[c]).collect();
            return super::cast::convert(DataRef::F64(&y), &mut out.data);
        }
        let dtype = out.dtype();
        // x / scale in x's precision (f32 unless x is f64), as the reference divides.
        let scaled =
            |i: usize| if x.dtype() == DType::F64 { xs[i] / scales[index[i]] } else { (xs[i] as f32 / scales[index[i]] as f32) as f64 };
        if let Some((lo, hi)) = int_range(dtype) {
            let y: Vec<f64> = (0..xs.len()).map(|i| (scaled(i).round_ties_even() + zps[index[i]]).clamp(lo, hi)).collect();
            return match &mut out.data {
                DataMut::Narrow(d, bytes) => {
                    bytes.iter_mut().zip(&y).for_each(|(b, &v)| *b = crate::narrow::store_int(*d, v as i64));
                    Ok(())
                }
                other => super::cast::convert(DataRef::F64(&y), other),
            };
        }
        let DataMut::Narrow(to, bytes) = &mut out.data else { bail_shape!(self.op_type(), "cannot quantize to {dtype}") };
        // Float8 / float4 targets: no rounding to integers; the zero point (float4 only) is added.
        let float4 = *to == DType::F4E2M1;
        for (i, b) in bytes.iter_mut().enumerate() {
            let v = scaled(i) + if float4 { zps[index[i]] } else { 0.0 };
            *b = crate::narrow::encode_float(*to, v, self.saturate || float4, crate::narrow::RoundMode::Up);
        }
        Ok(())
    }
}

impl Op for Linear {
    fn op_type(&self) -> &str {
        if self.quantize {
            "QuantizeLinear"
        } else {
            "DequantizeLinear"
        }
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        let scale = required(inputs, 1, self.op_type())?;
        let zp = inputs.get(2).copied().flatten();
        let dtype = if self.quantize {
            zp.map(|z| z.dtype).or(self.output_dtype).unwrap_or(DType::U8)
        } else {
            self.output_dtype.unwrap_or(scale.dtype)
        };
        if self.quantize && int_range(dtype).is_none() && !dtype.is_narrow() {
            bail_shape!(self.op_type(), "quantizes to 8/16-bit integers, float8, float4 or 2/4-bit integers, not {dtype}");
        }
        if !self.quantize && !dtype.is_float() {
            bail_shape!(self.op_type(), "dequantizes to a float dtype, not {dtype}");
        }
        Ok(vec![Fact::new(dtype, x.shape.clone())])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let scale_t = required(inputs, 1, self.op_type())?;
        let zp_t = inputs.get(2).copied().flatten();
        // The vectorized kernels cover f32 <-> i8/u8 per tensor or per axis; everything else
        // (16-bit, narrow types, f16/f64 scales, blocks) takes the reference path.
        let fast_q = |d: DType| matches!(d, DType::I8 | DType::U8);
        let fast = self.block == 0
            && scale_t.dtype() == DType::F32
            && if self.quantize {
                x.dtype() == DType::F32 && fast_q(outputs[0].dtype())
            } else {
                outputs[0].dtype() == DType::F32 && (fast_q(x.dtype()) || x.dtype() == DType::I32)
            };
        if !fast {
            return self.run_reference(x, scale_t, zp_t, &mut outputs[0]);
        }
        let scale = scale_t.to_f32_vec();
        let zp: Vec<f32> = zp_t.map(|z| z.to_f32_vec()).unwrap_or_else(|| vec![0.0; scale.len()]);
        if zp.len() != scale.len() {
            bail_shape!(self.op_type(), "zero point and scale differ in length");
        }
        let (outer, ch, inner) = self.layout(x.shape, scale.len())?;
        let at = |i: usize| (i / inner) % ch;
        if self.quantize && ch == 1 {
            // Per tensor (every activation): one vectorized pass.
            let (xs, s, z) = (x.f32s()?, scale[0], zp[0] as i32);
            match &mut outputs[0].data {
                DataMut::U8(d) => qconvert::quantize(xs, s, z, Q8Range::U8, d),
                // SAFETY: same size and alignment; the bytes are i8's two's complement.
                DataMut::I8(d) => {
                    qconvert::quantize(xs, s, z, Q8Range::I8, unsafe { std::slice::from_raw_parts_mut(d.as_mut_ptr() as *mut u8, d.len()) })
                }
                _ => bail_shape!(self.op_type(), "unsupported output dtype"),
            }
        } else if self.quantize {
            let xs = x.f32s()?;
            let q = |i: usize, lo: f32, hi: f32| ((xs[i] / scale[at(i)]).round_ties_even() + zp[at(i)]).clamp(lo, hi);
            match &mut outputs[0].data {
                DataMut::U8(d) => d.iter_mut().enumerate().for_each(|(i, d)| *d = q(i, 0.0, 255.0) as u8),
                DataMut::I8(d) => d.iter_mut().enumerate().for_each(|(i, d)| *d = q(i, -128.0, 127.0) as i8),
                _ => bail_shape!(self.op_type(), "unsupported output dtype"),
            }
        } else {
            let y = outputs[0].f32s_mut()?;
            let bytes = match x.data {
                DataRef::U8(v) => Some((v, Q8Range::U8)),
                // SAFETY: same size and alignment.
                DataRef::I8(v) => Some((unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len()) }, Q8Range::I8)),
                DataRef::I32(_) => None,
                other => bail_shape!("DequantizeLinear", "input must be i8, u8 or i32, got {}", other.dtype()),
            };
            match bytes {
                // One block of `inner` values per (outer, channel): a vectorized pass each.
                Some((v, range)) => {
                    for ((xb, yb), i) in v.chunks(inner.max(1)).zip(y.chunks_mut(inner.max(1))).zip(0..) {
                        let c = i % ch;
                        qconvert::dequantize(xb, range, zp[c] as i32, scale[c], yb);
                    }
                }
                None => {
                    for (i, (o, v)) in y.iter_mut().zip(x.to_f32_vec()).enumerate() {
                        *o = (v - zp[at(i)]) * scale[at(i)];
                    }
                }
            }
        }
        let _ = outer;
        Ok(())
    }
}
