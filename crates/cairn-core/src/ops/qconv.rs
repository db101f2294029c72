//! Quantized convolution: `QLinearConv`, `ConvInteger`, and the int8 convolution
//! the `qdq` pass builds from `DequantizeLinear -> Conv -> [Relu|Clip] -> QuantizeLinear`
//! (weights prepacked once, bias and activation fused into the requantization).
//!
//! Algorithms mirror the f32 Conv: depthwise planes go to the int8 depthwise kernel,
//! 1x1 stride-1 convolutions are one int8 GEMM per image and group with the input
//! planes as B, the rest im2col (padding with the zero point, i.e. real 0) + GEMM.

use super::conv::ConvAttrs;
use super::qparams::{q8, q8_out, scalar_f32, scalar_i32, Bias, QOutSpec};
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::qdepthwise::{qdepthwise_conv2d_packed, QDwFilters};
use cairn_kernels::qgemm::{qgemm, PackedQA, QEpilogue, QKernel, QRhs, Q8};
use cairn_kernels::Activation;

pub fn register(r: &mut Registry) {
    r.register("QLinearConv", |ctx| Ok(Box::new(QConv::standard(ctx, Form::QLinear)?)));
    r.register("ConvInteger", |ctx| Ok(Box::new(QConv::standard(ctx, Form::Integer)?)));
}

/// Which input list the node has.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, [B]
    QLinear,
    /// x, w, [x_zero_point], [w_zero_point]; output i32
    Integer,
    /// x, [x_scale], [x_zero_point]: everything else was baked in by a pass.
    Prepared,
}

/// Filters in the layout their kernel reads.
#[derive(Debug)]
enum Filters {
    /// `[C * kh * kw]` with the zero point subtracted, and the kernel's weight tuples.
    Depthwise(QDwFilters),
    /// One packed GEMM operand per group.
    Gemm(Vec<PackedQA>),
}

/// Weights, bias and output quantization: the constant part of a quantized conv.
#[derive(Debug)]
pub(crate) struct QConvWeights {
    w_shape: Vec<usize>,
    filters: Filters,
    /// One per output channel, or one for all.
    w_scale: Vec<f32>,
    bias: Option<Bias>,
    out: QOutSpec,
}

impl QConvWeights {
    /// Prepares 8-bit filters `w` (with per-tensor or per-output-channel zero points).
    pub(crate) fn new(
        attrs: &ConvAttrs,
        w: TensorRef,
        w_zero: Option<TensorRef>,
        w_scale: Vec<f32>,
        bias: Option<Bias>,
        out: QOutSpec,
    ) -> Result<QConvWeights> {
        let op = "QLinearConv";
        let ws = w.shape.to_vec();
        if ws.len() < 3 || ws[0] == 0 || !ws[0].is_multiple_of(attrs.group) {
            bail_shape!(op, "weights {ws:?} do not fit group {}", attrs.group);
        }
        let m = ws[0];
        let zero: Vec<i32> = match w_zero {
            Some(z) => z.to_f32_vec().iter().map(|&v| v as i32).collect(),
            None => vec![0],
        };
        if !(zero.len() == 1 || zero.len() == m) || !(w_scale.len() == 1 || w_scale.len() == m) {
            bail_shape!(op, "weight scale and zero point must have 1 or {m} values");
        }
        if let Some(b) = &bias {
            if b.len() != m {
                bail_shape!(op, "bias has {} values for {m} output channels", b.len());
            }
        }
        let data = q8(w, op)?;
        let per: usize = ws[1..].iter().product();
        let mg = m / attrs.group;
        let filters = if ws[1] == 1 && mg == 1 {
            let z = |c: usize| if zero.len() == 1 { zero[0] } else { zero[c] };
            // Window rows and columns as the geometry has them (1-D: one row).
            let kw = *ws.last().unwrap_or(&1);
            let taps = (0..m * per).map(|i| (data.at(i) - z(i / per)) as i16).collect();
            Filters::Depthwise(QDwFilters::new(taps, m, per / kw.max(1), kw))
        } else {
            let kernel = QKernel::current();
            Filters::Gemm(
                (0..attrs.group)
                    .map(|g| {
                        let z = if zero.len() == 1 { &zero[..] } else { &zero[g * mg..][..mg] };
                        let rows = match data {
                            Q8::U8(v) => Q8::U8(&v[g * mg * per..][..mg * per]),
                            Q8::I8(v) => Q8::I8(&v[g * mg * per..][..mg * per]),
                        };
                        PackedQA::new(kernel, rows, mg, per, per, 1, z)
                    })
                    .collect(),
            )
        };
        Ok(QConvWeights { w_shape: ws, filters, w_scale, bias, out })
    }

    fn bytes(&self) -> usize {
        match &self.filters {
            Filters::Depthwise(f) => f.bytes(),
            Filters::Gemm(p) => p.iter().map(PackedQA::bytes).sum(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct QConv {
    form: Form,
    attrs: ConvAttrs,
    prepared: Option<QConvWeights>,
    activation: Activation,
    fused: String,
}

impl QConv {
    fn standard(ctx: &OpContext, form: Form) -> Result<QConv> {
        Ok(QConv { form, attrs: ConvAttrs::read(ctx)?, prepared: None, activation: Activation::Identity, fused: String::new() })
    }

    /// The op a pass builds: inputs `[x, x_scale, x_zero_point]` (scale absent for
    /// an i32 output), weights and output quantization baked in.
    pub(crate) fn prepared(attrs: ConvAttrs, weights: QConvWeights, activation: Activation, fused: String) -> QConv {
        QConv { form: Form::Prepared, attrs, prepared: Some(weights), activation, fused }
    }

    /// Weights built from this node's own inputs (the standard forms, run unprepared).
    fn weights_from_inputs(&self, inputs: &[Option<TensorRef>]) -> Result<QConvWeights> {
        let op = self.op_type();
        let get = |i: usize| inputs.get(i).copied().flatten();
        match self.form {
            Form::QLinear => {
                let w = required(inputs, 3, op)?;
                let w_scale = required(inputs, 4, op)?.to_f32_vec();
                let y_zero = get(7);
                let dtype = y_zero.map_or(DType::U8, |z| z.dtype());
                let out = QOutSpec::Q {
                    dtype,
                    scale: scalar_f32(required(inputs, 6, op)?, op)?,
                    zero: y_zero.map(|z| scalar_i32(z, op)).transpose()?.unwrap_or(0),
                };
                let bias = get(8).map(|b| b.i32s().map(|v| Bias::Int(v.to_vec()))).transpose()?;
                QConvWeights::new(&self.attrs, w, get(5), w_scale, bias, out)
            }
            Form::Integer => QConvWeights::new(&self.attrs, required(inputs, 1, op)?, get(3), vec![1.0], None, QOutSpec::I32),
            Form::Prepared => unreachable!("prepared ops hold their weights"),
        }
    }

    /// (x_scale, x_zero_point) input positions.
    fn x_params(&self) -> (Option<usize>, usize) {
        match self.form {
            Form::QLinear => (Some(1), 2),
            Form::Integer => (None, 2),
            Form::Prepared => (Some(1), 2),
        }
    }
}

impl Op for QConv {
    fn op_type(&self) -> &str {
        match self.form {
            Form::Integer => "ConvInteger",
            _ => "QLinearConv",
        }
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let op = self.op_type();
        let x = required(inputs, 0, op)?;
        if !matches!(x.dtype, DType::U8 | DType::I8) {
            bail_shape!(op, "input must be u8 or i8, got {}", x.dtype);
        }
        let (w_shape, dtype) = match (&self.prepared, self.form) {
            (Some(p), _) => (p.w_shape.clone(), p.out.dtype()),
            (None, Form::QLinear) => {
                (required(inputs, 3, op)?.shape.clone(), inputs.get(7).copied().flatten().map_or(DType::U8, |z| z.dtype))
            }
            (None, _) => (required(inputs, 1, op)?.shape.clone(), DType::I32),
        };
        let g = self.attrs.geometry(&x.shape, &w_shape)?;
        let mut shape = vec![x.shape[0], w_shape[0]];
        shape.extend(g.out_spatial(x.rank() - 2));
        Ok(vec![Fact::new(dtype, shape)])
    }

    fn macs(&self, _inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        let per = self.prepared.as_ref().map_or(0, |p| p.w_shape[1..].iter().product::<usize>());
        (outputs[0].numel() * per) as u64
    }

    fn fused(&self) -> &str {
        &self.fused
    }

    fn built_by_pass(&self) -> bool {
        self.form == Form::Prepared
    }

    fn owned_parameters(&self) -> (usize, usize) {
        self.prepared.as_ref().map_or((0, 0), |p| (p.w_shape.iter().product(), p.bytes()))
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let op = self.op_type();
        let owned;
        let p = match &self.prepared {
            Some(p) => p,
            None => {
                owned = self.weights_from_inputs(inputs)?;
                &owned
            }
        };
        let (si, zi) = self.x_params();
        let x_scale = match si.and_then(|i| inputs.get(i).copied().flatten()) {
            Some(s) => scalar_f32(s, op)?,
            None => 1.0,
        };
        let x_zero = inputs.get(zi).copied().flatten().map(|z| scalar_i32(z, op)).transpose()?.unwrap_or(0);
        let x = required(inputs, 0, op)?;
        conv_q(&self.attrs, p, x, x_scale, x_zero, self.activation, &mut outputs[0], op)
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_q(
    attrs: &ConvAttrs,
    p: &QConvWeights,
    x: TensorRef,
    x_scale: f32,
    x_zero: i32,
    act: Activation,
    y: &mut TensorMut,
    op: &str,
) -> Result<()> {
    let g = attrs.geometry(x.shape, &p.w_shape)?;
    let (n, c, m, group) = (x.shape[0], x.shape[1], p.w_shape[0], attrs.group);
    let (cg, mg) = (c / group, m / group);
    let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
    if cg * ksz > cairn_kernels::qgemm::MAX_K {
        bail_shape!(op, "reduction of {} values per output is too long for i32 accumulation", cg * ksz);
    }
    let scale: Vec<f32> = p.w_scale.iter().map(|w| w * x_scale).collect();
    let (bias, acc_bias) = p.bias.as_ref().map_or((None, None), |b| b.parts());
    let (out_scale, out_zero) = p.out.scale_zero();
    let xd = q8(x, op)?;
    let pointwise = ksz == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.ih && g.ow == g.iw;
    // The im2col buffer is reused across calls, as the f32 Conv's (a fresh allocation per
    // call costs page faults on every run).
    thread_local! {
        static COL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut col = COL.with(|c| std::mem::take(&mut *c.borrow_mut()));
    for b in 0..n {
        let xb = slice_q8(xd, b * c * isz, c * isz);
        match &p.filters {
            Filters::Depthwise(w) => {
                let epi = QEpilogue { scale: &scale, bias, acc_bias, activation: act, out_scale, out_zero };
                qdepthwise_conv2d_packed(&g.kernel(), c, xb, x_zero, w, &epi, q8_out(&mut y.data, b * m * osz, m * osz, op)?);
            }
            Filters::Gemm(packed) => {
                for (grp, pa) in packed.iter().enumerate() {
                    let xg = slice_q8(xb, grp * cg * isz, cg * isz);
                    let pick = |len: usize| -> std::ops::Range<usize> {
                        if len == 1 {
                            0..1
                        } else {
                            grp * mg..(grp + 1) * mg
                        }
                    };
                    let epi = QEpilogue {
                        scale: &scale[pick(scale.len())],
                        bias: bias.map(|v| &v[pick(v.len())]),
                        acc_bias: acc_bias.map(|v| &v[pick(v.len())]),
                        activation: act,
                        out_scale,
                        out_zero,
                    };
                    let k = cg * ksz;
                    let rhs = if pointwise {
                        QRhs { data: xg, zero: x_zero, k_stride: isz, n_stride: 1 }
                    } else {
                        im2col_q8(xg, cg, &g, x_zero, &mut col);
                        let data = match xg {
                            Q8::U8(_) => Q8::U8(&col),
                            // SAFETY: same size and alignment; every bit pattern is a valid i8.
                            Q8::I8(_) => Q8::I8(unsafe { std::slice::from_raw_parts(col.as_ptr() as *const i8, col.len()) }),
                        };
                        QRhs { data, zero: x_zero, k_stride: osz, n_stride: 1 }
                    };
                    let out = q8_out(&mut y.data, (b * m + grp * mg) * osz, mg * osz, op)?;
                    qgemm(mg, osz, k, pa, rhs, out, osz, 1, &epi);
                }
            }
        }
    }
    COL.with(|c| *c.borrow_mut() = col);
    Ok(())
}

fn slice_q8(x: Q8, off: usize, len: usize) -> Q8 {
    match x {
        Q8::U8(v) => Q8::U8(&v[off..off + len]),
        Q8::I8(v) => Q8::I8(&v[off..off + len]),
    }
}

/// Unfolds `channels` planes into `[channels * kh * kw, oh * ow]` bytes; padding holds
/// the zero point (real 0). Bytes are copied as they are (i8 data as its bit pattern).
/// Rows are independent: written in blocks on the threads.
fn im2col_q8(x: Q8, channels: usize, g: &super::conv::Geometry, zero: i32, col: &mut Vec<u8>) {
    let (osz, taps) = (g.oh * g.ow, g.kh * g.kw);
    // Every row is filled below, so old contents need not be cleared.
    col.resize(channels * taps * osz, 0);
    if osz == 0 {
        return;
    }
    let src: &[u8] = match x {
        Q8::U8(v) => v,
        // SAFETY: as above.
        Q8::I8(v) => unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len()) },
    };
    cairn_kernels::parallel::for_row_blocks(col, osz, |first, block| {
        for (i, row) in block.chunks_exact_mut(osz).enumerate() {
            let (ch, t) = ((first + i) / taps, (first + i) % taps);
            im2col_q8_row(&src[ch * g.ih * g.iw..][..g.ih * g.iw], g, t / g.kw, t % g.kw, zero as u8, row);
        }
    });
}

/// Row `(ki, kj)` of one channel's `plane` in the im2col matrix.
fn im2col_q8_row(plane: &[u8], g: &super::conv::Geometry, ki: usize, kj: usize, zero: u8, row: &mut [u8]) {
    row.fill(zero);
    // Output columns whose input column is inside the row (the rest keep the zero point).
    let (ox0, ox1) = inside_columns(g, kj);
    if ox0 == ox1 {
        return;
    }
    let first = ox0 * g.sw + kj * g.dw - g.pl;
    for oy in 0..g.oh {
        let iy = (oy * g.sh + ki * g.dh) as isize - g.pt as isize;
        if iy < 0 || iy >= g.ih as isize {
            continue;
        }
        let srow = &plane[iy as usize * g.iw..][..g.iw];
        let orow = &mut row[oy * g.ow..][..g.ow];
        // A copy or a strided gather with no bounds tests.
        if g.sw == 1 {
            orow[ox0..ox1].copy_from_slice(&srow[first..first + (ox1 - ox0)]);
        } else if g.sw == 2 {
            cairn_kernels::qconvert::gather_even(&srow[first..], &mut orow[ox0..ox1]);
        } else {
            for (o, &v) in orow[ox0..ox1].iter_mut().zip(srow[first..].iter().step_by(g.sw)) {
                *o = v;
            }
        }
    }
}

/// The output columns `ox0 .. ox1` that tap input columns inside the image for kernel
/// column `kj`: `0 <= ox * sw + kj * dw - pl < iw`.
fn inside_columns(g: &super::conv::Geometry, kj: usize) -> (usize, usize) {
    let off = kj * g.dw;
    // Smallest ox with ox * sw + off >= pl.
    let ox0 = g.pl.saturating_sub(off).div_ceil(g.sw).min(g.ow);
    // Smallest ox with ox * sw + off >= pl + iw.
    let ox1 = (g.pl + g.iw).saturating_sub(off).div_ceil(g.sw).min(g.ow);
    (ox0, ox1.max(ox0))
}

#[cfg(test)]
mod tests {
    use crate::{Attr, Attrs, Fact, Registry, Tensor, TensorData, TensorMut, TensorRef};

    /// A stride-2 stem (3 channels, 112x112, 3x3) through QLinearConv: its im2col matrix is
    /// written in blocks on the threads; the output bytes equal one thread's.
    #[test]
    fn stem_on_threads_equals_one_thread() {
        let (c, m, hw) = (3usize, 16usize, 112usize);
        let mut attrs = Attrs::new();
        attrs.insert("kernel_shape".into(), Attr::Ints(vec![3, 3]));
        attrs.insert("strides".into(), Attr::Ints(vec![2, 2]));
        attrs.insert("pads".into(), Attr::Ints(vec![0, 0, 1, 1]));
        let u8s = |shape: Vec<usize>, v: Vec<u8>| Tensor::new(shape, TensorData::U8(v)).unwrap();
        let inputs = [
            u8s(vec![1, c, hw, hw], (0..c * hw * hw).map(|i| (i * 37 % 251) as u8).collect()),
            Tensor::scalar_f32(0.02),
            u8s(vec![], vec![128]),
            u8s(vec![m, c, 3, 3], (0..m * c * 9).map(|i| (i * 53 % 256) as u8).collect()),
            Tensor::scalar_f32(0.01),
            u8s(vec![], vec![120]),
            Tensor::scalar_f32(0.05),
            u8s(vec![], vec![10]),
        ];
        let mut r = Registry::default();
        super::register(&mut r);
        let op = r.build("stem", "", "QLinearConv", 17, &attrs, inputs.len(), 1).unwrap();
        let facts: Vec<Fact> = inputs.iter().map(|t| Fact::new(t.dtype(), t.shape().to_vec())).collect();
        let out = op.infer(&facts.iter().map(Some).collect::<Vec<_>>()).unwrap().remove(0);
        assert_eq!(out.shape, [1, m, hw / 2, hw / 2]);
        let run = |threads: usize| {
            crate::testutil::on_threads(threads, || {
                let mut y = Tensor::zeros(out.dtype, out.shape.clone()).unwrap();
                let views: Vec<Option<TensorRef>> = inputs.iter().map(|t| Some(t.view())).collect();
                let mut outs: Vec<TensorMut> = vec![y.view_mut()];
                op.run(&views, &mut outs).unwrap();
                drop(outs);
                y.bytes().to_vec()
            })
        };
        let (one, three) = (run(1), run(3));
        assert_eq!(one, three);
        assert!(one.iter().any(|&b| b != one[0]), "a constant output would not show a misplaced row");
    }
}
