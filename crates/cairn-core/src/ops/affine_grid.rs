//! AffineGrid (opset 20): the sampling grid of `theta` applied to the regular grid of
//! `size` (`[N, C, H, W]` or `[N, C, D, H, W]`), in [-1, 1] coordinates, as GridSample
//! reads it. Output `[N, H, W, 2]` or `[N, D, H, W, 3]`, x first. Computed in f64.

use crate::{bail_shape, required, Error, Fact, Op, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("AffineGrid", |ctx| Ok(Box::new(AffineGrid { align_corners: ctx.int("align_corners", 0)? != 0 })));
}

const OP: &str = "AffineGrid";

#[derive(Debug)]
struct AffineGrid {
    align_corners: bool,
}

/// The spatial sizes (D, H, W or H, W) from `size`, checked against theta `[N, r, r + 1]`.
fn spatial(theta: &[usize], size: &[i64]) -> Result<Vec<usize>> {
    let r = size.len().saturating_sub(2);
    if !(r == 2 || r == 3) || theta != [theta[0], r, r + 1] || size[0] != theta[0] as i64 {
        bail_shape!(OP, "needs theta [N, 2, 3] with size [N, C, H, W], or theta [N, 3, 4] with size [N, C, D, H, W]; got theta {theta:?}, size {size:?}");
    }
    size[2..].iter().map(|&d| usize::try_from(d).map_err(|_| Error::shape(OP, format!("size {size:?} must not be negative")))).collect()
}

/// Coordinate of position `i` of `n` along one axis.
fn coord(i: usize, n: usize, align_corners: bool) -> f64 {
    if align_corners {
        if n == 1 {
            -1.0
        } else {
            -1.0 + 2.0 * i as f64 / (n - 1) as f64
        }
    } else {
        -1.0 + (2 * i + 1) as f64 / n as f64
    }
}

impl Op for AffineGrid {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let theta = required(inputs, 0, OP)?;
        if !theta.dtype.is_float() || theta.rank() != 3 {
            bail_shape!(OP, "theta must be a float [N, 2, 3] or [N, 3, 4] tensor, got {} {:?}", theta.dtype, theta.shape);
        }
        let size = required(inputs, 1, OP)?
            .known_i64s()
            .ok_or_else(|| Error::shape(OP, "size sets the output shape; it must be known before running"))?;
        let dims = spatial(&theta.shape, &size)?;
        let mut shape = vec![theta.shape[0]];
        shape.extend(&dims);
        shape.push(dims.len());
        Ok(vec![Fact::new(theta.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let theta = required(inputs, 0, OP)?;
        let dims = spatial(theta.shape, &required(inputs, 1, OP)?.to_i64_vec()?)?;
        let r = dims.len();
        let th = theta.to_f64_vec();
        let points: usize = dims.iter().product();
        let mut out = Vec::with_capacity(theta.shape[0] * points * r);
        let mut pos = vec![0usize; r];
        for n in 0..theta.shape[0] {
            let t = &th[n * r * (r + 1)..][..r * (r + 1)];
            for p in 0..points {
                let mut rest = p;
                for d in (0..r).rev() {
                    pos[d] = rest % dims[d];
                    rest /= dims[d];
                }
                // Homogeneous point (x, y[, z], 1): x runs along the last dim.
                let mut h: Vec<f64> = (0..r).map(|j| coord(pos[r - 1 - j], dims[r - 1 - j], self.align_corners)).collect();
                h.push(1.0);
                for row in t.chunks_exact(r + 1) {
                    out.push(row.iter().zip(&h).map(|(a, b)| a * b).sum());
                }
            }
        }
        super::cast::convert(crate::DataRef::F64(&out), &mut outputs[0].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use std::sync::Arc;

    #[test]
    fn identity_theta_gives_pixel_centres() {
        let op = AffineGrid { align_corners: false };
        let theta = Tensor::from_f32(vec![1, 2, 3], vec![1., 0., 0., 0., 1., 0.]).unwrap();
        let size = Tensor::from_i64(vec![4], vec![1, 1, 1, 2]).unwrap();
        let out = crate::plan::run_owned(&op, &[theta, size].map(|t| Some(Arc::new(t)))).unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 2, 2]);
        assert_eq!(out[0].f32s().unwrap(), &[-0.5, 0., 0.5, 0.]);
    }
}
