//! RoiAlign (opsets 10, 16, 22): average or max of bilinear samples on a regular grid in
//! each output bin of each region, `half_pixel` or `output_half_pixel` coordinates,
//! `sampling_ratio` 0 meaning adaptive (ceil(roi size / bins) samples per bin), as
//! onnxruntime and onnx's reference compute it (max mode takes the max of the weighted
//! corners, which is what both implement). f16 is computed in f32.

use super::float_io::{check_float, f32_values, write_f32};
use crate::{bail_shape, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("RoiAlign", |ctx: &OpContext| {
        let half_pixel =
            match ctx.string("coordinate_transformation_mode", if ctx.opset < 16 { "output_half_pixel" } else { "half_pixel" })?.as_str() {
                "half_pixel" => true,
                "output_half_pixel" => false,
                other => return Err(ctx.unsupported("coordinate_transformation_mode", format!("'{other}'"))),
            };
        let max = match ctx.string("mode", "avg")?.as_str() {
            "avg" => false,
            "max" => true,
            other => return Err(ctx.unsupported("mode", format!("'{other}' (expected avg or max)"))),
        };
        let size = |name: &str| -> Result<usize> {
            let v = ctx.int(name, 1)?;
            usize::try_from(v)
                .ok()
                .filter(|&v| (1..=1 << 16).contains(&v))
                .ok_or_else(|| Error::InvalidAttr { attr: name.into(), detail: format!("{v} must be positive") })
        };
        let sampling_ratio = ctx.int("sampling_ratio", 0)?;
        if !(0..=1 << 10).contains(&sampling_ratio) {
            return Err(Error::InvalidAttr { attr: "sampling_ratio".into(), detail: format!("{sampling_ratio} must be in 0..=1024") });
        }
        Ok(Box::new(RoiAlign {
            half_pixel,
            max,
            out_h: size("output_height")?,
            out_w: size("output_width")?,
            sampling_ratio: sampling_ratio as usize,
            spatial_scale: ctx.float("spatial_scale", 1.0)?,
        }))
    });
}

#[derive(Debug)]
struct RoiAlign {
    half_pixel: bool,
    max: bool,
    out_h: usize,
    out_w: usize,
    sampling_ratio: usize,
    spatial_scale: f32,
}

/// One bilinear sample: four input offsets and their weights (all 0 outside the image).
struct Sample {
    at: [usize; 4],
    w: [f32; 4],
}

impl RoiAlign {
    fn output_shape(&self, x: &[usize], rois: &[usize], idx: &[usize]) -> Result<Vec<usize>> {
        if x.len() != 4 || rois.len() != 2 || rois[1] != 4 || idx != [rois[0]] {
            bail_shape!("RoiAlign", "X {x:?}, rois {rois:?} and batch_indices {idx:?} must be [N, C, H, W], [R, 4] and [R]");
        }
        Ok(vec![rois[0], x[1], self.out_h, self.out_w])
    }

    /// The bilinear sample at (y, x) of an `h x w` plane, as onnx's reference clamps it.
    fn sample(y: f32, x: f32, h: usize, w: usize) -> Sample {
        if y < -1.0 || y > h as f32 || x < -1.0 || x > w as f32 {
            return Sample { at: [0; 4], w: [0.0; 4] };
        }
        let axis = |v: f32, len: usize| -> (usize, usize, f32) {
            let v = v.max(0.0);
            let lo = v as usize;
            if lo >= len - 1 {
                (len - 1, len - 1, 0.0)
            } else {
                (lo, lo + 1, v - lo as f32)
            }
        };
        let (y0, y1, ly) = axis(y, h);
        let (x0, x1, lx) = axis(x, w);
        let (hy, hx) = (1.0 - ly, 1.0 - lx);
        Sample { at: [y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], w: [hy * hx, hy * lx, ly * hx, ly * lx] }
    }
}

impl Op for RoiAlign {
    fn op_type(&self) -> &str {
        "RoiAlign"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "RoiAlign")?;
        let rois = required(inputs, 1, "RoiAlign")?;
        let idx = required(inputs, 2, "RoiAlign")?;
        check_float(x.dtype, "RoiAlign")?;
        if rois.dtype != x.dtype || !matches!(idx.dtype, DType::I64 | DType::I32) {
            bail_shape!("RoiAlign", "rois must be {} and batch_indices integers, got {} and {}", x.dtype, rois.dtype, idx.dtype);
        }
        Ok(vec![Fact::new(x.dtype, self.output_shape(&x.shape, &rois.shape, &idx.shape)?)])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "RoiAlign")?;
        let rois_t = required(inputs, 1, "RoiAlign")?;
        let idx = required(inputs, 2, "RoiAlign")?.to_i64_vec()?;
        self.output_shape(x.shape, rois_t.shape, &[idx.len()])?;
        let (xs, rois) = (f32_values(&x, "RoiAlign")?, f32_values(&rois_t, "RoiAlign")?);
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oh, ow) = (self.out_h, self.out_w);
        write_f32(&mut outputs[0], "RoiAlign", |y| {
            if h == 0 || w == 0 {
                y.fill(0.0);
                return Ok(());
            }
            for (r, &b) in idx.iter().enumerate() {
                let b = usize::try_from(b)
                    .ok()
                    .filter(|&b| b < n)
                    .ok_or_else(|| Error::Input(format!("RoiAlign: batch index {b} is outside 0..{n}")))?;
                let offset = if self.half_pixel { 0.5 } else { 0.0 };
                let roi = &rois[r * 4..][..4];
                let (x0, y0) = (roi[0] * self.spatial_scale - offset, roi[1] * self.spatial_scale - offset);
                let (mut rw, mut rh) = (roi[2] * self.spatial_scale - offset - x0, roi[3] * self.spatial_scale - offset - y0);
                if !self.half_pixel {
                    rw = rw.max(1.0);
                    rh = rh.max(1.0);
                }
                let (bin_h, bin_w) = (rh / oh as f32, rw / ow as f32);
                let grid = |size: f32, bins: usize| {
                    if self.sampling_ratio > 0 {
                        self.sampling_ratio
                    } else {
                        (size / bins as f32).ceil().clamp(0.0, 1024.0) as usize
                    }
                };
                let (gh, gw) = (grid(rh, oh), grid(rw, ow));
                let count = (gh * gw).max(1) as f32;
                // The samples of every bin, shared by all channels.
                let mut samples = Vec::with_capacity(oh * ow * gh * gw);
                for ph in 0..oh {
                    for pw in 0..ow {
                        for iy in 0..gh {
                            let sy = y0 + ph as f32 * bin_h + (iy as f32 + 0.5) * bin_h / gh as f32;
                            for ix in 0..gw {
                                let sx = x0 + pw as f32 * bin_w + (ix as f32 + 0.5) * bin_w / gw as f32;
                                samples.push(Self::sample(sy, sx, h, w));
                            }
                        }
                    }
                }
                let per_bin = gh * gw;
                for ch in 0..c {
                    let plane = &xs[(b * c + ch) * h * w..][..h * w];
                    let out = &mut y[(r * c + ch) * oh * ow..][..oh * ow];
                    for (bin, o) in out.iter_mut().enumerate() {
                        let bin_samples = &samples[bin * per_bin..][..per_bin];
                        *o = if per_bin == 0 {
                            0.0
                        } else if self.max {
                            let weighted = |s: &Sample| (0..4).map(|k| s.w[k] * plane[s.at[k]]).fold(f32::NEG_INFINITY, f32::max);
                            bin_samples.iter().map(weighted).fold(f32::NEG_INFINITY, f32::max)
                        } else {
                            bin_samples.iter().map(|s| (0..4).map(|k| s.w[k] * plane[s.at[k]]).sum::<f32>()).sum::<f32>() / count
                        };
                    }
                }
            }
            Ok(())
        })
    }
}
