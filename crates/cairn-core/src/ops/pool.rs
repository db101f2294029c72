//! MaxPool, AveragePool (1-D/2-D windows), GlobalAveragePool, GlobalMaxPool on NCHW.

use super::conv::{Geometry, WindowAttrs};
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("MaxPool", |ctx| build(ctx, true));
    r.register("AveragePool", |ctx| build(ctx, false));
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
    Ok(Box::new(Pool { window, max, ceil_mode: ctx.int("ceil_mode", 0)? == 1, count_include_pad }))
}

#[derive(Debug)]
struct Pool {
    window: WindowAttrs,
    max: bool,
    ceil_mode: bool,
    count_include_pad: bool,
}

impl Pool {
    fn name(&self) -> &'static str {
        if self.max {
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
        let g = self.geometry(&x.shape)?;
        let mut shape = x.shape[..2].to_vec();
        shape.extend(g.out_spatial(x.rank() - 2));
        Ok(vec![Fact::new(DType::F32, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name())?;
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
