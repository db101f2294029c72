//! GridSample (opsets 16, 20, 22): sample `X [N, C, D1..Dr]` (r = 1 to 3) at the normalized
//! points of `grid [N, O1..Or, r]`, with nearest, (multi)linear or (multi)cubic
//! interpolation (Keys, a = -0.75), zeros/border/reflection padding and both
//! `align_corners` conventions; opset 16's names bilinear/bicubic are accepted.
//!
//! Interpolation is separable: an output value is the sum over the tap grid (2^r or 4^r
//! points) of the product of 1-D weights times the input at that tap, each tap's index
//! mapped by the padding mode on its own axis, as onnx's reference does axis by axis.
//! f16 is computed in f32 (docs/adr/0014-f16-compute.md).

use super::float_io::{check_float, f32_values, write_f32};
use crate::{bail_shape, required, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("GridSample", |ctx: &OpContext| {
        let mode = match ctx.string("mode", if ctx.opset < 20 { "bilinear" } else { "linear" })?.as_str() {
            "nearest" => Mode::Nearest,
            "linear" | "bilinear" => Mode::Linear,
            "cubic" | "bicubic" => Mode::Cubic,
            other => return Err(ctx.unsupported("mode", format!("'{other}' (expected nearest, linear or cubic)"))),
        };
        let padding = match ctx.string("padding_mode", "zeros")?.as_str() {
            "zeros" => Padding::Zeros,
            "border" => Padding::Border,
            "reflection" => Padding::Reflection,
            other => return Err(ctx.unsupported("padding_mode", format!("'{other}' (expected zeros, border or reflection)"))),
        };
        Ok(Box::new(GridSample { mode, padding, align_corners: ctx.int("align_corners", 0)? != 0 }))
    });
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

#[derive(Debug)]
struct GridSample {
    mode: Mode,
    padding: Padding,
    align_corners: bool,
}

/// One axis's geometry: its length and the band [lo, hi] that counts as inside.
#[derive(Clone, Copy, Debug)]
struct Axis {
    len: usize,
    lo: f32,
    hi: f32,
}

impl GridSample {
    fn output_shape(&self, x: &[usize], grid: &[usize]) -> Result<Vec<usize>> {
        let r = x.len().saturating_sub(2);
        if !(1..=3).contains(&r) || grid.len() != r + 2 || grid[0] != x[0] || grid[r + 1] != r {
            bail_shape!("GridSample", "X {x:?} and grid {grid:?} must be [N, C, D1..Dr] and [N, O1..Or, r] with r = 1 to 3");
        }
        let mut shape = vec![x[0], x[1]];
        shape.extend_from_slice(&grid[1..=r]);
        Ok(shape)
    }

    /// Reflects `v` into [lo, hi] by folding at the near border, as onnx's reference.
    fn reflect(v: f32, lo: f32, hi: f32) -> f32 {
        let range = hi - lo;
        if range <= 0.0 {
            return lo;
        }
        let fold = |d: f32| {
            let n = (d / range).trunc();
            (n, d - n * range)
        };
        if v < lo {
            let (n, r) = fold(lo - v);
            if n % 2.0 == 0.0 {
                lo + r
            } else {
                hi - r
            }
        } else if v > hi {
            let (n, r) = fold(v - hi);
            if n % 2.0 == 0.0 {
                hi - r
            } else {
                lo + r
            }
        } else {
            v
        }
    }

    /// The input index tap `i` reads on `axis`, or None where zero padding reads 0.
    fn tap_index(&self, i: i64, axis: Axis) -> Option<usize> {
        let last = axis.len as i64 - 1;
        if last < 0 {
            return None; // an empty axis has nothing to read, whatever the padding (found by fuzzing)
        }
        match self.padding {
            Padding::Zeros => (0..=last).contains(&i).then_some(i as usize),
            Padding::Border => Some(i.clamp(0, last) as usize),
            Padding::Reflection => Some((Self::reflect(i as f32, axis.lo, axis.hi) as i64).clamp(0, last) as usize),
        }
    }

    /// Taps and weights on one axis for source coordinate `v`: (first tap, weights).
    fn weights(&self, v: f32) -> (i64, [f32; 4], usize) {
        match self.mode {
            Mode::Nearest => (v as i64, [1.0, 0.0, 0.0, 0.0], 1),
            Mode::Linear => {
                let f = v.floor();
                let t = v - f;
                (f as i64, [1.0 - t, t, 0.0, 0.0], 2)
            }
            Mode::Cubic => {
                let f = v.floor();
                (f as i64 - 1, cubic_coeffs(v - f), 4)
            }
        }
    }
}

/// Keys' cubic convolution weights (a = -0.75) of the four taps around a point at
/// fraction `t` past the second.
fn cubic_coeffs(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

impl Op for GridSample {
    fn op_type(&self) -> &str {
        "GridSample"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "GridSample")?;
        let grid = required(inputs, 1, "GridSample")?;
        check_float(x.dtype, "GridSample")?;
        check_float(grid.dtype, "GridSample")?;
        Ok(vec![Fact::new(x.dtype, self.output_shape(&x.shape, &grid.shape)?)])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "GridSample")?;
        let grid = required(inputs, 1, "GridSample")?;
        self.output_shape(x.shape, grid.shape)?;
        let xs = f32_values(&x, "GridSample")?;
        let gs = f32_values(&grid, "GridSample")?;
        let r = x.shape.len() - 2;
        let (n, c) = (x.shape[0], x.shape[1]);
        let dims = &x.shape[2..];
        let in_px: usize = dims.iter().product();
        let out_px: usize = grid.shape[1..=r].iter().product();
        let axes: Vec<Axis> = dims
            .iter()
            .map(|&len| {
                let (lo, hi) = if self.align_corners { (0.0, len as f32 - 1.0) } else { (-0.5, len as f32 - 0.5) };
                Axis { len, lo, hi }
            })
            .collect();
        // Row-major strides of the input's spatial dims.
        let strides: Vec<usize> = (0..r).map(|d| dims[d + 1..].iter().product()).collect();
        write_f32(&mut outputs[0], "GridSample", |y| {
            for b in 0..n {
                for p in 0..out_px {
                    // grid's last dim lists (x, y, z): the innermost axis first.
                    let point = &gs[(b * out_px + p) * r..][..r];
                    let mut taps: Vec<(Vec<(Option<usize>, f32)>, usize)> = Vec::with_capacity(r);
                    for d in 0..r {
                        let axis = axes[d];
                        let g = point[r - 1 - d];
                        let len = axis.len as f32;
                        let mut v = if self.align_corners { (g + 1.0) / 2.0 * (len - 1.0) } else { ((g + 1.0) * len - 1.0) / 2.0 };
                        if self.mode == Mode::Nearest {
                            v = v.round_ties_even();
                        }
                        if v < axis.lo || v > axis.hi {
                            v = match self.padding {
                                Padding::Border => v.clamp(0.0, len - 1.0),
                                Padding::Reflection => Self::reflect(v, axis.lo, axis.hi),
                                Padding::Zeros => v,
                            };
                        }
                        let (first, w, count) = self.weights(v);
                        let list = (0..count).map(|k| (self.tap_index(first + k as i64, axis), w[k])).collect();
                        taps.push((list, strides[d]));
                    }
                    for ch in 0..c {
                        let plane = &xs[(b * c + ch) * in_px..][..in_px];
                        y[(b * c + ch) * out_px + p] = sum_taps(plane, &taps, 0, 0, 1.0);
                    }
                }
            }
            Ok(())
        })
    }
}

/// Sum over the tap grid from axis `d` on: `weight` and `offset` carry the product of the
/// outer axes' weights and their index offset. A tap outside under zero padding adds 0.
fn sum_taps(plane: &[f32], taps: &[(Vec<(Option<usize>, f32)>, usize)], d: usize, offset: usize, weight: f32) -> f32 {
    let Some((list, stride)) = taps.get(d) else {
        return weight * plane[offset];
    };
    list.iter().filter_map(|&(i, w)| i.map(|i| sum_taps(plane, taps, d + 1, offset + i * stride, weight * w))).sum()
}
