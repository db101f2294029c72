//! MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool on NCHW. 1-D/2-D Max and
//! Average pools run the 2-D geometry (and the vectorized max kernel); 3-D and LpPool run
//! the N-D reference loop.

use super::conv::{Geometry, Window, WindowAttrs};
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("MaxPool", |ctx| build(ctx, true));
    r.register("AveragePool", |ctx| build(ctx, false));
    r.register("LpPool", build_lp);
    r.register("GlobalAveragePool", |_| Ok(Box::new(GlobalPool { max: false })));
    r.register("GlobalMaxPool", |_| Ok(Box::new(GlobalPool { max: true })));
}

fn build(ctx: &OpContext, max: bool) -> Result<Box<dyn Op>> {
    let window = WindowAttrs::read(ctx)?;
    if window.kernel_shape.is_none() {
        return Err(crate::Error::InvalidAttr { attr: "kernel_shape".into(), detail: "required".into() });
    }
    if max && ctx.int("storage_order", 0)? != 0 {
        return Err(ctx.unsupported("storage_order", "column-major indices are not implemented"));
    }
    if max && ctx.n_outputs > 1 {
        return Err(ctx.unsupported("Indices", "the Indices output of MaxPool is not implemented"));
    }
    let count_include_pad = if max { false } else { ctx.int("count_include_pad", 0)? == 1 };
    let kind = if max { Kind::Max } else { Kind::Average { count_include_pad } };
    Ok(Box::new(Pool { window, max, ceil_mode: ctx.int("ceil_mode", 0)? == 1, count_include_pad, kind }))
}

fn build_lp(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let window = WindowAttrs::read(ctx)?;
    if window.kernel_shape.is_none() {
        return Err(crate::Error::InvalidAttr { attr: "kernel_shape".into(), detail: "required".into() });
    }
    let p = ctx.int("p", 2)?;
    if p < 1 {
        return Err(crate::Error::InvalidAttr { attr: "p".into(), detail: format!("{p} must be at least 1") });
    }
    Ok(Box::new(Pool { window, max: false, ceil_mode: ctx.int("ceil_mode", 0)? == 1, count_include_pad: false, kind: Kind::Lp(p as i32) }))
}

/// What a window reduces to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Max,
    Average {
        count_include_pad: bool,
    },
    /// (sum |x|^p)^(1/p); padding contributes nothing.
    Lp(i32),
}

#[derive(Debug)]
struct Pool {
    window: WindowAttrs,
    max: bool,
    ceil_mode: bool,
    count_include_pad: bool,
    kind: Kind,
}

impl Pool {
    fn name(&self) -> &'static str {
        if let Kind::Lp(_) = self.kind {
            "LpPool"
        } else if self.max {
            "MaxPool"
        } else {
            "AveragePool"
        }
    }
    fn geometry(&self, x: &[usize]) -> Result<Geometry> {
        if x.len() < 3 {
            bail_shape!(self.name(), "input must be [N, C, spatial...], got {x:?}");
        }
        Geometry::new(self.name(), &self.window, &x[2..], self.window.kernel_shape.as_deref().unwrap_or(&[]), self.ceil_mode)
    }

    /// True where the 2-D geometry and its kernels do not apply.
    fn needs_nd(&self, x: &[usize]) -> bool {
        matches!(self.kind, Kind::Lp(_)) || x.len() > 4
    }

    fn window_nd(&self, x: &[usize]) -> Result<Window> {
        if x.len() < 3 {
            bail_shape!(self.name(), "input must be [N, C, spatial...], got {x:?}");
        }
        Window::new(self.name(), &self.window, &x[2..], self.window.kernel_shape.as_deref().unwrap_or(&[]), self.ceil_mode)
    }

    /// The reference loop over any number of spatial dims: every output position visits
    /// every kernel tap (odometer order), skipping taps outside the input.
    fn run_nd(&self, x: &[f32], shape: &[usize], w: &Window, y: &mut [f32]) {
        let spatial = &shape[2..];
        let r = spatial.len();
        let kernel = self.window.kernel_shape.clone().unwrap_or_default();
        let (isz, osz): (usize, usize) = (spatial.iter().product(), w.out.iter().product());
        let taps: usize = kernel.iter().product();
        let mut o_idx = vec![0usize; r];
        let mut k_idx = vec![0usize; r];
        for p in 0..shape[0] * shape[1] {
            let src = &x[p * isz..][..isz];
            for (o, out) in y[p * osz..][..osz].iter_mut().enumerate() {
                let mut rem = o;
                for d in (0..r).rev() {
                    o_idx[d] = rem % w.out[d];
                    rem /= w.out[d];
                }
                let mut acc = if self.kind == Kind::Max { f32::NEG_INFINITY } else { 0.0 };
                let (mut count, mut padded_count) = (0usize, 0usize);
                for t in 0..taps {
                    let mut rem = t;
                    for d in (0..r).rev() {
                        k_idx[d] = rem % kernel[d];
                        rem /= kernel[d];
                    }
                    let (mut offset, mut inside, mut in_padded) = (0usize, true, true);
                    for d in 0..r {
                        let c = (o_idx[d] * w.strides[d] + k_idx[d] * w.dilations[d]) as isize - w.pads[d] as isize;
                        // Taps past the end padding (ceil_mode) do not count even with count_include_pad.
                        in_padded &= c < (spatial[d] + w.pads[d + r]) as isize;
                        inside &= c >= 0 && c < spatial[d] as isize;
                        offset = offset * spatial[d] + c.max(0) as usize;
                    }
                    padded_count += in_padded as usize;
                    if !inside {
                        continue;
                    }
                    let v = src[offset];
                    count += 1;
                    match self.kind {
                        Kind::Max => {
                            if v > acc || v.is_nan() {
                                acc = v;
                            }
                        }
                        Kind::Average { .. } => acc += v,
                        Kind::Lp(p) => acc += v.abs().powi(p),
                    }
                }
                *out = match self.kind {
                    Kind::Max => acc,
                    Kind::Average { count_include_pad } => {
                        let d = if count_include_pad { padded_count } else { count };
                        if d == 0 {
                            0.0
                        } else {
                            acc / d as f32
                        }
                    }
                    Kind::Lp(p) => acc.powf(1.0 / p as f32),
                };
            }
        }
    }
}

impl Op for Pool {
    fn op_type(&self) -> &str {
        self.name()
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.name())?;
        if x.dtype != DType::F32 {
            bail_shape!(self.name(), "is implemented for f32, got {}", x.dtype);
        }
        let mut shape = x.shape[..2].to_vec();
        if self.needs_nd(&x.shape) {
            shape.extend(self.window_nd(&x.shape)?.out);
        } else {
            shape.extend(self.geometry(&x.shape)?.out_spatial(x.rank() - 2));
        }
        Ok(vec![Fact::new(DType::F32, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name())?;
        if self.needs_nd(x.shape) {
            let w = self.window_nd(x.shape)?;
            self.run_nd(x.f32s()?, x.shape, &w, outputs[0].f32s_mut()?);
            return Ok(());
        }
        let g = self.geometry(x.shape)?;
        let planes = x.shape[0] * x.shape[1];
        let xs = x.f32s()?;
        let y = outputs[0].f32s_mut()?;
        let (isz, osz) = (g.ih * g.iw, g.oh * g.ow);
        // Padded extent: windows counted with count_include_pad stop at the end padding.
        let pads = self.window.pads.clone().unwrap_or_default();
        let r = x.shape.len() - 2;
        let (pb, pr) = if self.window.auto_pad.starts_with("SAME") || pads.len() != 2 * r {
            (g.pt, g.pl) // SAME pads are symmetric up to one; the begin pad is a safe bound
        } else if r == 1 {
            (0, pads[1])
        } else {
            (pads[2], pads[3])
        };
        let (hmax, wmax) = ((g.ih + g.pt + pb) as isize, (g.iw + g.pl + pr) as isize);
        // Max pooling with the common geometries runs on the vectorized kernel.
        if self.max && g.oh > 0 && g.ow > 0 && cairn_kernels::depthwise::max_pool2d(&g.kernel(), planes, xs, y) {
            return Ok(());
        }
        for p in 0..planes {
            let src = &xs[p * isz..][..isz];
            let dst = &mut y[p * osz..][..osz];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let y0 = (oy * g.sh) as isize - g.pt as isize;
                    let x0 = (ox * g.sw) as isize - g.pl as isize;
                    let mut acc = if self.max { f32::NEG_INFINITY } else { 0.0 };
                    let (mut count, mut padded_count) = (0usize, 0usize);
                    for ki in 0..g.kh {
                        let iy = y0 + (ki * g.dh) as isize;
                        for kj in 0..g.kw {
                            let ix = x0 + (kj * g.dw) as isize;
                            if iy + (g.pt as isize) < hmax && ix + (g.pl as isize) < wmax {
                                padded_count += 1;
                            }
                            if iy < 0 || ix < 0 || iy >= g.ih as isize || ix >= g.iw as isize {
                                continue;
                            }
                            let v = src[iy as usize * g.iw + ix as usize];
                            if self.max {
                                if v > acc || v.is_nan() {
                                    acc = v;
                                }
                            } else {
                                acc += v;
                            }
                            count += 1;
                        }
                    }
                    dst[oy * g.ow + ox] = if self.max {
                        acc
                    } else {
                        let d = if self.count_include_pad { padded_count } else { count };
                        if d == 0 {
                            0.0
                        } else {
                            acc / d as f32
                        }
                    };
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct GlobalPool {
    max: bool,
}

impl Op for GlobalPool {
    fn op_type(&self) -> &str {
        if self.max {
            "GlobalMaxPool"
        } else {
            "GlobalAveragePool"
        }
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        if x.rank() < 3 || x.dtype != DType::F32 {
            bail_shape!(self.op_type(), "needs an f32 [N, C, spatial...] input, got {} {:?}", x.dtype, x.shape);
        }
        let mut shape = x.shape.clone();
        shape[2..].iter_mut().for_each(|d| *d = 1);
        Ok(vec![Fact::new(DType::F32, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?;
        let plane: usize = x.shape[2..].iter().product();
        let xs = x.f32s()?;
        for (p, y) in outputs[0].f32s_mut()?.iter_mut().enumerate() {
            let v = &xs[p * plane..][..plane];
            *y = if self.max { v.iter().copied().fold(f32::NEG_INFINITY, f32::max) } else { v.iter().sum::<f32>() / plane as f32 };
        }
        Ok(())
    }
}
