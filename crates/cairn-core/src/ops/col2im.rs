//! Col2Im (opset 18): the inverse of im2col (PyTorch's `fold`). Each column of
//! `[N, C * prod(block), L]` holds one sliding block; overlapping taps are summed into
//! `[N, C, image...]`. Any number of spatial dims; computed in f64 for every float dtype.

use super::unravel;
use crate::{bail_shape, required, Error, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("Col2Im", |ctx: &OpContext| {
        let read = |name: &str| ctx.usizes_opt(name);
        Ok(Box::new(Col2Im { strides: read("strides")?, dilations: read("dilations")?, pads: read("pads")? }))
    });
}

const OP: &str = "Col2Im";

#[derive(Debug)]
struct Col2Im {
    strides: Option<Vec<usize>>,
    dilations: Option<Vec<usize>>,
    pads: Option<Vec<usize>>,
}

/// The resolved geometry of one call.
struct Geometry {
    image: Vec<usize>,
    block: Vec<usize>,
    /// Blocks along each spatial dim.
    blocks: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
    channels: usize,
}

impl Col2Im {
    fn geometry(&self, input: &[usize], image: &[i64], block: &[i64]) -> Result<Geometry> {
        let r = image.len();
        if block.len() != r || r == 0 {
            bail_shape!(OP, "image_shape {image:?} and block_shape {block:?} must have one length of at least 1");
        }
        let dims = |v: &[i64], what: &str| -> Result<Vec<usize>> {
            v.iter()
                .map(|&d| {
                    usize::try_from(d).ok().filter(|&d| d > 0).ok_or_else(|| Error::shape(OP, format!("{what} {v:?} must be positive")))
                })
                .collect()
        };
        let (image, block) = (dims(image, "image_shape")?, dims(block, "block_shape")?);
        let or = |v: &Option<Vec<usize>>, n: usize, default: usize, what: &str| -> Result<Vec<usize>> {
            match v {
                None => Ok(vec![default; n]),
                Some(v) if v.len() == n => Ok(v.clone()),
                Some(v) => Err(Error::shape(OP, format!("{what} {v:?} must have {n} values"))),
            }
        };
        let (strides, dilations, pads) =
            (or(&self.strides, r, 1, "strides")?, or(&self.dilations, r, 1, "dilations")?, or(&self.pads, 2 * r, 0, "pads")?);
        if strides.contains(&0) || dilations.contains(&0) {
            bail_shape!(OP, "strides and dilations must be positive");
        }
        let mut blocks = Vec::with_capacity(r);
        for d in 0..r {
            let span = dilations[d] * (block[d] - 1) + 1;
            let padded = image[d] + pads[d] + pads[d + r];
            if padded < span {
                bail_shape!(OP, "block {} (dilated {span}) is larger than the padded image {padded} along dim {d}", block[d]);
            }
            blocks.push((padded - span) / strides[d] + 1);
        }
        let per_block: usize = block.iter().product();
        let [_, cols, l] = input[..] else { bail_shape!(OP, "input must be [N, C * prod(block_shape), L], got {input:?}") };
        if cols % per_block != 0 || l != blocks.iter().product::<usize>() {
            bail_shape!(OP, "input {input:?} must be [N, C * {per_block}, {}] for these blocks", blocks.iter().product::<usize>());
        }
        Ok(Geometry { image, block, blocks, strides, dilations, pads, channels: cols / per_block })
    }
}

fn known(inputs: &[Option<&Fact>], i: usize) -> Result<Vec<i64>> {
    required(inputs, i, OP)?
        .known_i64s()
        .ok_or_else(|| Error::shape(OP, "image_shape and block_shape set the output shape; they must be known before running"))
}

impl Op for Col2Im {
    fn op_type(&self) -> &str {
        OP
    }
    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, OP)?;
        if !x.dtype.is_float() {
            bail_shape!(OP, "is defined for float inputs, got {}", x.dtype);
        }
        let g = self.geometry(&x.shape, &known(inputs, 1)?, &known(inputs, 2)?)?;
        let mut shape = vec![x.shape[0], g.channels];
        shape.extend(&g.image);
        Ok(vec![Fact::new(x.dtype, shape)])
    }
    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, OP)?;
        let (image, block) = (required(inputs, 1, OP)?.to_i64_vec()?, required(inputs, 2, OP)?.to_i64_vec()?);
        let g = self.geometry(x.shape, &image, &block)?;
        let r = g.image.len();
        let (per_block, n_blocks, plane): (usize, usize, usize) =
            (g.block.iter().product(), g.blocks.iter().product(), g.image.iter().product());
        let xs = x.to_f64_vec();
        let mut out = vec![0.0f64; x.shape[0] * g.channels * plane];
        let (mut k, mut l) = (vec![0usize; r], vec![0usize; r]);
        for nc in 0..x.shape[0] * g.channels {
            for kf in 0..per_block {
                unravel(kf, &g.block, &mut k);
                let col = &xs[(nc * per_block + kf) * n_blocks..][..n_blocks];
                'blocks: for (lf, &v) in col.iter().enumerate() {
                    unravel(lf, &g.blocks, &mut l);
                    let mut at = 0usize;
                    for d in 0..r {
                        let p = (l[d] * g.strides[d] + k[d] * g.dilations[d]) as isize - g.pads[d] as isize;
                        if p < 0 || p >= g.image[d] as isize {
                            continue 'blocks;
                        }
                        at = at * g.image[d] + p as usize;
                    }
                    out[nc * plane + at] += v;
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
    fn overlapping_blocks_are_summed() {
        // 1-D image of 3, blocks of 2 with stride 1: columns [a b], [c d] -> [a, b + c, d].
        let op = Col2Im { strides: None, dilations: None, pads: None };
        let x = Tensor::from_f32(vec![1, 2, 2], vec![1., 3., 2., 4.]).unwrap();
        let (image, block) = (Tensor::from_i64(vec![1], vec![3]).unwrap(), Tensor::from_i64(vec![1], vec![2]).unwrap());
        let out = crate::plan::run_owned(&op, &[x, image, block].map(|t| Some(Arc::new(t)))).unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 3]);
        assert_eq!(out[0].f32s().unwrap(), &[1., 5., 4.]);
    }
}
