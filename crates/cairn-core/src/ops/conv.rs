//! Conv (1-D and 2-D, groups, dilations, pads, auto_pad) on NCHW.
//!
//! Algorithms: 1x1 stride-1 unpadded convolutions are one GEMM per image and group;
//! depthwise convolutions use a direct loop; the rest im2col + GEMM.

use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::{sgemm, Transpose};

pub fn register(r: &mut Registry) {
    r.register("Conv", |ctx| Ok(Box::new(Conv { window: WindowAttrs::read(ctx)?, group: ctx.int("group", 1)?.max(1) as usize })));
}

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
                    let total = ((out[i] - 1) * strides[i] + ek).saturating_sub(spatial[i]);
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
        let two = |v: &[usize], d: usize| if r == 1 { (d, v[0]) } else { (v[0], v[1]) };
        let (ih, iw) = two(spatial, 1);
        let (kh, kw) = two(kernel, 1);
        let (sh, sw) = two(&strides, 1);
        let (dh, dw) = two(&dil, 1);
        let (oh, ow) = two(&out, 1);
        let (pt, pl) = if r == 1 { (0, pads[0]) } else { (pads[0], pads[1]) };
        Ok(Geometry { ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow })
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

#[derive(Debug)]
struct Conv {
    window: WindowAttrs,
    group: usize,
}

impl Conv {
    fn geometry(&self, x: &[usize], w: &[usize]) -> Result<Geometry> {
        if x.len() < 3 || w.len() != x.len() {
            bail_shape!("Conv", "input {x:?} and weights {w:?} must be [N, C, spatial...] and [M, C/group, kernel...]");
        }
        if x[1] != w[1] * self.group || w[0] % self.group != 0 {
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
}

impl Op for Conv {
    fn op_type(&self) -> &str {
        "Conv"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Conv")?;
        let w = required(inputs, 1, "Conv")?;
        if x.dtype != DType::F32 || w.dtype != DType::F32 {
            bail_shape!("Conv", "is implemented for f32, got {} and {}", x.dtype, w.dtype);
        }
        if let Some(b) = inputs.get(2).copied().flatten() {
            if b.shape != [w.shape[0]] {
                bail_shape!("Conv", "bias must have shape [{}], got {:?}", w.shape[0], b.shape);
            }
        }
        let g = self.geometry(&x.shape, &w.shape)?;
        let mut shape = vec![x.shape[0], w.shape[0]];
        shape.extend(g.out_spatial(x.rank() - 2));
        Ok(vec![Fact::new(DType::F32, shape)])
    }

    fn macs(&self, inputs: &[Option<&Fact>], outputs: &[Fact]) -> u64 {
        let w = inputs[1].map_or(0, |w| w.numel() / w.shape[0].max(1));
        (outputs[0].numel() * w) as u64
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Conv")?;
        let w = required(inputs, 1, "Conv")?;
        let bias = inputs.get(2).copied().flatten().map(|b| b.f32s()).transpose()?;
        let g = self.geometry(x.shape, w.shape)?;
        let (n, c, m) = (x.shape[0], x.shape[1], w.shape[0]);
        let (cg, mg) = (c / self.group, m / self.group);
        let (xs, ws) = (x.f32s()?, w.f32s()?);
        let y = outputs[0].f32s_mut()?;
        let (isz, osz, ksz) = (g.ih * g.iw, g.oh * g.ow, g.kh * g.kw);
        let pointwise = ksz == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.ih && g.ow == g.iw;
        let depthwise = cg == 1 && mg == 1;
        let mut col = if pointwise || depthwise { Vec::new() } else { vec![0.0f32; cg * ksz * osz] };
        for b in 0..n {
            for grp in 0..self.group {
                let xg = &xs[(b * c + grp * cg) * isz..][..cg * isz];
                let wg = &ws[grp * mg * cg * ksz..][..mg * cg * ksz];
                let yg = &mut y[(b * m + grp * mg) * osz..][..mg * osz];
                if depthwise {
                    depthwise_channel(xg, wg, yg, &g);
                } else if pointwise {
                    sgemm(mg, osz, cg, 1.0, wg, cg, Transpose::No, xg, osz, Transpose::No, 0.0, yg, osz);
                } else {
                    im2col(xg, cg, &g, &mut col);
                    sgemm(mg, osz, cg * ksz, 1.0, wg, cg * ksz, Transpose::No, &col, osz, Transpose::No, 0.0, yg, osz);
                }
            }
            if let Some(bias) = bias {
                for (ch, &bv) in bias.iter().enumerate() {
                    y[(b * m + ch) * osz..][..osz].iter_mut().for_each(|v| *v += bv);
                }
            }
        }
        Ok(())
    }
}

/// Unfolds `channels` planes into a [channels * kh * kw, oh * ow] matrix (zeros where padded).
fn im2col(x: &[f32], channels: usize, g: &Geometry, col: &mut [f32]) {
    let osz = g.oh * g.ow;
    for ch in 0..channels {
        let plane = &x[ch * g.ih * g.iw..][..g.ih * g.iw];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut col[((ch * g.kh + ki) * g.kw + kj) * osz..][..osz];
                for oy in 0..g.oh {
                    let iy = (oy * g.sh + ki * g.dh) as isize - g.pt as isize;
                    let out_row = &mut row[oy * g.ow..][..g.ow];
                    if iy < 0 || iy >= g.ih as isize {
                        out_row.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.iw..][..g.iw];
                    for (ox, v) in out_row.iter_mut().enumerate() {
                        let ix = (ox * g.sw + kj * g.dw) as isize - g.pl as isize;
                        *v = if ix >= 0 && (ix as usize) < g.iw { src[ix as usize] } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// One channel of a depthwise convolution, direct: for each kernel tap, accumulate
/// a shifted row of input into the output row (the inner loop is contiguous when stride is 1).
fn depthwise_channel(x: &[f32], w: &[f32], y: &mut [f32], g: &Geometry) {
    y.fill(0.0);
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let wv = w[ki * g.kw + kj];
            // Output columns whose input column is inside the image, for this tap.
            let off = (kj * g.dw) as isize - g.pl as isize;
            let ox_lo = if off >= 0 { 0 } else { ((-off) as usize).div_ceil(g.sw) };
            let ox_hi = if (g.iw as isize) <= off { 0 } else { (((g.iw as isize - off - 1) / g.sw as isize) + 1).min(g.ow as isize) as usize };
            if ox_lo >= ox_hi {
                continue;
            }
            for oy in 0..g.oh {
                let iy = (oy * g.sh + ki * g.dh) as isize - g.pt as isize;
                if iy < 0 || iy >= g.ih as isize {
                    continue;
                }
                let src = &x[iy as usize * g.iw..][..g.iw];
                let dst = &mut y[oy * g.ow..][..g.ow];
                if g.sw == 1 {
                    let start = (ox_lo as isize + off) as usize;
                    for (d, s) in dst[ox_lo..ox_hi].iter_mut().zip(&src[start..start + ox_hi - ox_lo]) {
                        *d += wv * s;
                    }
                } else {
                    for ox in ox_lo..ox_hi {
                        dst[ox] += wv * src[(ox as isize * g.sw as isize + off) as usize];
                    }
                }
            }
        }
    }
}
