//! ConvTranspose (opsets 1-22) over 1-, 2- and 3-D spatial dims, with every attribute:
//! group, strides, dilations, pads, output_padding, output_shape and auto_pad.
//!
//! Algorithm: GEMM + col2im, as onnxruntime does. Per image and group, the columns
//! `W_g^T X_g` (`[C_out/g * taps, in_pixels]`, one GEMM reading W transposed in place)
//! hold each input pixel's contribution to every tap; col2im adds them into the output at
//! `in * stride + tap * dilation - pad_begin`. The output starts from the bias. f16 is
//! computed in f32 (docs/adr/0011-f16-compute.md).

use super::conv::WindowAttrs;
use super::float_io::{check_float, f32_values, write_f32};
use crate::{bail_shape, required, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};
use cairn_kernels::{gemm, Epilogue, LhsOperand, MatRef, RhsOperand, Transpose};

pub fn register(r: &mut Registry) {
    r.register("ConvTranspose", |ctx| Ok(Box::new(ConvTranspose::read(ctx)?)));
}

#[derive(Debug)]
struct ConvTranspose {
    window: WindowAttrs,
    group: usize,
    output_padding: Option<Vec<usize>>,
    output_shape: Option<Vec<usize>>,
}

/// The resolved geometry, padded to three spatial dims (depth, height, width): a 1-D or
/// 2-D convolution has leading dims of size 1, so one col2im serves every rank.
#[derive(Clone, Debug, PartialEq)]
struct Geometry {
    input: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    dilation: [usize; 3],
    pad_begin: [usize; 3],
    output: [usize; 3],
    /// The spatial rank of the tensors (1, 2 or 3).
    rank: usize,
}

impl ConvTranspose {
    fn read(ctx: &OpContext) -> Result<ConvTranspose> {
        let list = |name: &str| -> Result<Option<Vec<usize>>> {
            match ctx.ints_opt(name)? {
                None => Ok(None),
                Some(v) if v.iter().all(|&x| (0..=1 << 20).contains(&x)) => Ok(Some(v.iter().map(|&x| x as usize).collect())),
                Some(v) => Err(Error::InvalidAttr { attr: name.into(), detail: format!("invalid values {v:?}") }),
            }
        };
        let group = ctx.int("group", 1)?;
        if !(1..=1 << 20).contains(&group) {
            return Err(Error::InvalidAttr { attr: "group".into(), detail: format!("{group} must be positive") });
        }
        Ok(ConvTranspose {
            window: WindowAttrs::read(ctx)?,
            group: group as usize,
            output_padding: list("output_padding")?,
            output_shape: list("output_shape")?,
        })
    }

    fn geometry(&self, x: &[usize], w: &[usize]) -> Result<Geometry> {
        const OP: &str = "ConvTranspose";
        let rank = x.len().saturating_sub(2);
        if !(1..=3).contains(&rank) || w.len() != x.len() {
            bail_shape!(
                OP,
                "input {x:?} and weights {w:?} must be [N, C, spatial...] and [C, M/group, kernel...] with 1 to 3 spatial dims"
            );
        }
        if x[1] != w[0] || !x[1].is_multiple_of(self.group) {
            bail_shape!(OP, "input channels {} must equal the weights' first dim {} and divide by group {}", x[1], w[0], self.group);
        }
        let kernel = &w[2..];
        if let Some(ks) = &self.window.kernel_shape {
            if ks.as_slice() != kernel {
                bail_shape!(OP, "kernel_shape {ks:?} disagrees with weights {w:?}");
            }
        }
        let get = |v: &Option<Vec<usize>>, n: usize, default: usize, name: &str| -> Result<Vec<usize>> {
            match v {
                None => Ok(vec![default; n]),
                Some(v) if v.len() == n => Ok(v.clone()),
                Some(v) => Err(Error::shape(OP, format!("{name} needs {n} values, got {v:?}"))),
            }
        };
        let stride = get(&self.window.strides, rank, 1, "strides")?;
        let dilation = get(&self.window.dilations, rank, 1, "dilations")?;
        let out_pad = get(&self.output_padding, rank, 0, "output_padding")?;
        let mut pads = get(&self.window.pads, 2 * rank, 0, "pads")?;
        if stride.contains(&0) || dilation.contains(&0) || kernel.contains(&0) {
            bail_shape!(OP, "strides, dilations and kernel must be positive");
        }
        let input = &x[2..];
        // Output extent before padding is taken off: (in - 1) * stride + output_padding + dilated kernel.
        let full: Vec<usize> =
            (0..rank).map(|i| (input[i].max(1) - 1) * stride[i] + out_pad[i] + (kernel[i] - 1) * dilation[i] + 1).collect();
        let target: Option<Vec<usize>> = match (&self.output_shape, self.window.auto_pad.as_str()) {
            (Some(shape), _) => {
                // output_shape may list the spatial dims only or the whole shape.
                let spatial = if shape.len() == rank + 2 { &shape[2..] } else { &shape[..] };
                Some(get(&Some(spatial.to_vec()), rank, 0, "output_shape")?)
            }
            (None, "SAME_UPPER" | "SAME_LOWER") => Some((0..rank).map(|i| input[i] * stride[i]).collect()),
            (None, "VALID") => {
                pads.iter_mut().for_each(|p| *p = 0);
                None
            }
            (None, _) => None,
        };
        let mut out = vec![0usize; rank];
        for i in 0..rank {
            if let Some(target) = &target {
                // A target beyond the full extent is reached with zeros at the end (an implied
                // output_padding, as in onnxruntime); a smaller one is cut by padding split as
                // the spec says: SAME_UPPER puts the smaller half first, the rest the larger.
                let total = full[i].saturating_sub(target[i]);
                let (b, e) =
                    if self.window.auto_pad == "SAME_UPPER" { (total / 2, total - total / 2) } else { (total - total / 2, total / 2) };
                pads[i] = b;
                pads[i + rank] = e;
                out[i] = target[i];
            } else {
                out[i] = full[i].saturating_sub(pads[i] + pads[i + rank]);
            }
            if out[i] == 0 {
                bail_shape!(OP, "pads {pads:?} or output_shape leave no output in dim {i} (extent {})", full[i]);
            }
        }
        let three = |v: &[usize], fill: usize| -> [usize; 3] {
            let mut r = [fill; 3];
            r[3 - v.len()..].copy_from_slice(v);
            r
        };
        Ok(Geometry {
            input: three(input, 1),
            kernel: three(kernel, 1),
            stride: three(&stride, 1),
            dilation: three(&dilation, 1),
            pad_begin: three(&pads[..rank], 0),
            output: three(&out, 1),
            rank,
        })
    }

    fn output_shape(&self, x: &[usize], w: &[usize], g: &Geometry) -> Vec<usize> {
        let mut shape = vec![x[0], w[1] * self.group];
        shape.extend_from_slice(&g.output[3 - g.rank..]);
        shape
    }
}

impl Op for ConvTranspose {
    fn op_type(&self) -> &str {
        "ConvTranspose"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, "ConvTranspose")?;
        let w = required(inputs, 1, "ConvTranspose")?;
        check_float(x.dtype, "ConvTranspose")?;
        if w.dtype != x.dtype {
            bail_shape!("ConvTranspose", "weights are {} but the input is {}", w.dtype, x.dtype);
        }
        let g = self.geometry(&x.shape, &w.shape)?;
        let shape = self.output_shape(&x.shape, &w.shape, &g);
        if let Some(b) = inputs.get(2).copied().flatten() {
            if b.shape != [shape[1]] || b.dtype != x.dtype {
                bail_shape!("ConvTranspose", "bias must be {} of shape [{}], got {} {:?}", x.dtype, shape[1], b.dtype, b.shape);
            }
        }
        Ok(vec![Fact::new(x.dtype, shape)])
    }

    fn macs(&self, inputs: &[Option<&Fact>], _outputs: &[Fact]) -> u64 {
        match (inputs.first().copied().flatten(), inputs.get(1).copied().flatten()) {
            // Every input element meets every weight of its group.
            (Some(x), Some(w)) => (x.numel() / x.shape.get(1).copied().unwrap_or(1).max(1) * w.numel()) as u64,
            _ => 0,
        }
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, "ConvTranspose")?;
        let w = required(inputs, 1, "ConvTranspose")?;
        let g = self.geometry(x.shape, w.shape)?;
        let xs = f32_values(&x, "ConvTranspose")?;
        let ws = f32_values(&w, "ConvTranspose")?;
        let bias = inputs.get(2).copied().flatten().map(|b| f32_values(&b, "ConvTranspose")).transpose()?;
        let (n, c, m) = (x.shape[0], x.shape[1], w.shape[1] * self.group);
        write_f32(&mut outputs[0], "ConvTranspose", |y| {
            conv_transpose(&g, self.group, n, c, m, &xs, &ws, bias.as_deref(), y);
            Ok(())
        })
    }
}

/// `y = conv_transpose(x, w) + bias` for `n` images, NC(D)HW.
#[allow(clippy::too_many_arguments)]
fn conv_transpose(g: &Geometry, group: usize, n: usize, c: usize, m: usize, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (cg, mg) = (c / group, m / group);
    let in_px: usize = g.input.iter().product();
    let out_px: usize = g.output.iter().product();
    let taps: usize = g.kernel.iter().product();
    thread_local! {
        static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut col = COL.with(|c| std::mem::take(&mut *c.borrow_mut()));
    col.resize(mg * taps * in_px, 0.0);
    for b in 0..n {
        for grp in 0..group {
            let xg = &x[(b * c + grp * cg) * in_px..][..cg * in_px];
            let wg = &w[grp * cg * mg * taps..][..cg * mg * taps];
            let yg = &mut y[(b * m + grp * mg) * out_px..][..mg * out_px];
            // Rows (output channel, tap), columns input pixels: W_g is [cg, mg * taps], read transposed.
            gemm(
                mg * taps,
                in_px,
                cg,
                LhsOperand::Strided { mat: MatRef::new(wg, mg * taps, Transpose::Yes), alpha: 1.0 },
                RhsOperand::Strided(MatRef::new(xg, in_px, Transpose::No)),
                &mut col,
                in_px,
                false,
                &Epilogue::default(),
            );
            for (ch, plane) in yg.chunks_exact_mut(out_px).enumerate() {
                plane.fill(bias.map_or(0.0, |bias| bias[grp * mg + ch]));
                col2im(g, &col[ch * taps * in_px..][..taps * in_px], plane);
            }
        }
    }
    COL.with(|c| *c.borrow_mut() = col);
}

/// Adds one output channel's columns (`[taps][in_px]`) into its plane.
fn col2im(g: &Geometry, col: &[f32], plane: &mut [f32]) {
    let [id, ih, iw] = g.input;
    let [kd, kh, kw] = g.kernel;
    let [od, oh, ow] = g.output;
    let in_px = id * ih * iw;
    // Input indices whose output index `i * s + k * dil - pad` lands in `0..out`.
    let valid = |dim: usize, k: usize, len_in: usize, len_out: usize| -> (usize, usize, isize) {
        let off = (k * g.dilation[dim]) as isize - g.pad_begin[dim] as isize;
        let s = g.stride[dim] as isize;
        let lo = if off >= 0 { 0 } else { ((-off) as usize).div_ceil(s as usize) };
        let hi = if (len_out as isize) <= off { 0 } else { ((len_out as isize - off - 1) / s + 1) as usize };
        (lo.min(len_in), hi.min(len_in).max(lo.min(len_in)), off)
    };
    let (sd, sh, sw) = (g.stride[0], g.stride[1], g.stride[2]);
    for a in 0..kd {
        let (d_lo, d_hi, d_off) = valid(0, a, id, od);
        for ki in 0..kh {
            let (h_lo, h_hi, h_off) = valid(1, ki, ih, oh);
            for kj in 0..kw {
                let (w_lo, w_hi, w_off) = valid(2, kj, iw, ow);
                if w_lo == w_hi {
                    continue;
                }
                let src = &col[((a * kh + ki) * kw + kj) * in_px..][..in_px];
                for zi in d_lo..d_hi {
                    let zo = (zi * sd) as isize + d_off;
                    for yi in h_lo..h_hi {
                        let yo = (yi * sh) as isize + h_off;
                        let row_in = &src[(zi * ih + yi) * iw..][..iw];
                        let row_out = &mut plane[(zo as usize * oh + yo as usize) * ow..][..ow];
                        let first = (w_lo * sw) as isize + w_off;
                        let out_run = &mut row_out[first as usize..];
                        if sw == 1 {
                            out_run.iter_mut().zip(&row_in[w_lo..w_hi]).for_each(|(o, v)| *o += v);
                        } else {
                            out_run.iter_mut().step_by(sw).zip(&row_in[w_lo..w_hi]).for_each(|(o, v)| *o += v);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GEMM + col2im path against the definition (a scatter of every input element
    /// through every tap), over ranks, groups, strides, dilations, pads and output padding.
    #[test]
    fn matches_the_direct_scatter() {
        let mut seed = 11u32;
        let mut rand = move || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        // (input spatial, kernel, stride, dilation, pads, output_padding, c, m, group)
        type Case = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, usize, usize, usize);
        let cases: Vec<Case> = vec![
            (vec![5, 6], vec![3, 3], vec![2, 2], vec![1, 1], vec![1, 0, 1, 2], vec![1, 0], 4, 6, 2),
            (vec![7], vec![4], vec![3], vec![2], vec![2, 1], vec![1], 3, 2, 1),
            (vec![3, 4, 5], vec![2, 3, 2], vec![1, 2, 3], vec![2, 1, 1], vec![0, 1, 0, 1, 0, 2], vec![0, 1, 2], 2, 4, 2),
            (vec![8, 8], vec![2, 2], vec![2, 2], vec![1, 1], vec![0, 0, 0, 0], vec![0, 0], 5, 3, 1),
        ];
        for (input, kernel, stride, dil, pads, opad, c, m, group) in cases {
            let rank = input.len();
            let op = ConvTranspose {
                window: WindowAttrs {
                    kernel_shape: None,
                    strides: Some(stride.clone()),
                    dilations: Some(dil.clone()),
                    pads: Some(pads.clone()),
                    auto_pad: "NOTSET".into(),
                },
                group,
                output_padding: Some(opad),
                output_shape: None,
            };
            let x_shape: Vec<usize> = [2, c].iter().chain(&input).copied().collect();
            let w_shape: Vec<usize> = [c, m / group].iter().chain(&kernel).copied().collect();
            let g = op.geometry(&x_shape, &w_shape).unwrap();
            let y_shape = op.output_shape(&x_shape, &w_shape, &g);
            let x: Vec<f32> = (0..x_shape.iter().product::<usize>()).map(|_| rand()).collect();
            let w: Vec<f32> = (0..w_shape.iter().product::<usize>()).map(|_| rand()).collect();
            let bias: Vec<f32> = (0..m).map(|_| rand()).collect();
            let mut got = vec![0.0f32; y_shape.iter().product()];
            conv_transpose(&g, group, 2, c, m, &x, &w, Some(&bias), &mut got);
            // Direct scatter, in f64.
            let out_sp = &y_shape[2..];
            let out_px: usize = out_sp.iter().product();
            let in_px: usize = input.iter().product();
            let taps: usize = kernel.iter().product();
            let mut want: Vec<f64> = (0..got.len()).map(|i| bias[(i / out_px) % m] as f64).collect();
            let unravel = |mut i: usize, dims: &[usize]| -> Vec<usize> {
                let mut v = vec![0; dims.len()];
                for d in (0..dims.len()).rev() {
                    v[d] = i % dims[d];
                    i /= dims[d];
                }
                v
            };
            for b in 0..2 {
                for ci in 0..c {
                    let grp = ci / (c / group);
                    for p in 0..in_px {
                        let ip = unravel(p, &input);
                        for mo in 0..m / group {
                            for t in 0..taps {
                                let kt = unravel(t, &kernel);
                                let pos: Vec<isize> =
                                    (0..rank).map(|d| (ip[d] * stride[d] + kt[d] * dil[d]) as isize - pads[d] as isize).collect();
                                if pos.iter().zip(out_sp).any(|(&q, &o)| q < 0 || q >= o as isize) {
                                    continue;
                                }
                                let flat = pos.iter().zip(out_sp).fold(0usize, |acc, (&q, &o)| acc * o + q as usize);
                                let co = grp * (m / group) + mo;
                                let wv = w[(ci * (m / group) + mo) * taps + t] as f64;
                                want[(b * m + co) * out_px + flat] += x[(b * c + ci) * in_px + p] as f64 * wv;
                            }
                        }
                    }
                }
            }
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((*a as f64 - b).abs() < 1e-4, "rank {rank}: output {i}: {a} vs {b}");
            }
        }
    }
}
