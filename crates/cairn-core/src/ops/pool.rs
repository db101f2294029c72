//! MaxPool, AveragePool and LpPool (1-D, 2-D and 3-D windows), GlobalAveragePool,
//! GlobalMaxPool and GlobalLpPool on NC(D)HW. 1-D and 2-D max and average pooling run on
//! the 2-D kernels; 3-D windows and LpPool on the N-D reference loop ([`nd_pool`]).

use super::conv::{Geometry, Window, WindowAttrs};
use super::unravel;
use crate::{bail_shape, required, DType, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("MaxPool", |ctx| build(ctx, Kind::Max));
    r.register("AveragePool", |ctx| build(ctx, Kind::Average));
    r.register("LpPool", |ctx| build(ctx, Kind::Lp(lp_order(ctx)?)));
    r.register("GlobalAveragePool", |_| Ok(Box::new(GlobalPool { kind: Kind::Average })));
    r.register("GlobalMaxPool", |_| Ok(Box::new(GlobalPool { kind: Kind::Max })));
    r.register("GlobalLpPool", |ctx| Ok(Box::new(GlobalPool { kind: Kind::Lp(lp_order(ctx)?) })));
}

/// LpPool's `p` (default 2).
fn lp_order(ctx: &OpContext) -> Result<f32> {
    let p = ctx.int("p", 2)?;
    if !(1..=64).contains(&p) {
        return Err(crate::Error::InvalidAttr { attr: "p".into(), detail: format!("{p} must be in 1..=64") });
    }
    Ok(p as f32)
}

/// What a window computes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Max,
    Average,
    /// `(sum |x|^p)^(1/p)`.
    Lp(f32),
}

fn build(ctx: &OpContext, kind: Kind) -> Result<Box<dyn Op>> {
    let max = kind == Kind::Max;
    let window = WindowAttrs::read(ctx)?;
    if window.kernel_shape.is_none() {
        return Err(crate::Error::InvalidAttr { attr: "kernel_shape".into(), detail: "required".into() });
    }
    let column_major = max && ctx.int("storage_order", 0)? == 1;
    let indices = max && ctx.n_outputs > 1;
    let count_include_pad = if kind == Kind::Average { ctx.int("count_include_pad", 0)? == 1 } else { false };
    Ok(Box::new(Pool { window, max, kind, ceil_mode: ctx.int("ceil_mode", 0)? == 1, count_include_pad, indices, column_major }))
}

#[derive(Debug)]
struct Pool {
    window: WindowAttrs,
    max: bool,
    kind: Kind,
    ceil_mode: bool,
    count_include_pad: bool,
    /// MaxPool's second output: the flat index of each maximum in X.
    indices: bool,
    /// `storage_order = 1`: those indices count the spatial dims column-major.
    column_major: bool,
}

impl Pool {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Max => "MaxPool",
            Kind::Average => "AveragePool",
            Kind::Lp(_) => "LpPool",
        }
    }

    /// 3-D windows and LpPool run on the N-D loop.
    fn n_d(&self, x: &[usize]) -> bool {
        x.len() > 4 || matches!(self.kind, Kind::Lp(_))
    }

    /// MaxPool on any dtype but f32, or with its Indices output: the reference loop.
    fn general_max(&self, dtype: DType) -> bool {
        self.max && (dtype != DType::F32 || self.indices)
    }

    fn window(&self, x: &[usize]) -> Result<Window> {
        if x.len() < 3 {
            bail_shape!(self.name(), "input must be [N, C, spatial...], got {x:?}");
        }
        Window::resolve(self.name(), &self.window, &x[2..], self.window.kernel_shape.as_deref().unwrap_or(&[]), self.ceil_mode)
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
        if self.general_max(x.dtype) {
            if !(x.dtype.is_float() || matches!(x.dtype, DType::I8 | DType::U8)) {
                bail_shape!("MaxPool", "is defined for float, int8 and uint8 inputs, got {}", x.dtype);
            }
            let mut shape = x.shape[..2].to_vec();
            shape.extend(self.window(&x.shape)?.out);
            let mut out = vec![Fact::new(x.dtype, shape.clone())];
            if self.indices {
                out.push(Fact::new(DType::I64, shape));
            }
            return Ok(out);
        }
        if x.dtype != DType::F32 {
            bail_shape!(self.name(), "is implemented for f32, got {}", x.dtype);
        }
        if self.n_d(&x.shape) {
            let mut shape = x.shape[..2].to_vec();
            shape.extend(self.window(&x.shape)?.out);
            return Ok(vec![Fact::new(DType::F32, shape)]);
        }
        let g = self.geometry(&x.shape)?;
        let mut shape = x.shape[..2].to_vec();
        shape.extend(g.out_spatial(x.rank() - 2));
        Ok(vec![Fact::new(DType::F32, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.name())?;
        if self.general_max(x.dtype()) {
            let w = self.window(x.shape)?;
            let (values, idx) =
                max_pool_indexed(&w, x.shape, &x.to_f64_vec(), self.window.kernel_shape.as_deref().unwrap_or(&[]), self.column_major);
            super::cast::convert(crate::DataRef::F64(&values), &mut outputs[0].data)?;
            if let Some(out) = outputs.get_mut(1) {
                out.i64s_mut()?.copy_from_slice(&idx);
            }
            return Ok(());
        }
        if self.n_d(x.shape) {
            let w = self.window(x.shape)?;
            nd_pool(self, &w, x.shape, x.f32s()?, outputs[0].f32s_mut()?);
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
    kind: Kind,
}

impl Op for GlobalPool {
    fn op_type(&self) -> &str {
        match self.kind {
            Kind::Max => "GlobalMaxPool",
            Kind::Average => "GlobalAveragePool",
            Kind::Lp(_) => "GlobalLpPool",
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
            *y = match self.kind {
                Kind::Max => v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                Kind::Average => v.iter().sum::<f32>() / plane as f32,
                Kind::Lp(p) => v.iter().map(|x| x.abs().powf(p)).sum::<f32>().powf(1.0 / p),
            };
        }
        Ok(())
    }
}

/// Pooling over any number of spatial dims, one window at a time: taps outside the input
/// are skipped (max, Lp) or counted only with `count_include_pad` when they lie within
/// the declared padding (average), as in the 2-D loop above.
fn nd_pool(pool: &Pool, w: &Window, x_shape: &[usize], x: &[f32], y: &mut [f32]) {
    let spatial = &x_shape[2..];
    let r = spatial.len();
    let kernel = pool.window.kernel_shape.as_deref().unwrap_or(&[]);
    let (in_px, out_px): (usize, usize) = (spatial.iter().product(), w.out.iter().product());
    let taps: usize = kernel.iter().product();
    let (mut o_idx, mut k_idx) = (vec![0usize; r], vec![0usize; r]);
    for (src, dst) in x.chunks_exact(in_px).zip(y.chunks_exact_mut(out_px)) {
        for (o, out) in dst.iter_mut().enumerate() {
            unravel(o, &w.out, &mut o_idx);
            let mut acc = if pool.kind == Kind::Max { f32::NEG_INFINITY } else { 0.0 };
            let (mut count, mut padded_count) = (0usize, 0usize);
            'taps: for t in 0..taps {
                unravel(t, kernel, &mut k_idx);
                let mut flat = 0usize;
                let mut inside = true;
                for d in 0..r {
                    let pos = (o_idx[d] * w.strides[d] + k_idx[d] * w.dil[d]) as isize - w.pads[d] as isize;
                    if pos >= (spatial[d] + w.pads[d + r]) as isize {
                        continue 'taps; // past the end padding (a ceil_mode window)
                    }
                    if pos < 0 || pos >= spatial[d] as isize {
                        inside = false;
                    } else {
                        flat = flat * spatial[d] + pos as usize;
                    }
                }
                padded_count += 1;
                if !inside {
                    continue;
                }
                let v = src[flat];
                match pool.kind {
                    Kind::Max => {
                        if v > acc || v.is_nan() {
                            acc = v;
                        }
                    }
                    Kind::Average => acc += v,
                    Kind::Lp(p) => acc += v.abs().powf(p),
                }
                count += 1;
            }
            *out = match pool.kind {
                Kind::Max => acc,
                Kind::Lp(p) => acc.powf(1.0 / p),
                Kind::Average => {
                    let d = if pool.count_include_pad { padded_count } else { count };
                    if d == 0 {
                        0.0
                    } else {
                        acc / d as f32
                    }
                }
            };
        }
    }
}

/// Max pooling over any number of spatial dims in f64 (exact for every dtype MaxPool
/// takes), with the flat index of each maximum in X: the first one in window order,
/// counting the spatial dims row-major, or column-major with `storage_order = 1`.
fn max_pool_indexed(w: &Window, x_shape: &[usize], x: &[f64], kernel: &[usize], column_major: bool) -> (Vec<f64>, Vec<i64>) {
    let spatial = &x_shape[2..];
    let r = spatial.len();
    let (in_px, out_px): (usize, usize) = (spatial.iter().product(), w.out.iter().product());
    let taps: usize = kernel.iter().product();
    let planes = x.len().checked_div(in_px).unwrap_or(0);
    let (mut values, mut indices) = (Vec::with_capacity(planes * out_px), Vec::with_capacity(planes * out_px));
    let (mut o_idx, mut k_idx, mut pos) = (vec![0usize; r], vec![0usize; r], vec![0usize; r]);
    for (plane, src) in x.chunks_exact(in_px.max(1)).enumerate().take(planes) {
        for o in 0..out_px {
            unravel(o, &w.out, &mut o_idx);
            let (mut best, mut best_at) = (f64::NEG_INFINITY, None::<usize>);
            'taps: for t in 0..taps {
                unravel(t, kernel, &mut k_idx);
                for d in 0..r {
                    let p = (o_idx[d] * w.strides[d] + k_idx[d] * w.dil[d]) as isize - w.pads[d] as isize;
                    if p < 0 || p >= spatial[d] as isize {
                        continue 'taps;
                    }
                    pos[d] = p as usize;
                }
                let flat = pos.iter().zip(spatial).fold(0, |acc, (&p, &n)| acc * n + p);
                if best_at.is_none() || src[flat] > best {
                    best = src[flat];
                    best_at = Some(flat);
                }
            }
            let at = best_at.unwrap_or(0);
            let index = if column_major {
                // The same position, counted with the first spatial dim fastest.
                unravel(at, spatial, &mut pos);
                pos.iter().zip(spatial).rev().fold(0, |acc, (&p, &n)| acc * n + p)
            } else {
                at
            };
            values.push(best);
            indices.push((plane * in_px + index) as i64);
        }
    }
    (values, indices)
}
