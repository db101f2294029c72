//! DeformConv (opset 19, 2-D): a convolution whose taps are moved by learned per-position
//! offsets (and optionally scaled by a mask), each moved tap read by bilinear
//! interpolation with zeros outside the image, as onnx's reference reads it through
//! GridSample (align_corners = 1). A reference kernel in f64; every float dtype.

use super::cast::convert;
use crate::{bail_shape, required, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("DeformConv", |ctx: &OpContext| {
        let read = |name: &str| ctx.usizes_opt(name);
        let positive = |name: &str, v: i64| -> Result<usize> {
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| Error::InvalidAttr { attr: name.into(), detail: format!("{v} must be positive") })
        };
        Ok(Box::new(DeformConv {
            strides: read("strides")?.unwrap_or_else(|| vec![1, 1]),
            dilations: read("dilations")?.unwrap_or_else(|| vec![1, 1]),
            pads: read("pads")?.unwrap_or_else(|| vec![0; 4]),
            kernel: read("kernel_shape")?,
            group: positive("group", ctx.int("group", 1)?)?,
            offset_group: positive("offset_group", ctx.int("offset_group", 1)?)?,
        }))
    });
}

const OP: &str = "DeformConv";

#[derive(Debug)]
struct DeformConv {
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
    kernel: Option<Vec<usize>>,
    group: usize,
    offset_group: usize,
}

/// Output size and everything the loops need.
struct Geo {
    n: usize,
    ic: usize,
    ih: usize,
    iw: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
}

impl DeformConv {
    fn geometry(&self, x: &[usize], w: &[usize], offset: &[usize], mask: Option<&[usize]>, bias: Option<&[usize]>) -> Result<Geo> {
        let (&[n, ic, ih, iw], &[oc, icg, kh, kw]) = (x, w) else {
            bail_shape!(OP, "is implemented for 2-D images: X [N, C, H, W] and W [M, C/group, kH, kW], got {x:?} and {w:?}");
        };
        if self.kernel.as_ref().is_some_and(|k| k[..] != [kh, kw])
            || self.strides.len() != 2
            || self.dilations.len() != 2
            || self.pads.len() != 4
        {
            bail_shape!(OP, "kernel_shape, strides, dilations and pads must describe 2 spatial dims matching W {w:?}");
        }
        if self.strides.contains(&0) || self.dilations.contains(&0) {
            bail_shape!(OP, "strides and dilations must be positive");
        }
        if icg * self.group != ic || oc % self.group != 0 || ic % self.offset_group != 0 {
            bail_shape!(OP, "channels do not split: X has {ic}, W {w:?}, group {}, offset_group {}", self.group, self.offset_group);
        }
        let extent = |i: usize, k: usize, dil: usize, p0: usize, p1: usize, s: usize| -> Result<usize> {
            let span = (k.max(1) - 1) * dil + 1;
            (i + p0 + p1).checked_sub(span).map(|v| v / s + 1).ok_or_else(|| Error::shape(OP, "the kernel is larger than the padded image"))
        };
        let oh = extent(ih, kh, self.dilations[0], self.pads[0], self.pads[2], self.strides[0])?;
        let ow = extent(iw, kw, self.dilations[1], self.pads[1], self.pads[3], self.strides[1])?;
        if offset != [n, self.offset_group * kh * kw * 2, oh, ow] {
            bail_shape!(OP, "offset must be [{n}, {}, {oh}, {ow}], got {offset:?}", self.offset_group * kh * kw * 2);
        }
        if let Some(m) = mask {
            if m != [n, self.offset_group * kh * kw, oh, ow] {
                bail_shape!(OP, "mask must be [{n}, {}, {oh}, {ow}], got {m:?}", self.offset_group * kh * kw);
            }
        }
        if bias.is_some_and(|b| b != [oc]) {
            bail_shape!(OP, "B must be [{oc}], got {bias:?}");
        }
        Ok(Geo { n, ic, ih, iw, oc, kh, kw, oh, ow })
    }
}

/// Bilinear read of one channel plane at (y, x), zero outside.
fn bilinear(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let at = |yy: f64, xx: f64| -> f64 {
        if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 {
            0.0
        } else {
            plane[yy as usize * w + xx as usize]
        }
    };
    at(y0, x0) * (1.0 - fy) * (1.0 - fx)
        + at(y0, x0 + 1.0) * (1.0 - fy) * fx
        + at(y0 + 1.0, x0) * fy * (1.0 - fx)
        + at(y0 + 1.0, x0 + 1.0) * fy * fx
}

impl Op for DeformConv {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let (x, w, off) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?, required(inputs, 2, OP)?);
        let (b, m) = (inputs.get(3).copied().flatten(), inputs.get(4).copied().flatten());
        let same = [Some(w), Some(off), b, m].into_iter().flatten().all(|f| f.dtype == x.dtype);
        if !x.dtype.is_float() || !same {
            bail_shape!(OP, "X, W, offset, B and mask must share one float dtype");
        }
        let g = self.geometry(&x.shape, &w.shape, &off.shape, m.map(|m| m.shape.as_slice()), b.map(|b| b.shape.as_slice()))?;
        Ok(vec![Fact::new(x.dtype, vec![g.n, g.oc, g.oh, g.ow])])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let (x, w, off) = (required(inputs, 0, OP)?, required(inputs, 1, OP)?, required(inputs, 2, OP)?);
        let (b, m) = (inputs.get(3).copied().flatten(), inputs.get(4).copied().flatten());
        let g = self.geometry(x.shape, w.shape, off.shape, m.map(|m| m.shape), b.map(|b| b.shape))?;
        let (xs, ws, offs) = (x.to_f64_vec(), w.to_f64_vec(), off.to_f64_vec());
        let (bias, mask) = (b.map(|b| b.to_f64_vec()), m.map(|m| m.to_f64_vec()));
        let (icg, ocg, ic_per_og) = (g.ic / self.group, g.oc / self.group, g.ic / self.offset_group);
        let (taps, plane, opx) = (g.kh * g.kw, g.ih * g.iw, g.oh * g.ow);
        let mut y = vec![0.0f64; g.n * g.oc * opx];
        for n in 0..g.n {
            for oc in 0..g.oc {
                let grp = oc / ocg;
                for i in 0..g.oh {
                    for j in 0..g.ow {
                        let mut acc = bias.as_ref().map_or(0.0, |b| b[oc]);
                        for c in grp * icg..(grp + 1) * icg {
                            let og = c / ic_per_og;
                            let src = &xs[(n * g.ic + c) * plane..][..plane];
                            for t in 0..taps {
                                let (ki, kj) = (t / g.kw, t % g.kw);
                                let at = |k: usize| offs[(((n * self.offset_group + og) * taps + t) * 2 + k) * opx + i * g.ow + j];
                                let yy = (i * self.strides[0]) as f64 - self.pads[0] as f64 + (ki * self.dilations[0]) as f64 + at(0);
                                let xx = (j * self.strides[1]) as f64 - self.pads[1] as f64 + (kj * self.dilations[1]) as f64 + at(1);
                                let scale =
                                    mask.as_ref().map_or(1.0, |m| m[((n * self.offset_group + og) * taps + t) * opx + i * g.ow + j]);
                                let weight = ws[((oc * icg) + (c - grp * icg)) * taps + t];
                                acc += weight * scale * bilinear(src, g.ih, g.iw, yy, xx);
                            }
                        }
                        y[(n * g.oc + oc) * opx + i * g.ow + j] = acc;
                    }
                }
            }
        }
        convert(crate::DataRef::F64(&y), &mut outputs[0].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::sync::Arc;

    #[test]
    fn half_pixel_offset_interpolates() {
        // 1x1 kernel of weight 1 on a 1x2 image [2, 4], offset +0.5 in x at the first
        // output: reads halfway between the pixels (3); the second reads past the edge
        // half weighted (4 * 0.5).
        let op = DeformConv { strides: vec![1, 1], dilations: vec![1, 1], pads: vec![0; 4], kernel: None, group: 1, offset_group: 1 };
        let x = Tensor::from_f32(vec![1, 1, 1, 2], vec![2., 4.]).unwrap();
        let w = Tensor::from_f32(vec![1, 1, 1, 1], vec![1.]).unwrap();
        let off = Tensor::from_f32(vec![1, 2, 1, 2], vec![0., 0., 0.5, 0.5]).unwrap();
        let out = crate::plan::run_owned(&op, &[x, w, off].map(|t| Some(Arc::new(t)))).unwrap();
        assert_eq!(out[0].f32s().unwrap(), &[3., 2.]);
    }
}
