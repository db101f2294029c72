//! Signal processing: DFT (opsets 17 and 20, forward, inverse, one-sided and its inverse),
//! STFT (17), MelWeightMatrix (17) and the Hann, Hamming and Blackman windows (17).
//!
//! Transforms run through `rustfft` (mixed-radix and Bluestein, so any length is
//! O(n log n)) in f64, the precision numpy's reference computes in, and are rounded to the
//! tensor's dtype once. Complex values are ONNX's `[..., 2]` (real, imaginary) pairs;
//! a real signal is `[..., 1]`.

use crate::{bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, Tensor, TensorData, TensorMut, TensorRef};
use half::f16;
use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;
use std::f64::consts::PI;
use std::sync::Arc;

pub fn register(r: &mut Registry) {
    r.register("DFT", |ctx| {
        Ok(Box::new(Dft {
            inverse: ctx.int("inverse", 0)? != 0,
            onesided: ctx.int("onesided", 0)? != 0,
            // Opset 17 takes the axis as an attribute; 20 as input 2.
            axis_attr: if ctx.opset < 20 { Some(ctx.int("axis", 1)?) } else { None },
        }))
    });
    r.register("STFT", |ctx| Ok(Box::new(Stft { onesided: ctx.int("onesided", 1)? != 0 })));
    r.register("MelWeightMatrix", |ctx| Ok(Box::new(MelWeightMatrix { dtype: output_dtype(ctx)? })));
    r.register("HannWindow", |ctx| window_op(ctx, Window::Hann));
    r.register("HammingWindow", |ctx| window_op(ctx, Window::Hamming));
    r.register("BlackmanWindow", |ctx| window_op(ctx, Window::Blackman));
}

/// The `output_datatype` attribute (ONNX TensorProto codes), default float.
fn output_dtype(ctx: &OpContext) -> Result<DType> {
    match ctx.int("output_datatype", 1)? {
        1 => Ok(DType::F32),
        10 => Ok(DType::F16),
        2 => Ok(DType::U8),
        3 => Ok(DType::I8),
        6 => Ok(DType::I32),
        7 => Ok(DType::I64),
        other => Err(ctx.unsupported("output_datatype", format!("TensorProto type {other} is not a dtype Cairn computes"))),
    }
}

/// A tensor of `dtype` from f64 values (rounded, or truncated toward zero for integers).
fn tensor_of(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Result<Tensor> {
    let data = match dtype {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F16 => TensorData::F16(v.iter().map(|&x| f16::from_f64(x)).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I64 => TensorData::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        DType::F64 => TensorData::F64(v.to_vec()),
        DType::BF16 => TensorData::BF16(v.iter().map(|&x| half::bf16::from_f64(x)).collect()),
        DType::I16 => TensorData::I16(v.iter().map(|&x| x as i16).collect()),
        DType::U16 => TensorData::U16(v.iter().map(|&x| x as u16).collect()),
        DType::U32 => TensorData::U32(v.iter().map(|&x| x as u32).collect()),
        DType::U64 => TensorData::U64(v.iter().map(|&x| x as u64).collect()),
        DType::Bool => return Err(Error::shape("signal", "bool output is not supported")),
    };
    Tensor::new(shape, data)
}

/// Reads a float tensor as f64.
fn f64_values(t: &TensorRef, op: &str) -> Result<Vec<f64>> {
    match t.data {
        crate::DataRef::F32(v) => Ok(v.iter().map(|&x| x as f64).collect()),
        crate::DataRef::F16(v) => Ok(v.iter().map(|x| x.to_f64()).collect()),
        other => Err(Error::shape(op, format!("expects f32 or f16 tensors, got {}", other.dtype()))),
    }
}

/// Writes f64 values into a float output.
fn write_f64(out: &mut TensorMut, v: &[f64], op: &str) -> Result<()> {
    match &mut out.data {
        crate::DataMut::F32(o) => o.iter_mut().zip(v).for_each(|(o, &x)| *o = x as f32),
        crate::DataMut::F16(o) => o.iter_mut().zip(v).for_each(|(o, &x)| *o = f16::from_f64(x)),
        other => bail_shape!(op, "writes f32 or f16, got {}", other.dtype()),
    }
    Ok(())
}

/// A scalar (or one-element) integer input whose value shape inference must know.
fn known_scalar(f: &Fact, op: &str, name: &str) -> Result<i64> {
    match f.known_i64s().as_deref() {
        Some([v]) => Ok(*v),
        Some(v) => Err(Error::shape(op, format!("{name} must be a scalar, got {} values", v.len()))),
        None => Err(Error::shape(op, format!("{name} must be a constant (Cairn plans shapes before running)"))),
    }
}

fn scalar_of(t: &TensorRef, op: &str, name: &str) -> Result<i64> {
    match t.to_i64_vec()?.as_slice() {
        [v] => Ok(*v),
        v => Err(Error::shape(op, format!("{name} must be a scalar, got {} values", v.len()))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Window {
    Hann,
    Hamming,
    Blackman,
}

fn window_op(ctx: &OpContext, kind: Window) -> Result<Box<dyn Op>> {
    Ok(Box::new(WindowOp { kind, periodic: ctx.int("periodic", 1)? != 0, dtype: output_dtype(ctx)? }))
}

#[derive(Debug)]
struct WindowOp {
    kind: Window,
    periodic: bool,
    dtype: DType,
}

impl WindowOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Window::Hann => "HannWindow",
            Window::Hamming => "HammingWindow",
            Window::Blackman => "BlackmanWindow",
        }
    }

    fn values(&self, size: usize) -> Vec<f64> {
        // A periodic window is the first `size` points of a symmetric one of `size + 1`.
        let n = if self.periodic { size } else { size.saturating_sub(1) }.max(1) as f64;
        (0..size)
            .map(|i| {
                let x = 2.0 * PI * i as f64 / n;
                match self.kind {
                    Window::Hann => 0.5 - 0.5 * x.cos(),
                    Window::Hamming => 25.0 / 46.0 - 21.0 / 46.0 * x.cos(),
                    Window::Blackman => 0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos(),
                }
            })
            .collect()
    }

    fn size(&self, v: i64) -> Result<usize> {
        usize::try_from(v).ok().filter(|&s| s <= 1 << 26).ok_or_else(|| Error::shape(self.name(), format!("size {v} must be in 0..=2^26")))
    }
}

impl Op for WindowOp {
    fn op_type(&self) -> &str {
        self.name()
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let size = self.size(known_scalar(required(inputs, 0, self.name())?, self.name(), "size")?)?;
        let t = tensor_of(self.dtype, vec![size], &self.values(size))?;
        Ok(vec![Fact::from_tensor(Arc::new(t))])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let size = self.size(scalar_of(&required(inputs, 0, self.name())?, self.name(), "size")?)?;
        let t = tensor_of(self.dtype, vec![size], &self.values(size))?;
        outputs[0].data.copy_from(t.view().data)
    }
}

#[derive(Debug)]
struct MelWeightMatrix {
    dtype: DType,
}

impl MelWeightMatrix {
    /// onnx's reference: `num_mel_bins` triangles between mel-spaced points, snapped to bins.
    fn compute(&self, mel_bins: i64, dft_length: i64, sample_rate: i64, lower: f64, upper: f64) -> Result<Tensor> {
        const OP: &str = "MelWeightMatrix";
        if !(1..=1 << 16).contains(&mel_bins) || !(1..=1 << 24).contains(&dft_length) || sample_rate <= 0 {
            bail_shape!(OP, "num_mel_bins {mel_bins}, dft_length {dft_length} and sample_rate {sample_rate} must be positive (and sane)");
        }
        let (bins, spectrum) = (mel_bins as usize, dft_length as usize / 2 + 1);
        let mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / 10f64.ln();
        let (lo, hi) = (mel(lower), mel(upper));
        let step = (hi - lo) / (bins + 2) as f64;
        let points: Vec<i64> = (0..bins + 2)
            .map(|i| {
                let hz = 700.0 * ((i as f64 * step + lo) / 2595.0 * 10f64.ln()).exp_m1();
                ((dft_length + 1) as f64 * hz / sample_rate as f64).floor() as i64
            })
            .collect();
        let mut out = vec![0.0f64; spectrum * bins];
        let mut set = |j: i64, i: usize, v: f64| -> Result<()> {
            match usize::try_from(j).ok().filter(|&j| j < spectrum) {
                Some(j) => {
                    out[j * bins + i] = v;
                    Ok(())
                }
                None => Err(Error::shape(OP, format!("edge frequencies put mel bin {i} at spectrum bin {j}, outside 0..{spectrum}"))),
            }
        };
        for i in 0..bins {
            let (left, center, right) = (points[i], points[i + 1], points[i + 2]);
            if center == left {
                set(center, i, 1.0)?;
            } else {
                for j in left..=center {
                    set(j, i, (j - left) as f64 / (center - left) as f64)?;
                }
            }
            for j in center..right {
                set(j, i, (right - j) as f64 / (right - center) as f64)?;
            }
        }
        tensor_of(self.dtype, vec![spectrum, bins], &out)
    }

    fn args(values: [Vec<f64>; 5]) -> Result<(i64, i64, i64, f64, f64)> {
        let one = |v: &Vec<f64>, name: &str| -> Result<f64> {
            match v.as_slice() {
                [x] => Ok(*x),
                _ => Err(Error::shape("MelWeightMatrix", format!("{name} must be a scalar"))),
            }
        };
        Ok((
            one(&values[0], "num_mel_bins")? as i64,
            one(&values[1], "dft_length")? as i64,
            one(&values[2], "sample_rate")? as i64,
            one(&values[3], "lower_edge_hertz")?,
            one(&values[4], "upper_edge_hertz")?,
        ))
    }
}

impl Op for MelWeightMatrix {
    fn op_type(&self) -> &str {
        "MelWeightMatrix"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let mut values: [Vec<f64>; 5] = Default::default();
        for (i, v) in values.iter_mut().enumerate() {
            let f = required(inputs, i, "MelWeightMatrix")?;
            let t = f
                .value
                .as_ref()
                .ok_or_else(|| Error::shape("MelWeightMatrix", "inputs must be constants (they decide the output shape)"))?;
            *v = t.view().to_f32_vec().into_iter().map(f64::from).collect();
        }
        let (m, d, s, lo, hi) = Self::args(values)?;
        Ok(vec![Fact::from_tensor(Arc::new(self.compute(m, d, s, lo, hi)?))])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let mut values: [Vec<f64>; 5] = Default::default();
        for (i, v) in values.iter_mut().enumerate() {
            *v = required(inputs, i, "MelWeightMatrix")?.to_f32_vec().into_iter().map(f64::from).collect();
        }
        let (m, d, s, lo, hi) = Self::args(values)?;
        outputs[0].data.copy_from(self.compute(m, d, s, lo, hi)?.view().data)
    }
}

#[derive(Debug)]
struct Dft {
    inverse: bool,
    onesided: bool,
    axis_attr: Option<i64>,
}

/// The resolved transform: the input viewed as `[outer, len, inner, channels]`.
#[derive(Clone, Copy, Debug)]
struct DftPlan {
    outer: usize,
    len: usize,
    inner: usize,
    channels: usize,
    axis: usize,
    n: usize,
    out_len: usize,
    out_channels: usize,
}

impl Dft {
    fn plan(&self, x: &[usize], dft_length: Option<i64>, axis: Option<i64>) -> Result<DftPlan> {
        const OP: &str = "DFT";
        let rank = x.len();
        if rank < 2 || !matches!(x[rank - 1], 1 | 2) {
            bail_shape!(OP, "input {x:?} must end in a dimension of 1 (real) or 2 (complex)");
        }
        let axis = axis.or(self.axis_attr).unwrap_or(-2);
        let a = axis.rem_euclid(rank as i64) as usize;
        if a == rank - 1 || axis < -(rank as i64) || axis >= rank as i64 {
            bail_shape!(OP, "axis {axis} must name a signal dimension of {x:?}, not the last (real/imaginary) one");
        }
        let len = x[a];
        let n = match dft_length {
            Some(v) if v > 0 && v <= 1 << 26 => v as usize,
            Some(v) => bail_shape!(OP, "dft_length {v} must be positive"),
            None if self.inverse && self.onesided => 2 * len.saturating_sub(1),
            None => len,
        };
        if n == 0 {
            bail_shape!(OP, "the transform length is 0");
        }
        let (out_len, out_channels) = match (self.inverse, self.onesided) {
            (false, true) => (n / 2 + 1, 2),
            (true, true) => (n, 1),
            _ => (n, 2),
        };
        Ok(DftPlan {
            outer: x[..a].iter().product(),
            len,
            inner: x[a + 1..rank - 1].iter().product(),
            channels: x[rank - 1],
            axis: a,
            n,
            out_len,
            out_channels,
        })
    }
}

impl Op for Dft {
    fn op_type(&self) -> &str {
        "DFT"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "DFT")?;
        super::float_io::check_float(x.dtype, "DFT")?;
        let len = inputs.get(1).copied().flatten().map(|f| known_scalar(f, "DFT", "dft_length")).transpose()?;
        let axis = inputs.get(2).copied().flatten().map(|f| known_scalar(f, "DFT", "axis")).transpose()?;
        let p = self.plan(&x.shape, len, axis)?;
        let mut shape = x.shape.clone();
        shape[p.axis] = p.out_len;
        *shape.last_mut().unwrap() = p.out_channels;
        Ok(vec![Fact::new(x.dtype, shape)])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "DFT")?;
        let len = inputs.get(1).copied().flatten().map(|t| scalar_of(&t, "DFT", "dft_length")).transpose()?;
        let axis = inputs.get(2).copied().flatten().map(|t| scalar_of(&t, "DFT", "axis")).transpose()?;
        let p = self.plan(x.shape, len, axis)?;
        let xs = f64_values(&x, "DFT")?;
        let mut out = vec![0.0f64; p.outer * p.out_len * p.inner * p.out_channels];
        let fft = if self.inverse { FftPlanner::new().plan_fft_inverse(p.n) } else { FftPlanner::new().plan_fft_forward(p.n) };
        let mut buf = vec![Complex64::default(); p.n];
        for o in 0..p.outer {
            for i in 0..p.inner {
                buf.iter_mut().for_each(|c| *c = Complex64::default());
                let at = |k: usize, ch: usize| xs[((o * p.len + k) * p.inner + i) * p.channels + ch];
                let complex = |k: usize| Complex64::new(at(k, 0), if p.channels == 2 { at(k, 1) } else { 0.0 });
                if self.inverse && self.onesided {
                    // One-sided spectrum: complete it by conjugate symmetry.
                    let half = p.n / 2 + 1;
                    for (k, c) in buf.iter_mut().enumerate() {
                        let src = if k < half { k } else { p.n - k };
                        if src < p.len {
                            *c = if k < half { complex(src) } else { complex(src).conj() };
                        }
                    }
                } else {
                    for (k, c) in buf.iter_mut().enumerate().take(p.len) {
                        *c = complex(k);
                    }
                }
                fft.process(&mut buf);
                let scale = if self.inverse { 1.0 / p.n as f64 } else { 1.0 };
                for (k, v) in buf.iter().enumerate().take(p.out_len) {
                    let dst = ((o * p.out_len + k) * p.inner + i) * p.out_channels;
                    out[dst] = v.re * scale;
                    if p.out_channels == 2 {
                        out[dst + 1] = v.im * scale;
                    }
                }
            }
        }
        write_f64(&mut outputs[0], &out, "DFT")
    }
}

#[derive(Debug)]
struct Stft {
    onesided: bool,
}

/// STFT sizes: `[batch, frames, bins, 2]` from a `[batch, len, 1|2]` signal.
#[derive(Clone, Copy, Debug)]
struct StftPlan {
    batch: usize,
    len: usize,
    channels: usize,
    step: usize,
    frame_length: usize,
    window_len: usize,
    frames: usize,
    bins: usize,
}

impl Stft {
    fn plan(&self, x: &[usize], step: i64, window: Option<&[usize]>, frame_length: Option<i64>) -> Result<StftPlan> {
        const OP: &str = "STFT";
        if x.len() != 3 || !matches!(x[2], 1 | 2) {
            bail_shape!(OP, "signal {x:?} must be [batch, length, 1 or 2]");
        }
        if window.is_some_and(|w| w.len() != 1) {
            bail_shape!(OP, "window must be 1-D, got {window:?}");
        }
        let step =
            usize::try_from(step).ok().filter(|&s| s > 0).ok_or_else(|| Error::shape(OP, format!("frame_step {step} must be positive")))?;
        let frame_length = match frame_length {
            Some(v) => usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v <= 1 << 24)
                .ok_or_else(|| Error::shape(OP, format!("frame_length {v} must be positive")))?,
            None => window.map_or(x[1], |w| w[0]),
        };
        let window_len = window.map_or(frame_length, |w| w[0]);
        if frame_length > x[1] || window_len == 0 {
            bail_shape!(OP, "frame_length {frame_length} exceeds the signal length {}", x[1]);
        }
        let frames = 1 + (x[1] - frame_length) / step;
        let bins = if self.onesided { frame_length / 2 + 1 } else { frame_length };
        Ok(StftPlan { batch: x[0], len: x[1], channels: x[2], step, frame_length, window_len, frames, bins })
    }
}

impl Op for Stft {
    fn op_type(&self) -> &str {
        "STFT"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "STFT")?;
        super::float_io::check_float(x.dtype, "STFT")?;
        let step = known_scalar(required(inputs, 1, "STFT")?, "STFT", "frame_step")?;
        let window = inputs.get(2).copied().flatten().map(|f| f.shape.as_slice());
        let fl = inputs.get(3).copied().flatten().map(|f| known_scalar(f, "STFT", "frame_length")).transpose()?;
        let p = self.plan(&x.shape, step, window, fl)?;
        Ok(vec![Fact::new(x.dtype, vec![p.batch, p.frames, p.bins, 2])])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "STFT")?;
        let step = scalar_of(&required(inputs, 1, "STFT")?, "STFT", "frame_step")?;
        let window = inputs.get(2).copied().flatten();
        let fl = inputs.get(3).copied().flatten().map(|t| scalar_of(&t, "STFT", "frame_length")).transpose()?;
        let p = self.plan(x.shape, step, window.map(|w| w.shape), fl)?;
        let w = window.map(|w| f64_values(&w, "STFT")).transpose()?;
        let xs = f64_values(&x, "STFT")?;
        let fft = FftPlanner::new().plan_fft_forward(p.frame_length);
        let mut buf = vec![Complex64::default(); p.frame_length];
        let mut out = vec![0.0f64; p.batch * p.frames * p.bins * 2];
        for b in 0..p.batch {
            for f in 0..p.frames {
                buf.iter_mut().for_each(|c| *c = Complex64::default());
                // A frame is `window_len` samples (zero past the signal's end), weighted,
                // then cut or zero-padded to the transform length.
                for (k, c) in buf.iter_mut().enumerate().take(p.window_len) {
                    let t = f * p.step + k;
                    if t >= p.len {
                        break;
                    }
                    let at = (b * p.len + t) * p.channels;
                    let weight = w.as_ref().map_or(1.0, |w| w[k]);
                    *c = Complex64::new(xs[at], if p.channels == 2 { xs[at + 1] } else { 0.0 }) * weight;
                }
                fft.process(&mut buf);
                for (k, v) in buf.iter().enumerate().take(p.bins) {
                    let dst = ((b * p.frames + f) * p.bins + k) * 2;
                    out[dst] = v.re;
                    out[dst + 1] = v.im;
                }
            }
        }
        write_f64(&mut outputs[0], &out, "STFT")
    }
}
