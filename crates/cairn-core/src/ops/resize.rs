//! Resize (opsets 10-19+) and Upsample (7-9) in every mode: nearest (every `nearest_mode`),
//! (multi)linear and (multi)cubic (`cubic_coeff_a`, `exclude_outside`), `antialias` for
//! linear and cubic, every `coordinate_transformation_mode` (tf_crop_and_resize with `roi`
//! and `extrapolation_value` included), `keep_aspect_ratio_policy` and `axes`.
//!
//! Resizing is separable, as in onnx's reference and onnxruntime: one 1-D pass per axis
//! whose size or sampling changes, each output index reading a short run of input indices
//! with precomputed weights (an axis that maps every index to itself is skipped). On the
//! innermost axis a pass gathers within rows; on outer axes it combines whole contiguous
//! rows (nearest copies them), so an upsampling FPN's nearest 2x is two passes of copies.
//! f16 is computed in f32 (docs/adr/0011-f16-compute.md).

use super::float_io::{check_float, f32_values, write_f32};
use crate::{bail_shape, checked_numel, required, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

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
            cubic_a: -0.75,
            exclude_outside: false,
            extrapolation: 0.0,
            antialias: false,
            aspect: Aspect::Stretch,
        }))
    });
}

fn mode(ctx: &OpContext) -> Result<Mode> {
    match ctx.string("mode", "nearest")?.as_str() {
        "nearest" => Ok(Mode::Nearest),
        "linear" | "bilinear" => Ok(Mode::Linear),
        "cubic" | "bicubic" => Ok(Mode::Cubic),
        other => Err(ctx.unsupported("mode", format!("'{other}' (expected nearest, linear or cubic)"))),
    }
}

fn build_resize(ctx: &OpContext) -> Result<Box<dyn Op>> {
    let mode = mode(ctx)?;
    let coord = match ctx.string("coordinate_transformation_mode", if ctx.opset < 11 { "asymmetric" } else { "half_pixel" })?.as_str() {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_half_pixel_for_nn" => Coord::TfHalfPixelForNn,
        "tf_crop_and_resize" => Coord::TfCropAndResize,
        other => return Err(ctx.unsupported("coordinate_transformation_mode", format!("'{other}'"))),
    };
    let nearest = match ctx.string("nearest_mode", if ctx.opset < 11 { "floor" } else { "round_prefer_floor" })?.as_str() {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        other => return Err(ctx.unsupported("nearest_mode", format!("'{other}'"))),
    };
    let aspect = match ctx.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
        "stretch" => Aspect::Stretch,
        "not_larger" => Aspect::NotLarger,
        "not_smaller" => Aspect::NotSmaller,
        other => return Err(ctx.unsupported("keep_aspect_ratio_policy", format!("'{other}'"))),
    };
    Ok(Box::new(Resize {
        mode,
        coord,
        nearest,
        attr_scales: None,
        axes: ctx.ints_opt("axes")?,
        legacy_inputs: ctx.opset < 11,
        cubic_a: ctx.float("cubic_coeff_a", -0.75)? as f64,
        exclude_outside: ctx.int("exclude_outside", 0)? != 0,
        extrapolation: ctx.float("extrapolation_value", 0.0)?,
        antialias: ctx.int("antialias", 0)? != 0,
        aspect,
    }))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Aspect {
    Stretch,
    NotLarger,
    NotSmaller,
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
    cubic_a: f64,
    exclude_outside: bool,
    extrapolation: f32,
    antialias: bool,
    aspect: Aspect,
}

/// Output shape, per-axis scale and per-axis roi (start, end) as the spec defines them.
struct Plan {
    shape: Vec<usize>,
    scales: Vec<f64>,
    roi: Vec<(f64, f64)>,
}

/// One output index of a 1-D pass: `weights.len()` taps from input index `first` on
/// (already clamped per tap in `taps`), or the extrapolation value.
#[derive(Clone, Debug, PartialEq)]
enum Sample {
    Taps { taps: Vec<(usize, f32)> },
    Extrapolate,
}

impl Resize {
    fn plan(&self, x: &[usize], input: impl Fn(usize) -> Option<Vec<f32>>) -> Result<Plan> {
        let rank = x.len();
        let axes: Vec<usize> = match &self.axes {
            None => (0..rank).collect(),
            Some(a) => a.iter().map(|&v| crate::normalize_axis(v, rank, "Resize")).collect::<Result<_>>()?,
        };
        let (roi_in, scales_in, sizes_in) = if self.legacy_inputs { (None, input(1), None) } else { (input(1), input(2), input(3)) };
        let mut shape = x.to_vec();
        let mut scales = vec![1.0f64; rank];
        let mut roi = vec![(0.0f64, 1.0f64); rank];
        if let Some(r) = roi_in.filter(|_| self.coord == Coord::TfCropAndResize) {
            if r.len() != 2 * axes.len() {
                bail_shape!("Resize", "roi {r:?} must hold a start and an end for each of {} axes", axes.len());
            }
            for (k, &a) in axes.iter().enumerate() {
                roi[a] = (r[k] as f64, r[k + axes.len()] as f64);
            }
        }
        if let Some(s) = &self.attr_scales {
            if s.len() != rank {
                bail_shape!("Upsample", "scales {s:?} do not match rank {rank}");
            }
            for a in 0..rank {
                scales[a] = s[a] as f64;
                shape[a] = (x[a] as f64 * scales[a]).floor() as usize;
            }
        } else if let Some(sizes) = sizes_in {
            if sizes.len() != axes.len() || sizes.iter().any(|&n| !(0.0..=(1u64 << 31) as f32).contains(&n)) {
                bail_shape!("Resize", "sizes {sizes:?} must be {} non-negative values", axes.len());
            }
            let ratios: Vec<f64> = axes.iter().zip(&sizes).map(|(&a, &n)| n as f64 / x[a].max(1) as f64).collect();
            let uniform = match self.aspect {
                Aspect::Stretch => None,
                Aspect::NotLarger => ratios.iter().copied().reduce(f64::min),
                Aspect::NotSmaller => ratios.iter().copied().reduce(f64::max),
            };
            for (k, &a) in axes.iter().enumerate() {
                match uniform {
                    None => {
                        shape[a] = sizes[k] as usize;
                        scales[a] = ratios[k];
                    }
                    Some(s) => {
                        shape[a] = (s * x[a] as f64 + 0.5) as usize;
                        scales[a] = s;
                    }
                }
            }
        } else if let Some(sc) = scales_in {
            if sc.len() != axes.len() || sc.iter().any(|&k| !(k > 0.0 && k < 1e6)) {
                bail_shape!("Resize", "scales {sc:?} must be {} positive values", axes.len());
            }
            for (&a, &k) in axes.iter().zip(&sc) {
                scales[a] = k as f64;
                shape[a] = (x[a] as f64 * k as f64).floor() as usize;
            }
        } else {
            bail_shape!("Resize", "needs scales or sizes");
        }
        checked_numel(&shape)?;
        Ok(Plan { shape, scales, roi })
    }

    /// The source coordinate of output index `o` on an axis, or None where
    /// tf_crop_and_resize samples outside the input (the extrapolation value).
    fn source(&self, o: usize, scale: f64, n_in: usize, n_out: usize, roi: (f64, f64)) -> Option<f64> {
        let x = o as f64;
        let out_float = scale * n_in as f64;
        Some(match self.coord {
            Coord::HalfPixel => (x + 0.5) / scale - 0.5,
            Coord::HalfPixelSymmetric => {
                let adjustment = n_out as f64 / out_float;
                let offset = n_in as f64 / 2.0 * (1.0 - adjustment);
                offset + (x + 0.5) / scale - 0.5
            }
            Coord::PytorchHalfPixel if out_float == 1.0 => -0.5,
            Coord::PytorchHalfPixel => (x + 0.5) / scale - 0.5,
            Coord::AlignCorners if out_float == 1.0 => 0.0,
            Coord::AlignCorners => x * (n_in as f64 - 1.0) / (out_float - 1.0),
            Coord::Asymmetric => x / scale,
            Coord::TfHalfPixelForNn => (x + 0.5) / scale,
            Coord::TfCropAndResize => {
                let span = (roi.1 - roi.0) * (n_in as f64 - 1.0);
                let v = if out_float == 1.0 { span / 2.0 } else { x * span / (out_float - 1.0) } + roi.0 * (n_in as f64 - 1.0);
                if v < 0.0 || v > n_in as f64 - 1.0 {
                    return None;
                }
                v
            }
        })
    }

    /// Every output index's taps on one axis.
    fn samples(&self, n_in: usize, n_out: usize, scale: f64, roi: (f64, f64)) -> Vec<Sample> {
        let last = n_in.saturating_sub(1) as i64;
        (0..n_out)
            .map(|o| {
                let Some(x) = self.source(o, scale, n_in, n_out, roi) else {
                    return Sample::Extrapolate;
                };
                if self.mode == Mode::Nearest {
                    let i = match self.nearest {
                        Nearest::RoundPreferFloor if x.fract() == 0.5 => x.floor(),
                        Nearest::RoundPreferCeil if x.fract() == 0.5 => x.ceil(),
                        Nearest::RoundPreferFloor | Nearest::RoundPreferCeil => x.round(),
                        Nearest::Floor => x.floor(),
                        Nearest::Ceil => x.ceil(),
                    };
                    return Sample::Taps { taps: vec![((i as i64).clamp(0, last) as usize, 1.0)] };
                }
                // The taps sit around x; `ratio` in (0, 1] is x's distance past the tap
                // below it (1 on an integer, as onnx's reference counts).
                let ceil = x.ceil();
                let ratio = x - (ceil - 1.0);
                let weights = self.weights(ratio, scale);
                let first = ceil as i64 - (weights.len() / 2) as i64;
                let mut taps: Vec<(i64, f64)> = weights.into_iter().enumerate().map(|(k, w)| (first + k as i64, w)).collect();
                if self.exclude_outside {
                    taps.iter_mut().filter(|(i, _)| *i < 0 || *i > last).for_each(|(_, w)| *w = 0.0);
                    let total: f64 = taps.iter().map(|t| t.1).sum();
                    if total != 0.0 {
                        taps.iter_mut().for_each(|(_, w)| *w /= total);
                    }
                }
                // Outside taps read the edge (the reference pads by repeating it).
                Sample::Taps { taps: taps.into_iter().filter(|t| t.1 != 0.0).map(|(i, w)| (i.clamp(0, last) as usize, w as f32)).collect() }
            })
            .collect()
    }

    /// Interpolation weights for the taps around a point `ratio` past the second (linear:
    /// first) tap; antialiased downscaling stretches the kernel by 1/scale and normalizes.
    fn weights(&self, ratio: f64, scale: f64) -> Vec<f64> {
        let a = self.cubic_a;
        let cubic = |x: f64| {
            let x = x.abs();
            if x <= 1.0 {
                ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
            } else {
                0.0
            }
        };
        let linear = |x: f64| (1.0 - x.abs()).clamp(0.0, 1.0);
        let (support, kernel): (f64, &dyn Fn(f64) -> f64) = match self.mode {
            Mode::Linear => (1.0, &linear),
            _ => (2.0, &cubic),
        };
        let s = if self.antialias { scale.min(1.0) } else { 1.0 };
        let start = (-support / s).floor() as i64 + 1;
        let raw: Vec<f64> = (start..2 - start).map(|i| kernel(s * (i as f64 - ratio))).collect();
        if self.antialias {
            let total: f64 = raw.iter().sum();
            raw.into_iter().map(|w| w / total).collect()
        } else {
            raw
        }
    }

    fn values_of(t: Option<&Fact>) -> Result<Option<Vec<f32>>> {
        match t.filter(|f| f.numel() > 0) {
            None => Ok(None),
            Some(f) => f
                .value
                .as_ref()
                .map(|v| Some(v.view().to_f32_vec()))
                .ok_or_else(|| Error::shape("Resize", "roi, scales and sizes must be constants")),
        }
    }
}

impl Op for Resize {
    fn op_type(&self) -> &str {
        "Resize"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "Resize")?;
        check_float(x.dtype, "Resize")?;
        let values: Vec<Option<Vec<f32>>> = (0..4).map(|i| Self::values_of(inputs.get(i).copied().flatten())).collect::<Result<_>>()?;
        let plan = self.plan(&x.shape, |i| values[i].clone())?;
        Ok(vec![Fact::new(x.dtype, plan.shape)])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "Resize")?;
        let values: Vec<Option<Vec<f32>>> =
            (0..4).map(|i| inputs.get(i).copied().flatten().filter(|t| !t.is_empty()).map(|t| t.to_f32_vec())).collect();
        let plan = self.plan(x.shape, |i| values[i].clone())?;
        let xs = f32_values(&x, "Resize")?;
        write_f32(&mut outputs[0], "Resize", |y| {
            let mut cur: Vec<f32> = Vec::new();
            let mut shape = x.shape.to_vec();
            let mut done_any = false;
            for a in 0..shape.len() {
                let (n_in, n_out) = (shape[a], plan.shape[a]);
                let samples = self.samples(n_in, n_out, plan.scales[a], plan.roi[a]);
                let identity = n_in == n_out && samples.iter().enumerate().all(|(o, s)| *s == Sample::Taps { taps: vec![(o, 1.0)] });
                if identity {
                    continue;
                }
                let src: &[f32] = if done_any { &cur } else { &xs };
                let outer: usize = shape[..a].iter().product();
                let inner: usize = shape[a + 1..].iter().product();
                let mut next = vec![0.0f32; outer * n_out * inner];
                resample_axis(src, &mut next, outer, n_in, inner, &samples, self.extrapolation);
                shape[a] = n_out;
                cur = next;
                done_any = true;
            }
            if done_any {
                y.copy_from_slice(&cur);
            } else {
                y.copy_from_slice(&xs);
            }
            Ok(())
        })
    }
}

/// One 1-D pass: `src [outer, n_in, inner]` to `dst [outer, samples.len(), inner]`.
fn resample_axis(src: &[f32], dst: &mut [f32], outer: usize, n_in: usize, inner: usize, samples: &[Sample], extrapolation: f32) {
    let n_out = samples.len();
    for o in 0..outer {
        let s_block = &src[o * n_in * inner..][..n_in * inner];
        let d_block = &mut dst[o * n_out * inner..][..n_out * inner];
        if inner == 1 {
            // Innermost axis: gather within the row.
            for (d, s) in d_block.iter_mut().zip(samples) {
                *d = match s {
                    Sample::Extrapolate => extrapolation,
                    Sample::Taps { taps } => taps.iter().map(|&(i, w)| w * s_block[i]).sum(),
                };
            }
            continue;
        }
        for (j, s) in samples.iter().enumerate() {
            let row = &mut d_block[j * inner..][..inner];
            match s {
                Sample::Extrapolate => row.fill(extrapolation),
                Sample::Taps { taps } if taps.len() == 1 && taps[0].1 == 1.0 => row.copy_from_slice(&s_block[taps[0].0 * inner..][..inner]),
                Sample::Taps { taps } => {
                    row.fill(0.0);
                    for &(i, w) in taps {
                        row.iter_mut().zip(&s_block[i * inner..][..inner]).for_each(|(d, v)| *d += w * v);
                    }
                }
            }
        }
    }
}
