//! Resize (opsets 10-19+) and Upsample (7-9): nearest and (multi)linear interpolation.
//! Coordinate mapping follows the Resize spec's `coordinate_transformation_mode` formulas.

use crate::{bail_shape, checked_numel, required, DType, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("Resize", build_resize);
    r.register("Upsample", |ctx| {
        let mode = mode(ctx)?;
        let scales = if ctx.opset < 9 { ctx.floats_opt("scales")? } else { None };
        Ok(Box::new(Resize {
            mode,
            coord: Coord::Asymmetric,
            nearest: Nearest::Floor,
            attr_scales: scales,
            axes: None,
            legacy_inputs: true,
        }))
    });
}

fn mode(ctx: &OpContext) -> Result<Mode> {
    match ctx.string("mode", "nearest")?.as_str() {
        "nearest" => Ok(Mode::Nearest),
        "linear" | "bilinear" => Ok(Mode::Linear),
        other => Err(ctx.unsupported("mode", format!("'{other}' interpolation is not implemented"))),
    }
}

fn build_resize(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let mode = mode(ctx)?;
    let coord = match ctx.string("coordinate_transformation_mode", if ctx.opset < 11 { "asymmetric" } else { "half_pixel" })?.as_str() {
        "half_pixel" => Coord::HalfPixel,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_half_pixel_for_nn" => Coord::TfHalfPixelForNn,
        other => return Err(ctx.unsupported("coordinate_transformation_mode", format!("'{other}' is not implemented"))),
    };
    let nearest = match ctx.string("nearest_mode", if ctx.opset < 11 { "floor" } else { "round_prefer_floor" })?.as_str() {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        other => return Err(ctx.unsupported("nearest_mode", format!("'{other}'"))),
    };
    ctx.ignore("cubic_coeff_a");
    ctx.ignore("exclude_outside");
    ctx.ignore("extrapolation_value"); // only used by tf_crop_and_resize, which is refused above
    if ctx.int("antialias", 0)? != 0 {
        return Err(ctx.unsupported("antialias", "antialiased resizing is not implemented"));
    }
    if ctx.string("keep_aspect_ratio_policy", "stretch")? != "stretch" {
        return Err(ctx.unsupported("keep_aspect_ratio_policy", "only 'stretch' is implemented"));
    }
    Ok(Box::new(Resize { mode, coord, nearest, attr_scales: None, axes: ctx.ints_opt("axes")?, legacy_inputs: ctx.opset < 11 }))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Nearest,
    Linear,
}

#[derive(Clone, Copy, Debug)]
enum Coord {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
}

#[derive(Clone, Copy, Debug)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Debug)]
struct Resize {
    mode: Mode,
    coord: Coord,
    nearest: Nearest,
    /// Upsample before opset 9: scales as an attribute.
    attr_scales: Option<Vec<f32>>,
    axes: Option<Vec<i64>>,
    /// Opset 10 Resize and Upsample 9: inputs are (X, scales), not (X, roi, scales, sizes).
    legacy_inputs: bool,
}

impl Resize {
    /// Output shape and per-axis scale.
    fn plan(&self, inputs: &[Option<&Fact>]) -> Result<(Vec<usize>, Vec<f32>)> {
        let x = required(inputs, 0, "Resize")?;
        let rank = x.rank();
        let non_empty = |i: usize| inputs.get(i).copied().flatten().filter(|f| f.numel() > 0);
        let value = |f: &Fact| {
            f.value.as_ref().map(|v| v.view().to_f32_vec()).ok_or_else(|| Error::shape("Resize", "scales/sizes must be constants"))
        };
        let (scales_in, sizes_in) = if self.legacy_inputs { (non_empty(1), None) } else { (non_empty(2), non_empty(3)) };
        let axes: Vec<usize> = match &self.axes {
            None => (0..rank).collect(),
            Some(a) => a.iter().map(|&v| crate::normalize_axis(v, rank, "Resize")).collect::<Result<_>>()?,
        };
        let mut shape = x.shape.clone();
        let mut scales = vec![1.0f32; rank];
        if let Some(s) = &self.attr_scales {
            if s.len() != rank {
                bail_shape!("Upsample", "scales {s:?} do not match rank {rank}");
            }
            scales.copy_from_slice(s);
            shape = x.shape.iter().zip(s).map(|(&d, &k)| (d as f32 * k).floor() as usize).collect();
        } else if let Some(sizes) = sizes_in {
            let v = value(sizes)?;
            if v.len() != axes.len() {
                bail_shape!("Resize", "sizes {v:?} do not match {} axes", axes.len());
            }
            for (&a, &n) in axes.iter().zip(&v) {
                shape[a] = n.max(0.0) as usize;
                scales[a] = n / x.shape[a].max(1) as f32;
            }
        } else if let Some(sc) = scales_in {
            let v = value(sc)?;
            if v.len() != axes.len() || v.iter().any(|&k| !(k > 0.0 && k < 1e6)) {
                bail_shape!("Resize", "scales {v:?} must be {} positive values", axes.len());
            }
            for (&a, &k) in axes.iter().zip(&v) {
                scales[a] = k;
                shape[a] = (x.shape[a] as f64 * k as f64).floor() as usize;
            }
        } else {
            bail_shape!("Resize", "needs scales or sizes");
        }
        checked_numel(&shape)?;
        Ok((shape, scales))
    }

    fn source_coord(&self, out_i: usize, scale: f32, in_len: usize, out_len: usize) -> f32 {
        let x = out_i as f32;
        match self.coord {
            Coord::HalfPixel => (x + 0.5) / scale - 0.5,
            Coord::PytorchHalfPixel => {
                if out_len > 1 {
                    (x + 0.5) / scale - 0.5
                } else {
                    0.0
                }
            }
            // The spec's length_resized here is in_len * scale, before flooring.
            Coord::AlignCorners => {
                if out_len == 1 {
                    0.0
                } else {
                    x * (in_len as f32 - 1.0) / (in_len as f32 * scale - 1.0)
                }
            }
            Coord::Asymmetric => x / scale,
            Coord::TfHalfPixelForNn => (x + 0.5) / scale,
        }
    }
}

impl Op for Resize {
    fn op_type(&self) -> &str {
        "Resize"
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Resize")?;
        if x.dtype != DType::F32 {
            bail_shape!("Resize", "is implemented for f32, got {}", x.dtype);
        }
        Ok(vec![Fact::new(x.dtype, self.plan(inputs)?.0)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let facts: Vec<Option<Fact>> = inputs.iter().map(|t| t.map(|t| Fact::from_tensor(std::sync::Arc::new(t.to_tensor())))).collect();
        let refs: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
        let (shape, scales) = self.plan(&refs)?;
        let x = required(inputs, 0, "Resize")?;
        let xs = x.f32s()?;
        let rank = shape.len();
        // Per axis and output index: (low index, high index, weight of high).
        let taps: Vec<Vec<(usize, usize, f32)>> = (0..rank)
            .map(|a| {
                let (n_in, n_out) = (x.shape[a], shape[a]);
                (0..n_out)
                    .map(|o| {
                        let c = self.source_coord(o, scales[a], n_in, n_out);
                        let last = n_in.saturating_sub(1) as f32;
                        match self.mode {
                            Mode::Nearest => {
                                let i = match self.nearest {
                                    Nearest::RoundPreferFloor => {
                                        if c.fract() == 0.5 {
                                            c.floor()
                                        } else {
                                            c.round()
                                        }
                                    }
                                    Nearest::RoundPreferCeil => {
                                        if c.fract() == 0.5 {
                                            c.ceil()
                                        } else {
                                            c.round()
                                        }
                                    }
                                    Nearest::Floor => c.floor(),
                                    Nearest::Ceil => c.ceil(),
                                }
                                .clamp(0.0, last) as usize;
                                (i, i, 0.0)
                            }
                            Mode::Linear => {
                                let c = c.clamp(0.0, last);
                                let lo = c.floor() as usize;
                                let hi = (lo + 1).min(n_in.saturating_sub(1));
                                (lo, hi, c - lo as f32)
                            }
                        }
                    })
                    .collect()
            })
            .collect();
        let strides = super::broadcast::contiguous_strides(x.shape);
        let y = outputs[0].f32s_mut()?;
        let mut counter = vec![0usize; rank];
        for out in y.iter_mut() {
            // Sum over the 2^rank corners, skipping axes whose high weight is 0.
            let mut acc = 0.0f32;
            let corners = 1usize << rank;
            for corner in 0..corners {
                let mut w = 1.0f32;
                let mut off = 0usize;
                for a in 0..rank {
                    let (lo, hi, t) = taps[a][counter[a]];
                    let high = corner >> a & 1 == 1;
                    if high && t == 0.0 {
                        w = 0.0;
                        break;
                    }
                    w *= if high { t } else { 1.0 - t };
                    off += (if high { hi } else { lo }) * strides[a];
                }
                if w != 0.0 {
                    acc += w * xs[off];
                }
            }
            *out = acc;
            for a in (0..rank).rev() {
                counter[a] += 1;
                if counter[a] < shape[a] {
                    break;
                }
                counter[a] = 0;
            }
        }
        Ok(())
    }
}
