//! MaxRoiPool (opset 1, unchanged since): the max over each of `pooled_shape` bins of each
//! region of interest, Fast R-CNN's RoI pooling. A region is `[batch, x1, y1, x2, y2]`;
//! corners are scaled by `spatial_scale` and rounded half away from zero (C's `round`), the
//! region is at least one pixel, bins are floor/ceil of the region split evenly and clipped
//! to the image; an empty bin is 0. This is onnxruntime's `RoiPool` kernel, line for line;
//! f16 and f64 are computed in f32.

use super::float_io::{check_float, f32_values, write_f32};
use crate::{bail_shape, required, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("MaxRoiPool", |ctx: &OpContext| {
        let pooled = ctx.ints_opt("pooled_shape")?.ok_or_else(|| Error::InvalidAttr {
            attr: "pooled_shape".into(),
            detail: "is required (the output bins, [height, width])".into(),
        })?;
        let size = |v: i64| usize::try_from(v).ok().filter(|&v| (1..=1 << 16).contains(&v));
        let (Some(&ph), Some(&pw), 2) = (pooled.first(), pooled.get(1), pooled.len()) else {
            return Err(Error::InvalidAttr { attr: "pooled_shape".into(), detail: format!("{pooled:?} must hold two sizes") });
        };
        let (Some(out_h), Some(out_w)) = (size(ph), size(pw)) else {
            return Err(Error::InvalidAttr { attr: "pooled_shape".into(), detail: format!("{pooled:?} must be in 1..=65536") });
        };
        let spatial_scale = ctx.float("spatial_scale", 1.0)?;
        if !spatial_scale.is_finite() {
            return Err(Error::InvalidAttr { attr: "spatial_scale".into(), detail: format!("{spatial_scale} must be finite") });
        }
        Ok(Box::new(MaxRoiPool { out_h, out_w, spatial_scale }))
    });
}

#[derive(Debug)]
struct MaxRoiPool {
    out_h: usize,
    out_w: usize,
    spatial_scale: f32,
}

impl MaxRoiPool {
    fn output_shape(&self, x: &[usize], rois: &[usize]) -> Result<Vec<usize>> {
        if x.len() != 4 || rois.len() != 2 || rois[1] != 5 {
            bail_shape!("MaxRoiPool", "X {x:?} and rois {rois:?} must be [N, C, H, W] and [R, 5] (batch index, x1, y1, x2, y2)");
        }
        Ok(vec![rois[0], x[1], self.out_h, self.out_w])
    }

    /// The `[start, end)` rows (or columns) of bin `p` of `bins` over a region starting at
    /// `start` and `size` pixels long, clipped to `0..len`.
    fn bin(p: usize, bins: usize, start: i64, size: i64, len: usize) -> (usize, usize) {
        let step = size as f32 / bins as f32;
        let clip = |v: i64| v.clamp(0, len as i64) as usize;
        let lo = (p as f32 * step).floor() as i64;
        let hi = ((p + 1) as f32 * step).ceil() as i64;
        (clip(lo.saturating_add(start)), clip(hi.saturating_add(start)))
    }
}

impl Op for MaxRoiPool {
    fn op_type(&self) -> &str {
        "MaxRoiPool"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "MaxRoiPool")?;
        let rois = required(inputs, 1, "MaxRoiPool")?;
        check_float(x.dtype, "MaxRoiPool")?;
        if rois.dtype != x.dtype {
            bail_shape!("MaxRoiPool", "rois must be {} like X, got {}", x.dtype, rois.dtype);
        }
        Ok(vec![Fact::new(x.dtype, self.output_shape(&x.shape, &rois.shape)?)])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "MaxRoiPool")?;
        let rois_t = required(inputs, 1, "MaxRoiPool")?;
        self.output_shape(x.shape, rois_t.shape)?;
        let (xs, rois) = (f32_values(&x, "MaxRoiPool")?, f32_values(&rois_t, "MaxRoiPool")?);
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oh, ow) = (self.out_h, self.out_w);
        write_f32(&mut outputs[0], "MaxRoiPool", |y| {
            for (r, roi) in rois.chunks_exact(5).enumerate() {
                let b = roi[0];
                if !(b >= 0.0 && (b as usize) < n) {
                    return Err(Error::Input(format!("MaxRoiPool: region {r} has batch index {b}, outside 0..{n}")));
                }
                let b = b as usize;
                // C's round (half away from zero), saturating like a float-to-int cast in Rust.
                let corner = |v: f32| (v * self.spatial_scale).round() as i64;
                let (x1, y1, x2, y2) = (corner(roi[1]), corner(roi[2]), corner(roi[3]), corner(roi[4]));
                let rh = y2.saturating_sub(y1).saturating_add(1).max(1);
                let rw = x2.saturating_sub(x1).saturating_add(1).max(1);
                for ch in 0..c {
                    let plane = &xs[(b * c + ch) * h * w..][..h * w];
                    let out = &mut y[(r * c + ch) * oh * ow..][..oh * ow];
                    for ph in 0..oh {
                        let (h0, h1) = Self::bin(ph, oh, y1, rh, h);
                        for pw in 0..ow {
                            let (w0, w1) = Self::bin(pw, ow, x1, rw, w);
                            out[ph * ow + pw] = if h1 <= h0 || w1 <= w0 {
                                0.0
                            } else {
                                (h0..h1).flat_map(|i| &plane[i * w + w0..i * w + w1]).fold(f32::MIN, |m, &v| if v > m { v } else { m })
                            };
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attr, Attrs, Tensor, TensorData};

    fn op(scale: f32) -> Box<dyn Op> {
        let mut attrs = Attrs::new();
        attrs.insert("pooled_shape".into(), Attr::Ints(vec![2, 2]));
        attrs.insert("spatial_scale".into(), Attr::Float(scale));
        Registry::global().build("n", "", "MaxRoiPool", 22, &attrs, 2, 1).unwrap()
    }

    fn run(op: &dyn Op, x: &Tensor, rois: &Tensor) -> Result<Tensor> {
        let facts = op.infer(&[Some(&Fact::new(x.dtype(), x.shape().to_vec())), Some(&Fact::new(rois.dtype(), rois.shape().to_vec()))])?;
        let mut out = Tensor::zeros(facts[0].dtype, facts[0].shape.clone())?;
        op.run(&[Some(x.view()), Some(rois.view())], &mut [out.view_mut()])?;
        Ok(out)
    }

    #[test]
    fn pools_the_max_of_each_bin() {
        // A 4x4 plane 0..16; the region covers it all, so bins are the 2x2 quadrants.
        let x = Tensor::new(vec![1, 1, 4, 4], TensorData::F32((0..16).map(|v| v as f32).collect())).unwrap();
        let rois = Tensor::new(vec![1, 5], TensorData::F32(vec![0.0, 0.0, 0.0, 3.0, 3.0])).unwrap();
        let y = run(&*op(1.0), &x, &rois).unwrap();
        assert_eq!(y.data(), &TensorData::F32(vec![5.0, 7.0, 13.0, 15.0]));
        // Half scale: corners (0,0)-(2,2) (1.5 rounds away from zero), a 3x3 region, bins of
        // 1.5 pixels: rows/columns floor(0)..ceil(1.5) = 0..2 and floor(1.5)..ceil(3) = 1..3.
        let y = run(&*op(0.5), &x, &rois).unwrap();
        assert_eq!(y.data(), &TensorData::F32(vec![5.0, 6.0, 9.0, 10.0]));
    }

    #[test]
    fn a_bad_batch_index_is_an_error() {
        let x = Tensor::zeros(crate::DType::F32, vec![1, 1, 2, 2]).unwrap();
        for b in [1.0, -1.0, f32::NAN] {
            let rois = Tensor::new(vec![1, 5], TensorData::F32(vec![b, 0.0, 0.0, 1.0, 1.0])).unwrap();
            let e = run(&*op(1.0), &x, &rois).unwrap_err().to_string();
            assert!(e.contains("batch index"), "{e}");
        }
    }
}
