//! Conv (1-D and 2-D, groups, dilations, pads, auto_pad) on NCHW, and the fused
//! form the `fuse` pass builds (folded BatchNorm, prepacked filters, bias,
//! residual add and activation applied in the kernels' epilogue).
//!
//! Algorithms: 1x1 stride-1 unpadded convolutions are one GEMM per image and group
//! (filters are the left operand, so NCHW needs no layout change); depthwise
//! convolutions use the direct depthwise kernel; fused stride-1 convolutions without a
//! residual (ResNet's and SqueezeNet's 3x3 layers) an implicit im2col: one zero-padded
//! copy of the input, read in place by the GEMM for every tap (9x less copying and
//! memory than im2col); the rest im2col + GEMM.

use super::float_io::{f32_values, write_f32};
use crate::{bail_shape, required, DType, Fact, Node, Op, OpContext, Registry, Result, Tensor, TensorMut, TensorRef};
use cairn_kernels::depthwise::{depthwise_conv2d, ConvGeometry};
use cairn_kernels::gemm::copy_short;
use cairn_kernels::parallel::for_row_blocks;
use cairn_kernels::{gemm, Activation, Bias, Epilogue, Isa, LhsOperand, MatRef, PackedA, RhsOperand, TapsRef, Transpose};

/// Spatial attributes shared by Conv and the pools.
#[derive(Clone, Debug)]
pub(crate) struct WindowAttrs {
    pub kernel_shape: Option<Vec<usize>>,
    pub strides: Option<Vec<usize>>,
    pub dilations: Option<Vec<usize>>,
    pub pads: Option<Vec<usize>>,
    pub auto_pad: String,
}

impl WindowAttrs {
    pub fn read(ctx: &OpContext) -> Result<WindowAttrs> {
        let positive = |name: &str| -> Result<Option<Vec<usize>>> {
            match ctx.ints_opt(name)? {
                None => Ok(None),
                Some(v) if v.iter().all(|&x| (0..=1 << 20).contains(&x)) => Ok(Some(v.iter().map(|&x| x as usize).collect())),
                Some(v) => Err(crate::Error::InvalidAttr { attr: name.into(), detail: format!("invalid values {v:?}") }),
            }
        };
        let auto_pad = ctx.string("auto_pad", "NOTSET")?;
        if !matches!(auto_pad.as_str(), "NOTSET" | "SAME_UPPER" | "SAME_LOWER" | "VALID") {
            return Err(ctx.unsupported("auto_pad", format!("'{auto_pad}'")));
        }
        Ok(WindowAttrs {
            kernel_shape: positive("kernel_shape")?,
            strides: positive("strides")?,
            dilations: positive("dilations")?,
            pads: positive("pads")?,
            auto_pad,
        })
    }
}

/// A window resolved over any number of spatial dims: strides, dilations, begin/end pads
/// (`pads[i]`, `pads[i + rank]`) and output sizes. Conv and the 2-D pools narrow it to
/// [`Geometry`]; the N-D pools (3-D, LpPool) use it as is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Window {
    pub strides: Vec<usize>,
    pub dil: Vec<usize>,
    pub pads: Vec<usize>,
    pub out: Vec<usize>,
}

impl Window {
    pub fn resolve(op: &str, a: &WindowAttrs, spatial: &[usize], kernel: &[usize], ceil_mode: bool) -> Result<Window> {
        let r = spatial.len();
        if kernel.len() != r {
            bail_shape!(op, "kernel {kernel:?} does not match the input's spatial dims {spatial:?}");
        }
        let get = |v: &Option<Vec<usize>>, n: usize, default: usize| -> Result<Vec<usize>> {
            match v {
                None => Ok(vec![default; n]),
                Some(v) if v.len() == n => Ok(v.clone()),
                Some(v) => Err(crate::Error::shape(op, format!("expected {n} values, got {v:?}"))),
            }
        };
        let strides = get(&a.strides, r, 1)?;
        let dil = get(&a.dilations, r, 1)?;
        if strides.contains(&0) || dil.contains(&0) || kernel.contains(&0) {
            bail_shape!(op, "strides, dilations and kernel must be positive");
        }
        let mut pads = get(&a.pads, 2 * r, 0)?;
        let mut out = vec![0usize; r];
        for i in 0..r {
            let ek = dil[i] * (kernel[i] - 1) + 1;
            match a.auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => {
                    out[i] = spatial[i].div_ceil(strides[i]);
                    let total = ((out[i].max(1) - 1) * strides[i] + ek).saturating_sub(spatial[i]);
                    let small = total / 2;
                    let (b, e) = if a.auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                    pads[i] = b;
                    pads[i + r] = e;
                }
                _ => {
                    if a.auto_pad == "VALID" {
                        pads[i] = 0;
                        pads[i + r] = 0;
                    }
                    let padded = spatial[i] + pads[i] + pads[i + r];
                    if padded < ek {
                        bail_shape!(op, "kernel extent {ek} exceeds padded input {padded}");
                    }
                    let span = padded - ek;
                    out[i] = if ceil_mode { span.div_ceil(strides[i]) + 1 } else { span / strides[i] + 1 };
                    // A window that would start in the end padding is dropped.
                    if ceil_mode && (out[i] - 1) * strides[i] >= spatial[i] + pads[i] {
                        out[i] -= 1;
                    }
                }
            }
        }
        Ok(Window { strides, dil, pads, out })
    }
}

/// Resolved 2-D window geometry (1-D inputs are treated as H = 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Geometry {
    pub ih: usize,
    pub iw: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// Resolves the window over `spatial` (1 or 2 dims) with kernel `kernel`.
    pub fn new(op: &str, a: &WindowAttrs, spatial: &[usize], kernel: &[usize], ceil_mode: bool) -> Result<Geometry> {
        let r = spatial.len();
        if !(1..=2).contains(&r) || kernel.len() != r {
            bail_shape!(op, "supports 1-D and 2-D windows; got input spatial dims {spatial:?} and kernel {kernel:?}");
        }
        let Window { strides, dil, pads, out } = Window::resolve(op, a, spatial, kernel, ceil_mode)?;
        let two = |v: &[usize], d: usize| if r == 1 { (d, v[0]) } else { (v[0], v[1]) };
        let (ih, iw) = two(spatial, 1);
        let (kh, kw) = two(kernel, 1);
        let (sh, sw) = two(&strides, 1);
        let (dh, dw) = two(&dil, 1);
        let (oh, ow) = two(&out, 1);
        let (pt, pl) = if r == 1 { (0, pads[0]) } else { (pads[0], pads[1]) };
        Ok(Geometry { ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow })
    }

    pub fn kernel(&self) -> ConvGeometry {
        let Geometry { ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow } = *self;
        ConvGeometry { ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow }
    }

    /// The output spatial dims in the input's rank.
    pub fn out_spatial(&self, rank: usize) -> Vec<usize> {
        if rank == 1 {
            vec![self.ow]
        } else {
            vec![self.oh, self.ow]
        }
    }
}

/// Conv's attributes, shared by the plain and the fused op.
#[derive(Clone, Debug)]
pub(crate) struct ConvAttrs {
    window: WindowAttrs,
    pub(crate) group: usize,
}

impl ConvAttrs {
    pub(crate) fn read(ctx: &OpContext) -> Result<ConvAttrs> {
        Ok(ConvAttrs { window: WindowAttrs::read(ctx)?, group: ctx.int("group", 1)?.max(1) as usize })
    }

    pub(crate) fn geometry(&self, x: &[usize], w: &[usize]) -> Result<Geometry> {
        if x.len() < 3 || w.len() != x.len() {
            bail_shape!("Conv", "input {x:?} and weights {w:?} must be [N, C, spatial...] and [M, C/group, kernel...]");
        }
        if x[1] != w[1] * self.group || !w[0].is_multiple_of(self.group) {
            bail_shape!("Conv", "input channels {} do not match weights {w:?} with group {}", x[1], self.group);
        }
        let kernel = &w[2..];
        if let Some(ks) = &self.window.kernel_shape {
            if ks.as_slice() != kernel {
                bail_shape!("Conv", "kernel_shape {ks:?} disagrees with weights {w:?}");
            }
        }
        Geometry::new("Conv", &self.window, &x[2..], kernel, false)
    }

    fn infer(&self, x: &Fact, w_dtype: DType, w_shape: &[usize]) -> Result<Fact> {
        // f16 and bf16 run through f32 (docs/adr/0014-f16-compute.md).
        let float = |d: DType| d == DType::F32 || super::float_io::is_half(d);
        if x.dtype != w_dtype || !float(x.dtype) {
            bail_shape!("Conv", "is implemented for f32, f16 and bf16 inputs of one dtype, got {} and {}", x.dtype, w_dtype);
        }
        let g = self.geometry(&x.shape, w_shape)?;
        let mut shape = vec![x.shape[0], w_shape[0]];
        shape.extend(g.out_spatial(x.rank() - 2));
        Ok(Fact::new(x.dtype, shape))
    }
}

#[derive(Debug)]
struct Conv {
    attrs: ConvAttrs,
}

pub fn register(r: &mut Registry) {
    r.register("Conv", |ctx| Ok(Box::new(Conv { attrs: ConvAttrs::read(ctx)? })));
}

impl Op for Conv {
    fn op_type(&self) -> &str {
        "Conv"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Conv")?;
        let w = required(inputs, 1, "Conv")?;
        // Geometry first: it rejects weights of the wrong rank before `w.shape[0]` is read.
        let y = self.attrs.infer(x, w.dtype, &w.shape)?;
        if let Some(b) = inputs.get(2).copied().flatten() {
            if b.shape != [w.shape[0]] {
                bail_shape!("Conv", "bias must have shape [{}], got {:?}", w.shape[0], b.shape);
            }
        }
        Ok(vec![y])
    }

    fn macs(&self, inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        let w = inputs[1].map_or(0, |w| w.numel() / w.shape.first().copied().unwrap_or(1).max(1));
        (outputs[0].numel() * w) as u64
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Conv")?;
        let w = required(inputs, 1, "Conv")?;
        let bias = inputs.get(2).copied().flatten().map(|b| f32_values(&b, "Conv")).transpose()?;
        let g = self.attrs.geometry(x.shape, w.shape)?;
        let (xs, ws) = (f32_values(&x, "Conv")?, f32_values(&w, "Conv")?);
        let filters = Filters::Raw(&ws);
        write_f32(&mut outputs[0], "Conv", |y| {
            conv_forward(&g, self.attrs.group, x.shape, &xs, w.shape[0], &filters, bias.as_deref(), Activation::Identity, None, y);
            Ok(())
        })
    }
}

/// Filters as the kernels take them: raw `[M, C/group, kh, kw]`, or one packed
/// GEMM operand per group (prepacked once at load by the fused op).
enum Filters<'a> {
    Raw(&'a [f32]),
    Packed {
        raw: &'a [f32],
        per_group: &'a [PackedA],
    },
    /// Packed with K ordered tap-major (`[M, kh*kw, C]`), for the implicit im2col.
    TapMajor(&'a PackedA),
}

impl Filters<'_> {
    fn raw(&self) -> &[f32] {
        match self {
            Filters::Raw(w) | Filters::Packed { raw: w, .. } => w,
            Filters::TapMajor(_) => &[],
        }
    }
}

/// How a convolution is computed, from its geometry.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Algorithm {
    Depthwise,
    /// 1x1, stride 1, no padding: the input planes are already the GEMM's right operand.
    Pointwise,
    Im2col,
}

fn algorithm(g: &Geometry, cg: usize, mg: usize) -> Algorithm {
    if cg == 1 && mg == 1 {
        Algorithm::Depthwise
    } else if g.kh * g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.ih && g.ow == g.iw {
        Algorithm::Pointwise
    } else {
        Algorithm::Im2col
    }
}

/// `y = act(conv(x, w) + bias + residual)`, NCHW, `residual` shaped like `y`.
#[allow(clippy::too_many_arguments)]
fn conv_forward(
    g: &Geometry,
    group: usize,
    x_shape: &[usize],
    x: &[f32],
    m: usize,
    filters: &Filters,
    bias: Option<&[f32]>,
    act: Activation,
    residual: Option<&[f32]>,
    y: &mut [f32],
) {
    let (n, c) = (x_shape[0], x_shape[1]);
    if let Filters::TapMajor(packed) = filters {
        for b in 0..n {
            let xb = &x[b * c * g.ih * g.iw..][..c * g.ih * g.iw];
            let yb = &mut y[b * m * g.oh * g.ow..][..m * g.oh * g.ow];
            implicit_im2col(g, c, xb, m, packed, bias, act, yb);
        }
        return;
    }
    let (cg, mg) = (c / group, m / group);
    let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
    let algo = algorithm(g, cg, mg);
    // The im2col buffer is reused across calls (a fresh multi-MiB allocation per call
    // costs page faults on every run).
    thread_local! {
        static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut col = if algo == Algorithm::Im2col { COL.with(|c| std::mem::take(&mut *c.borrow_mut())) } else { Vec::new() };
    if algo == Algorithm::Im2col {
        col.resize(cg * ksz * osz, 0.0);
    }
    for b in 0..n {
        let xb = &x[b * c * isz..][..c * isz];
        let yb = &mut y[b * m * osz..][..m * osz];
        let rb = residual.map(|r| &r[b * m * osz..][..m * osz]);
        if algo == Algorithm::Depthwise {
            // The depthwise kernel fuses bias and activation; a residual (rare after a
            // depthwise conv) is added afterwards, before the activation.
            let fused_act = if rb.is_some() { Activation::Identity } else { act };
            depthwise_conv2d(&g.kernel(), c, xb, filters.raw(), bias, fused_act, yb);
            if let Some(r) = rb {
                yb.iter_mut().zip(r).for_each(|(v, r)| *v += r);
                act.apply(yb);
            }
            continue;
        }
        for grp in 0..group {
            let xg = &xb[grp * cg * isz..][..cg * isz];
            let yg = &mut yb[grp * mg * osz..][..mg * osz];
            let k = cg * ksz;
            let lhs = match filters {
                Filters::Raw(w) => LhsOperand::Strided { mat: MatRef::new(&w[grp * mg * k..][..mg * k], k, Transpose::No), alpha: 1.0 },
                Filters::Packed { per_group, .. } => LhsOperand::Packed(&per_group[grp]),
                Filters::TapMajor(_) => unreachable!("tap-major filters run on the phase planes above"),
            };
            let rhs_data: &[f32] = if algo == Algorithm::Pointwise {
                xg
            } else {
                im2col(xg, cg, g, &mut col);
                &col
            };
            let epilogue = Epilogue {
                bias: bias.map_or(Bias::None, |b| Bias::PerRow(&b[grp * mg..][..mg])),
                residual: rb.map(|r| (&r[grp * mg * osz..][..mg * osz], osz)),
                activation: act,
            };
            gemm(mg, osz, k, lhs, RhsOperand::Strided(MatRef::new(rhs_data, osz, Transpose::No)), yg, osz, false, &epilogue);
        }
    }
    if algo == Algorithm::Im2col {
        COL.with(|c| *c.borrow_mut() = col);
    }
}

/// A convolution after graph fusion: BatchNorm folded into the filters and bias,
/// filters prepacked for this machine's GEMM kernel, and an optional residual
/// input and activation applied in the epilogue. Inputs: `[x]` or `[x, residual]`.
#[derive(Debug)]
pub(crate) struct FusedConv {
    attrs: ConvAttrs,
    w_shape: Vec<usize>,
    /// Raw filters, kept for the depthwise kernel (which reads them directly).
    raw: Vec<f32>,
    /// Per-group packed filters for the GEMM paths (empty for depthwise).
    packed: Vec<PackedA>,
    /// The one packed filter has K tap-major, for the implicit im2col.
    tap_major: bool,
    bias: Option<Vec<f32>>,
    activation: Activation,
    has_residual: bool,
    /// A description of what was fused, for `inspect`.
    fused: String,
}

impl FusedConv {
    /// Builds the fused op from a Conv node's attributes and its (already folded) filters.
    /// Takes the filters by value: they become the raw copy (depthwise) or are dropped
    /// once packed, so a load never holds more than the packed and one raw copy.
    pub(crate) fn new(
        conv: &Node,
        opset: i64,
        w: Tensor,
        bias: Option<Vec<f32>>,
        activation: Activation,
        has_residual: bool,
        fused: String,
    ) -> Result<FusedConv> {
        let ctx = OpContext::new(&conv.op_type, opset, &conv.attrs, conv.inputs.len(), conv.outputs.len());
        let attrs = ConvAttrs::read(&ctx)?;
        let w_shape = w.shape().to_vec();
        if w_shape.len() < 3 || !w_shape[0].is_multiple_of(attrs.group) {
            bail_shape!("Conv", "weights {w_shape:?} do not fit group {}", attrs.group);
        }
        let raw = match w.into_data() {
            crate::TensorData::F32(v) => v,
            other => bail_shape!("Conv", "is implemented for f32 filters, got {}", other.dtype()),
        };
        let (m, group) = (w_shape[0], attrs.group);
        let mg = m / group;
        let k: usize = w_shape[1..].iter().product();
        let ones = |v: &Option<Vec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&x| x == 1));
        let depthwise = w_shape[1] == 1 && mg == 1;
        // The implicit im2col computes undilated, ungrouped 2-D windows with equal strides
        // (1x1 only when strided: unstrided ones are plain GEMMs); a residual would need
        // the GEMM's wider rows, so those keep im2col.
        let square_stride = attrs.window.strides.as_ref().is_none_or(|s| s.len() == 2 && s[0] == s[1]);
        let strided = !ones(&attrs.window.strides);
        let tap_major = !depthwise
            && group == 1
            && w_shape.len() == 4
            && (w_shape[2] * w_shape[3] > 1 || strided)
            && square_stride
            && ones(&attrs.window.dilations)
            && !has_residual;
        let isa = Isa::current();
        let packed = if depthwise {
            Vec::new()
        } else if tap_major {
            vec![pack_tap_major(isa, &raw, &w_shape)]
        } else {
            (0..group).map(|grp| PackedA::new(isa, MatRef::new(&raw[grp * mg * k..][..mg * k], k, Transpose::No), mg, k, 1.0)).collect()
        };
        // Depthwise reads raw filters; the GEMM paths only the packed ones.
        let raw = if packed.is_empty() { raw } else { Vec::new() };
        Ok(FusedConv { attrs, w_shape, raw, packed, tap_major, bias, activation, has_residual, fused })
    }
}

impl Op for FusedConv {
    fn op_type(&self) -> &str {
        "Conv"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Conv")?;
        let out = self.attrs.infer(x, DType::F32, &self.w_shape)?;
        if self.has_residual {
            let r = required(inputs, 1, "Conv")?;
            if r.shape != out.shape || r.dtype != DType::F32 {
                bail_shape!("Conv", "fused residual {:?} {} must match the output {:?} f32", r.shape, r.dtype, out.shape);
            }
        }
        Ok(vec![out])
    }

    fn macs(&self, _inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        let per_output: usize = self.w_shape[1..].iter().product();
        (outputs[0].numel() * per_output) as u64
    }

    fn fused(&self) -> &str {
        &self.fused
    }

    fn built_by_pass(&self) -> bool {
        true
    }

    fn owned_parameters(&self) -> (usize, usize) {
        let bias = self.bias.as_ref().map_or(0, Vec::len);
        let packed: usize = self.packed.iter().map(PackedA::bytes).sum();
        (self.w_shape.iter().product::<usize>() + bias, packed + 4 * (self.raw.len() + bias))
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Conv")?;
        let residual = if self.has_residual { Some(required(inputs, 1, "Conv")?.f32s()?) } else { None };
        let g = self.attrs.geometry(x.shape, &self.w_shape)?;
        let filters = if self.packed.is_empty() {
            Filters::Raw(&self.raw)
        } else if self.tap_major {
            Filters::TapMajor(&self.packed[0])
        } else {
            Filters::Packed { raw: &self.raw, per_group: &self.packed }
        };
        let y = outputs[0].f32s_mut()?;
        conv_forward(
            &g,
            self.attrs.group,
            x.shape,
            x.f32s()?,
            self.w_shape[0],
            &filters,
            self.bias.as_deref(),
            self.activation,
            residual,
            y,
        );
        Ok(())
    }
}

/// Packs `[M, C, kh, kw]` filters with K reordered from (channel, tap) to (tap, channel),
/// the order of the implicit im2col's rows.
fn pack_tap_major(isa: Isa, raw: &[f32], w_shape: &[usize]) -> PackedA {
    let (m, c, taps) = (w_shape[0], w_shape[1], w_shape[2] * w_shape[3]);
    let k = c * taps;
    let mut reordered = vec![0.0f32; m * k];
    for (row, src) in reordered.chunks_exact_mut(k).zip(raw.chunks_exact(k)) {
        for t in 0..taps {
            for ch in 0..c {
                row[t * c + ch] = src[ch * taps + t];
            }
        }
    }
    PackedA::new(isa, MatRef::new(&reordered, k, Transpose::No), m, k, 1.0)
}

/// Output rows at least this wide are computed on the phase planes in place: the GEMM
/// computes `(kw - 1) / stride` extra columns per row, which 7-wide planes pay more for
/// (29% for a 3x3 window) than writing the im2col matrix out of the planes costs;
/// from 14 up the saved copy wins (measured per node on ResNet-50).
const IMPLICIT_MIN_WIDTH: usize = 14;
/// Fewer input channels than this (stems) write im2col out of the phase planes when
/// the matrix stays under `WRITTEN_OUT_MAX_BYTES` (see [`implicit_im2col`]).
const FEW_CHANNELS: usize = 32;
const WRITTEN_OUT_MAX_BYTES: usize = 2 << 20;

/// `y = act(conv(x, w) + bias)` for one image of an undilated, ungrouped convolution
/// with stride `s` in both directions, with filters packed tap-major. The zero-padded
/// input is split by the phase of rows and columns modulo `s` (as the depthwise kernel
/// does, ADR 0004): phase plane `(py, px)` holds padded rows `r * s + py` and columns
/// `q * s + px`, `width = ow + (kw - 1) / s` wide. Tap `(ki, kj)` of output `(oy, ox)`
/// then reads phase `(ki % s, kj % s)` at `(ki / s) * width + kj / s + oy * width + ox`:
/// for every tap one evenly spaced run of rows, which the GEMM reads in place
/// ([`TapsRef`]) and computes `oh` rows `width` wide (the extra columns are discarded
/// when the rows are copied out). With `s = 1` there is one phase, the padded input
/// itself. The phase copy touches each input element once, where im2col writes it
/// `kh * kw / s^2` times (12x for a 7x7 stride-2 stem). Narrow planes instead write the
/// im2col matrix out of the phase planes: whole output rows, short vector copies.
#[allow(clippy::too_many_arguments)]
fn implicit_im2col(g: &Geometry, c: usize, x: &[f32], m: usize, w: &PackedA, bias: Option<&[f32]>, act: Activation, y: &mut [f32]) {
    thread_local! {
        static PADDED: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    let (mut padded, mut out) = PADDED.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let phases = PhasePlanes::fill(g, c, x, &mut padded);
    let (width, plane) = (phases.width, phases.plane);
    let k = g.kh * g.kw * c;
    let osz = g.oh * g.ow;
    let epilogue = Epilogue { bias: bias.map_or(Bias::None, Bias::PerRow), residual: None, activation: act };
    // With few input channels (stems) the GEMM would pack the taps panel by panel
    // (`TAPS_PACK_BELOW` in the kernels' driver). Writing the im2col matrix out instead
    // wins while it stays in cache (MobileNetV2's 3x3 stem, 1.3 MiB: 0.28-0.33 vs
    // 0.36-0.46 ms natively) and loses once it spills (ResNet-50's 7x7 stem, 7.4 MiB:
    // 1.6-1.8 vs 1.5 ms); V8 runs the packing and the copy-out slower than either
    // (MobileNetV2's stem in Node: 1.2-1.3 vs 1.0-1.1 ms), so wasm always writes out.
    let spills = k * osz * std::mem::size_of::<f32>() > WRITTEN_OUT_MAX_BYTES;
    let in_place = g.ow >= IMPLICIT_MIN_WIDTH && (c >= FEW_CHANNELS || (spills && cfg!(not(target_arch = "wasm32"))));
    if in_place {
        let n_virtual = g.oh * width;
        out.resize(m * n_virtual, 0.0);
        let taps = TapsRef { data: &padded, ld: plane, per_tap: c, offsets: &phases.offsets };
        gemm(m, n_virtual, k, LhsOperand::Packed(w), RhsOperand::Taps(taps), &mut out, n_virtual, false, &epilogue);
        // Copied out filter by filter on the threads (the GEMM's rows are `width` wide).
        if osz > 0 {
            for_row_blocks(&mut y[..m * osz], osz, |first, block| {
                for (i, y_row) in block.chunks_exact_mut(osz).enumerate() {
                    let src = &out[(first + i) * n_virtual..];
                    for oy in 0..g.oh {
                        copy_short(&mut y_row[oy * g.ow..][..g.ow], &src[oy * width..][..g.ow]);
                    }
                }
            });
        }
    } else {
        // Row (tap, channel) of the im2col matrix is that tap's run of the channel's plane;
        // the rows are written on the threads.
        out.resize(k * osz, 0.0);
        if osz > 0 {
            for_row_blocks(&mut out, osz, |first, block| {
                for (i, row) in block.chunks_exact_mut(osz).enumerate() {
                    let (t, ch) = ((first + i) / c, (first + i) % c);
                    let src = &padded[phases.offsets[t] + ch * plane..];
                    for oy in 0..g.oh {
                        copy_short(&mut row[oy * g.ow..][..g.ow], &src[oy * width..][..g.ow]);
                    }
                }
            });
        }
        gemm(m, osz, k, LhsOperand::Packed(w), RhsOperand::Strided(MatRef::new(&out, osz, Transpose::No)), y, osz, false, &epilogue);
    }
    PADDED.with(|b| *b.borrow_mut() = (padded, out));
}

/// The phase planes of [`implicit_im2col`]: `[phase][channel][rows][width]`, and where
/// each tap's rows start.
struct PhasePlanes {
    width: usize,
    plane: usize,
    /// Tap `t`'s row for channel `ch` starts at `offsets[t] + ch * plane`.
    offsets: Vec<usize>,
}

impl PhasePlanes {
    fn fill(g: &Geometry, c: usize, x: &[f32], padded: &mut Vec<f32>) -> PhasePlanes {
        let s = g.sh;
        debug_assert!(s == g.sw && g.dh == 1 && g.dw == 1);
        let (width, rows) = (g.ow + (g.kw - 1) / s, g.oh + (g.kh - 1) / s);
        let plane = rows * width;
        // Only the phases some tap reads (a 1x1 stride-2 window reads one).
        let (phase_rows, phase_cols) = (s.min(g.kh), s.min(g.kw));
        let phase_len = c * plane;
        let planes = phase_rows * phase_cols * c;
        // The planes plus the floats the last tap's discarded columns read (zeros). The
        // planes are zeroed (their padding) and filled plane by plane on the threads: for a
        // stem, the whole layer's work besides its GEMM.
        padded.resize(planes * plane + g.kw, 0.0);
        padded[planes * plane..].fill(0.0);
        if plane > 0 {
            for_row_blocks(&mut padded[..planes * plane], plane, |first, block| {
                for (i, dst_plane) in block.chunks_exact_mut(plane).enumerate() {
                    // Plane `first + i` is channel `ch` of phase `(py, px)`.
                    let (phase, ch) = ((first + i) / c, (first + i) % c);
                    Self::fill_plane(
                        g,
                        (phase / phase_cols, phase % phase_cols),
                        width,
                        rows,
                        &x[ch * g.ih * g.iw..][..g.ih * g.iw],
                        dst_plane,
                    );
                }
            });
        }
        let offsets = (0..g.kh * g.kw)
            .map(|t| {
                let (ki, kj) = (t / g.kw, t % g.kw);
                ((ki % s) * phase_cols + kj % s) * phase_len + (ki / s) * width + kj / s
            })
            .collect();
        PhasePlanes { width, plane, offsets }
    }

    /// Phase `(py, px)` of one input channel's plane, zero-padded: padded rows `r * s + py`
    /// and columns `q * s + px` (`rows` x `width`).
    fn fill_plane(g: &Geometry, (py, px): (usize, usize), width: usize, rows: usize, src_plane: &[f32], dst_plane: &mut [f32]) {
        let s = g.sh;
        dst_plane.fill(0.0);
        // Phase columns q whose input column q * s + px - pl lies in the image.
        let q_lo = g.pl.saturating_sub(px).div_ceil(s).min(width);
        let q_hi = (g.iw + g.pl).saturating_sub(px).div_ceil(s).clamp(q_lo, width);
        if q_lo == q_hi {
            return;
        }
        let ix0 = q_lo * s + px - g.pl;
        for r in 0..rows {
            let yy = r * s + py;
            if yy < g.pt {
                continue;
            }
            let iy = yy - g.pt;
            if iy >= g.ih {
                break;
            }
            let src = &src_plane[iy * g.iw..][..g.iw];
            let dst = &mut dst_plane[r * width..][q_lo..q_hi];
            if s == 1 {
                copy_short(dst, &src[ix0..]);
            } else {
                dst.iter_mut().zip(src[ix0..].iter().step_by(s)).for_each(|(d, v)| *d = *v);
            }
        }
    }
}

/// Unfolds `channels` planes into a [channels * kh * kw, oh * ow] matrix (zeros where padded),
/// rows in (channel, tap) order.
/// Each output row segment is one contiguous copy when the stride is 1.
fn im2col(x: &[f32], channels: usize, g: &Geometry, col: &mut [f32]) {
    let (osz, taps) = (g.oh * g.ow, g.kh * g.kw);
    if osz == 0 || taps == 0 {
        return;
    }
    // Rows are independent: written in blocks on the threads.
    for_row_blocks(&mut col[..channels * taps * osz], osz, |first, block| {
        for (i, row) in block.chunks_exact_mut(osz).enumerate() {
            let (ch, t) = ((first + i) / taps, (first + i) % taps);
            im2col_row(&x[ch * g.ih * g.iw..][..g.ih * g.iw], g, t / g.kw, t % g.kw, row);
        }
    });
}

/// Row `(ki, kj)` of one channel's `plane` in the im2col matrix.
fn im2col_row(plane: &[f32], g: &Geometry, ki: usize, kj: usize, row: &mut [f32]) {
    // Output columns whose input column lies inside the image for this tap.
    let off = (kj * g.dw) as isize - g.pl as isize;
    let lo = if off >= 0 { 0 } else { ((-off) as usize).div_ceil(g.sw) }.min(g.ow);
    let hi = if (g.iw as isize) <= off { 0 } else { (((g.iw as isize - off - 1) / g.sw as isize) + 1).min(g.ow as isize) as usize }.max(lo);
    for oy in 0..g.oh {
        let iy = (oy * g.sh + ki * g.dh) as isize - g.pt as isize;
        let out_row = &mut row[oy * g.ow..][..g.ow];
        if iy < 0 || iy >= g.ih as isize {
            out_row.fill(0.0);
            continue;
        }
        let src = &plane[iy as usize * g.iw..][..g.iw];
        out_row[..lo].fill(0.0);
        out_row[hi..].fill(0.0);
        if lo == hi {
            continue; // this tap reads only padding on every output column
        }
        let first = (lo as isize * g.sw as isize + off) as usize;
        if g.sw == 1 {
            out_row[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
        } else {
            for (o, v) in out_row[lo..hi].iter_mut().zip(src[first..].iter().step_by(g.sw)) {
                *o = *v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(k: usize, s: usize, pads: [usize; 4]) -> WindowAttrs {
        WindowAttrs {
            kernel_shape: Some(vec![k, k]),
            strides: Some(vec![s, s]),
            dilations: None,
            pads: Some(pads.to_vec()),
            auto_pad: "NOTSET".into(),
        }
    }

    /// The implicit im2col (phase planes for strides > 1; in place or written out) against
    /// im2col + GEMM on raw filters, over kernel sizes, strides, odd sizes and asymmetric pads.
    #[test]
    fn implicit_im2col_matches_im2col() {
        let mut seed = 7u32;
        let mut rand = move || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let cases: &[(usize, usize, usize, usize, usize, usize, [usize; 4])] = &[
            // (c, m, ih, iw, k, stride, pads t/l/b/r)
            (3, 16, 23, 21, 7, 2, [3, 3, 3, 3]),
            (3, 8, 16, 16, 3, 2, [0, 0, 1, 1]),
            (5, 13, 15, 17, 3, 2, [1, 1, 1, 1]),
            (7, 12, 9, 9, 1, 2, [0, 0, 0, 0]),
            (4, 25, 10, 11, 3, 1, [1, 1, 1, 1]),
            (6, 9, 12, 8, 5, 3, [2, 1, 0, 2]),
            (2, 5, 6, 6, 2, 2, [0, 0, 0, 0]),
            // wide enough for the GEMM on the planes in place
            (3, 8, 40, 33, 3, 2, [1, 1, 1, 1]),
            (4, 14, 30, 29, 3, 1, [1, 1, 1, 1]),
            (3, 20, 61, 57, 7, 2, [3, 3, 3, 3]),
            (40, 13, 31, 30, 1, 2, [0, 0, 0, 0]),
            // a stem whose im2col matrix would spill the cache: taps packed by the GEMM (natively)
            (3, 8, 130, 128, 7, 2, [3, 3, 3, 3]),
        ];
        for &(c, m, ih, iw, k, s, pads) in cases {
            let g = Geometry::new("Conv", &window(k, s, pads), &[ih, iw], &[k, k], false).unwrap();
            let x: Vec<f32> = (0..c * ih * iw).map(|_| rand()).collect();
            let w: Vec<f32> = (0..m * c * k * k).map(|_| rand()).collect();
            let bias: Vec<f32> = (0..m).map(|_| rand()).collect();
            let osz = g.oh * g.ow;
            let mut want = vec![0.0f32; m * osz];
            conv_forward(&g, 1, &[1, c, ih, iw], &x, m, &Filters::Raw(&w), Some(&bias), Activation::Relu, None, &mut want);
            let packed = pack_tap_major(Isa::current(), &w, &[m, c, k, k]);
            let mut got = vec![f32::NAN; m * osz];
            implicit_im2col(&g, c, &x, m, &packed, Some(&bias), Activation::Relu, &mut got);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "c{c} m{m} {ih}x{iw} k{k} s{s} {pads:?}: output {i}: {a} vs {b}");
            }
        }
    }

    /// The copies around the GEMM (im2col rows, phase planes, the written-out and the
    /// in-place stems' rows) split over the threads on layers this large: the outputs are
    /// the same to the bit as on one thread.
    #[test]
    fn copies_on_threads_equal_one_thread() {
        let cases: &[(usize, usize, usize, usize, usize, [usize; 4])] = &[
            // (c, m, ih/iw, k, stride, pads): MobileNetV2's stem (written out), an in-place
            // stride-1 layer, a 7x7 stem
            (3, 32, 224, 3, 2, [0, 0, 1, 1]),
            (32, 16, 56, 3, 1, [1, 1, 1, 1]),
            (3, 8, 130, 7, 2, [3, 3, 3, 3]),
        ];
        for &(c, m, hw, k, s, pads) in cases {
            let g = Geometry::new("Conv", &window(k, s, pads), &[hw, hw], &[k, k], false).unwrap();
            let x: Vec<f32> = (0..c * hw * hw).map(|i| ((i as f32) * 0.61).sin()).collect();
            let w: Vec<f32> = (0..m * c * k * k).map(|i| ((i as f32) * 0.23).cos() * 0.1).collect();
            let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.01).collect();
            let osz = g.oh * g.ow;
            assert!(c * k * k * osz >= cairn_kernels::parallel::ROW_BLOCKS_MIN_ELEMENTS, "the case must be large enough to split");
            let run = |threads: usize| {
                crate::testutil::on_threads(threads, || {
                    let mut im2col = vec![0.0f32; m * osz];
                    conv_forward(&g, 1, &[1, c, hw, hw], &x, m, &Filters::Raw(&w), Some(&bias), Activation::Relu, None, &mut im2col);
                    let packed = pack_tap_major(Isa::current(), &w, &[m, c, k, k]);
                    let mut implicit = vec![f32::NAN; m * osz];
                    implicit_im2col(&g, c, &x, m, &packed, Some(&bias), Activation::Relu, &mut implicit);
                    (im2col, implicit)
                })
            };
            let (one, three) = (run(1), run(3));
            let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&one.0, &three.0), "im2col: c{c} m{m} {hw} k{k} s{s}");
            assert!(same(&one.1, &three.1), "implicit im2col: c{c} m{m} {hw} k{k} s{s}");
            assert!(one.1.iter().all(|v| v.is_finite()));
        }
    }
}
